"""Posting: top of both timelines, escaped HTML, non-ASCII, empty, length limit."""

import hashlib
import re

from playwright.sync_api import Page
from playwright.sync_api import expect

from e2e.helpers import flashes
from e2e.helpers import message_box
from e2e.helpers import messages
from e2e.helpers import post_message
from e2e.helpers import sign_up_and_in

RECORDED = "Your message was recorded"
MAX_LENGTH = 1000
TOO_LONG = f"Your message is too long (at most {MAX_LENGTH} characters); it was not recorded"


def gravatar_url(email: str) -> str:
    """The contract's 48 px identicon URL for an e-mail address."""
    digest = hashlib.md5(email.strip().lower().encode()).hexdigest()
    return f"https://www.gravatar.com/avatar/{digest}?d=identicon&s=48"


def test_message_tops_my_and_public_timeline(page: Page, save_screenshot) -> None:
    """A shared message is first on My Timeline and on the public timeline."""
    user = sign_up_and_in(page, "poster")
    expect(page.get_by_role("heading", name=f"What's on your mind {user.name}?")).to_be_visible()
    post_message(page, "Hello from a real browser")
    expect(flashes(page)).to_have_text(RECORDED)
    expect(page).to_have_url(re.compile(r"/$"))
    expect(messages(page).first).to_contain_text("Hello from a real browser")
    expect(messages(page).first.get_by_role("link", name=user.name)).to_be_visible()
    expect(messages(page).first.locator("img")).to_have_attribute("src", gravatar_url(user.email))
    save_screenshot(page, "my-timeline")
    page.goto("/public")
    expect(messages(page).first).to_contain_text("Hello from a real browser")
    expect(messages(page).first.get_by_role("link", name=user.name)).to_be_visible()


def test_html_is_shown_escaped(page: Page) -> None:
    """Markup in a message is displayed as text, never interpreted."""
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_up_and_in(page, "escaper")
    text = "<b>bold</b> & <script>alert('xss')</script> <test>"
    post_message(page, text)
    first = messages(page).first
    expect(first).to_contain_text(text)
    expect(first.locator("b, script, test")).to_have_count(0)
    page.goto("/public")
    expect(messages(page).first).to_contain_text(text)
    assert dialogs == []


def test_non_ascii_and_emoji_survive(page: Page) -> None:
    """Non-ASCII text and emoji come back exactly as typed."""
    sign_up_and_in(page, "unicode")
    text = "Grüße aus København – 日本語のテキスト – Ελληνικά 🚀🎉👩‍💻"
    post_message(page, text)
    expect(messages(page).first).to_contain_text(text)


def test_empty_post_does_nothing(page: Page) -> None:
    """Sharing an empty box records nothing and shows no flash."""
    sign_up_and_in(page, "empty")
    post_message(page, "only message")
    page.goto("/")
    expect(messages(page)).to_have_count(1)
    for blank in ("", "   "):
        message_box(page).fill(blank)
        page.get_by_role("button", name="Share").click()
        expect(flashes(page)).to_have_count(0)
        page.goto("/")
        expect(messages(page)).to_have_count(1)


def test_max_length_is_enforced_in_the_browser_and_on_the_server(page: Page) -> None:
    """The box holds 1000 characters; a longer post forced past it is refused."""
    sign_up_and_in(page, "longish")
    page.goto("/")
    box = message_box(page)
    expect(box).to_have_attribute("maxlength", str(MAX_LENGTH))
    box.fill("x" * (MAX_LENGTH + 1))
    expect(box).to_have_value("x" * MAX_LENGTH)  # the browser stops typing at the limit
    page.get_by_role("button", name="Share").click()
    expect(flashes(page)).to_have_text(RECORDED)
    box.evaluate("element => element.removeAttribute('maxlength')")
    box.fill("y" * (MAX_LENGTH + 1))
    expect(box).to_have_value("y" * (MAX_LENGTH + 1))
    page.get_by_role("button", name="Share").click()
    expect(flashes(page)).to_have_text(TOO_LONG)
    page.goto("/")
    expect(messages(page)).to_have_count(1)
    expect(messages(page).first).to_contain_text("x" * MAX_LENGTH)
