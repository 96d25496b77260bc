"""The simulator API (``/api``): every endpoint, status code, JSON shape and rule.

Runs on SQLite and PostgreSQL. Users are inserted straight into the database (a
password hash costs ~25 ms) except where registration is the subject; messages and follows go
through the API; the database is read directly for what the API cannot show.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers.api import NOT_AUTHORIZED
from helpers.api import FlaskApi
from helpers.api import api_follow
from helpers.api import api_post
from helpers.api import api_register
from helpers.api import basic_auth
from helpers.data import ARGON2ID
from helpers.data import insert_messages
from helpers.data import insert_users
from helpers.data import sql
from minitwit.config import DEFAULT_SIMULATOR_AUTH
from minitwit.config import basic_authorization

PROTECTED = [
    ("GET", "/msgs", None),
    ("GET", "/msgs/alice", None),
    ("POST", "/msgs/alice", {"content": "hi"}),
    ("GET", "/fllws/alice", None),
    ("POST", "/fllws/alice", {"follow": "bob"}),
]
RECORDING = [("POST", "/register", {"username": "x", "email": "x@x", "pwd": "x"})]
RECORDING += PROTECTED


# --- latest ------------------------------------------------------------------------


def test_latest_is_minus_one_before_anything_was_recorded(api):
    """``GET /latest`` on a fresh database answers -1."""
    rv = api.get("/latest")
    assert rv.status_code == 200
    assert rv.json() == {"latest": -1}


@pytest.mark.parametrize("method, path, body", RECORDING)
def test_every_endpoint_records_latest(app, api, method, path, body):
    """Every endpoint except ``GET /latest`` stores the ``latest`` parameter."""
    insert_users(app, ["alice", "bob"])
    api.request(method, path, json=body, params={"latest": 42})
    assert api.get("/latest").json() == {"latest": 42}


@pytest.mark.parametrize("method, path, body", PROTECTED)
def test_latest_is_recorded_before_the_auth_check(api, method, path, body):
    """A request rejected with 403 still records ``latest``."""
    rv = api.request(method, path, json=body, params={"latest": 7}, auth=False)
    assert rv.status_code == 403
    assert api.get("/latest").json() == {"latest": 7}


def test_latest_is_recorded_before_validation(api):
    """A failing registration and a 404 still record ``latest``."""
    api.post("/register", json={"username": ""}, params={"latest": 3})
    assert api.get("/latest").json()["latest"] == 3
    api.get("/msgs/nobody", params={"latest": 4})
    assert api.get("/latest").json()["latest"] == 4


@pytest.mark.parametrize("path", ["/register", "/msgs/alice", "/fllws/alice"])
def test_latest_is_recorded_when_the_body_is_too_large(app, api, path):
    """A 413 (the body limit aborts inside the view) still records ``latest``."""
    insert_users(app, ["alice"])
    rv = api.post(path, json={"content": "x" * (64 * 1024 + 1)}, params={"latest": 8})
    assert rv.status_code == 413
    assert rv.json()["status"] == 413
    assert api.get("/latest").json() == {"latest": 8}


def test_latest_last_write_wins_and_may_go_down(api):
    """The last request's value wins, even when it is smaller."""
    api.get("/msgs", params={"latest": 100})
    api.get("/msgs", params={"latest": 5})
    assert api.get("/latest").json() == {"latest": 5}


@pytest.mark.parametrize("value", ["abc", "", "1.5", "0x10"])
def test_latest_ignores_values_that_are_not_ints(api, value):
    """A ``latest`` that does not parse as an int leaves the stored value alone."""
    api.get("/msgs", params={"latest": 9})
    api.get("/msgs", params={"latest": value})
    assert api.get("/latest").json() == {"latest": 9}


def test_get_latest_does_not_record_its_own_parameter(api):
    """``GET /latest?latest=N`` only reads."""
    api.get("/msgs", params={"latest": 9})
    assert api.get("/latest", params={"latest": 99}).json() == {"latest": 9}


@pytest.mark.parametrize("value", [2**63 - 1, -(2**63), 0, -1])
def test_latest_stores_the_whole_bigint_range(api, value):
    """The extremes of BIGINT are stored and read back exactly."""
    api.get("/msgs", params={"latest": value})
    assert api.get("/latest").json() == {"latest": value}


