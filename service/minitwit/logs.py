"""Structured logs: one JSON object per line on stdout, one line per request.

Alloy ships these lines to Loki and keeps ``level`` as structured metadata, so
every field here is meant to be queried, and nothing secret is logged.
"""

import json
import logging
import socket
import sys
import time
import traceback
import uuid
from datetime import UTC
from datetime import datetime

from flask import Flask
from flask import Response
from flask import g
from flask import request

HOSTNAME = socket.gethostname()
PROBE_PATHS = {"/health", "/ready"}  # polled every few seconds; only their failures are worth a line
REQUEST_FIELDS = ("method", "route", "path", "status", "duration_ms", "request_id", "host", "remote_addr")
request_logger = logging.getLogger("minitwit.request")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line with the request fields it carries."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({key: getattr(record, key) for key in REQUEST_FIELDS if hasattr(record, key)})
        if record.exc_info:
            entry["exc_info"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Send the ``minitwit`` loggers to stdout as JSON (idempotent, safe to call per app)."""
    logger = logging.getLogger("minitwit")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


def init_request_logging(app: Flask) -> None:
    """Give every request an id and log it once, with its route template and duration."""

    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()
        g.request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex

    @app.after_request
    def log_request(response: Response) -> Response:
        started = g.get("request_started", time.perf_counter())
        request_id = g.get("request_id") or uuid.uuid4().hex
        response.headers["X-Request-ID"] = request_id
        response.headers["X-Served-By"] = HOSTNAME
        if request.path in PROBE_PATHS and response.status_code < 400:
            return response
        request_logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "route": request.url_rule.rule if request.url_rule else None,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "request_id": request_id,
                "host": HOSTNAME,
                "remote_addr": request.remote_addr,
            },
        )
        return response
