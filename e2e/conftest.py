"""Fixtures for the browser tests: the app under test, Chromium, and per-test watchers.

Target: `E2E_BASE_URL` (a running deployment, e.g. https://minitwit.test via Traefik)
or, by default, a local gunicorn app on a fresh `E2E_DATABASE` (sqlite|postgresql).
"""

import os
import shutil
import urllib.parse
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext
from playwright.sync_api import Route

from e2e.live_app import local_app
from e2e.tls import check_tls_against_bundle
from e2e.tls import nss_home_trusting
from testkit import REPO_ROOT
from testkit.skip import Unavailable
from testkit.skip import skip_or_fail

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium refuses its sandbox
    "--disable-gpu",
    "--disable-background-networking",  # no traffic except to the app under test
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# A 1x1 grey-teal PNG answers every gravatar.com request: tests never leave the loopback
# host, and avatars still show as 48 px squares in the screenshots.
AVATAR_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
    "0000000c49444154789c639873f20800042e022a993b45c40000000049454e44ae426082"
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker for expected HTTP errors (e.g. a forged form post)."""
    config.addinivalue_line("markers", "allow_http_errors(*codes): expected HTTP error codes")


@pytest.fixture(scope="session")
def e2e_label() -> str:
    """Name of this run: the database kind locally, "remote" against E2E_BASE_URL."""
    return "remote" if os.environ.get("E2E_BASE_URL") else os.environ.get("E2E_DATABASE", "sqlite")


@pytest.fixture(scope="session")
def artifacts_dir(e2e_label: str) -> Path:
    """artifacts/e2e/<label>/: screenshots and the app log of this run."""
    path = REPO_ROOT / "artifacts" / "e2e" / e2e_label
    (path / "screenshots").mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def base_url(e2e_label: str, artifacts_dir: Path):
    """The app under test: E2E_BASE_URL, or a local gunicorn app we start and stop."""
    remote = os.environ.get("E2E_BASE_URL")
    if remote:
        if remote.startswith("https://") and os.environ.get("E2E_CA_BUNDLE"):
            check_tls_against_bundle(remote, os.environ["E2E_CA_BUNDLE"])
        yield remote.rstrip("/")
        return
    try:
        with local_app(e2e_label, artifacts_dir) as url:
            yield url
    except Unavailable as missing:
        skip_or_fail(f"e2e cannot run: {missing}")


@pytest.fixture(scope="session")
def chromium_home(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """HTTPS with E2E_CA_BUNDLE: a HOME whose NSS database trusts the bundle (see tls.py)."""
    bundle = os.environ.get("E2E_CA_BUNDLE")
    if not (bundle and os.environ.get("E2E_BASE_URL", "").startswith("https://")):
        return None
    return nss_home_trusting(bundle, tmp_path_factory.mktemp("chromium-home"))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict, chromium_home: Path | None) -> dict:
    """Debian's Chromium when present (Playwright's download is unreachable in CI)."""
    if chromium_home:
        browser_type_launch_args = {**browser_type_launch_args, "env": {**os.environ, "HOME": str(chromium_home)}}
    args = list(CHROMIUM_ARGS)
    rules = os.environ.get("E2E_HOST_RESOLVER_RULES")
    if rules:
        args.append(f"--host-resolver-rules={rules}")
    chromium = os.environ.get("E2E_CHROMIUM") or shutil.which("chromium")
    if chromium:
        return {**browser_type_launch_args, "executable_path": chromium, "args": args}
    return {**browser_type_launch_args, "args": args}


@pytest.fixture(scope="session")
def browser_type(browser_type, browser_type_launch_args: dict):
    """Fail or skip clearly when there is no Chromium at all."""
    path = browser_type_launch_args.get("executable_path") or browser_type.executable_path
    if not Path(path).exists():
        skip_or_fail("no Chromium: apt-get install chromium (or playwright install chromium)")
    return browser_type


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict, base_url: str, chromium_home: Path | None) -> dict:
    """HTTPS only, when Chromium cannot be given the test CA: ignore certificate errors."""
    if base_url.startswith("https://") and chromium_home is None:
        return {**browser_context_args, "ignore_https_errors": True}
    return browser_context_args


@pytest.fixture
def browser_problems():
    """Collect console errors, page errors and failed requests; any fails the test."""
    problems: list[str] = []
    yield problems
    assert not problems, "browser problems:\n" + "\n".join(problems)


@pytest.fixture
def new_context(new_context, browser_problems: list, base_url: str, request):
    """Every context a test opens is watched and kept on the loopback host."""
    marker = request.node.get_closest_marker("allow_http_errors")
    allowed = set(marker.args) if marker else set()

    def watched_context(**kwargs) -> BrowserContext:
        context = new_context(**kwargs)
        watch_context(context, browser_problems, allowed)
        keep_on_app_host(context, base_url, browser_problems)
        return context

    return watched_context


def watch_context(context: BrowserContext, problems: list, allowed: set[int]) -> None:
    """Record what a user would see as broken: JS errors, failed or error requests."""

    def on_console(message) -> None:
        expected = any(f"status of {code}" in message.text for code in allowed)
        if message.type == "error" and not expected:
            problems.append(f"console error: {message.text} ({message.location.get('url')})")

    def on_response(response) -> None:
        if response.status >= 400 and response.status not in allowed:
            problems.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def on_request_failed(request) -> None:
        # ERR_ABORTED: the test navigated on before a subresource finished, so the
        # browser cancelled it; the server did not fail it.
        if request.failure != "net::ERR_ABORTED":
            problems.append(f"request failed: {request.url} {request.failure}")

    context.on("console", on_console)
    context.on("weberror", lambda error: problems.append(f"page error: {error.error}"))
    context.on("requestfailed", on_request_failed)
    context.on("response", on_response)


def keep_on_app_host(context: BrowserContext, base_url: str, problems: list) -> None:
    """Serve gravatars locally; refuse (and record) any other off-host request."""
    app_origin = urllib.parse.urlsplit(base_url).netloc

    def handle(route: Route) -> None:
        host = urllib.parse.urlsplit(route.request.url).hostname or ""
        if host.endswith("gravatar.com"):
            route.fulfill(status=200, content_type="image/png", body=AVATAR_PNG)
            return
        problems.append(f"off-host request blocked: {route.request.url}")
        route.fulfill(status=204)

    context.route(lambda url: urllib.parse.urlsplit(url).netloc != app_origin, handle)


@pytest.fixture
def save_screenshot(artifacts_dir: Path):
    """save_screenshot(page, name) -> artifacts/e2e/<label>/screenshots/<name>.png."""

    def save(page, name: str) -> Path:
        path = artifacts_dir / "screenshots" / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
