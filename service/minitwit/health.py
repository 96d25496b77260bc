"""Probes for the orchestrator and the proxy."""

import os

from flask import Blueprint
from flask import current_app
from flask import jsonify
from sqlalchemy import text

from .errors import DATABASE_ERRORS
from .extensions import db

bp = Blueprint("health", __name__)


@bp.route("/health")
def health():
    """Liveness: the process answers (the database is not consulted).

    While the container drains before stopping (its entrypoint created DRAIN_FILE), answer 503
    so Traefik's health check takes this replica out of rotation while it still serves.
    """
    drain_file = current_app.config["DRAIN_FILE"]
    if drain_file and os.path.exists(drain_file):
        return jsonify(status="draining"), 503
    return jsonify(status="ok")


@bp.route("/ready")
def ready():
    """Readiness: one round trip to the database."""
    try:
        db.session.execute(text("SELECT 1"))
    except DATABASE_ERRORS:
        db.session.rollback()
        return jsonify(status="unavailable", error_msg="database unavailable"), 503
    return jsonify(status="ready")
