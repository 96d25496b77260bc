#!/usr/bin/env bash
# Check the Prometheus configuration and rules with promtool and run the rules' unit tests
# (stack/prometheus/tests: every alert fires in one case and stays quiet in another).
# The consistency with the real app, Traefik and Prometheus is tests/test_observability.py.
# Without promtool this skips, unless MINITWIT_STRICT=1 (CI), where it fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v promtool >/dev/null 2>&1; then
  if [[ "${MINITWIT_STRICT:-0}" == "1" ]]; then
    echo "FAILED: promtool not installed (apt-get install prometheus)" >&2
    exit 1
  fi
  echo "SKIPPED: promtool not installed (apt-get install prometheus)"
  exit 0
fi

promtool --version | head -n 1
# Also checks the rule files the configuration lists (paths relative to the file).
promtool check config stack/prometheus/prometheus.yml
promtool check rules stack/prometheus/rules/*.yml
promtool test rules stack/prometheus/tests/*.yml
