"""Prometheus metrics: HTTP metrics by endpoint plus the business counters.

Under gunicorn (``PROMETHEUS_MULTIPROC_DIR`` set by ``gunicorn.conf.py``) every
worker writes its samples to that directory and the master serves them all on
``METRICS_PORT``, never on the application's own port. Anywhere else (tests,
the Flask CLI) metrics are collected in a private registry and not served.
"""

import os

from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics

# Buckets include 0.3 s: the simulator's timeout, and the latency SLO's threshold.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
UNTRACKED_PATHS = ["^/health$", "^/ready$", "^/static/"]

USERS_REGISTERED = Counter("minitwit_users_registered", "Users registered", ["source"])
MESSAGES_POSTED = Counter("minitwit_messages_posted", "Messages posted", ["source"])
FOLLOWS = Counter("minitwit_follows", "Follow actions", ["source"])
UNFOLLOWS = Counter("minitwit_unfollows", "Unfollow actions", ["source"])
# reason: the header that gave the request away ("sec-fetch-site" or "origin"); see csrf.py.
CROSS_ORIGIN_REFUSED = Counter(
    "minitwit_cross_origin_refused", "State-changing requests refused as cross-origin", ["reason"]
)

# kind: the stored hash's ("argon2", "werkzeug", "md5"); every check of a password, right or wrong.
PASSWORD_CHECKS = Counter("minitwit_password_checks", "Passwords checked against a stored hash", ["kind"])
# client: "untrusted", or "device" (a browser that signed in to the account before); see throttle.py.
SIGNINS_THROTTLED = Counter(
    "minitwit_signins_throttled", "Sign-ins refused without checking the password (too many failures)", ["client"]
)


def init_metrics(app: Flask) -> PrometheusMetrics:
    """Track every request's latency and count by Flask endpoint (never by raw path)."""
    options = {
        "group_by": "endpoint",
        "buckets": LATENCY_BUCKETS,
        "excluded_paths": UNTRACKED_PATHS,
    }
    multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiprocess_dir:
        os.makedirs(multiprocess_dir, exist_ok=True)  # e.g. `flask migrate` in a fresh container
        metrics = GunicornPrometheusMetrics(app, **options)
    else:
        metrics = PrometheusMetrics(app, path=None, registry=CollectorRegistry(), **options)
    metrics.info("minitwit_app_info", "MiniTwit version", version=app.config["APP_VERSION"])
    return metrics
