"""Bad input never produces a 500: the API answers JSON errors, the UI clear pages.

Runs on SQLite and PostgreSQL, whose drivers differ exactly where bad input bites
(NUL bytes, lone surrogates, integers beyond 64 bits).
"""

import pytest
from helpers.api import api_register
from helpers.data import insert_users
from helpers.data import sql

MAX_USERNAME = 64
MAX_MESSAGE = 1000
TOO_BIG = "x" * (64 * 1024 + 1)


def assert_api_error(rv, status):
    """The answer is ``{"status": status, "error_msg": <non-empty text>}``."""
    assert rv.status_code == status, rv.text
    body = rv.json()
    assert set(body) == {"status", "error_msg"}
    assert body["status"] == status
    assert isinstance(body["error_msg"], str) and body["error_msg"]


@pytest.fixture
def users(app):
    """alice and bob, registered."""
    insert_users(app, ["alice", "bob"])


# --- API: bodies -------------------------------------------------------------------

JSON_ENDPOINTS = ["/register", "/msgs/alice", "/fllws/alice"]


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize(
    "data, content_type",
    [
        ('{"username": "a", ', "application/json"),
        ("not json at all", "application/json"),
        (b'{"content": "\xff\xfe"}', "application/json"),
        ("", "application/json"),
        ('{"username": "a", "email": "a@a", "pwd": "a"}', "text/plain"),
        ("username=a&email=a@a&pwd=a", "application/x-www-form-urlencoded"),
        ('{"content": "x", "follow": "bob"}', None),
        ("[]", "application/json"),
        ('"a string"', "application/json"),
        ("null", "application/json"),
        ("42", "application/json"),
    ],
    ids=[
        "truncated",
        "garbage",
        "invalid-utf8",
        "empty",
        "text-plain",
        "form",
        "no-content-type",
        "array",
        "string",
        "null",
        "number",
    ],
)
def test_malformed_bodies_are_400(api, users, path, data, content_type):
    """Anything but a JSON object sent as JSON is a 400 JSON error."""
    headers = {"Content-Type": content_type} if content_type else {}
    rv = api.post(path, data=data, headers=headers)
    assert_api_error(rv, 400)


@pytest.mark.parametrize(
    "path, body",
    [
        ("/register", {"username": 1, "email": "a@a", "pwd": "a"}),
        ("/register", {"username": "a", "email": ["a@a"], "pwd": "a"}),
        ("/register", {"username": "a", "email": "a@a", "pwd": {"p": 1}}),
        ("/register", {"username": None, "email": "a@a", "pwd": "a"}),
        ("/register", {}),
        ("/msgs/alice", {"content": 5}),
        ("/msgs/alice", {"content": None}),
        ("/msgs/alice", {"content": ""}),
        ("/msgs/alice", {"text": "wrong field"}),
        ("/msgs/alice", {}),
        ("/fllws/alice", {"follow": 7}),
        ("/fllws/alice", {"unfollow": ["bob"]}),
        ("/fllws/alice", {"follow": ""}),
        ("/fllws/alice", {"follow": None}),
        ("/fllws/alice", {}),
        ("/fllws/alice", {"befriend": "bob"}),
    ],
)
def test_missing_or_mistyped_fields_are_400(app, api, users, path, body):
    """Missing, empty or mistyped fields are 400 and change nothing."""
    rv = api.post(path, json=body)
    assert_api_error(rv, 400)
    assert sql(app, 'SELECT count(*) FROM "user"') == [(2,)]
    assert sql(app, "SELECT count(*) FROM message") == [(0,)]
    assert sql(app, "SELECT count(*) FROM follower") == [(0,)]


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
def test_oversized_api_body_is_413(api, users, path):
    """A body over 64 KiB is a 413 JSON error."""
    rv = api.post(path, json={"content": TOO_BIG, "username": TOO_BIG})
    assert_api_error(rv, 413)


# --- API: limits -------------------------------------------------------------------


def test_username_length_limit(app, api):
    """64 characters are fine, 65 are a clear 400."""
    api_register(api, "u" * MAX_USERNAME)
    body = {"username": "u" * (MAX_USERNAME + 1), "email": "a@a", "pwd": "a"}
    rv = api.post("/register", json=body)
    assert_api_error(rv, 400)
    assert rv.json()["error_msg"] == "The username is too long (at most 64 characters)"


def test_email_and_password_length_limits(api):
    """Over-long emails and passwords are refused with clear texts."""
    body = {"username": "a", "email": "a@" + "e" * 253, "pwd": "a"}
    rv = api.post("/register", json=body)
    assert rv.json()["error_msg"] == "You have to enter a valid email address"
    body = {"username": "a", "email": "a@a", "pwd": "p" * 1025}
    rv = api.post("/register", json=body)
    assert_api_error(rv, 400)
    assert rv.json()["error_msg"] == "The password is too long (at most 1024 characters)"


def test_message_length_limit(app, api, users):
    """1000 characters are stored, 1001 are a clear 400 and not stored."""
    assert api.post("/msgs/alice", json={"content": "m" * MAX_MESSAGE}).status_code == 204
    rv = api.post("/msgs/alice", json={"content": "m" * (MAX_MESSAGE + 1)})
    assert_api_error(rv, 400)
    assert rv.json()["error_msg"] == "The message is too long (at most 1000 characters)"
    assert sql(app, "SELECT count(*) FROM message") == [(1,)]


# --- API: query strings and paths --------------------------------------------------


