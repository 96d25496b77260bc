"""The session shortcut (sessions.py): no signing work without cookies, Flask's sessions otherwise."""

import pytest
from helpers.data import insert_users
from minitwit.sessions import CookieSessionInterface

SIMULATOR = {"Authorization": "Basic c2ltdWxhdG9yOnN1cGVyX3NhZmUh"}


@pytest.fixture
def serializers_built(app, monkeypatch):
    """Count how often the app builds the session's signing serializer (once per request it signs or reads)."""
    calls = []
    real = CookieSessionInterface.get_signing_serializer

    def spy(self, flask_app):
        calls.append(1)
        return real(self, flask_app)

    monkeypatch.setattr(CookieSessionInterface, "get_signing_serializer", spy)
    return calls


def test_requests_without_cookies_build_no_serializer(app, serializers_built):
    """The simulator's requests and the probes send no cookies: nothing is signed or parsed for them."""
    client = app.test_client(use_cookies=False)
    assert client.post("/api/register", json={"username": "a", "email": "a@a", "pwd": "p"}).status_code == 204
    assert client.get("/api/msgs", headers=SIMULATOR).status_code == 200
    assert client.get("/health").status_code == 200
    assert client.get("/public").status_code == 200
    assert serializers_built == []


def test_a_cookieless_client_can_sign_in_and_stays_signed_in(app, client, serializers_built):
    """The empty session of a request without cookies is a real one: sign-in stores the user in it."""
    insert_users(app, ["alice"], "pw")
    rv = client.post("/login", data={"username": "alice", "password": "pw"}, follow_redirects=True)
    assert "You were logged in" in rv.get_data(as_text=True)
    assert "My Timeline" in client.get("/").get_data(as_text=True)
    assert serializers_built  # signed when it was set, read on the next requests


def test_other_cookies_go_through_flask(app, client, serializers_built):
    """A Cookie header without the session cookie is Flask's case: read, found empty, signed out."""
    client.set_cookie("unrelated", "1")
    rv = client.get("/public")
    assert rv.status_code == 200
    assert "sign in" in rv.get_data(as_text=True)
    assert serializers_built == [1]


@pytest.mark.parametrize("name", ["api", "healthy", "readyplayer1"])
def test_users_named_like_the_api_or_the_probes_can_be_followed(app, auth, name):
    """The shortcut looks at cookies, not paths: /api/follow is a signed-in page for a user called api.

    (Names that are exactly another page, such as health or ready, are refused at sign-up: test_usernames.)
    """
    insert_users(app, [name])
    auth.login_as("viewer")
    rv = auth._client.get(f"/{name}/follow", follow_redirects=True)
    assert f"You are now following &#34;{name}&#34;" in rv.get_data(as_text=True)


def test_without_a_secret_key_flask_decides(app):
    """No shortcut without a key: Flask's own code answers None, so the session stays unavailable."""
    app.secret_key = None
    with app.test_request_context("/api/msgs"):  # no Cookie header
        from flask import request

        assert app.session_interface.open_session(app, request) is None
