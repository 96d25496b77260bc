"""The web UI: timelines, user pages, follow/unfollow and add_message (both DBs)."""

import hashlib
import html as html_lib
import re

import pytest
from helpers.data import insert_messages
from helpers.data import insert_users
from helpers.data import sql
from helpers.ui import add_message


def page_title(html: str) -> str:
    """The text of the page's ``<title>``."""
    return html_lib.unescape(re.search(r"<title>(.*?)</title>", html, re.S).group(1).strip())


def shown_messages(html: str) -> list[str]:
    """The ``message N`` texts on a page, in page order (see ``insert_messages``)."""
    return re.findall(r"message \d+", html)


# --- public timeline and the anonymous view ----------------------------------------


def test_anonymous_home_redirects_to_public(client):
    """``GET /`` without a session redirects to the public timeline."""
    rv = client.get("/")
    assert rv.status_code == 302
    assert rv.headers["Location"].endswith("/public")


def test_public_timeline_empty(client):
    """An empty public timeline has its title, heading, anonymous nav and empty text."""
    html = client.get("/public").get_data(as_text=True)
    assert page_title(html) == "Public Timeline | MiniTwit"
    assert re.search(r"<h1>\s*MiniTwit\s*</h1>", html)
    assert "There&#39;s no message so far." in html or "There's no message so far." in html
    for link in ("public timeline", "sign up", "sign in"):
        assert link in html
    assert "sign out" not in html


@pytest.mark.parametrize("path", ["/public", "/alice", "/"])
def test_timelines_show_30_newest_first(app, client, auth, path):
    """Every timeline shows at most 30 messages, newest first, authors joined."""
    auth.login_as("alice")
    insert_messages(app, "alice", 35)
    html = client.get(path).get_data(as_text=True)
    assert shown_messages(html) == [f"message {i}" for i in range(34, 4, -1)]
    assert 'href="/alice"' in html


def test_message_shows_gravatar_date_and_author(app, client):
    """Each message: 48px gravatar of the trimmed, lower-cased email; UTC date."""
    sql(
        app,
        'INSERT INTO "user" (username, email, pw_hash) VALUES (:u, :e, :h)',
        u="alice",
        e="  Alice@Example.COM ",
        h="x",
    )
    insert_messages(app, "alice", 1, start=86400 + 3600 + 61)
    html = client.get("/public").get_data(as_text=True)
    digest = hashlib.md5(b"alice@example.com").hexdigest()
    gravatar = f"https://www.gravatar.com/avatar/{digest}?d=identicon&amp;s=48"
    assert gravatar in html
    assert "1970-01-02 @ 01:01" in html
    assert 'href="/alice"' in html


@pytest.mark.parametrize("path", ["/public", "/alice", "/"])
def test_flagged_messages_are_hidden(app, client, auth, path):
    """``flagged=1`` hides a message on every page."""
    auth.login_as("alice")
    insert_messages(app, "alice", 1, flagged=1)
    add_message(client, "visible")
    html = client.get(path).get_data(as_text=True)
    assert "visible" in html
    assert "message 0" not in html


