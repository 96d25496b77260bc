"""Every page loads clean (no console errors or failed requests), works at 375 px."""

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect

from e2e.helpers import messages
from e2e.helpers import nav_link
from e2e.helpers import post_message
from e2e.helpers import sign_out
from e2e.helpers import sign_up_and_in

MOBILE = {"width": 375, "height": 667}


def page_paths(user_name: str) -> list[str]:
    """Every HTML page a user can reach."""
    return ["/public", "/register", "/login", "/", f"/{user_name}"]


def test_every_page_loads_clean(page: Page) -> None:
    """Visit every page anonymously and signed in; browser_problems checks them."""
    user = sign_up_and_in(page, "visitor")
    post_message(page, "clean pages")
    for path in page_paths(user.name):
        response = page.goto(path)
        assert response is not None and response.ok, path
    sign_out(page)
    for path in page_paths(user.name)[:3]:
        assert page.goto(path).ok, path


def expect_fits_width(page: Page) -> None:
    """No horizontal scrolling at the current viewport width."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the viewport"


@pytest.mark.browser_context_args(viewport=MOBILE, is_mobile=True, has_touch=True)
def test_usable_at_375_px(page: Page, save_screenshot) -> None:
    """At phone width every page fits, and signing up, posting and navigating work."""
    user = sign_up_and_in(page, "phone")
    post_message(page, "posted from a phone")
    expect(messages(page).first).to_contain_text("posted from a phone")
    share = page.get_by_role("button", name="Share")
    expect(share).to_be_in_viewport()
    for path in page_paths(user.name):
        page.goto(path)
        expect_fits_width(page)
    nav_link(page, "public timeline").tap()
    expect(page.get_by_role("heading", name="Public Timeline")).to_be_visible()
    save_screenshot(page, "public-timeline-375px")