@pytest.mark.parametrize("value", ["1; DROP TABLE message", 2**63, -(2**63) - 1, 1.5, None])
def test_record_latest_takes_only_a_bigint_int(app, value):
    """``latest`` is written into its SQL as a number, so anything else is refused before it."""
    from minitwit import models
    from minitwit.extensions import db

    with app.test_request_context(), pytest.raises(ValueError, match="BIGINT"):
        models.record_latest(value)
        db.session.commit()
    assert sql(app, "SELECT count(*) FROM latest") == [(0,)]


def test_latest_needs_no_authorization(api):
    """``GET /latest`` is public, as in the reference."""
    assert api.get("/latest", auth=False).status_code == 200


# --- register ----------------------------------------------------------------------


def test_register_answers_204_with_empty_body_and_stores_a_hash(app, api):
    """Registration stores the user with an argon2id hash at OWASP's parameters, never the password."""
    rv = api.post("/register", json={"username": "a", "email": "a@a.a", "pwd": "a"})
    assert rv.status_code == 204
    assert rv.text == ""
    [(email, pw_hash)] = sql(app, 'SELECT email, pw_hash FROM "user"')
    assert email == "a@a.a"
    assert pw_hash.startswith(ARGON2ID)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"username": "", "email": "a@a", "pwd": "p"}, "You have to enter a username"),
        ({"email": "a@a", "pwd": "p"}, "You have to enter a username"),
        (
            {"username": "a", "email": "", "pwd": "p"},
            "You have to enter a valid email address",
        ),
        (
            {"username": "a", "email": "nope", "pwd": "p"},
            "You have to enter a valid email address",
        ),
        ({"username": "a", "email": "a@a", "pwd": ""}, "You have to enter a password"),
        ({"username": "a", "email": "a@a"}, "You have to enter a password"),
        # the first failing check wins
        ({"username": "", "email": "", "pwd": ""}, "You have to enter a username"),
        (
            {"username": "a", "email": "x", "pwd": ""},
            "You have to enter a valid email address",
        ),
    ],
)
def test_register_errors_use_the_ui_texts_in_order(api, body, message):
    """Validation errors are 400 JSON with the web form's texts, first failure wins."""
    rv = api.post("/register", json=body)
    assert rv.status_code == 400
    assert rv.json() == {"status": 400, "error_msg": message}


def test_register_rejects_a_taken_username(app, api):
    """A second registration of a name is 400 and leaves one row."""
    api_register(api, "a")
    rv = api.post("/register", json={"username": "a", "email": "b@b", "pwd": "b"})
    assert rv.status_code == 400
    assert rv.json() == {"status": 400, "error_msg": "The username is already taken"}
    assert sql(app, 'SELECT count(*) FROM "user"') == [(1,)]


def test_register_needs_no_authorization(api):
    """The simulator registers without the header being checked."""
    body = {"username": "a", "email": "a@a", "pwd": "a"}
    assert api.post("/register", json=body, auth=False).status_code == 204


# --- authorization -----------------------------------------------------------------


@pytest.mark.parametrize("method, path, body", PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic_auth("simulator:wrong"),
        basic_auth("someone:" + DEFAULT_SIMULATOR_AUTH.partition(":")[2]),
        {"Authorization": "Bearer " + basic_authorization(DEFAULT_SIMULATOR_AUTH).removeprefix("Basic ")},
        {"Authorization": "Basic !!!not-base64!!!"},
    ],
    ids=["missing", "wrong-password", "wrong-user", "bearer", "garbage"],
)
def test_protected_endpoints_reject_bad_authorization(app, api, method, path, body, headers):
    """``/msgs*`` and ``/fllws/*`` answer the contract's 403 without the header."""
    insert_users(app, ["alice", "bob"])
    rv = api.request(method, path, json=body, headers=headers, auth=False)
    assert rv.status_code == 403
    assert rv.json() == NOT_AUTHORIZED


