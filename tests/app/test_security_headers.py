"""Security headers (headers.py): the pages' policy, the API's, and what Traefik must leave as it is.

The values are spelled out here on purpose: a change to a policy is a change to this file too.
"""

import base64
import hashlib
import re
from html.parser import HTMLParser

import pytest
import yaml
from helpers.data import insert_messages
from helpers.data import insert_users
from minitwit import headers

from testkit import REPO_ROOT

PERMISSIONS = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()"
)
EVERY_ANSWER = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": PERMISSIONS,
}
PAGE = {
    **EVERY_ANSWER,
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https://www.gravatar.com; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
API = {
    **EVERY_ANSWER,
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Set by Traefik only (HSTS: the edge's TLS), or by nobody.
NOT_FROM_THE_APP = ("Strict-Transport-Security", "Content-Security-Policy-Report-Only", "Cross-Origin-Embedder-Policy")


def security_headers(response, names) -> dict:
    """The response's values of ``names`` (absent ones left out)."""
    return {name: response.headers[name] for name in names if name in response.headers}


def assert_headers(response, expected: dict) -> None:
    """Exactly the expected security headers, once each, and none of the edge's."""
    assert security_headers(response, expected) == expected
    for name in expected:
        assert len(response.headers.getlist(name)) == 1, name
    assert security_headers(response, NOT_FROM_THE_APP) == {}


def alice_wrote(app, count: int) -> None:
    """A user "alice" with ``count`` messages, so timelines show avatars."""
    insert_users(app, ["alice"])
    insert_messages(app, "alice", count)


# --- the pages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, status",
    [
        ("/public", 200),
        ("/login", 200),
        ("/register", 200),
        ("/alice", 200),
        ("/no-such-user", 404),
        ("/", 302),  # anonymous: a redirect is an answer too
        ("/alice/follow", 401),
        ("/static/style.css", 200),
        ("/static/localtime.js", 200),
        ("/static/favicon.svg", 200),
    ],
)
def test_anonymous_pages_and_their_files(app, client, path, status):
    """Every page, error page, redirect and static file of the UI carries the pages' headers."""
    alice_wrote(app, 1)
    with client.get(path) as rv:  # a static file's answer holds the file open until closed
        assert rv.status_code == status
        assert_headers(rv, PAGE)


@pytest.mark.parametrize("path", ["/", "/public", "/alice", "/alice/follow"])
def test_signed_in_pages(app, client, auth, path):
    """My Timeline, a followed user's page and a flash after a follow: the same headers."""
    auth.login_as("bob")
    alice_wrote(app, 1)
    rv = client.get(path, follow_redirects=True)
    assert rv.status_code == 200
    assert_headers(rv, PAGE)


def test_refused_cross_origin_post_and_error_box(client, auth):
    """The 403 page of a forged request and a form's error box carry them as well."""
    auth.login_as("bob")
    assert_headers(client.post("/add_message", data={"text": "x"}, headers={"Sec-Fetch-Site": "cross-site"}), PAGE)
    auth.logout()
    rv = client.post("/login", data={"username": "nobody", "password": "x"})
    assert "Invalid username" in rv.get_data(as_text=True)
    assert_headers(rv, PAGE)


class Markup(HTMLParser):
    """What the CSP forbids in a page: inline scripts, style elements and attributes, event handlers."""

    def __init__(self):
        super().__init__()
        self.inline: list[str] = []
        self.external: dict[str, dict] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and "src" not in attributes:
            self.inline.append("<script> without src")
        if tag == "style":
            self.inline.append("<style>")
        self.inline += [f"<{tag} {name}=...>" for name in attributes if name == "style" or name.startswith("on")]
        self.inline += [
            f"<{tag} {name}=javascript:>" for name, value in attrs if (value or "").startswith("javascript:")
        ]
        if (tag == "script" and "src" in attributes) or (tag == "link" and attributes.get("rel") == "stylesheet"):
            self.external[attributes.get("src") or attributes["href"]] = attributes


def parsed(html: str) -> Markup:
    """The page, read by Markup."""
    markup = Markup()
    markup.feed(html)
    return markup


@pytest.mark.parametrize("path", ["/", "/public", "/bob", "/alice", "/login", "/register", "/no-such-user"])
def test_pages_have_nothing_inline(app, client, auth, path):
    """No inline script, style or handler on any page, so the policy needs no 'unsafe-inline'."""
    auth.login_as("bob")
    alice_wrote(app, 2)
    if path in ("/login", "/register"):
        auth.logout()
    page = client.get(path, follow_redirects=True).get_data(as_text=True)
    assert parsed(page).inline == []


def test_the_pages_scripts_and_styles_carry_their_integrity(client):
    """SRI: each integrity attribute is the sha384 of the file the app serves at that URL."""
    external = parsed(client.get("/login").get_data(as_text=True)).external
    assert sorted(external) == ["/static/localtime.js", "/static/style.css"]
    for url, attributes in external.items():
        with client.get(url) as rv:
            body = rv.get_data()
        assert attributes["integrity"] == "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


def test_integrity_follows_an_edited_file(tmp_path):
    """The hash is cached per modification time: an edited file gets its new hash."""
    path = tmp_path / "a.js"
    path.write_text("one")
    first = headers.file_integrity(str(path), path.stat().st_mtime_ns)
    path.write_text("two!")
    assert headers.file_integrity(str(path), path.stat().st_mtime_ns) != first


def test_gravatars_are_the_only_foreign_images(app, client):
    """Every <img> of a timeline comes from the one foreign origin the policy allows."""
    alice_wrote(app, 3)
    page = client.get("/public").get_data(as_text=True)
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 3
    assert all(source.startswith("https://www.gravatar.com/avatar/") for source in sources)


# --- the API -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, body, authorized, status",
    [
        ("GET", "/latest", None, False, 200),
        ("GET", "/msgs", None, True, 200),
        ("GET", "/msgs", None, False, 403),
        ("GET", "/msgs/nobody", None, True, 404),
        ("POST", "/register", {"username": "carol", "email": "c@x", "pwd": "p"}, False, 204),
        ("POST", "/register", {"username": "", "email": "c@x", "pwd": "p"}, False, 400),
        ("GET", "/no-such-endpoint", None, True, 404),
    ],
)
def test_api_answers(api, method, path, body, authorized, status):
    """JSON (and the empty 204s) get the API's headers: nothing loads, nothing frames, nothing caches."""
    rv = api.request(method, path, json=body, auth=authorized)
    assert rv.status_code == status
    assert {name: rv.headers.get(name) for name in API} == API
    assert all(name not in rv.headers for name in NOT_FROM_THE_APP)
    assert "Cross-Origin-Opener-Policy" not in rv.headers


# --- the edge ----------------------------------------------------------------------------

EDGE = yaml.safe_load((REPO_ROOT / "traefik" / "dynamic" / "middlewares.yml").read_text())["http"]["middlewares"][
    "security-headers"
]["headers"]


def test_traefik_sets_the_apps_values_where_both_set_a_header():
    """Traefik's headers middleware overwrites the app's same-named headers: the values must agree."""
    assert EDGE["contentTypeNosniff"] is True and EVERY_ANSWER["X-Content-Type-Options"] == "nosniff"
    assert EDGE["frameDeny"] is True and EVERY_ANSWER["X-Frame-Options"] == "DENY"
    assert EDGE["referrerPolicy"] == EVERY_ANSWER["Referrer-Policy"] == headers.EDGE_HEADERS["Referrer-Policy"]
    assert EDGE["permissionsPolicy"] == PERMISSIONS == headers.PERMISSIONS_POLICY


def test_traefik_leaves_the_apps_own_policies_alone_and_removes_the_server_header():
    """No CSP, cross-origin or custom-frame setting at the edge (Grafana needs its own); Server: deleted."""
    app_only = {"contentSecurityPolicy", "contentSecurityPolicyReportOnly", "customFrameOptionsValue"}
    assert app_only & set(EDGE) == set()
    assert EDGE["customResponseHeaders"] == {"Server": ""}
    assert EDGE["stsSeconds"] >= 31536000 and EDGE["stsIncludeSubdomains"] is True
    assert "stsPreload" not in EDGE  # preloading is a commitment to browsers' lists: docs/security.md
