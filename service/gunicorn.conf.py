"""Gunicorn settings for MiniTwit: the same server on a laptop and in production.

Every value can be overridden from the environment; see docs/performance.md for
how the worker and pool numbers were chosen.
"""

import os
import shutil
import tempfile

# prometheus_client picks its multiprocess mode when first imported: set the directory before that.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    os.path.join(tempfile.gettempdir(), f"minitwit-metrics-{os.environ.get('PORT', '5000')}"),
)

from gunicorn.glogging import Logger  # noqa: E402
from minitwit import passwords  # noqa: E402
from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics  # noqa: E402 - needs the env above


class AppLogsRequests(Logger):
    """gunicorn's logger minus the access log: the app writes one JSON line per request itself.

    With ``logconfig_dict`` set, gunicorn formats every access line (all its atoms) before the
    logger's level drops it: about 8% of a worker's CPU under the simulator's load (py-spy).
    """

    access_log_enabled = False

    def access(self, resp, req, environ, request_time):
        """Log nothing."""


host = os.environ.get("HOST", "127.0.0.1")
bind = f"{host}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 30
graceful_timeout = 30  # the stack's stop_grace_period is longer, so in-flight requests finish
keepalive = 95  # longer than Traefik's 90 s idle upstream connections, or POSTs race a closing socket
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = None  # the app logs one JSON line per request itself
logger_class = AppLogsRequests
errorlog = "-"
# gunicorn 27's control socket lives at ~/.gunicorn/gunicorn.ctl, one path for every server the
# same user runs (tests and benchmarks start several at once); nothing here uses gunicornc.
control_socket_disable = True
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "minitwit.logs.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
    "root": {"handlers": ["stdout"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        # AppLogsRequests never writes access lines; should logger_class change, they stay quiet.
        "gunicorn.access": {"handlers": ["stdout"], "level": "WARNING", "propagate": False},
    },
}
metrics_port = int(os.environ.get("METRICS_PORT", "9200"))
# The replica's password-hashing slots: made here, in the master, so every worker forked from it shares them.
hash_slots = passwords.new_slots()


def on_starting(server):
    """Start every run with an empty metrics directory, as prometheus_client requires."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def on_exit(server):
    """Leave no metrics directory behind: every local run (tests, benchmarks) names a new one."""
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def when_ready(server):
    """Serve all workers' metrics from the master on their own, unpublished port."""
    GunicornPrometheusMetrics.start_http_server_when_ready(metrics_port, host)


def post_fork(server, worker):
    """Bound password hashing per replica (all workers together), not per worker."""
    passwords.share_slots(hash_slots)


def child_exit(server, worker):
    """Stop counting a dead worker's live gauges."""
    GunicornPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
