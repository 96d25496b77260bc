"""Security the browser can see: CSRF tokens and refusals, session cookie flags."""

import pytest
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page
from playwright.sync_api import expect

from e2e.helpers import error_box
from e2e.helpers import message_box
from e2e.helpers import messages
from e2e.helpers import sign_up_and_in

CSRF_FAILED = "The form could not be verified (missing or invalid CSRF token). Reload the page and try again."
FORMS = {"/login": "Sign In", "/register": "Sign Up"}


def csrf_token_value(page: Page) -> str:
    """The value of the hidden csrf_token field in the page's form."""
    return page.locator("form input[type=hidden][name=csrf_token]").get_attribute("value") or ""


@pytest.mark.parametrize("path", FORMS)
def test_anonymous_forms_carry_a_csrf_token(page: Page, path: str) -> None:
    """The sign-in and sign-up forms carry a non-trivial CSRF token."""
    page.goto(path)
    assert len(csrf_token_value(page)) >= 20


@pytest.mark.allow_http_errors(400)
@pytest.mark.parametrize("forgery", ["forged-token", ""])
def test_forged_post_is_rejected_visibly(page: Page, forgery: str) -> None:
    """A message form with a wrong or missing token is refused with a visible error."""
    sign_up_and_in(page, "csrf")
    page.goto("/")
    assert len(csrf_token_value(page)) >= 20
    page.locator("form input[name=csrf_token]").evaluate(
        "(field, value) => value ? field.value = value : field.remove()", forgery
    )
    message_box(page).fill("this must not be stored")
    page.get_by_role("button", name="Share").click()
    expect(error_box(page)).to_have_text(CSRF_FAILED)
    page.goto("/")
    expect(messages(page).filter(has_text="this must not be stored")).to_have_count(0)


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