def test_rejected_requests_change_nothing(app, api):
    """A 403 post or follow stores nothing."""
    insert_users(app, ["alice", "bob"])
    api.post("/msgs/alice", json={"content": "sneaky"}, auth=False)
    api.post("/fllws/alice", json={"follow": "bob"}, auth=False)
    assert sql(app, "SELECT count(*) FROM message") == [(0,)]
    assert sql(app, "SELECT count(*) FROM follower") == [(0,)]


# --- messages ----------------------------------------------------------------------


def test_post_message_stores_it_with_server_time(app, api):
    """``POST /msgs/<user>`` answers 204 and stores the text with epoch seconds."""
    insert_users(app, ["alice"])
    before = int(time.time())
    rv = api.post("/msgs/alice", json={"content": "hello"})
    assert rv.status_code == 204
    assert rv.text == ""
    [(text, pub_date, flagged)] = sql(app, "SELECT text, pub_date, flagged FROM message")
    assert (text, flagged) == ("hello", 0)
    assert isinstance(pub_date, int)
    assert before <= pub_date <= int(time.time())


def test_messages_have_the_contract_shape(app, api):
    """Each message is exactly ``{"content", "pub_date", "user"}``."""
    insert_users(app, ["alice"])
    api_post(api, "alice", "hello")
    for path in ("/msgs", "/msgs/alice"):
        rv = api.get(path)
        assert rv.status_code == 200
        [message] = rv.json()
        assert set(message) == {"content", "pub_date", "user"}
        assert (message["content"], message["user"]) == ("hello", "alice")
        assert isinstance(message["pub_date"], int)


def test_messages_are_newest_first(app, api):
    """Both message lists are ordered by pub_date, newest first."""
    insert_users(app, ["alice"])
    insert_messages(app, "alice", 5)
    expected = [f"message {i}" for i in reversed(range(5))]
    assert [m["content"] for m in api.get("/msgs").json()] == expected
    assert [m["content"] for m in api.get("/msgs/alice").json()] == expected


def test_user_messages_only_show_that_user(app, api):
    """``GET /msgs/<user>`` filters by author; ``GET /msgs`` shows everybody."""
    for name in ("alice", "bob"):
        insert_users(app, [name])
        api_post(api, name, f"by {name}")
    assert [m["user"] for m in api.get("/msgs/alice").json()] == ["alice"]
    assert {m["user"] for m in api.get("/msgs").json()} == {"alice", "bob"}


def test_flagged_messages_are_hidden(app, api):
    """``flagged=1`` hides a message from every read."""
    insert_users(app, ["alice"])
    insert_messages(app, "alice", 2, flagged=1)
    api_post(api, "alice", "visible")
    assert [m["content"] for m in api.get("/msgs").json()] == ["visible"]
    assert [m["content"] for m in api.get("/msgs/alice").json()] == ["visible"]


@pytest.mark.parametrize("path", ["/msgs", "/msgs/alice"])
def test_no_defaults_to_100_and_limits(app, api, path):
    """Without ``no`` at most 100 messages come back; ``no=N`` gives N."""
    insert_users(app, ["alice"])
    insert_messages(app, "alice", 120)
    assert len(api.get(path).json()) == 100
    assert len(api.get(path, params={"no": 7}).json()) == 7
    assert len(api.get(path, params={"no": 0}).json()) == 0
    assert len(api.get(path, params={"no": 120}).json()) == 120


def test_no_is_capped_at_1000(app, api):
    """A huge ``no`` is capped at the documented maximum of 1000."""
    insert_users(app, ["alice"])
    insert_messages(app, "alice", 1001)
    assert len(api.get("/msgs", params={"no": 5000}).json()) == 1000
    assert len(api.get("/msgs/alice", params={"no": 10**30}).json()) == 1000


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_messages_of_unknown_user_is_404(api, method):
    """An unknown user in ``/msgs/<user>`` is a JSON 404."""
    rv = api.request(method, "/msgs/nobody", json={"content": "x"})
    assert rv.status_code == 404
    assert rv.json()["status"] == 404
    assert rv.json()["error_msg"]


