#!/usr/bin/env bash
# Scale test: COPY-seed PostgreSQL (10k users, 200k follows, 10k -> 100k -> 1M messages) and check that the
# timelines stay flat (p99 at the largest size <= 1.5x the smallest).
#
#   scripts/scale.sh                              # the full test (a few minutes)
#   scripts/scale.sh --messages 10000,100000      # the short CI version
#
# Starts its own PostgreSQL + gunicorn; JSON in artifacts/bench/scale.json. See docs/performance.md.
set -euo pipefail

cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
# bench/ takes the simulator's credentials from the service (minitwit.config).
export PYTHONPATH="${PWD}:${PWD}/service${PYTHONPATH:+:${PYTHONPATH}}"
exec "$python" -m bench.scale "$@"
