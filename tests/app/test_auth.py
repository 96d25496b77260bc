"""Sign up, sign in, sign out, and how passwords are stored (both databases)."""

import hashlib
import re

import pytest
from argon2 import PasswordHasher
from argon2 import Type
from helpers.data import ARGON2ID
from helpers.data import cached_hash
from helpers.data import insert_users
from helpers.data import sql
from helpers.ui import register
from werkzeug.security import generate_password_hash


def stored_hash(app, username):
    """The ``pw_hash`` column of ``username``."""
    return sql(app, 'SELECT pw_hash FROM "user" WHERE username = :u', u=username)[0][0]


def post_form(client, path, **fields):
    """POST a form with only its visible fields, as a non-browser client does, without redirects."""
    return client.post(path, data={**fields})


# --- register ----------------------------------------------------------------------


def test_register_page_fields_in_order(client):
    """The form has username, email, password, password2, then the submit button."""
    html = client.get("/register").get_data(as_text=True)
    inputs = re.findall(r'<input[^>]*(?:name|type)="([^"]+)"', html)
    visible = [name for name in inputs if name != "hidden"]
    assert visible == ["username", "email", "password", "password2", "submit"]


def test_register_success(app, client):
    """Success flashes, redirects to ``/login`` and stores an argon2id hash."""
    rv = post_form(
        client,
        "/register",
        username="alice",
        email="a@example.com",
        password="pw",
        password2="pw",
    )
    assert rv.status_code == 302
    assert rv.headers["Location"].endswith("/login")
    html = client.get("/login").get_data(as_text=True)
    assert "You were successfully registered and can login now" in html
    assert stored_hash(app, "alice").startswith(ARGON2ID)
    assert stored_hash(app, "alice") != "pw"


@pytest.mark.parametrize(
    "fields, message",
    [
        (("", "a@a", "p", "p"), "You have to enter a username"),
        (("u", "", "p", "p"), "You have to enter a valid email address"),
        (("u", "no-at-sign", "p", "p"), "You have to enter a valid email address"),
        (("u", "a@a", "", ""), "You have to enter a password"),
        (("u", "a@a", "p", "q"), "The two passwords do not match"),
        (("", "", "", "x"), "You have to enter a username"),
        (("u", "bad", "", "x"), "You have to enter a valid email address"),
        (("u", "a@a", "", "x"), "You have to enter a password"),
    ],
)
def test_register_errors_first_failure_wins(app, client, fields, message):
    """Each failing check shows its text in an error box (200); first one wins."""
    names = ("username", "email", "password", "password2")
    rv = post_form(client, "/register", **dict(zip(names, fields, strict=True)))
    assert rv.status_code == 200
    assert message in rv.get_data(as_text=True)
    assert sql(app, 'SELECT count(*) FROM "user"') == [(0,)]


def test_register_taken_username(app, client):
    """A taken name is refused and leaves one row."""
    register(client, "alice", "pw")
    rv = register(client, "alice", "other")
    assert "The username is already taken" in rv.get_data(as_text=True)
    assert sql(app, 'SELECT count(*) FROM "user"') == [(1,)]


def test_username_is_unique_in_the_database(app):
    """The database itself refuses a duplicate username."""
    from sqlalchemy.exc import IntegrityError

    insert_users(app, ["alice"])
    with pytest.raises(IntegrityError):
        insert_users(app, ["alice"])


def test_create_user_reports_a_lost_race(app):
    """When the name is taken between check and insert, the user gets the usual text."""
    from minitwit.models import create_user

    insert_users(app, ["alice"])
    with app.app_context():
        assert create_user("alice", "a@a", "pw") == "The username is already taken"


@pytest.mark.parametrize("path", ["/register", "/login"])
def test_logged_in_users_are_sent_home(client, auth, path):
    """Register and login redirect a signed-in user to ``/``."""
    auth.login_as("alice")
    for rv in (client.get(path), post_form(client, path, username="x")):
        assert rv.status_code == 302
        assert rv.headers["Location"].endswith("/")


# --- login / logout ----------------------------------------------------------------


def test_login_success(client, auth):
    """Success flashes and redirects to ``/``, which is then My Timeline."""
    auth.register("alice", "pw")
    rv = post_form(client, "/login", username="alice", password="pw")
    assert rv.status_code == 302
    assert rv.headers["Location"].endswith("/")
    html = client.get("/").get_data(as_text=True)
    assert "You were logged in" in html
    assert "sign out [<bdi>alice</bdi>]" in html