def test_content_round_trips_verbatim(app, api):
    """Non-ASCII and HTML come back exactly as sent (JSON, not HTML-escaped)."""
    content = "Blåbærgrød <b>&amp;</b> 'quotes' \"double\" 日本語 🐦"
    insert_users(app, ["alice"])
    api_post(api, "alice", content)
    assert api.get("/msgs").json()[0]["content"] == content
    assert api.get("/msgs/alice").json()[0]["content"] == content


@pytest.mark.parametrize("name", ["Jane Doe", "Søren Ærø", "名 前", "a b  c"])
def test_usernames_with_spaces_and_unicode_round_trip(api, name):
    """Names with spaces and non-ASCII work in paths (``%20``) and in bodies."""
    api_register(api, name)
    api_register(api, "bob")
    api_post(api, name, "hi")
    assert api.get(f"/msgs/{name}").json()[0]["user"] == name
    api_follow(api, name, "bob")
    api_follow(api, "bob", name)
    assert api.get(f"/fllws/{name}").json() == {"follows": ["bob"]}
    assert api.get("/fllws/bob").json() == {"follows": [name]}


# --- follows -----------------------------------------------------------------------


def test_follow_and_list(app, api):
    """``POST /fllws`` follow answers 204 and the name shows up in ``follows``."""
    insert_users(app, ["alice", "bob", "carol"])
    rv = api.post("/fllws/alice", json={"follow": "bob"})
    assert rv.status_code == 204
    assert rv.text == ""
    api_follow(api, "alice", "carol")
    rv = api.get("/fllws/alice")
    assert rv.status_code == 200
    assert sorted(rv.json()["follows"]) == ["bob", "carol"]
    assert set(rv.json()) == {"follows"}
    assert api.get("/fllws/bob").json() == {"follows": []}


def test_follow_twice_is_idempotent(app, api):
    """Following twice leaves one row and one name."""
    insert_users(app, ["alice", "bob"])
    api_follow(api, "alice", "bob")
    api_follow(api, "alice", "bob")
    assert api.get("/fllws/alice").json() == {"follows": ["bob"]}
    assert sql(app, "SELECT count(*) FROM follower") == [(1,)]


def test_unfollow(app, api):
    """Unfollow removes the row; unfollowing someone not followed is still 204."""
    insert_users(app, ["alice", "bob"])
    api_follow(api, "alice", "bob")
    api_follow(api, "alice", "bob", action="unfollow")
    assert api.get("/fllws/alice").json() == {"follows": []}
    rv = api.post("/fllws/alice", json={"unfollow": "bob"})
    assert rv.status_code == 204
    assert sql(app, "SELECT count(*) FROM follower") == [(0,)]


@pytest.mark.parametrize(
    "who, body",
    [
        ("nobody", {"follow": "bob"}),
        ("alice", {"follow": "nobody"}),
        ("alice", {"unfollow": "nobody"}),
        ("nobody", {"unfollow": "bob"}),
    ],
)
def test_follow_with_unknown_user_is_404(app, api, who, body):
    """Either user unknown: JSON 404 and nothing stored."""
    insert_users(app, ["alice", "bob"])
    rv = api.post(f"/fllws/{who}", json=body)
    assert rv.status_code == 404
    assert rv.json()["status"] == 404
    assert sql(app, "SELECT count(*) FROM follower") == [(0,)]


def test_follows_of_unknown_user_is_404(api):
    """``GET /fllws/<unknown>`` is a JSON 404."""
    rv = api.get("/fllws/nobody")
    assert rv.status_code == 404
    assert rv.json()["status"] == 404


def test_follows_no_default_is_100_and_no_limits(app, api):
    """One user following 132 others (as in the scenario): default 100, ``no`` more."""
    names = [f"star{i:03d}" for i in range(132)]
    insert_users(app, ["fan", *names])
    for name in names:
        api_follow(api, "fan", name)
    assert len(api.get("/fllws/fan").json()["follows"]) == 100
    assert sorted(api.get("/fllws/fan", params={"no": 200}).json()["follows"]) == names
    assert len(api.get("/fllws/fan", params={"no": 5}).json()["follows"]) == 5


def test_followed_messages_do_not_leak_into_user_messages(app, api):
    """Following someone does not add their messages to ``/msgs/<user>``."""
    insert_users(app, ["alice", "bob"])
    api_follow(api, "alice", "bob")
    api_post(api, "bob", "by bob")
    assert api.get("/msgs/alice").json() == []