def test_message_text_is_escaped(app, client, auth):
    """Message text is HTML-escaped everywhere it is shown."""
    auth.login_as("alice")
    add_message(client, "<script>alert(1)</script>")
    for path in ("/", "/public", "/alice"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- my timeline -------------------------------------------------------------------


def test_my_timeline_page(client, auth):
    """My Timeline: title, logged-in nav, and the share box."""
    auth.login_as("alice")
    html = client.get("/").get_data(as_text=True)
    assert page_title(html) == "My Timeline | MiniTwit"
    for text in ("my timeline", "public timeline", "sign out [<bdi>alice</bdi>]"):
        assert text in html
    assert "What&#39;s on your mind <bdi>alice</bdi>?" in html or "What's on your mind <bdi>alice</bdi>?" in html
    assert re.search(r'<input[^>]*type="submit"[^>]*value="Share"', html)
    assert re.search(r'<form[^>]*action="/add_message"[^>]*method="post"', html, re.I)


def test_my_timeline_has_own_and_followed_messages_only(app, client, auth):
    """Home shows own messages and followed users', not others'; newest 30."""
    insert_users(app, ["bob", "carol"])
    insert_messages(app, "bob", 20, start=1000)
    insert_messages(app, "carol", 5, start=5000)
    auth.login_as("alice")
    client.get("/bob/follow")
    add_message(client, "own words")
    html = client.get("/").get_data(as_text=True)
    assert "own words" in html
    assert shown_messages(html) == [f"message {i}" for i in range(19, -1, -1)]


def test_add_message_stores_it(app, client, auth):
    """A non-empty message is stored, flashed, and redirects to ``/``."""
    auth.login_as("alice")
    data = {"text": "hello"}
    rv = client.post("/add_message", data=data)
    assert rv.status_code == 302
    assert rv.headers["Location"].endswith("/")
    html = client.get("/").get_data(as_text=True)
    assert re.search(r'<ul class="flashes"[^>]*>\s*<li>Your message was recorded</li>', html)
    assert sql(app, "SELECT text, flagged FROM message") == [("hello", 0)]


@pytest.mark.parametrize("data", [{"text": ""}, {}])
def test_add_empty_message_stores_nothing(app, client, auth, data):
    """An empty or missing text stores nothing and flashes nothing."""
    auth.login_as("alice")
    rv = client.post("/add_message", data={**data})
    assert rv.status_code == 302
    assert "Your message was recorded" not in client.get("/").get_data(as_text=True)
    assert sql(app, "SELECT count(*) FROM message") == [(0,)]


def test_add_message_anonymous_is_401(app, client):
    """Posting without a session is 401 and stores nothing."""
    rv = client.post("/add_message", data={"text": "x"})
    assert rv.status_code == 401
    assert sql(app, "SELECT count(*) FROM message") == [(0,)]


# --- user pages and following ------------------------------------------------------


def test_user_page_unknown_is_404(client):
    """An unknown user's page is 404."""
    assert client.get("/nobody").status_code == 404


def test_user_page_anonymous(app, client):
    """Anonymous visitors see the messages without follow controls."""
    insert_users(app, ["bob"])
    insert_messages(app, "bob", 2)
    html = client.get("/bob").get_data(as_text=True)
    assert page_title(html) == "\u2068bob\u2069's Timeline | MiniTwit"  # the name direction-isolated
    assert shown_messages(html) == ["message 1", "message 0"]
    assert "Follow user" not in html
    assert "This is you!" not in html


def test_user_page_self(client, auth):
    """Your own page says so."""
    auth.login_as("alice")
    assert "This is you!" in client.get("/alice").get_data(as_text=True)


def test_user_page_follow_states(app, client, auth):
    """Not following: a Follow link; following: an Unfollow link."""
    insert_users(app, ["bob"])
    auth.login_as("alice")
    html = client.get("/bob").get_data(as_text=True)
    assert "You are not yet following this user." in html
    assert 'href="/bob/follow"' in html and "Follow user" in html
    client.get("/bob/follow")
    html = client.get("/bob").get_data(as_text=True)
    assert "You are currently following this user." in html
    assert 'href="/bob/unfollow"' in html and "Unfollow user" in html


def test_follow_and_unfollow(app, client, auth):
    """Follow and unfollow flash the contract's texts and redirect to the user page."""
    insert_users(app, ["bob"])
    auth.login_as("alice")
    rv = client.get("/bob/follow")
    assert rv.status_code == 302
    assert rv.headers["Location"].endswith("/bob")
    assert "You are now following &#34;bob&#34;" in client.get("/bob").get_data(as_text=True)
    assert sql(app, "SELECT count(*) FROM follower") == [(1,)]
    client.get("/bob/follow")
    assert sql(app, "SELECT count(*) FROM follower") == [(1,)]
    rv = client.get("/bob/unfollow", follow_redirects=True)
    assert "You are no longer following &#34;bob&#34;" in rv.get_data(as_text=True)
    assert sql(app, "SELECT count(*) FROM follower") == [(0,)]


@pytest.mark.parametrize("action", ["follow", "unfollow"])
def test_follow_anonymous_is_401_and_unknown_is_404(app, client, auth, action):
    """Anonymous follow/unfollow is 401; an unknown user is 404."""
    insert_users(app, ["bob"])
    assert client.get(f"/bob/{action}").status_code == 401
    auth.login_as("alice")
    assert client.get(f"/nobody/{action}").status_code == 404


def test_username_with_space_in_ui(app, client, auth):
    """Names with spaces work in the UI's URLs."""
    insert_users(app, ["Jane Doe"])
    insert_messages(app, "Jane Doe", 1)
    auth.login_as("alice")
    assert client.get("/Jane%20Doe").status_code == 200
    rv = client.get("/Jane%20Doe/follow", follow_redirects=True)
    assert "You are now following &#34;Jane Doe&#34;" in rv.get_data(as_text=True)
    assert "message 0" in client.get("/").get_data(as_text=True)


# --- issue 13: following yourself, the 401 page, direction-isolated user text -----------


def test_following_yourself_flashes_and_changes_nothing(app, client, auth):
    """The follow link to your own page is refused with a flash; no row is stored."""
    auth.login_as("alice")
    rv = client.get("/alice/follow", follow_redirects=True)
    assert rv.status_code == 200
    assert "You cannot follow yourself" in rv.get_data(as_text=True)
    assert sql(app, "SELECT count(*) FROM follower") == [(0,)]


def test_401_page_links_to_sign_in_and_returns_there(app, client):
    """The 401 page's sign-in link carries the page, and signing in goes back to it."""
    insert_users(app, ["alice", "bob"])
    html = client.get("/bob/follow").get_data(as_text=True)
    assert 'href="/login?next=/bob/follow"' in html
    rv = client.post("/login?next=/bob/follow", data={"username": "alice", "password": "default"})
    assert rv.status_code == 302
    assert rv.headers["Location"].endswith("/bob/follow")


def test_401_page_of_a_post_returns_to_my_timeline(client):
    """A refused POST cannot be repeated by a link: sign in leads back to My Timeline."""
    html = client.post("/add_message", data={"text": "x"}).get_data(as_text=True)
    assert 'href="/login?next=/"' in html


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example", "evil"])
def test_sign_in_never_returns_to_another_site(app, client, target):
    """``next`` is followed only to a path on this site (no open redirect)."""
    insert_users(app, ["alice"])
    rv = client.post("/login", query_string={"next": target}, data={"username": "alice", "password": "default"})
    assert rv.status_code == 302
    assert rv.headers["Location"] == "/"


def test_user_text_is_direction_isolated(app, client):
    """Names and messages sit in <bdi>, so a right-to-left override cannot flip the page."""
    spoof = "zoë \u202eevil"  # an existing name from before the rule
    insert_users(app, [spoof])
    sql(
        app,
        'INSERT INTO message (author_id, text, pub_date, flagged) SELECT user_id, :t, 1, 0 FROM "user"',
        t="\u202eboo",
    )
    html = client.get(f"/{spoof}").get_data(as_text=True)
    assert f"<h2><bdi>{spoof}</bdi>&#39;s Timeline</h2>" in html or f"<h2><bdi>{spoof}</bdi>'s Timeline</h2>" in html
    assert f"<bdi>{spoof}</bdi></a>" in html
    assert "<bdi>\u202eboo</bdi>" in html
