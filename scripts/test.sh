#!/usr/bin/env bash
# The test command: lint; the pytest suite on SQLite and PostgreSQL with the coverage gate; the browser
# e2e suite on both databases; static checks of the stack, observability, Ansible and workflow files.
# Every stage runs and reports; the command fails if any stage failed. Missing tools are skipped with a
# message, or fail under MINITWIT_STRICT=1 (as in CI).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source scripts/lib/venv.sh
ensure_venv requirements-dev.txt || exit 1

failed=()
stage() {
  local name=$1
  shift
  echo "=== ${name}"
  if "$@"; then echo "=== ${name}: ok"; else echo "=== ${name}: FAILED"; failed+=("$name"); fi
}

unit_and_integration_tests() {
  .venv/bin/pytest --cov --cov-report=term -p no:cacheprovider
  local rc=$?
  [ "$rc" -eq 5 ] && echo "pytest collected no tests: the suite is missing" >&2
  return "$rc"
}

stage lint scripts/lint.sh
stage pytest unit_and_integration_tests
stage e2e scripts/e2e.sh
for check in stack observability ansible workflows; do
  stage "check-${check}" "scripts/check-${check}.sh"
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "test.sh: FAILED stages: ${failed[*]}"
  exit 1
fi
echo "test.sh: every stage passed"
