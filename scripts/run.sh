#!/usr/bin/env bash
# Run MiniTwit with zero setup: SQLite under service/instance/, UI on http://127.0.0.1:5000, API at /api.
# The same gunicorn as production; HOST, PORT and DATABASE_URL (e.g. postgresql://...) are honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/venv.sh
ensure_venv requirements.txt
.venv/bin/flask --app minitwit migrate
echo "MiniTwit on http://${HOST:-127.0.0.1}:${PORT:-5000}/ (API at ${API_PREFIX:-/api}), metrics on :${METRICS_PORT:-9200}"
exec .venv/bin/gunicorn -c service/gunicorn.conf.py "minitwit:create_app()"
