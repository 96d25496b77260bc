"""Security the browser can see: cross-site forms refused, same-origin forms work, cookie flags.

The forging page is served by a real HTTP server on a second loopback origin. On
``127.0.0.1`` with another port it is same-site but cross-origin, so Chromium still sends
the SameSite=Lax session cookie and only the app's Fetch Metadata check stands between
the page and the user's account; on ``localhost`` it is cross-site as well.
"""

import contextlib
import html
import http.server
import threading
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page
from playwright.sync_api import expect

from e2e.helpers import error_box
from e2e.helpers import messages
from e2e.helpers import sign_up_and_in

CROSS_ORIGIN = "This request came from another web site, so it was refused"

# The attack: a page that posts to the app as soon as it loads, with the victim's cookies.
AUTO_SUBMIT = """<!doctype html><title>Win a prize</title>
<form id="forged" method="post" action="{action}"><input name="text" value="{text}"></form>
<script>document.getElementById("forged").submit()</script>"""


@contextlib.contextmanager
def forging_site(page_html: str) -> Iterator[int]:
    """Serve ``page_html`` at / on a free loopback port; yield the port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            body = page_html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            """Keep the test output quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def forged_form(base_url: str, text: str) -> str:
    """The auto-submitting form, aimed at the app's /add_message."""
    return AUTO_SUBMIT.format(action=html.escape(base_url + "/add_message"), text=html.escape(text))


@pytest.mark.allow_http_errors(403)
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["same-site", "cross-site"])
def test_form_from_another_origin_is_refused(page: Page, context: BrowserContext, base_url: str, host: str) -> None:
    """A signed-in user who opens a page on another origin gets the 403 page, and nothing is posted."""
    sign_up_and_in(page, "victim")
    text = f"forged {uuid.uuid4().hex[:8]}"
    with forging_site(forged_form(base_url, text)) as port:
        evil = f"http://{host}:{port}"
        context.route(f"{evil}/**", lambda route: route.continue_())  # past the off-host guard
        page.goto(evil + "/")
        page.wait_for_url(base_url + "/add_message")
    expect(page.get_by_role("heading", name="Error 403")).to_be_visible()
    expect(error_box(page)).to_contain_text(CROSS_ORIGIN)
    page.goto("/")
    expect(messages(page).filter(has_text=text)).to_have_count(0)


def test_same_form_on_the_apps_own_origin_works(page: Page, base_url: str) -> None:
    """The very same auto-submitting form, run on the app's origin, posts the message."""
    sign_up_and_in(page, "sameorigin")
    text = f"same origin {uuid.uuid4().hex[:8]}"
    page.goto("/public")
    page.evaluate(
        "formHtml => { document.body.innerHTML = formHtml; document.getElementById('forged').submit(); }",
        forged_form(base_url, text).split("<script>")[0],
    )
    page.wait_for_url(base_url + "/")
    expect(messages(page).filter(has_text=text)).to_have_count(1)


def test_forms_have_only_their_visible_fields(page: Page) -> None:
    """No hidden token: the course's plain clients post exactly what a user fills in."""
    for path in ("/login", "/register"):
        page.goto(path)
        expect(page.locator("form input[type=hidden]")).to_have_count(0)


def session_cookie(context: BrowserContext) -> dict:
    """The one cookie that carries the login session."""
    cookies = [c for c in context.cookies() if c["name"] == "session"]
    assert len(cookies) == 1, context.cookies()
    return cookies[0]


def test_session_cookie_flags(page: Page, context: BrowserContext, base_url: str) -> None:
    """HttpOnly and SameSite=Lax always; Secure exactly when served over HTTPS."""
    sign_up_and_in(page, "cookie")
    cookie = session_cookie(context)
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is base_url.startswith("https://")
