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
  prometheus-node-exporter prometheus-postgres-exporter  # their real metric names, for the rule checks
  docker.io              # the Swarm engine for the real deployment test
  mmdebstrap             # builds the Python base and test host images without a registry
  openssh-client         # scripts/provision-test.sh logs in to the test hosts from outside
  rsync                  # deploy.yml sends the stack files to the manager with rsync
  pgbackrest             # WAL archiving and backups, the same 2.45 as in the PostgreSQL image (tests, bench)
  pebble                 # Let's Encrypt's ACME test server, for real certificate issuance in CI
  testssl.sh             # the deployed stack's TLS measured from outside (drills/checks.py)
  openssl apache2-utils  # throwaway CA for Pebble; htpasswd for the Traefik dashboard secret
  jq                     # scripts/apply-rulesets.sh reads the GitHub API's JSON
  curl ca-certificates
)

# amtool of the Alertmanager the stack runs (0.28, Debian trixie): bookworm's 0.25 rejects the
# *_file options our config uses for credentials. Only the one binary is taken from trixie's
# package (apt-get download with a private sources list), so the system stays pure bookworm.
install_amtool() {
  if amtool --version 2>&1 | grep -Eq 'version 0\.(2[6-9]|[3-9][0-9])'; then
    return
  fi
  local work
  work="$(mktemp -d)"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
  echo 'deb http://deb.debian.org/debian trixie main' >"$work/sources.list"
  local apt_options=(-o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
  apt-get "${apt_options[@]}" update -qq
  (cd "$work" && apt-get "${apt_options[@]}" download prometheus-alertmanager)
  dpkg-deb -x "$work"/prometheus-alertmanager_*.deb "$work/root"
  install -m 0755 "$work/root/usr/bin/amtool" /usr/local/bin/amtool
  rm -rf "$work"
  amtool --version 2>&1 | head -n 1
}

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "system packages: all present"
else
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
install_amtool
