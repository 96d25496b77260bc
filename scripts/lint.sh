#!/usr/bin/env bash
# Lint everything: Python (ruff check + format), YAML (yamllint) and shell (shellcheck).
# A missing shellcheck is skipped, or fails under MINITWIT_STRICT=1.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/venv.sh
ensure_venv requirements-dev.txt
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/yamllint --no-warnings .
mapfile -t shell_scripts < <(git ls-files '*.sh' .ci/run)
if command -v shellcheck >/dev/null; then
  shellcheck -x "${shell_scripts[@]}"
elif [ "${MINITWIT_STRICT:-0}" = 1 ]; then
  echo "FAILED: shellcheck is not installed (apt-get install shellcheck)" >&2
  exit 1
else
  echo "SKIPPED: shellcheck is not installed (apt-get install shellcheck)"
fi
echo "lint: ok"
