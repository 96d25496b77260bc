# shellcheck shell=bash
# ensure_venv REQUIREMENTS: create .venv with Python 3.11+ and install REQUIREMENTS into it,
# again only when a requirements file changed since the last install. Two scripts may call it
# at once (.ci/run builds the lab's images beside the test command): a lock makes the second
# wait for the first, and an install that fails is never stamped as done.
ensure_venv() {
  local requirements=$1 python=${PYTHON:-python3} stamp status=0 venv_lock
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "MiniTwit needs Python 3.11 or newer (set PYTHON=/path/to/python3.x)." >&2
    return 1
  fi
  stamp=".venv/.installed-$(basename "$requirements")"
  exec {venv_lock}>".venv.lock"
  flock "$venv_lock"
  {
    # bin/pip is written last: without it the venv is half made
    [ -x .venv/bin/pip ] || "$python" -m venv --clear .venv
  } && if [ ! -f "$stamp" ] || [ -n "$(find requirements*.txt -newer "$stamp")" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip &&
      .venv/bin/python -m pip install --quiet -r "$requirements" &&
      touch "$stamp"
  fi || status=$?
  exec {venv_lock}>&-
  if ((status != 0)); then
    echo "ensure_venv: could not install $requirements into .venv (exit $status)" >&2
    return "$status"
  fi
  export PYTHONPATH="$PWD/service${PYTHONPATH:+:$PYTHONPATH}"
}
