"""Follow and unfollow from a user's page: status texts, flashes, and My Timeline."""

import re

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect

from e2e.helpers import User
from e2e.helpers import api_post_messages
from e2e.helpers import api_register
from e2e.helpers import error_box
from e2e.helpers import flashes
from e2e.helpers import messages
from e2e.helpers import new_user
from e2e.helpers import sign_up_and_in

NOT_FOLLOWING = "You are not yet following this user."
FOLLOWING = "You are currently following this user."


def other_user_with_message(page: Page) -> tuple[User, str]:
    """Someone else (a space in the name, like simulator users) and their post."""
    other = User(new_user("other").name.replace("-", " "))
    api_register(page, other)
    text = f"a message by {other.name}"
    api_post_messages(page, other, [text])
    return other, text


def test_follow_then_unfollow(page: Page) -> None:
    """Following adds their messages to My Timeline; unfollowing removes them."""
    sign_up_and_in(page, "follower")
    other, text = other_user_with_message(page)
    page.goto("/")
    expect(page.get_by_text(text)).to_have_count(0)

    page.goto(f"/{other.name}")
    expect(page.get_by_role("heading", name=f"{other.name}'s Timeline")).to_be_visible()
    expect(page.get_by_text(NOT_FOLLOWING)).to_be_visible()
    page.get_by_role("link", name="Follow user").click()
    expect(flashes(page)).to_have_text(f'You are now following "{other.name}"')
    expect(page).to_have_url(re.compile(rf"/{re.escape(other.name.replace(' ', '%20'))}$"))
    expect(page.get_by_text(FOLLOWING)).to_be_visible()
    expect(page.get_by_role("link", name="Unfollow user")).to_be_visible()

    page.goto("/")
    expect(messages(page).filter(has_text=text)).to_have_count(1)

    page.goto(f"/{other.name}")
    page.get_by_role("link", name="Unfollow user").click()
    expect(flashes(page)).to_have_text(f'You are no longer following "{other.name}"')
    expect(page.get_by_text(NOT_FOLLOWING)).to_be_visible()
    page.goto("/")
    expect(page.get_by_text(text)).to_have_count(0)


def test_own_page_says_this_is_you(page: Page) -> None:
    """A user's own page has no follow link, just "This is you!"."""
    me = sign_up_and_in(page, "me")
    page.goto(f"/{me.name}")
    expect(page.get_by_text("This is you!")).to_be_visible()
    expect(page.get_by_role("link", name="Follow user")).to_have_count(0)


def test_anonymous_user_page_has_no_follow_status(page: Page) -> None:
    """Anonymous visitors see the messages, but no follow status or links."""
    other, text = other_user_with_message(page)
    page.goto(f"/{other.name}")
    expect(page.get_by_text(text)).to_be_visible()
    for status in (NOT_FOLLOWING, FOLLOWING, "This is you!"):
        expect(page.get_by_text(status)).to_have_count(0)
    expect(page.get_by_role("link", name="Follow user")).to_have_count(0)


@pytest.mark.allow_http_errors(404)
def test_unknown_user_page_is_not_found(page: Page) -> None:
    """/<unknown> answers 404."""
    response = page.goto(f"/{new_user('nobody').name}")
    assert response is not None and response.status == 404


CONVERSATION = [
    ("ada", "Shipped the analytical engine docs, finally."),
    ("me", "Reading the new deployment runbook over coffee."),
    ("grace", "Found a real bug in relay 70 today. Taped it into the log book."),
    ("stranger", "Nobody follows me, so nobody should see this."),
    ("ada", "Rolling update done: three replicas, zero errors."),
    ("me", "Dashboards are green. Time for lunch."),
]


def test_my_timeline_merges_followed_users_newest_first(page: Page, save_screenshot) -> None:
    """My Timeline interleaves my and followed users' messages, newest first, and no one else's."""
    me = sign_up_and_in(page, "me")
    people = {"me": me} | {name: new_user(name) for name in ("ada", "grace", "stranger")}
    for name in ("ada", "grace", "stranger"):
        api_register(page, people[name])
        page.goto(f"/{people[name].name}")
        if name != "stranger":
            page.get_by_role("link", name="Follow user").click()
            expect(flashes(page)).to_contain_text("You are now following")
    for name, text in CONVERSATION:
        api_post_messages(page, people[name], [text])
    page.goto("/")
    shown = [(people[name].name, text) for name, text in reversed(CONVERSATION) if name != "stranger"]
    entries = messages(page)
    expect(entries).to_have_count(len(shown))
    for position, (author, text) in enumerate(shown):
        expect(entries.nth(position).get_by_role("link", name=author)).to_be_visible()
        expect(entries.nth(position)).to_contain_text(text)
    save_screenshot(page, "timeline")


@pytest.mark.allow_http_errors(401)
def test_anonymous_follow_is_unauthorized(page: Page) -> None:
    """Following needs a login: anonymous visitors get a 401 page that says so."""
    other, _ = other_user_with_message(page)
    response = page.goto(f"/{other.name}/follow")
    assert response is not None and response.status == 401
    expect(error_box(page)).to_have_text("You need to sign in to do that.")