@pytest.mark.parametrize("no", ["-1", "abc", "", "1e3", "1.5", " ", "-99999999999999999999", "0x10"])
@pytest.mark.parametrize("path", ["/msgs", "/msgs/alice", "/fllws/alice"])
def test_absurd_no_means_the_default(api, users, path, no):
    """A ``no`` that is not a non-negative int is the default, never an error."""
    rv = api.get(path, params={"no": no})
    assert rv.status_code == 200


@pytest.mark.parametrize("no", ["99999999999999999999999999", str(2**63)])
def test_huge_no_is_capped(api, users, no):
    """A ``no`` beyond 64 bits is capped, not passed to the database."""
    assert api.get("/msgs", params={"no": no}).status_code == 200


@pytest.mark.parametrize("value", [str(2**63), "-" + str(2**63 + 1), "9" * 40])
def test_latest_beyond_64_bits_is_not_a_500(api, value):
    """A ``latest`` too large for the column is refused or ignored, never a 500."""
    rv = api.get("/msgs", params={"latest": value})
    assert rv.status_code < 500
    assert api.get("/latest").status_code == 200


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/msgs/nul%00name", None),
        ("POST", "/msgs/nul%00name", {"content": "x"}),
        ("GET", "/fllws/nul%00name", None),
        ("POST", "/fllws/alice", {"follow": "nul\x00name"}),
        ("POST", "/fllws/alice", {"unfollow": "nul\x00name"}),
        ("POST", "/fllws/nul%00name", {"follow": "nul\x00name"}),
        ("POST", "/register", {"username": "nul\x00name", "email": "a@a", "pwd": "a"}),
        ("POST", "/msgs/alice", {"content": "nul \x00 byte"}),
        ("POST", "/msgs/alice", {"content": "lone \ud800 surrogate"}),
        (
            "POST",
            "/register",
            {"username": "sur\udfffrogate", "email": "a@a", "pwd": "a"},
        ),
        ("GET", "/msgs/" + "x" * 5000, None),
    ],
    ids=[
        "nul-path-get",
        "nul-path-post",
        "nul-fllws",
        "nul-follow-target",
        "nul-unfollow-target",
        "nul-follow-both",
        "nul-register",
        "nul-content",
        "surrogate-content",
        "surrogate-username",
        "long-path",
    ],
)
def test_hostile_strings_are_never_a_500(app, api, users, method, path, body):
    """NUL bytes, lone surrogates and huge names get a 4xx JSON answer."""
    rv = api.request(method, path, json=body)
    assert 400 <= rv.status_code < 500, rv.text
    assert_api_error(rv, rv.status_code)
    assert sql(app, "SELECT count(*) FROM message") == [(0,)]


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/nope", 404),
        ("PUT", "/msgs/alice", 405),
        ("DELETE", "/fllws/alice", 405),
        ("GET", "/register", 405),
        ("POST", "/latest", 405),
    ],
)
def test_unknown_api_routes_answer_json(api, method, path, status):
    """Unknown paths and methods under the API prefix are JSON errors too."""
    assert_api_error(api.request(method, path), status)


# --- UI: limits and hostile input --------------------------------------------------


def test_ui_username_too_long(app, client, auth):
    """The form refuses a 65-character name with a clear error box."""
    rv = auth.register("u" * (MAX_USERNAME + 1))
    assert "The username is too long (at most 64 characters)" in rv.get_data(as_text=True)
    assert sql(app, 'SELECT count(*) FROM "user"') == [(0,)]


def test_ui_message_too_long(app, client, auth):
    """A message over 1000 characters is not stored and the user is told."""
    auth.login_as("alice")
    data = {"text": "m" * (MAX_MESSAGE + 1)}
    rv = client.post("/add_message", data=data, follow_redirects=True)
    assert rv.status_code == 200
    assert "too long (at most 1000 characters)" in rv.get_data(as_text=True)
    assert sql(app, "SELECT count(*) FROM message") == [(0,)]


def test_ui_oversized_form_is_413(client, auth):
    """A form body over 64 KiB gets a 413 HTML page."""
    auth.login_as("alice")
    data = {"text": TOO_BIG}
    rv = client.post("/add_message", data=data)
    assert rv.status_code == 413
    assert "text/html" in rv.headers["Content-Type"]


@pytest.mark.parametrize("fields", [{}, {"username": "alice"}, {"password": "x"}])
def test_ui_login_with_missing_fields(client, auth, fields):
    """Missing form fields are ordinary login errors."""
    rv = client.post("/login", data={**fields})
    assert rv.status_code == 200
    assert "Invalid" in rv.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    ["/nul%00name", "/nul%00name/follow", "/nul%00name/unfollow", "/" + "x" * 5000],
)
def test_ui_hostile_paths_are_never_a_500(client, auth, path):
    """NUL bytes and huge names in UI paths are a 404 page, not a 500."""
    auth.login_as("alice")
    assert client.get(path).status_code == 404


def test_ui_nul_in_form_fields_is_never_a_500(app, client, auth):
    """NUL bytes in form fields are refused with a clear text, never a crash."""
    auth.login_as("alice")
    data = {"text": "a\x00b"}
    rv = client.post("/add_message", data=data, follow_redirects=True)
    assert rv.status_code == 200
    assert "cannot be stored" in rv.get_data(as_text=True)
    assert sql(app, "SELECT count(*) FROM message") == [(0,)]
    auth.logout()
    rv = auth.register("nul\x00name")
    assert rv.status_code == 200
    assert "cannot be stored" in rv.get_data(as_text=True)
    assert sql(app, 'SELECT count(*) FROM "user"') == [(1,)]
    data = {"username": "a\x00", "password": "x"}
    rv = client.post("/login", data=data)
    assert rv.status_code == 200
    assert "Invalid username" in rv.get_data(as_text=True)
