"""Names the site's own addresses hold: a new user gets a name whose page and follow links are theirs."""

import re
from urllib.parse import quote

import pytest
from helpers.data import sql
from minitwit.models import USERNAME_NOT_A_PATH
from minitwit.models import USERNAME_TAKEN

# Every first path segment the app routes itself, read from its URL map: ``/public``, ``/health``,
# ``/static/...``, ``/api/...``. A name equal to one of them may or may not be free; the test decides.
ROUTE_WORDS = "static health ready api register login logout public add_message".split()


def route_words(app) -> set[str]:
    """The literal first segments of the app's routes (no converter in them)."""
    words = {rule.rule.split("/")[1] for rule in app.url_map.iter_rules()}
    return {word for word in words if word and "<" not in word}


def test_the_list_covers_every_route(app):
    """The parametrised tests below see every word the app routes (a new page shows up here first)."""
    assert route_words(app) == set(ROUTE_WORDS)


@pytest.mark.parametrize("name", ["public", "health", "ready", "login", "logout", "register", "static"])
def test_api_refuses_names_whose_page_is_another_page(app, api, name):
    """``/public`` is the public timeline and ``/static/follow`` a file: such a name is taken by the site."""
    rv = api.post("/register", json={"username": name, "email": "x@x", "pwd": "p"})
    assert rv.status_code == 400
    assert rv.json() == {"status": 400, "error_msg": USERNAME_TAKEN}
    assert sql(app, 'SELECT count(*) FROM "user"') == [(0,)]


@pytest.mark.parametrize("name", ["a/b", "/", ".", ".."])
def test_names_no_address_can_reach_are_refused_by_rule(app, api, client, name):
    """A "/" splits the address, and browsers resolve "." and ".." away: the message says so."""
    rv = api.post("/register", json={"username": name, "email": "x@x", "pwd": "p"})
    assert rv.status_code == 400
    assert rv.json()["error_msg"] == USERNAME_NOT_A_PATH
    fields = {"username": name, "email": "x@x", "password": "p", "password2": "p"}
    html = client.post("/register", data=fields).get_data(as_text=True)
    assert re.search(r'class="error"[^>]*>.*cannot be a page address', html)
    assert sql(app, 'SELECT count(*) FROM "user"') == [(0,)]


def test_form_says_taken_for_a_page_name(app, client):
    """The sign-up form shows the taken message in its error box, as for a name another user has."""
    fields = {"username": "public", "email": "x@x", "password": "p", "password2": "p"}
    html = client.post("/register", data=fields).get_data(as_text=True)
    assert re.search(r'class="error"[^>]*>.*The username is already taken', html)
    assert sql(app, 'SELECT count(*) FROM "user"') == [(0,)]


def test_contract_order_still_holds_for_page_names(api):
    """Taken is the last check: a page name with a bad email gets the email message first."""
    rv = api.post("/register", json={"username": "public", "email": "no-at-sign", "pwd": "p"})
    assert rv.json()["error_msg"] == "You have to enter a valid email address"


@pytest.mark.parametrize(
    "name",
    ["api", "add_message", "metrics", "favicon.ico", "robots.txt", "...", "a.b", "zoë 🐦", "Roger Histand", "a?b#c"],
)
def test_names_that_are_free_get_their_own_page_and_links(app, api, auth, name):
    """Route words that are no page on GET, file-like names and the scenario's kind: accepted, and
    ``/<name>`` is that user's page with working follow links."""
    rv = api.post("/register", json={"username": name, "email": "x@x", "pwd": "p"})
    assert rv.status_code == 204
    auth.login_as("viewer")
    client = auth._client
    page = client.get(f"/{quote(name)}").get_data(as_text=True)  # as a link or a browser sends it
    assert "You are not yet following this user." in page
    link = re.search(r'href="([^"]*/follow)"', page).group(1)
    followed = client.get(link, follow_redirects=True).get_data(as_text=True)
    assert "You are currently following this user." in followed
    assert sql(app, "SELECT count(*) FROM follower") == [(1,)]


def test_accepted_route_words_are_the_harmless_ones(api):
    """``/api``, ``/add_message`` (POST only) answer GET with the user's page, so those names stay free."""
    accepted = [
        name
        for name in ROUTE_WORDS
        if api.post("/register", json={"username": name, "email": "x@x", "pwd": "p"}).status_code == 204
    ]
    assert accepted == ["api", "add_message"]
