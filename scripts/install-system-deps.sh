#!/usr/bin/env bash
# Install the Debian packages the whole test and deployment pipeline uses (root, Debian 12).
# A laptop needs only Python 3.11+ for scripts/run.sh; these make every check of scripts/test.sh run.
set -euo pipefail
packages=(
  postgresql-15          # the throwaway PostgreSQL servers of the test suites and benchmarks
  chromium               # the browser the Playwright e2e suite drives
  libnss3-tools          # certutil: Chromium trusts the stack's test CA in the HTTPS e2e run
  shellcheck             # shell lint
  prometheus             # promtool: check and unit-test the Prometheus config and rules
  docker.io              # the Swarm engine for the real deployment test
  mmdebstrap             # builds the Python base and test host images without a registry
  openssh-client         # scripts/provision-test.sh logs in to the test hosts from outside
  pebble                 # Let's Encrypt's ACME test server, for real certificate issuance in CI
  openssl apache2-utils  # throwaway CA for Pebble; htpasswd for the Traefik dashboard secret
  jq                     # scripts/apply-rulesets.sh reads the GitHub API's JSON
  curl ca-certificates
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