@pytest.mark.parametrize(
    "username, password, message",
    [("alice", "wrong", "Invalid password"), ("bob", "pw", "Invalid username")],
)
def test_login_errors(app, client, username, password, message):
    """Wrong credentials answer 200 with the error in the page, not a flash."""
    insert_users(app, ["alice"], "pw")
    rv = post_form(client, "/login", username=username, password=password)
    assert rv.status_code == 200
    html = rv.get_data(as_text=True)
    assert message in html
    assert re.search(r'<div class="error"[^>]*>.*?' + message, html, re.S)
    assert "flashes" not in html
    assert client.get("/").status_code == 302


def test_login_page(client):
    """The login page has its title and form."""
    html = client.get("/login").get_data(as_text=True)
    assert "Sign In | MiniTwit" in html
    assert 'name="username"' in html and 'name="password"' in html


def test_logout(client, auth):
    """Logout flashes, redirects to ``/public`` and ends the session."""
    auth.register_and_login("alice")
    rv = client.get("/logout")
    assert rv.status_code == 302
    assert rv.headers["Location"].endswith("/public")
    assert "You were logged out" in client.get("/public").get_data(as_text=True)
    assert client.get("/").status_code == 302


# --- password hashing --------------------------------------------------------------


OLD_HASHES = {  # every kind a MiniTwit database can hold, all of the password "secret"
    "md5": hashlib.md5(b"secret").hexdigest(),  # the original MiniTwit, via import-legacy
    "md5-upper": hashlib.md5(b"secret").hexdigest().upper(),
    "pbkdf2": generate_password_hash("secret", method="pbkdf2:sha256"),  # Werkzeug, older versions
    "scrypt": generate_password_hash("secret", method="scrypt:1024:8:1"),  # Werkzeug, this project before
    "argon2id-weaker": PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("secret"),
    "argon2i": PasswordHasher(type=Type.I, time_cost=2, memory_cost=19456, parallelism=1).hash("secret"),
}


@pytest.mark.parametrize("kind", OLD_HASHES)
def test_old_hash_is_upgraded_on_login(app, client, auth, kind):
    """A correct password against an old or weaker hash logs in and re-hashes with argon2id."""
    insert_users(app, ["old"], pw_hash=OLD_HASHES[kind])
    rv = auth.login("old", "secret")
    assert "You were logged in" in rv.get_data(as_text=True)
    assert stored_hash(app, "old").startswith(ARGON2ID)
    auth.logout()
    assert "You were logged in" in auth.login("old", "secret").get_data(as_text=True)
    auth.logout()
    assert "Invalid password" in auth.login("old", "Secret").get_data(as_text=True)


@pytest.mark.parametrize("kind", [*OLD_HASHES, "argon2id"])
def test_wrong_password_keeps_hash(app, auth, kind):
    """A wrong password is refused against every kind and leaves the stored hash alone."""
    pw_hash = OLD_HASHES.get(kind) or cached_hash("secret")
    insert_users(app, ["old"], pw_hash=pw_hash)
    for wrong in ("nope", "Secret", "secret ", ""):
        assert "Invalid password" in auth.login("old", wrong).get_data(as_text=True)
    assert stored_hash(app, "old") == pw_hash


@pytest.mark.parametrize(
    "pw_hash", ["", "x", "$argon2id$v=19$garbage", "scrypt:1:1:1$salt$00", "pbkdf2:nope$s$h", "£" * 32]
)
def test_malformed_hash_never_matches(app, auth, pw_hash):
    """A stored value that is no hash we know refuses every password with the usual message, not a 500."""
    insert_users(app, ["odd"], pw_hash=pw_hash)
    rv = auth.login("odd", "secret")
    assert rv.status_code == 200
    assert "Invalid password" in rv.get_data(as_text=True)


def test_current_hash_is_not_rehashed(app, auth):
    """An argon2id hash at the current parameters stays as it is after login."""
    auth.register("alice", "pw")
    before = stored_hash(app, "alice")
    assert before.startswith(ARGON2ID)
    auth.login("alice", "pw")
    assert stored_hash(app, "alice") == before


def test_api_registration_hash_works_for_ui_login(api, auth):
    """A user registered by the simulator can sign in on the web with that password."""
    body = {"username": "sim", "email": "s@s", "pwd": "simpw"}
    assert api.post("/register", json=body).status_code == 204
    assert "You were logged in" in auth.login("sim", "simpw").get_data(as_text=True)


@pytest.mark.parametrize("name", ["zoë 🐦 \u202eevil", "zero\u200bwidth", "tab\there"])
def test_register_form_refuses_control_and_format_characters(app, client, name):
    """The sign-up form names the rule in its error box and stores nothing."""
    fields = {"username": name, "email": "z@z", "password": "p", "password2": "p"}
    html = post_form(client, "/register", **fields).get_data(as_text=True)
    assert re.search(r'class="error"[^>]*>.*control or format characters.*Cc and Cf', html)
    assert sql(app, 'SELECT count(*) FROM "user"') == [(0,)]
