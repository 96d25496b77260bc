#!/usr/bin/env bash
# Development server with auto-reload and the debugger (never use it in production: scripts/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/venv.sh
ensure_venv requirements-dev.txt
.venv/bin/flask --app minitwit migrate
exec .venv/bin/flask --app minitwit run --debug --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}"
