#!/usr/bin/env bash
# Grade a deployed MiniTwit with the MDN HTTP Observatory (npm @mdn/mdn-http-observatory, MPL-2.0).
#
#   scripts/observatory.sh <https://host/ | host> [--ca ca.pem] [--resolve host:ip] [--min-score N] [--json out.json]
#   scripts/observatory.sh https://minitwit-lab.test/ --ca /tmp/minitwit-lab17/acme-root.pem    the lab
#
# Installs the pinned scanner once into ~/.cache/minitwit (or $MINITWIT_CACHE_DIR), scans
# http://host/ and https://host/ (GET, OPTIONS and robots.txt only: nothing is written), prints the
# grade, the score and every test's result. Exit 0 only for an A+ with every test passed and at least
# --min-score points (default 100). Details: testkit/observatory.py; what it measures: docs/security.md.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m testkit.observatory "$@"
