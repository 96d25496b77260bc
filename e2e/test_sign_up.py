"""Sign up: success, every validation text in contract order, keyboard-only use."""

import re

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect

from e2e.helpers import api_register
from e2e.helpers import email_field
from e2e.helpers import error_box
from e2e.helpers import fill_sign_up
from e2e.helpers import flashes
from e2e.helpers import new_user
from e2e.helpers import password2_field
from e2e.helpers import password_field
from e2e.helpers import sign_up
from e2e.helpers import username_field

MAX_TABS = 25  # bound on Tab presses to reach the form from the top of the page


def test_sign_up_lands_on_sign_in_with_flash(page: Page, save_screenshot) -> None:
    """A valid sign-up redirects to the sign-in page and says so."""
    page.goto("/register")
    expect(page).to_have_title("Sign Up | MiniTwit")
    expect(page.get_by_role("heading", name="MiniTwit")).to_be_visible()
    save_screenshot(page, "sign-up")
    sign_up(page, new_user("signup"))
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page).to_have_title("Sign In | MiniTwit")


def test_sign_up_labels_are_tied_to_inputs(page: Page) -> None:
    """Each visible label names its input, in the contract's order."""
    page.goto("/register")
    expect(username_field(page)).to_have_attribute("name", "username")
    expect(email_field(page)).to_have_attribute("name", "email")
    expect(password_field(page)).to_have_attribute("name", "password")
    expect(password2_field(page)).to_have_attribute("name", "password2")


CASES = {
    "no username": ("", "a@example.test", "pw", "pw", "You have to enter a username"),
    "no email": ("{name}", "", "pw", "pw", "You have to enter a valid email address"),
    "email without @": (
        "{name}",
        "example.test",
        "pw",
        "pw",
        "You have to enter a valid email address",
    ),
    "no password": ("{name}", "a@example.test", "", "", "You have to enter a password"),
    "passwords differ": (
        "{name}",
        "a@example.test",
        "pw",
        "wp",
        "The two passwords do not match",
    ),
    "username taken": (
        "{taken}",
        "a@example.test",
        "pw",
        "pw",
        "The username is already taken",
    ),
    "first failing check wins": ("", "bad", "", "x", "You have to enter a username"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_sign_up_shows_each_validation_error(page: Page, case: tuple) -> None:
    """Every failing check shows the contract's text and keeps the user on the form."""
    name, email, password, password2, error = case
    taken = new_user("taken")
    api_register(page, taken)
    name = name.format(name=new_user("fresh").name, taken=taken.name)
    fill_sign_up(page, name, email, password, password2)
    expect(error_box(page)).to_contain_text(error)
    expect(page).to_have_url(re.compile(r"/register$"))
    expect(flashes(page)).to_have_count(0)
    expect(username_field(page)).to_have_value(name)  # the form keeps what was typed


def test_sign_up_with_keyboard_only(page: Page) -> None:
    """Tab reaches username, email, password, password2, the button; Enter submits."""
    user = new_user("keys")
    page.goto("/register")
    tab_until_focused(page, username_field(page))
    page.keyboard.type(user.name)
    for field, text in (
        (email_field, user.email),
        (password_field, user.password),
        (password2_field, user.password),
    ):
        page.keyboard.press("Tab")
        expect(field(page)).to_be_focused()
        page.keyboard.type(text)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign Up")).to_be_focused()
    page.keyboard.press("Enter")
    expect(flashes(page)).to_have_text("You were successfully registered and can login now")


def tab_until_focused(page: Page, target) -> None:
    """Press Tab from the top of the page until target has focus (bounded)."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{MAX_TABS} Tab presses never reached {target}")
