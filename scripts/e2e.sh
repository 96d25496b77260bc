#!/usr/bin/env bash
# Run the browser end-to-end suite (e2e/) in real Chromium.
#
#   scripts/e2e.sh [pytest args]         local gunicorn app, once on SQLite, once on PostgreSQL
#   E2E_DATABASES=sqlite scripts/e2e.sh  only some databases
#   E2E_BASE_URL=https://minitwit.test E2E_HOST_RESOLVER_RULES="MAP minitwit.test 127.0.0.1" \
#     E2E_CA_BUNDLE=pebble-roots.pem scripts/e2e.sh      an already running deployment
#
# Artifacts per run in artifacts/e2e/<sqlite|postgresql|remote>/: screenshots/, app.log,
# test-results/ (Playwright traces of failed tests: `playwright show-trace <zip>`).
# MINITWIT_STRICT=1 turns every skip (no Playwright, no Chromium, no PostgreSQL) into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
RUN_TIMEOUT_S=${E2E_RUN_TIMEOUT_S:-900}

skip_or_fail() {
  if [[ "${MINITWIT_STRICT:-0}" == "1" ]]; then
    echo "FAILED (MINITWIT_STRICT=1): e2e cannot run: $1" >&2
    exit 1
  fi
  echo "SKIPPED: e2e: $1"
  exit 0
}

note_tls_verification() {
  if [[ -z "${E2E_CA_BUNDLE:-}" ]]; then
    echo "NOTE: E2E_CA_BUNDLE unset: Chromium ignores HTTPS errors, the certificate is NOT verified"
  elif ! command -v certutil >/dev/null; then
    echo "NOTE: no certutil (libnss3-tools): certificate verified by Python only, Chromium ignores HTTPS errors"
  fi
}

run_suite() {
  local label=$1
  shift
  echo "== e2e: ${label} =="
  E2E_DATABASE=${label} timeout "${RUN_TIMEOUT_S}" "${PYTHON}" -m pytest e2e \
    -p no:cacheprovider --tracing retain-on-failure \
    --output "artifacts/e2e/${label}/test-results" "$@"
}

main() {
  "${PYTHON}" -c "import pytest_playwright" 2>/dev/null \
    || skip_or_fail "pytest-playwright not installed (pip install -r requirements-dev.txt)"
  if [[ -n "${E2E_BASE_URL:-}" ]]; then
    if [[ "${E2E_BASE_URL}" == https://* ]]; then
      note_tls_verification
    fi
    run_suite remote "$@"
    return
  fi
  local database
  for database in ${E2E_DATABASES:-sqlite postgresql}; do
    run_suite "${database}" "$@"
  done
}

main "$@"
