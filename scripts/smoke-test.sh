#!/usr/bin/env bash
# Smoke-test a deployed MiniTwit: /ready and /api/latest must both answer 2xx.
#
#   scripts/smoke-test.sh <base url> [attempts] [delay seconds]    e.g. https://minitwit.example.org
#
# Retries (default 12 × 5 s) because Swarm may still be shifting traffic to the new replicas;
# every request is bounded by --max-time. Exit 0 on success, 1 when it never passes.
set -euo pipefail

# One pass: both endpoints answer 2xx.
check_once() {
  local url=$1
  curl --fail --silent --show-error --max-time 10 --output /dev/null "${url}/ready" \
    && curl --fail --silent --show-error --max-time 10 --output /dev/null "${url}/api/latest"
}

main() {
  [[ $# -ge 1 && $# -le 3 && -n "$1" ]] || { echo "usage: $0 <base url> [attempts] [delay]" >&2; exit 2; }
  local url=${1%/} attempts=${2:-12} delay=${3:-5} i
  for ((i = 1; i <= attempts; i++)); do
    if check_once "$url"; then
      echo "OK: ${url}/ready and ${url}/api/latest answer (attempt ${i})"
      return 0
    fi
    ((i < attempts)) && sleep "$delay"
  done
  echo "FAILED: ${url} did not pass the smoke test in ${attempts} attempts" >&2
  exit 1
}

main "$@"
