#!/usr/bin/env bash
# The test command: lint; the pytest suite on SQLite and PostgreSQL with the coverage gate; the browser
# e2e suite on both databases; static checks of the stack, observability, Ansible and workflow files;
# the AWS infrastructure playbook against a local AWS API (infra).
# Every stage runs and reports; the command fails if any stage failed. Missing tools are skipped with a
# message, or fail under MINITWIT_STRICT=1 (as in CI).
#
#   scripts/test.sh                  every stage
#   scripts/test.sh pytest e2e       only the named stages (CI runs them as parallel jobs)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source scripts/lib/venv.sh

STAGES=(lint pytest e2e check-stack check-observability check-ansible check-workflows infra)
selected=("$@")
for name in "${selected[@]}"; do
  if [[ " ${STAGES[*]} " != *" $name "* ]]; then
    echo "test.sh: unknown stage '$name'; the stages are: ${STAGES[*]}" >&2
    exit 2
  fi
done
ensure_venv requirements-dev.txt || exit 1

failed=()
stage() {
  local name=$1
  shift
  if ((${#selected[@]})) && [[ " ${selected[*]} " != *" $name "* ]]; then return 0; fi
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
stage infra scripts/infra-test.sh

if [ "${#failed[@]}" -gt 0 ]; then
  echo "test.sh: FAILED stages: ${failed[*]}"
  exit 1
fi
echo "test.sh: passed: ${selected[*]:-every stage}"
