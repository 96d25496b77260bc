"""Sign in and out, wrong password, unknown user, and where anonymous visitors land."""

import re

from playwright.sync_api import Page
from playwright.sync_api import expect

from e2e.helpers import api_register
from e2e.helpers import error_box
from e2e.helpers import flashes
from e2e.helpers import nav_link
from e2e.helpers import new_user
from e2e.helpers import password_field
from e2e.helpers import sign_in
from e2e.helpers import sign_out
from e2e.helpers import username_field


def test_anonymous_root_lands_on_public_timeline(page: Page, save_screenshot) -> None:
    """/ sends anonymous visitors to the public timeline with the anonymous nav."""
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/public$"))
    expect(page).to_have_title("Public Timeline | MiniTwit")
    expect(page.get_by_role("heading", name="Public Timeline")).to_be_visible()
    for name in ("public timeline", "sign up", "sign in"):
        expect(nav_link(page, name)).to_be_visible()
    expect(nav_link(page, "sign out")).to_have_count(0)
    save_screenshot(page, "public-timeline")


def test_sign_in_and_out(page: Page) -> None:
    """Signing in shows My Timeline and the logged-in nav; signing out goes public."""
    user = new_user("inout")
    api_register(page, user)
    sign_in(page, user)
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", name="My Timeline")).to_be_visible()
    expect(nav_link(page, "my timeline")).to_be_visible()
    expect(nav_link(page, "public timeline")).to_be_visible()
    expect(page.get_by_role("link", name=f"sign out [{user.name}]")).to_be_visible()
    sign_out(page)
    expect(page).to_have_url(re.compile(r"/public$"))
    expect(nav_link(page, "sign in")).to_be_visible()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/public$"))


def test_signed_in_user_is_sent_home_from_login_and_register(page: Page) -> None:
    """Logged-in visits to /login and /register redirect to /."""
    user = new_user("home")
    api_register(page, user)
    sign_in(page, user)
    for path in ("/login", "/register"):
        page.goto(path)
        expect(page).to_have_url(re.compile(r"/$"))


def attempt_sign_in(page: Page, name: str, password: str) -> None:
    """Submit the sign-in form without expecting success."""
    page.goto("/login")
    username_field(page).fill(name)
    password_field(page).fill(password)
    page.get_by_role("button", name="Sign In").click()


def test_wrong_password_is_refused(page: Page) -> None:
    """A wrong password shows "Invalid password" and stays signed out."""
    user = new_user("wrongpw")
    api_register(page, user)
    attempt_sign_in(page, user.name, "not-" + user.password)
    expect(error_box(page)).to_contain_text("Invalid password")
    expect(flashes(page)).to_have_count(0)  # an error box, not a flash
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(nav_link(page, "sign out")).to_have_count(0)


def test_unknown_user_is_refused(page: Page) -> None:
    """An unknown user name shows "Invalid username"."""
    attempt_sign_in(page, new_user("ghost").name, "whatever")
    expect(error_box(page)).to_contain_text("Invalid username")
    expect(flashes(page)).to_have_count(0)
    expect(nav_link(page, "sign out")).to_have_count(0)
