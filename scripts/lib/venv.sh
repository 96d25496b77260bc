# shellcheck shell=bash
# ensure_venv REQUIREMENTS: create .venv with Python 3.11+ and install REQUIREMENTS into it,
# again only when a requirements file changed since the last install.
ensure_venv() {
  local requirements=$1 python=${PYTHON:-python3} stamp
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "MiniTwit needs Python 3.11 or newer (set PYTHON=/path/to/python3.x)." >&2
    return 1
  fi
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  stamp=".venv/.installed-$(basename "$requirements")"
  if [ ! -f "$stamp" ] || [ -n "$(find requirements*.txt -newer "$stamp")" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r "$requirements"
    touch "$stamp"
  fi
  export PYTHONPATH="$PWD/service${PYTHONPATH:+:$PYTHONPATH}"
}
