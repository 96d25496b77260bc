"""MiniTwit: the Twitter clone, with the simulator API, as one Flask application."""

import hashlib
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import api
from . import auth
from . import cli
from . import csrf
from . import headers
from . import health
from . import sessions
from . import timeline
from .config import check_config
from .config import engine_options
from .config import load_config
from .errors import init_error_handlers
from .extensions import db
from .extensions import init_api_engine
from .extensions import migrate
from .logs import configure_logging
from .logs import init_request_logging
from .metrics import init_metrics

MIGRATIONS = str(Path(__file__).parent / "migrations")


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create and configure the MiniTwit app: config, extensions, blueprints."""
    app = Flask(__name__)
    app.config.update(load_config(app.instance_path))
    app.config.update(test_config or {})
    if test_config and "SQLALCHEMY_ENGINE_OPTIONS" not in test_config:
        # The pool settings belong to the database actually used, not to the environment's.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(app.config["SQLALCHEMY_DATABASE_URI"])
    check_config(app.config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    configure_logging(app.config["LOG_LEVEL"])

    db.init_app(app)
    init_api_engine(app)
    migrate.init_app(app, db, directory=MIGRATIONS)
    init_metrics(app)
    init_request_logging(app)
    csrf.init_app(app)
    headers.init_app(app)
    sessions.init_app(app)
    init_error_handlers(app)

    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp, url_prefix=app.config["API_PREFIX"])
    app.register_blueprint(auth.bp)
    app.register_blueprint(timeline.bp)
    cli.init_app(app)
    app.jinja_env.filters.update(gravatar=gravatar_url, datetimeformat=format_datetime, isodatetime=iso_datetime)

    hops = app.config["TRUSTED_PROXY_HOPS"]
    if hops:  # Traefik is exactly one hop in front of us
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    return app


def format_datetime(timestamp: int) -> str:
    """Format an epoch timestamp for display, in UTC (the page's script localises it)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d @ %H:%M")


def iso_datetime(timestamp: int) -> str:
    """Format an epoch timestamp for a machine-readable ``<time datetime>``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def gravatar_url(email: str, size: int = 48) -> str:
    """Return the gravatar image for the given email address."""
    digest = hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()  # Gravatar's own scheme
    return f"https://www.gravatar.com/avatar/{digest}?d=identicon&s={size}"
