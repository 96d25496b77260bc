"""The simulator's JSON API, served under ``API_PREFIX`` (``/api`` by default).

URLs, payloads and status codes are the simulator contract's. Every error is
``{"status": N, "error_msg": "..."}``.

A request goes through three steps, each in one place:

1. ``hold_api_connection`` (the blueprint's before-request hook) takes one
   connection from the API's own pool (``extensions.init_api_engine``), always in
   autocommit mode, for the whole request; ``release_api_connection`` (its
   teardown hook) hands it back whatever happened.
2. The view, wrapped by ``@records_latest`` and, for ``/msgs`` and ``/fllws``,
   ``@requires_simulator`` (403 without the simulator's credentials). It validates
   the request and writes.
3. ``records_latest`` then stores ``?latest=``, whatever the view answered (a 400,
   403, 404 or 413 too), as the contract says, and hands the connection back.
   ``GET /latest`` only reads it. A failing database (503) or a bug (500) is
   answered by errors.py and records nothing.

The API is the hot path (the simulator sends thousands of requests a minute). In
autocommit mode every write is one statement committed durably as it runs, so it
is stored before ``latest`` says it happened, and reads need no BEGIN/COMMIT round
trips. Registering is the exception, because it shares the web form's code
(``models.register_user``): it takes no API connection before the view, checks and
inserts the user through the ORM session, which it hands back while it hashes the
password, and takes the API connection only to record ``latest``.
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
from .errors import handle_http_error
from .extensions import api_engine
from .extensions import db

bp = Blueprint("api", __name__)

NOT_AUTHORIZED = "You are not authorized to use this resource!"
FOLLOW_YOURSELF = "A user cannot follow themselves"


def hold_api_connection() -> None:
    """Take a connection from the API's autocommit pool for this request's statements, unless one is held."""
    if g.get("api_connection") is None:
        g.api_connection = api_engine().connect()


def release_api_connection() -> None:
    """Hand the API connection back to its pool, if this request holds one."""
    held = g.pop("api_connection", None)
    if held is not None:
        held.close()


@bp.before_request
def hold_connection_unless_registering() -> None:
    """Every API request holds its connection from the start, except a register: it hashes first."""
    if request.endpoint != "api.register":
        hold_api_connection()


@bp.teardown_request
def release_connection(error: BaseException | None = None) -> None:
    """Hand the connection back after any answer, a 500 or 503 included."""
    release_api_connection()


def requested_latest() -> int | None:
    """``?latest=`` if it parses as an int the column can hold, else None (nothing is recorded)."""
    try:
        latest = int(request.args["latest"])
    except (KeyError, ValueError):
        return None
    return latest if models.BIGINT_MIN <= latest <= models.BIGINT_MAX else None


def records_latest(view):
    """Run the view, then record ``?latest=`` whatever it answered: the one place the API writes it."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            response = view(*args, **kwargs)
        except HTTPException as error:  # an abort in the view (a 413 body) is an answer like the others
            response = handle_http_error(error)
        latest = requested_latest()
        if latest is not None:
            hold_api_connection()  # a register takes it only now, after hashing
            models.record_latest(latest)
        release_api_connection()  # back to the pool before the answer goes out
        return response

    return wrapper


def is_simulator() -> bool:
    """Check the simulator's Basic credentials in constant time."""
    expected = "Basic " + base64.b64encode(current_app.config["SIMULATOR_AUTH"].encode()).decode()
    return hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected.encode())


def requires_simulator(view):
    """Refuse requests without the simulator's credentials (403); goes under ``@records_latest``."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not is_simulator():
            return error_response(403, NOT_AUTHORIZED)
        return view(*args, **kwargs)

    return wrapper


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
    rows = models.connection().execute(query.limit(page_size()))
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
    db.session.commit()  # a refused register still holds its checks' transaction: end it now
    if message:
        return error_response(400, message)
    metrics.USERS_REGISTERED.labels(source="api").inc()
    return no_content()


@bp.route("/msgs")
@records_latest
@requires_simulator
def get_messages():
    """The newest messages of everybody."""
    return jsonify(message_list(models.public_timeline_query()))


@bp.route("/msgs/<username>", methods=["GET"])
@records_latest
@requires_simulator
def get_user_messages(username):
    """The newest messages of one user."""
    user_id = models.get_user_id(username)
    if user_id is None:
        return unknown_user(username)
    return jsonify(message_list(models.user_timeline_query(user_id)))


@bp.route("/msgs/<username>", methods=["POST"])
@records_latest
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
    metrics.MESSAGES_POSTED.labels(source="api").inc()
    return no_content()


@bp.route("/fllws/<username>", methods=["GET"])
@records_latest
@requires_simulator
def get_follows(username):
    """The names ``username`` follows."""
    user_id = models.get_user_id(username)
    if user_id is None:
        return unknown_user(username)
    return jsonify(follows=models.followed_usernames(user_id, page_size()))


@bp.route("/fllws/<username>", methods=["POST"])
@records_latest
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
    (metrics.FOLLOWS if action == "follow" else metrics.UNFOLLOWS).labels(source="api").inc()
    return no_content()
