"""Error pages and JSON errors: every failure gets a clear answer, never a traceback.

Requests under the API prefix get ``{"status": N, "error_msg": "..."}``; everything
else gets an HTML page in the site's layout.
"""

import logging

from flask import Flask
from flask import current_app
from flask import jsonify
from flask import render_template
from flask import request
from flask import url_for
from sqlalchemy.exc import InterfaceError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from .csrf import CrossOriginRequest
from .extensions import db

logger = logging.getLogger("minitwit.errors")

DATABASE_ERRORS = (OperationalError, InterfaceError, PoolTimeoutError)
DATABASE_UNAVAILABLE = "The database is unavailable right now. Please try again in a moment."
MESSAGES = {
    400: "The request was malformed.",
    401: "You need to sign in to do that.",
    403: "You are not allowed to do that.",
    404: "The page you asked for does not exist.",
    405: "This method is not allowed here.",
    413: "The request body is too large.",
    500: "Something went wrong on our side. It has been logged.",
    503: DATABASE_UNAVAILABLE,
}
# How much of a refused body the app reads and discards before answering 413: at least Traefik's
# body-limit (traefik/dynamic/middlewares.yml), so every body Traefik lets through is drained.
DRAIN_LIMIT = 16 * 1024 * 1024


def wants_json() -> bool:
    """Tell whether the request is for the simulator API."""
    prefix = current_app.config["API_PREFIX"]
    return request.path == prefix or request.path.startswith(prefix + "/")


def sign_in_return() -> str:
    """Where to come back after signing in: this page if it can be fetched again, else My Timeline."""
    return request.full_path.rstrip("?") if request.method == "GET" else url_for("timeline.timeline")


def error_response(status: int, message: str | None = None):
    """Answer ``status`` as JSON for the API and as an HTML page otherwise."""
    message = message or MESSAGES.get(status, "Error")
    if wants_json():
        response = jsonify(status=status, error_msg=message)
    else:
        page = render_template("error.html", status=status, message=message, sign_in_return=sign_in_return())
        response = current_app.make_response((page, status))
    response.status_code = status
    if status == 503:
        response.headers["Retry-After"] = "5"
    if status == 413:
        drain_request_body()
    return response


def drain_request_body() -> None:
    """Read and discard what is left of a refused body, so the 413 reaches the client.

    gunicorn resets a keep-alive connection whose body was left unread beyond 64 KiB. Behind
    Traefik that reset arrives while Traefik is still sending the body it buffered, and the
    client gets Traefik's 502 instead of our 413. Bodies over DRAIN_LIMIT are not read: such a
    client is not behind our Traefik, and the reset is the cheaper answer for it.
    """
    length = request.content_length
    if length is not None and length > DRAIN_LIMIT:
        return
    stream = request.environ["wsgi.input"]
    remaining = DRAIN_LIMIT
    while remaining > 0:
        chunk = stream.read(min(64 * 1024, remaining))
        if not chunk:
            return
        remaining -= len(chunk)


def handle_http_error(error: HTTPException):
    """Render aborts and routing errors (404, 405, 413, ...) with our own message, or the raiser's own."""
    explained = error.description if error.description != type(error).description else None
    return error_response(error.code or 500, explained or MESSAGES.get(error.code or 500))


def handle_cross_origin(error: CrossOriginRequest):
    """A forged cross-site request is refused with a visible explanation (csrf.py logged it)."""
    return error_response(403, error.description)


def handle_database_error(error: Exception):
    """The database is down or restarting: answer 503 quickly, the client may retry."""
    db.session.rollback()
    logger.error("database unavailable: %s", type(error).__name__)
    return error_response(503)


def handle_unexpected_error(error: Exception):
    """A bug: log the traceback, show a plain 500 without internals."""
    logger.exception("unhandled error")
    return error_response(500)


def init_error_handlers(app: Flask) -> None:
    """Register the handlers on the app, so they cover every blueprint and unknown URLs."""
    app.register_error_handler(CrossOriginRequest, handle_cross_origin)
    app.register_error_handler(HTTPException, handle_http_error)
    for error_class in DATABASE_ERRORS:
        app.register_error_handler(error_class, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected_error)
