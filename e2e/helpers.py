"""What a user does in MiniTwit, as short functions over a Playwright page.

Locators go by role, label and visible text only (STYLE.md 14), so a test breaks
when a user would notice something, not when markup details change.
"""

import datetime as dt
import os
import re
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from minitwit.config import DEFAULT_SIMULATOR_AUTH
from minitwit.config import basic_authorization
from playwright.sync_api import Locator
from playwright.sync_api import Page
from playwright.sync_api import expect

API_PREFIX = os.environ.get("E2E_API_PREFIX", "/api")
SIMULATOR_AUTHORIZATION = basic_authorization(DEFAULT_SIMULATOR_AUTH)
TIME_FORMAT = "%Y-%m-%d @ %H:%M"  # the contract's date format, UTC without JavaScript


@dataclass(frozen=True)
class User:
    """A MiniTwit account used by one test."""

    name: str
    password: str = "s3cret-Pässword"

    @property
    def email(self) -> str:
        """A valid address derived from the name."""
        return f"{self.name.replace(' ', '.')}@example.test"


def new_user(prefix: str = "user") -> User:
    """A user whose name no other test (nor an earlier run on a deployment) used."""
    return User(f"{prefix}-{uuid.uuid4().hex[:8]}")


# --- locators ---------------------------------------------------------------------


def username_field(page: Page) -> Locator:
    """The username input, found by its label."""
    return page.get_by_label(re.compile(r"^\s*user\s*name", re.I))


def email_field(page: Page) -> Locator:
    """The e-mail input, found by its label."""
    return page.get_by_label(re.compile(r"e-?mail", re.I))


def password_field(page: Page) -> Locator:
    """The (first) password input, found by its label."""
    return page.get_by_label(re.compile(r"^\s*password\s*:?\s*$", re.I))


def password2_field(page: Page) -> Locator:
    """The repeat-password input, found by its label."""
    return page.get_by_label(re.compile(r"password.*repeat", re.I))


def flashes(page: Page) -> Locator:
    """The flash messages (a list announced as a status region)."""
    return page.get_by_role("status")


def error_box(page: Page) -> Locator:
    """The form's error box (an alert, not a flash)."""
    return page.get_by_role("alert")


def message_box(page: Page) -> Locator:
    """The "What's on your mind" text input on My Timeline."""
    return page.get_by_role("textbox", name=re.compile("what's on your mind", re.I))


def messages(page: Page) -> Locator:
    """The timeline's message entries (list items carrying a <time>)."""
    return page.get_by_role("listitem").filter(has=page.locator("time"))


def nav_link(page: Page, name: str) -> Locator:
    """A navigation link by its visible text, e.g. "sign out"."""
    return page.get_by_role("link", name=re.compile(rf"^{re.escape(name)}", re.I))


# --- journeys ---------------------------------------------------------------------


def fill_sign_up(page: Page, name: str, email: str, password: str, password2: str) -> None:
    """Open the sign-up page, fill the form and submit it."""
    page.goto("/register")
    username_field(page).fill(name)
    email_field(page).fill(email)
    password_field(page).fill(password)
    password2_field(page).fill(password2)
    page.get_by_role("button", name="Sign Up").click()


def sign_up(page: Page, user: User) -> None:
    """Register through the form and check we land on the sign-in page."""
    fill_sign_up(page, user.name, user.email, user.password, user.password)
    expect(flashes(page)).to_contain_text("You were successfully registered and can login now")


def sign_in(page: Page, user: User) -> None:
    """Log in through the form and check the welcome flash."""
    page.goto("/login")
    username_field(page).fill(user.name)
    password_field(page).fill(user.password)
    page.get_by_role("button", name="Sign In").click()
    expect(flashes(page)).to_contain_text("You were logged in")


def sign_up_and_in(page: Page, prefix: str = "user") -> User:
    """A fresh user, registered and logged in through the UI."""
    user = new_user(prefix)
    sign_up(page, user)
    sign_in(page, user)
    return user


def sign_out(page: Page) -> None:
    """Click the nav's "sign out [name]" link and check the flash."""
    nav_link(page, "sign out").click()
    expect(flashes(page)).to_contain_text("You were logged out")


def post_message(page: Page, text: str) -> None:
    """Share a message from My Timeline."""
    page.goto("/")
    message_box(page).fill(text)
    page.get_by_role("button", name="Share").click()


# --- simulator API, called from inside the page (same origin, TLS and DNS) ---------

_FETCH_ALL = """async ([requests, auth]) => {
  const statuses = [];
  for (const [method, url, body] of requests) {
    const response = await fetch(url, {
      method,
      headers: {"Authorization": auth, "Content-Type": "application/json"},
      body: body === null ? undefined : JSON.stringify(body),
    });
    statuses.push(response.status);
  }
  return statuses;
}"""


def call_api(page: Page, requests: list[tuple[str, str, dict | None]]) -> list[int]:
    """Send (method, path, json) requests to the API in order; return statuses."""
    if not page.url.startswith("http"):
        page.goto("/public")
    prefixed = [(method, API_PREFIX + path, body) for method, path, body in requests]
    return page.evaluate(_FETCH_ALL, [prefixed, SIMULATOR_AUTHORIZATION])


def api_register(page: Page, user: User) -> None:
    """Register a user through the simulator API (fast set-up for other journeys)."""
    body = {"username": user.name, "email": user.email, "pwd": user.password}
    assert call_api(page, [("POST", "/register", body)]) == [204]


def api_post_messages(page: Page, user: User, texts: list[str]) -> None:
    """Post messages as user through the simulator API, oldest first."""
    path = f"/msgs/{user.name}"
    statuses = call_api(page, [("POST", path, {"content": text}) for text in texts])
    assert statuses == [204] * len(texts)


# --- time -------------------------------------------------------------------------


def format_in_zone(iso_utc: str, zone: str) -> str:
    """The contract's date format for an ISO-8601 UTC instant, seen in `zone`."""
    instant = dt.datetime.fromisoformat(iso_utc.replace("Z", "+00:00"))
    return instant.astimezone(ZoneInfo(zone)).strftime(TIME_FORMAT)
