"""Message times: UTC in <time datetime>, shown in the viewer's time zone."""

import datetime as dt
import re

from playwright.sync_api import Page
from playwright.sync_api import expect

from e2e.helpers import TIME_FORMAT
from e2e.helpers import api_post_messages
from e2e.helpers import api_register
from e2e.helpers import format_in_zone
from e2e.helpers import new_user

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?Z$")
ZONES = ("Europe/Copenhagen", "America/New_York")


def seeded_user_page(page: Page) -> str:
    """A user with one message; returns the path of their page."""
    user = new_user("clock")
    api_register(page, user)
    api_post_messages(page, user, ["what time is it?"])
    return f"/{user.name}"


def shown_time(page: Page, path: str) -> tuple[str, str]:
    """(datetime attribute, visible text) of the first message's <time> element."""
    page.goto(path)
    time = page.locator("time").first
    expect(time).to_have_attribute("datetime", ISO_UTC)
    return time.get_attribute("datetime"), time.inner_text().strip()


def test_times_follow_the_viewer_time_zone(page: Page, new_context) -> None:
    """Copenhagen and New York viewers see the same instant in their own local time."""
    path = seeded_user_page(page)
    shown = {}
    for zone in ZONES:
        viewer = new_context(timezone_id=zone).new_page()
        instant, text = shown_time(viewer, path)
        assert text == format_in_zone(instant, zone)
        shown[zone] = text
    assert shown[ZONES[0]] != shown[ZONES[1]]


def test_utc_is_the_fallback_without_javascript(page: Page, new_context) -> None:
    """With JavaScript off the page shows the contract's UTC format."""
    path = seeded_user_page(page)
    viewer = new_context(timezone_id=ZONES[1], java_script_enabled=False).new_page()
    instant, text = shown_time(viewer, path)
    assert text == format_in_zone(instant, "UTC")
    moment = dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=dt.UTC)
    assert abs(dt.datetime.now(dt.UTC) - moment) < dt.timedelta(hours=1)
