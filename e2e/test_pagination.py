"""At most 30 messages per page, newest first, on every timeline."""

import os

from playwright.sync_api import Page
from playwright.sync_api import expect

from e2e.helpers import api_post_messages
from e2e.helpers import messages
from e2e.helpers import sign_up_and_in

PAGE_SIZE = 30
SEEDED = 35


def expect_newest_thirty(page: Page, prefix: str) -> None:
    """The page lists exactly messages SEEDED..SEEDED-29, in that order."""
    entries = messages(page)
    expect(entries).to_have_count(PAGE_SIZE)
    for position in range(PAGE_SIZE):
        number = SEEDED - position
        expect(entries.nth(position)).to_contain_text(f"{prefix} #{number:02d}")
    expect(page.get_by_text(f"{prefix} #{SEEDED - PAGE_SIZE:02d}")).to_have_count(0)


def expect_times_descending(page: Page) -> None:
    """The <time datetime> values on the page never increase from top to bottom."""
    times = page.locator("time").evaluate_all("elements => elements.map(e => e.dateTime)")
    assert times == sorted(times, reverse=True), times


def test_thirty_newest_first_on_each_timeline(page: Page) -> None:
    """35 messages seeded via the API: each timeline shows the newest 30 first."""
    user = sign_up_and_in(page, "prolific")
    prefix = f"{user.name} says"
    api_post_messages(page, user, [f"{prefix} #{n:02d}" for n in range(1, SEEDED + 1)])
    for path in ("/", f"/{user.name}", "/public"):
        page.goto(path)
        expect(messages(page)).to_have_count(PAGE_SIZE)
        expect_times_descending(page)
        if path != "/public" or not os.environ.get("E2E_BASE_URL"):
            # a shared deployment may get other users' posts while we look
            expect_newest_thirty(page, prefix)
