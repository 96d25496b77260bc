"""The simulator's JSON API, served under ``API_PREFIX`` (``/api`` by default).

URLs, payloads and status codes are the simulator contract's. Every error is
``{"status": N, "error_msg": "..."}``. ``latest`` is recorded by every endpoint
but ``GET /latest``, whatever the outcome, after the request's own writes.

The API is the hot path (the simulator sends thousands of requests a minute), so
each request holds one database connection in autocommit mode: every write is one
statement, committed durably as it runs, and reads need no BEGIN/COMMIT round
trips. No session cookie or template is involved.
"""

import base64
import functools
import hmac

from flask import Blueprint
from flask import current_app
from flask import g
from flask import jsonify
from flask import request
from werkzeug.exceptions import BadRequest
from werkzeug.exceptions import HTTPException

from . import metrics
from . import models
from .errors import error_response
from .extensions import db

bp = Blueprint("api", __name__)

NOT_AUTHORIZED = "You are not authorized to use this resource!"
FOLLOW_YOURSELF = "A user cannot follow themselves"


@bp.before_request
def parse_latest() -> None:
    """Remember ``?latest=`` for this request if it parses as an int the column can hold."""
    try:
        latest = int(request.args["latest"])
    except (KeyError, ValueError):
        latest = None
    g.latest = latest if latest is not None and models.BIGINT_MIN <= latest <= models.BIGINT_MAX else None


@bp.before_request
def autocommit_connection() -> None:
    """Run this request's statements on one pooled connection in autocommit mode.

    Called again before recording ``latest``: registering commits (the web form shares that
    code), which hands the connection back to the pool.
    """
    if not db.session().in_transaction():
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def records_latest(view):
    """Record ``latest`` after the view, on success and on every error answer alike."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            response = view(*args, **kwargs)
        except HTTPException:
            commit_latest()
            raise
        commit_latest()
        return response

    return wrapper


def commit_latest() -> None:
    """Record ``latest`` (if given, once) after the request's writes, then release the connection.

    In autocommit mode the writes are committed as they run, so they are durable before
    ``latest`` says they happened.
    """
    if g.latest is not None:
        autocommit_connection()
        models.record_latest(g.latest)
        g.latest = None
    db.session.commit()


def is_simulator() -> bool:
    """Check the simulator's Basic credentials in constant time."""
    expected = "Basic " + base64.b64encode(current_app.config["SIMULATOR_AUTH"].encode()).decode()
    return hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected.encode())


def requires_simulator(view):
    """Refuse requests without the simulator's credentials (403), after recording ``latest``."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not is_simulator():
            return error_response(403, NOT_AUTHORIZED)
        return view(*args, **kwargs)

    return records_latest(wrapper)


def json_body(*fields: str) -> tuple[dict | None, object]:
    """Parse a JSON object body; return it, or None and the 400 answer explaining why."""
    if not request.is_json:
        return None, error_response(400, "The request body must be JSON (Content-Type: application/json)")
    try:
        body = request.get_json()
    except BadRequest:
        if len(request.get_data()) >= current_app.config["MAX_CONTENT_LENGTH"]:
            # A chunked body (no Content-Length) is cut at the limit, which only then shows
            return None, error_response(413)
        return None, error_response(400, "The request body is not valid JSON")
    if not isinstance(body, dict):
        return None, error_response(400, "The request body must be a JSON object")
    for field in fields:
        if field in body and not isinstance(body[field], str):
            return None, error_response(400, f"The field '{field}' must be a string")
    return body, None


def no_content():
    """204: no body and, unlike Flask's default, no Content-Type."""
    response = current_app.response_class(status=204)
    del response.headers["Content-Type"]
    return response


def page_size() -> int:
    """``no`` from the query: the default unless a non-negative int, capped at API_MAX_NO."""
    config = current_app.config
    number = request.args.get("no", type=int)
    if number is None or number < 0:
        return config["API_DEFAULT_NO"]
    return min(number, config["API_MAX_NO"])


def unknown_user(username: str):
    """The 404 answer for a name nobody registered."""
    return error_response(404, f"Unknown user: {username}")


def message_list(query) -> list[dict]:
    """Messages as the simulator expects them: content verbatim, epoch pub_date, author name."""
    rows = db.session.execute(query.limit(page_size()))
    return [{"content": row.text, "pub_date": row.pub_date, "user": row.username} for row in rows]


@bp.route("/latest")
def get_latest():
    """The last ``latest`` the simulator sent, -1 before the first."""
    return jsonify(latest=models.get_latest())


@bp.route("/register", methods=["POST"])
@records_latest
def register():
    """Register a user with the UI's rules, minus the repeated password."""
    body, error = json_body("username", "email", "pwd")
    if error:
        return error
    fields = [body.get(name) or "" for name in ("username", "email", "pwd")]
    message = models.register_user(*fields)
    if message:
        return error_response(400, message)
    metrics.USERS_REGISTERED.labels(source="api").inc()
    return no_content()


@bp.route("/msgs")
@requires_simulator
def get_messages():
    """The newest messages of everybody."""
    return jsonify(message_list(models.public_timeline_query()))


@bp.route("/msgs/<username>", methods=["GET"])
@requires_simulator
def get_user_messages(username):
    """The newest messages of one user."""
    user_id = models.get_user_id(username)
    if user_id is None:
        return unknown_user(username)
    return jsonify(message_list(models.user_timeline_query(user_id)))


@bp.route("/msgs/<username>", methods=["POST"])
@requires_simulator
def post_message(username):
    """Post a message as ``username``."""
    body, error = json_body("content")
    if error:
        return error
    content = body.get("content")
    limit = current_app.config["MAX_MESSAGE_LENGTH"]
    if not content:
        return error_response(400, "The field 'content' must be a non-empty string")
    if len(content) > limit:
        return error_response(400, f"The message is too long (at most {limit} characters)")
    if not models.storable(content):
        return error_response(400, "The message contains characters that cannot be stored (NUL or invalid Unicode)")
    if not models.add_message_as(username, content):
        return unknown_user(username)
    commit_latest()
    metrics.MESSAGES_POSTED.labels(source="api").inc()
    return no_content()


@bp.route("/fllws/<username>", methods=["GET"])
@requires_simulator
def get_follows(username):
    """The names ``username`` follows."""
    user_id = models.get_user_id(username)
    if user_id is None:
        return unknown_user(username)
    return jsonify(follows=models.followed_usernames(user_id, page_size()))


@bp.route("/fllws/<username>", methods=["POST"])
@requires_simulator
def change_follows(username):
    """Follow (``{"follow": name}``) or unfollow (``{"unfollow": name}``) a user."""
    body, error = json_body("follow", "unfollow")
    if error:
        return error
    if "follow" in body and "unfollow" in body:
        return error_response(400, "The body must name a user in 'follow' or 'unfollow', not both")
    action = "follow" if body.get("follow") else "unfollow" if body.get("unfollow") else None
    if action is None:
        return error_response(400, "The body must name a user in 'follow' or 'unfollow'")
    target = body[action]
    if action == "follow" and target == username:
        return error_response(400, FOLLOW_YOURSELF)
    changed = (models.follow_by_name if action == "follow" else models.unfollow_by_name)(username, target)
    if not changed:  # an unknown user, or nothing to change: only then look the names up
        ids = models.get_user_ids(username, target)
        for name in (username, target):
            if name not in ids:
                return unknown_user(name)
    commit_latest()
    (metrics.FOLLOWS if action == "follow" else metrics.UNFOLLOWS).labels(source="api").inc()
    return no_content()
