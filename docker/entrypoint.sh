#!/bin/sh
# Container entrypoint for the MiniTwit image.
#
# When the container runs the web server, first bring the database schema up to date.
# `flask --app minitwit migrate` takes a PostgreSQL advisory lock, so three replicas starting at
# once are safe: one migrates, the others wait and then find nothing to do. The database may
# still be starting (Swarm has no depends_on), so a failed attempt is retried a bounded number of
# times before the task gives up and Swarm's restart policy takes over.
# Any other command (e.g. `flask --app minitwit import-legacy old.db`) runs as given.
set -eu

migrate() {
    attempts="${MIGRATE_ATTEMPTS:-30}"
    attempt=1
    until flask --app minitwit migrate; do
        if [ "$attempt" -ge "$attempts" ]; then
            echo "entrypoint: migration failed after $attempts attempts" >&2
            exit 1
        fi
        echo "entrypoint: migration attempt $attempt/$attempts failed, retrying in 2 s" >&2
        attempt=$((attempt + 1))
        sleep 2
    done
}

# The app's metrics (multiprocess mode) need this directory even in one-off flask commands;
# gunicorn.conf.py empties it again when the server starts.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi

# Drain before stop: on SIGTERM, make /health answer 503 (DRAIN_FILE) so Traefik's health check
# (every 5 s) takes this replica out of rotation, keep serving whatever Traefik still sends for
# DRAIN_SECONDS, then let gunicorn finish in-flight requests and exit. Without this, Traefik
# learns late that a task is stopping and sends new connections to a closed port (502s).
# The stack's stop_grace_period covers DRAIN_SECONDS + gunicorn's graceful_timeout.
# shellcheck disable=SC2317 # invoked by the TERM/INT trap below
drain_then_stop() {
    if [ -n "${DRAIN_FILE:-}" ]; then
        touch "$DRAIN_FILE"
        sleep "${DRAIN_SECONDS:-12}"
    fi
    kill -TERM "$server" 2>/dev/null || true
}

if [ "${1:-}" != "gunicorn" ]; then
    exec "$@"
fi
if [ "${MINITWIT_MIGRATE:-1}" = "1" ]; then
    migrate
fi
rm -f "${DRAIN_FILE:-/nonexistent}"
"$@" &
server=$!
trap drain_then_stop TERM INT
status=0
# `wait` returns early when a trapped signal arrives; keep waiting until gunicorn has exited.
while kill -0 "$server" 2>/dev/null; do
    wait "$server" && status=0 || status=$?
done
exit "$status"
