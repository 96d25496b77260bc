#!/usr/bin/env bash
# Replay the ITU simulator scenario against MiniTwit and report throughput, latency and errors.
#
#   scripts/bench.sh                      # own PostgreSQL + gunicorn; sequential and 16 clients; full scenario
#   scripts/bench.sh --rows 3000          # the short CI version
#   scripts/bench.sh --url https://minitwit.test/api --cacert ca.pem --resolve-to 127.0.0.1 --clients 16
#
# Text report on stdout, JSON in artifacts/bench/replay.json (--json PATH). Exit 1 on any simulator error.
# Server settings come from the environment (WEB_CONCURRENCY, GUNICORN_THREADS, ...). See docs/performance.md.
set -euo pipefail

cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
# bench/ takes the simulator's credentials from the service (minitwit.config).
export PYTHONPATH="${PWD}:${PWD}/service${PYTHONPATH:+:${PYTHONPATH}}"
exec "$python" -m bench.replay "$@"
