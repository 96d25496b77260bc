"""Token-free CSRF protection (csrf.py): browsers' cross-origin writes are refused, plain clients work.

The test client's requests go to ``http://localhost``, so that is the app's own origin here.
"""

import html

import pytest
import requests
from helpers.api import API_AUTH
from helpers.data import insert_users
from helpers.data import sql
from prometheus_client import REGISTRY

from testkit.app import gunicorn_server

OWN = "http://localhost"
REFUSED_TEXT = "came from another web site"

# (headers, passes): what browsers send in each situation, and whether a write may proceed.
HEADER_MATRIX = [
    pytest.param({"Sec-Fetch-Site": "same-origin", "Origin": OWN}, True, id="same-origin"),
    pytest.param({"Sec-Fetch-Site": "none"}, True, id="none-typed-url"),
    pytest.param({"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:8081"}, False, id="same-site"),
    pytest.param({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, False, id="cross-site"),
    pytest.param({"Sec-Fetch-Site": "cross-site"}, False, id="cross-site-no-origin"),
    # Sec-Fetch-Site decides when present, whatever Origin says.
    pytest.param(
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://evil.example"}, True, id="same-origin-odd-origin"
    ),
    pytest.param({"Sec-Fetch-Site": "cross-site", "Origin": OWN}, False, id="cross-site-own-origin"),
    # Older browsers: Origin only.
    pytest.param({"Origin": OWN}, True, id="origin-match"),
    pytest.param({"Origin": "HTTP://LOCALHOST"}, True, id="origin-match-case"),
    pytest.param({"Origin": "http://localhost:8081"}, False, id="origin-other-port"),
    pytest.param({"Origin": "https://localhost"}, False, id="origin-other-scheme"),
    pytest.param({"Origin": "https://evil.example"}, False, id="origin-mismatch"),
    pytest.param({"Origin": "null"}, False, id="origin-null"),
    # Neither header: not a browser (requests, curl, the course's UI tests).
    pytest.param({}, True, id="neither"),
]


def refused_count(reason: str) -> float:
    """Current value of the refusal counter for ``reason``."""
    return REGISTRY.get_sample_value("minitwit_cross_origin_refused_total", {"reason": reason}) or 0.0


def assert_refused(rv):
    """A 403 HTML page that says why."""
    assert rv.status_code == 403
    assert "text/html" in rv.headers["Content-Type"]
    assert REFUSED_TEXT in rv.get_data(as_text=True)


@pytest.mark.parametrize("headers, passes", HEADER_MATRIX)
def test_add_message_header_matrix(app, client, auth, headers, passes):
    """POST /add_message is stored only when the browser headers say same-origin (or there are none)."""
    auth.login_as("alice")
    rv = client.post("/add_message", data={"text": "hi"}, headers=headers)
    if passes:
        assert rv.status_code == 302
        assert sql(app, "SELECT text FROM message") == [("hi",)]
    else:
        assert_refused(rv)
        assert sql(app, "SELECT count(*) FROM message") == [(0,)]


@pytest.mark.parametrize("headers, passes", HEADER_MATRIX)
def test_follow_link_header_matrix(app, client, auth, headers, passes):
    """The follow link is a GET that changes state, so a cross-site link cannot follow for you."""
    insert_users(app, ["bob"])
    auth.login_as("alice")
    rv = client.get("/bob/follow", headers=headers)
    assert rv.status_code == (302 if passes else 403)
    assert sql(app, "SELECT count(*) FROM follower") == [(1 if passes else 0,)]


@pytest.mark.parametrize(
    "path, fields",
    [
        ("/register", {"username": "mallory", "email": "m@x", "password": "p", "password2": "p"}),
        ("/login", {"username": "alice", "password": "default"}),
    ],
)
def test_cross_site_sign_up_and_sign_in_are_refused(app, client, path, fields):
    """Login CSRF and forged registrations are refused before anything happens."""
    insert_users(app, ["alice"])
    rv = client.post(path, data=fields, headers={"Sec-Fetch-Site": "cross-site"})
    assert_refused(rv)
    assert sql(app, 'SELECT count(*) FROM "user"') == [(1,)]
    assert client.get("/").status_code == 302  # not signed in


def test_unfollow_link_refused_cross_site(app, client, auth):
    """A cross-site unfollow link changes nothing."""
    insert_users(app, ["bob"])
    auth.login_as("alice")
    client.get("/bob/follow")
    assert_refused(client.get("/bob/unfollow", headers={"Sec-Fetch-Site": "cross-site"}))
    assert sql(app, "SELECT count(*) FROM follower") == [(1,)]


@pytest.mark.parametrize("path", ["/public", "/alice", "/login", "/register"])
def test_reads_are_never_refused(app, client, path):
    """Arriving from another site by a link is how the web works: reads always pass."""
    insert_users(app, ["alice"])
    assert client.get(path, headers={"Sec-Fetch-Site": "cross-site", "Origin": "null"}).status_code == 200


def test_api_is_not_checked(api):
    """The simulator API takes JSON only (no cross-site form can send it), so it is exempt."""
    body = {"username": "a", "email": "a@a", "pwd": "a"}
    assert api.post("/register", json=body, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 204


def test_behind_the_proxy_the_forwarded_scheme_is_the_origin(app, client, auth):
    """Behind Traefik (HTTPS outside, HTTP inside) the browser's https Origin is our own."""
    auth.login_as("alice")
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    ok = client.post("/add_message", data={"text": "hi"}, headers={**https, "Origin": "https://localhost"})
    assert ok.status_code == 302
    assert_refused(client.post("/add_message", data={"text": "x"}, headers={**https, "Origin": OWN}))


def test_refusals_are_counted_by_reason(app, client, auth):
    """Each refusal adds one to minitwit_cross_origin_refused_total{reason=<header>}."""
    auth.login_as("alice")
    before = refused_count("sec-fetch-site"), refused_count("origin")
    client.post("/add_message", data={"text": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
    client.post("/add_message", data={"text": "x"}, headers={"Origin": "null"})
    client.post("/add_message", data={"text": "x"}, headers={"Origin": "null"})
    assert (refused_count("sec-fetch-site"), refused_count("origin")) == (before[0] + 1, before[1] + 2)


# --- a plain requests client against the real server (the course's UI tests) -----------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The real gunicorn on a fresh SQLite database."""
    root = tmp_path_factory.mktemp("csrf")
    database_url = f"sqlite:///{root / 'minitwit.db'}"
    with gunicorn_server(root, database_url, WEB_CONCURRENCY="1", GUNICORN_THREADS="2") as server:
        yield server


def flashes(response) -> str:
    """The page's text after the redirects (flashes included), entities decoded."""
    assert response.status_code == 200, response.text
    return html.unescape(response.text)


def test_plain_requests_client_uses_every_form(server):
    """Register, sign in, post, follow and unfollow with the visible fields only, no token."""
    base = server.url
    requests.post(base + "/api/register", json={"username": "bob", "email": "b@x", "pwd": "p"}, timeout=10)
    with requests.Session() as http:
        form = {"username": "alice", "email": "a@x", "password": "pw", "password2": "pw"}
        assert "successfully registered" in flashes(http.post(base + "/register", data=form, timeout=10))
        login = {"username": "alice", "password": "pw"}
        assert "You were logged in" in flashes(http.post(base + "/login", data=login, timeout=10))
        assert "Your message was recorded" in flashes(http.post(base + "/add_message", data={"text": "hi"}, timeout=10))
        assert 'You are now following "bob"' in flashes(http.get(base + "/bob/follow", timeout=10))
        assert 'You are no longer following "bob"' in flashes(http.get(base + "/bob/unfollow", timeout=10))
    messages = requests.get(base + "/api/msgs/alice", headers=API_AUTH, timeout=10).json()
    assert [m["content"] for m in messages] == ["hi"]


def test_five_megabyte_api_body_gets_the_413_json(server):
    """A 5 MB body is answered with the 413 JSON, not a reset connection (as the simulator sends it)."""
    body = b'{"content": "' + b"x" * 5_000_000 + b'"}'
    headers = {**API_AUTH, "Content-Type": "application/json", "Connection": "close"}
    rv = requests.post(server.url + "/api/msgs/alice", data=body, headers=headers, timeout=30)
    assert rv.status_code == 413
    assert rv.json() == {"status": 413, "error_msg": "The request body is too large."}


def test_five_megabytes_chunked_get_the_413_json_too(server):
    """Without Content-Length (chunked) the body is cut at the limit: still a 413, not a JSON error."""

    def chunks():
        yield b'{"content": "'
        for _ in range(80):
            yield b"x" * 65536
        yield b'"}'

    headers = {**API_AUTH, "Content-Type": "application/json"}
    rv = requests.post(server.url + "/api/msgs/alice", data=chunks(), headers=headers, timeout=30)
    assert rv.status_code == 413
    assert rv.json() == {"status": 413, "error_msg": "The request body is too large."}