# --- races (two replicas or threads doing the same thing at once) ------------------


def run_concurrently(app, count, request):
    """Run ``request(api)`` in ``count`` threads at once, each with its own client."""
    barrier = threading.Barrier(count)

    def worker(_):
        api = FlaskApi(app.test_client())
        barrier.wait(timeout=30)
        return request(api)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(worker, range(count)))


def test_concurrent_registrations_of_one_name(app):
    """Racing registrations of one name: one 204, the rest the usual 400, one row."""
    body = {"username": "racer", "email": "r@r", "pwd": "p"}
    answers = run_concurrently(app, 4, lambda api: api.post("/register", json=body))
    assert sorted(rv.status_code for rv in answers) == [204, 400, 400, 400]
    assert {rv.json()["error_msg"] for rv in answers if rv.status_code == 400} == {"The username is already taken"}
    assert sql(app, "SELECT count(*) FROM \"user\" WHERE username = 'racer'") == [(1,)]


def test_concurrent_follows_of_one_pair(app):
    """Racing identical follows all succeed and leave one row."""
    insert_users(app, ["alice", "bob"])
    answers = run_concurrently(app, 4, lambda api: api.post("/fllws/alice", json={"follow": "bob"}))
    assert [rv.status_code for rv in answers] == [204] * 4
    assert sql(app, "SELECT count(*) FROM follower") == [(1,)]


# --- issue 13: follow rules, 204 answers, invisible characters in names -----------------


def test_following_yourself_is_400_and_changes_nothing(app, api):
    """A user cannot follow themselves; unfollowing yourself stays the harmless 204."""
    insert_users(app, ["alice"])
    rv = api.post("/fllws/alice", json={"follow": "alice"})
    assert rv.status_code == 400
    assert rv.json() == {"status": 400, "error_msg": "A user cannot follow themselves"}
    assert api.get("/fllws/alice").json() == {"follows": []}
    assert api.post("/fllws/alice", json={"unfollow": "alice"}).status_code == 204


def test_follow_and_unfollow_in_one_body_is_400(app, api):
    """Both keys in one body is ambiguous: 400, and nothing changes."""
    insert_users(app, ["alice", "bob"])
    rv = api.post("/fllws/alice", json={"follow": "bob", "unfollow": "bob"})
    assert rv.status_code == 400
    assert "not both" in rv.json()["error_msg"]
    assert sql(app, "SELECT count(*) FROM follower") == [(0,)]


@pytest.mark.parametrize(
    "path, body",
    [
        ("/register", {"username": "carol", "email": "c@c", "pwd": "p"}),
        ("/msgs/alice", {"content": "hi"}),
        ("/fllws/alice", {"follow": "bob"}),
        ("/fllws/alice", {"unfollow": "bob"}),
    ],
)
def test_204_answers_have_no_body_and_no_content_type(app, api, path, body):
    """A 204 carries nothing, so it claims no media type."""
    insert_users(app, ["alice", "bob"])
    rv = api.post(path, json=body)
    assert rv.status_code == 204
    assert rv.text == ""
    assert "Content-Type" not in rv.headers


@pytest.mark.parametrize(
    "name",
    ["zoë 🐦 \u202eevil", "zero\u200bwidth", "rtl\u2067mark", "tab\there", "bom\ufeff", "bell\x07"],
)
def test_register_refuses_control_and_format_characters(app, api, name):
    """Bidi overrides, zero-width and control characters (Unicode Cc, Cf) are refused by name."""
    rv = api.post("/register", json={"username": name, "email": "z@z", "pwd": "p"})
    assert rv.status_code == 400
    assert "control or format characters" in rv.json()["error_msg"]
    assert "Cc and Cf" in rv.json()["error_msg"]
    assert sql(app, 'SELECT count(*) FROM "user"') == [(0,)]


def test_register_accepts_emoji_and_accents(api):
    """Visible non-ASCII (accents, emoji: category So) is fine."""
    assert api.post("/register", json={"username": "zoë 🐦", "email": "z@z", "pwd": "p"}).status_code == 204
