#!/usr/bin/env bash
# Check the Prometheus configuration and rules with promtool and run the rules' unit tests
# (stack/prometheus/tests: every alert fires in one case and stays quiet in another), then the
# Alertmanager configuration with amtool: `check-config` and the routing tests of
# stack/alertmanager/routes-test.txt, on the template rendered with example values.
# The consistency with the real app, Traefik and Prometheus is tests/infra/test_observability_config.py.
# Without promtool or amtool this skips, unless MINITWIT_STRICT=1 (CI), where it fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# require <tool> <how to install>: skip (or fail under MINITWIT_STRICT=1) when it is missing.
require() {
  command -v "$1" >/dev/null 2>&1 && return
  if [[ "${MINITWIT_STRICT:-0}" == "1" ]]; then
    echo "FAILED: $1 not installed ($2)" >&2
    exit 1
  fi
  echo "SKIPPED: $1 not installed ($2)"
  exit 0
}

# render_alertmanager <out>: the Swarm template with the values an operator would set (a
# variable the service does not have renders empty, as in Swarm).
render_alertmanager() {
  ALERTMANAGER_SMTP_SMARTHOST=smtp.example.org:587 ALERTMANAGER_SMTP_FROM=alerts@example.org \
    ALERTMANAGER_SMTP_USERNAME=alerts@example.org ALERTMANAGER_SMTP_REQUIRE_TLS=true \
    ALERTMANAGER_EMAIL_PAGE_TO=oncall@example.org ALERTMANAGER_EMAIL_TICKET_TO=ops@example.org \
    python3 -c '
import os, re, sys
template = open(sys.argv[1]).read()
print(re.sub(r"\{\{ env \"(\w+)\" \}\}", lambda m: os.environ.get(m.group(1), ""), template), end="")
' stack/alertmanager/alertmanager.yml >"$1"
}

# Every line of routes-test.txt: the receivers amtool finds for those labels are the expected ones.
test_routes() {
  local config="$1" expected labels failures=0
  while read -r expected labels; do
    [[ -z "$expected" || "$expected" == \#* ]] && continue
    # shellcheck disable=SC2086 # labels are separate words by design
    if amtool config routes test --config.file="$config" --verify.receivers="$expected" $labels >/dev/null 2>&1; then
      echo "ok: route $labels -> $expected"
    else
      echo "FAILED: route $labels -> $(amtool config routes test --config.file="$config" $labels 2>/dev/null), expected $expected" >&2
      failures=$((failures + 1))
    fi
  done <stack/alertmanager/routes-test.txt
  return $((failures > 0))
}

require promtool "apt-get install prometheus"
promtool --version | head -n 1
# Also checks the rule files the configuration lists (paths relative to the file).
promtool check config stack/prometheus/prometheus.yml
promtool check rules stack/prometheus/rules/*.yml
promtool test rules stack/prometheus/tests/*.yml

# amtool >= 0.26 (url_file): Debian trixie's via scripts/install-system-deps.sh, Ubuntu 24.04's.
require amtool "scripts/install-system-deps.sh"
amtool --version 2>&1 | head -n 1
rendered="$(mktemp)"
trap 'rm -f "$rendered"' EXIT
render_alertmanager "$rendered"
amtool check-config "$rendered"
test_routes "$rendered"
