"""The app's Content-Security-Policy, enforced by Chromium on every page: no violation, no console error.

Nothing is bypassed: each page's own ``Content-Security-Policy`` header (service/minitwit/headers.py)
is the policy Chromium enforces, and this checks that every page carries exactly it. A listener
added before any page script reports each ``securitypolicyviolation`` event to the test through a
Playwright binding, across navigations; ``browser_problems`` (conftest.py) fails the test on any
console error, which is also where Chromium reports a blocked file. A control test proves the
listener hears a violation when there is one.
"""

import re

import pytest
from minitwit.headers import PAGE_POLICY
from playwright.sync_api import Browser
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page
from playwright.sync_api import expect

from e2e.helpers import User
from e2e.helpers import api_post_messages
from e2e.helpers import api_register
from e2e.helpers import error_box
from e2e.helpers import flashes
from e2e.helpers import messages
from e2e.helpers import new_user
from e2e.helpers import password_field
from e2e.helpers import post_message
from e2e.helpers import sign_in
from e2e.helpers import sign_out
from e2e.helpers import sign_up
from e2e.helpers import username_field

REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportViolation(
    `${event.effectiveDirective} refused ${event.blockedURI} on ${event.documentURI}` +
    ` (${event.sourceFile || "the page"}:${event.lineNumber}, ${event.disposition})`
  );
});
"""
BACKGROUND = "rgb(202, 236, 233)"  # body's colour in style.css: the stylesheet was applied


def watch_policy(context: BrowserContext, base_url: str) -> dict[str, list[str]]:
    """Record every violation, and every page of the app whose policy header is not PAGE_POLICY."""
    seen: dict[str, list[str]] = {"violations": [], "pages": [], "wrong_policy": []}
    context.expose_function("reportViolation", lambda report: seen["violations"].append(report))
    context.add_init_script(REPORT_VIOLATIONS)

    def on_response(response) -> None:
        if response.request.resource_type != "document" or not response.url.startswith(base_url):
            return
        seen["pages"].append(f"{response.status} {response.url.removeprefix(base_url)}")
        if response.headers.get("content-security-policy") != PAGE_POLICY:
            seen["wrong_policy"].append(f"{response.url}: {response.headers.get('content-security-policy')}")

    context.on("response", on_response)
    return seen


def expect_files_applied(page: Page) -> None:
    """The stylesheet styled the page, and localtime.js ran on its <time> elements (if any)."""
    expect(page.locator("body")).to_have_css("background-color", BACKGROUND)
    if page.locator("time").count():
        expect(page.locator("time").first).to_have_attribute("title", re.compile(r"\d{4}"))


def visit(page: Page, path: str) -> None:
    """Open ``path`` and check the page's own files worked under the policy."""
    page.goto(path)
    expect_files_applied(page)


@pytest.mark.allow_http_errors(401, 404)
def test_every_page_satisfies_the_policy(page: Page, context: BrowserContext, base_url: str) -> None:
    """Anonymous pages, the forms and their errors, all timelines signed in, flashes, 401 and 404 pages."""
    seen = watch_policy(context, base_url)
    other = User(new_user("author").name)
    visit(page, "/public")
    api_register(page, other)  # the page's own fetch to the API: connect-src 'self'
    api_post_messages(page, other, ["an avatar and a date to show"])
    visit(page, "/public")
    expect(page.locator("img").first).to_have_attribute("src", re.compile(r"^https://www\.gravatar\.com/"))
    visit(page, f"/{other.name}")
    visit(page, f"/{other.name}/follow")  # 401 page for anonymous visitors
    visit(page, "/no-such-user-here")  # 404 page

    user = new_user("csp")
    sign_up(page, user)  # register form, then the sign-in page with a flash
    expect_files_applied(page)
    page.goto("/login")
    username_field(page).fill(user.name)
    password_field(page).fill("wrong")
    page.get_by_role("button", name="Sign In").click()
    expect(error_box(page)).to_contain_text("Invalid password")
    expect_files_applied(page)
    sign_in(page, user)  # My Timeline with a flash
    expect_files_applied(page)
    post_message(page, "posted under the policy")
    expect(messages(page).first).to_contain_text("posted under the policy")
    expect_files_applied(page)
    visit(page, f"/{user.name}")
    visit(page, f"/{other.name}")
    page.get_by_role("link", name="Follow user").click()
    expect(flashes(page)).to_contain_text("You are now following")
    expect_files_applied(page)
    sign_out(page)  # public timeline with a flash
    expect_files_applied(page)

    page.evaluate("0")  # a round trip: every report sent before it has reached the test
    assert seen["violations"] == []
    assert seen["wrong_policy"] == []
    assert len(seen["pages"]) >= 15, seen["pages"]


def test_the_listener_hears_a_violation(browser: Browser, browser_context_args: dict, base_url: str) -> None:
    """Control: an inline script and a foreign image are refused and reported.

    In a context of its own, unwatched by conftest.py: Chromium logs the refusals as console errors.
    """
    context = browser.new_context(**{**browser_context_args, "base_url": base_url})
    seen = watch_policy(context, base_url)
    page = context.new_page()
    page.goto("/login")
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.injected = true";
          document.head.append(script);
          const image = document.createElement("img");
          image.src = "https://images.example.org/tracker.png";
          document.body.append(image);
        }"""
    )
    for _ in range(50):  # the reports arrive through the binding, asynchronously
        if len(seen["violations"]) >= 2:
            break
        page.wait_for_timeout(100)
    assert page.evaluate("window.injected") is None
    assert [v.split(" on ")[0] for v in sorted(seen["violations"])] == [
        "img-src refused https://images.example.org/tracker.png",
        "script-src-elem refused inline",  # Chromium names inline code "inline"
    ]
    context.close()
