"""Failed sign-ins throttled per account (minitwit.throttle), on both databases.

Time comes from a clock the tests move by hand (the app's ``throttle.CLOCK``), so a window of a minute
passes at once. Password checks are counted by the app's own counter of calls to
``passwords.verify_password`` (``minitwit_password_checks_total``); nothing about hashing is mocked.
"""

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers.api import NOT_AUTHORIZED
from helpers.api import basic_auth
from helpers.app import dispose
from helpers.app import make_app
from helpers.data import insert_users
from helpers.data import sql
from minitwit import passwords
from minitwit import throttle
from minitwit.config import ConfigError
from minitwit.config import load_config
from prometheus_client import REGISTRY

LIMIT, WINDOW = 10, 60  # the defaults docs/security.md states
REFUSED = "Too many failed sign-ins for this account. Please try again in {}."


class Clock:
    """A time source that stands still until the test moves it."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(app):
    """The app's clock, standing still; ``alice`` (password ``right``) exists."""
    clock = Clock()
    app.extensions[throttle.CLOCK] = clock
    insert_users(app, ["alice", "bob"], "right")
    return clock


def password_checks() -> float:
    """Passwords checked so far in this process (every kind of stored hash)."""
    kinds = ("argon2", "werkzeug", "md5")
    return sum(REGISTRY.get_sample_value("minitwit_password_checks_total", {"kind": k}) or 0.0 for k in kinds)


def throttled(client: str) -> float:
    """Sign-ins refused so far by the throttle for ``client`` ("untrusted" or "device")."""
    return REGISTRY.get_sample_value("minitwit_signins_throttled_total", {"client": client}) or 0.0


def sign_in(client, username, password):
    """POST the sign-in form, without following the redirect."""
    return client.post("/login", data={"username": username, "password": password})


def error_box(rv) -> str:
    """The text of the page's error box."""
    return re.search(r'<div class="error"[^>]*><strong>Error:</strong> (.*?)</div>', rv.get_data(as_text=True))[1]


def fail(client, username, times):
    """``times`` wrong passwords for ``username``; return the answers' status codes."""
    return [sign_in(client, username, "wrong").status_code for _ in range(times)]


def test_defaults_are_the_stated_numbers(app):
    assert (app.config["SIGNIN_FAILURE_LIMIT"], app.config["SIGNIN_FAILURE_WINDOW"]) == (LIMIT, WINDOW)


def test_first_failures_answer_as_before_then_refused_without_checking(app, client, clock):
    """Ten wrong passwords: "Invalid password" (200), each checked. Then 429 without any check, even right."""
    before = password_checks()
    for _ in range(LIMIT):
        rv = sign_in(client, "alice", "wrong")
        assert (rv.status_code, error_box(rv)) == (200, "Invalid password")
    assert password_checks() == before + LIMIT
    refused_before = throttled("untrusted")
    for password in ["wrong"] * 20 + ["right"]:
        rv = sign_in(client, "alice", password)
        assert rv.status_code == 429
        assert error_box(rv) == REFUSED.format("60 seconds")
        assert rv.headers["Retry-After"] == "60"
    assert password_checks() == before + LIMIT
    assert throttled("untrusted") == refused_before + 21
    assert client.get("/").status_code == 302  # not signed in


def test_the_right_password_gets_in_once_the_window_slides(app, client, clock):
    """Failures at t=0..9 s: refused until t=60 s, when the first leaves the window; then in."""
    for _ in range(LIMIT):
        assert fail(client, "alice", 1) == [200]
        clock.advance(1)
    rv = sign_in(client, "alice", "right")
    assert (rv.status_code, rv.headers["Retry-After"]) == (429, "50")
    clock.advance(49)  # t = 59 s
    assert error_box(sign_in(client, "alice", "right")) == REFUSED.format("1 second")
    clock.advance(1)  # t = 60 s
    rv = sign_in(client, "alice", "right")
    assert rv.status_code == 302
    assert "sign out" in client.get("/").get_data(as_text=True)


def test_a_slid_window_lets_only_the_freed_places_be_checked(app, client, clock):
    """Once the window slides, as many guesses are checked as failures left it: no fresh budget."""
    assert fail(client, "alice", LIMIT) == [200] * LIMIT
    clock.advance(30)
    assert fail(client, "alice", 3) == [429] * 3
    clock.advance(30)  # all ten left the window
    assert fail(client, "alice", LIMIT + 2) == [200] * LIMIT + [429] * 2


def test_the_budget_is_shared_by_two_app_instances(app, database_url, client, clock):
    """Two replicas (own engines and pools) on one database count the same failures."""
    second = make_app(database_url)
    second.extensions[throttle.CLOCK] = clock
    try:
        other = second.test_client()
        assert fail(client, "alice", 6) == [200] * 6
        assert fail(other, "alice", 5) == [200] * 4 + [429]
        assert fail(client, "alice", 1) == [429]
        assert sign_in(other, "alice", "right").status_code == 429
    finally:
        dispose(second)


def test_other_accounts_are_not_affected(app, client, clock):
    """While alice's budget is full, bob signs in, and his own typos get the usual answer."""
    fail(client, "alice", LIMIT + 5)
    assert error_box(sign_in(client, "bob", "wrong")) == "Invalid password"
    assert sign_in(client, "bob", "right").status_code == 302


def test_unknown_names_are_throttled_like_real_ones(app, client, clock):
    """A name nobody has: the same number of failures, then the same 429 and text (no enumeration)."""
    answers = {}
    for name in ("alice", "nobody"):
        replies = [sign_in(client, name, "wrong") for _ in range(LIMIT + 1)]
        answers[name] = [(rv.status_code, rv.headers.get("Retry-After")) for rv in replies]
        assert error_box(replies[-1]) == REFUSED.format("60 seconds")
    assert answers["alice"] == answers["nobody"] == [(200, None)] * LIMIT + [(429, "60")]


def test_a_browser_that_signed_in_before_gets_in_during_an_attack(app, clock):
    """The device cookie from an earlier sign-in is a budget of its own: the attack does not touch it."""
    person, attacker = app.test_client(), app.test_client()
    assert sign_in(person, "alice", "right").status_code == 302
    cookie = person.get_cookie(throttle.DEVICE_COOKIE, path="/login")
    assert cookie is not None and cookie.http_only and cookie.path == "/login"
    person.get("/logout")
    assert fail(attacker, "alice", 50) == [200] * LIMIT + [429] * 40
    before = password_checks()
    assert sign_in(person, "alice", "right").status_code == 302
    assert password_checks() == before + 1
    assert fail(attacker, "alice", 1) == [429]  # the person's success gave the attacker nothing


def test_a_trusted_browser_has_a_budget_of_its_own_size(app, clock):
    """Ten failures from the trusted browser itself, then it is refused too, for at most the window."""
    person = app.test_client()
    sign_in(person, "alice", "right")
    person.get("/logout")
    refused_before = throttled("device")
    assert fail(person, "alice", LIMIT + 1) == [200] * LIMIT + [429]
    assert throttled("device") == refused_before + 1
    assert sign_in(app.test_client(), "alice", "wrong").status_code == 200  # untrusted budget untouched
    clock.advance(WINDOW)
    assert sign_in(person, "alice", "right").status_code == 302


@pytest.mark.parametrize("cookie", ["bob's", "forged", "garbage"])
def test_only_a_valid_cookie_for_the_account_is_trusted(app, clock, cookie):
    """A device cookie for another account, a forged one, or junk: the untrusted budget applies."""
    person = app.test_client()
    sign_in(person, "bob", "right")
    person.get("/logout")
    if cookie != "bob's":
        value = "eyJ4Ijoi.forged" if cookie == "forged" else "x"
        person.set_cookie(throttle.DEVICE_COOKIE, value, path="/login")
    fail(app.test_client(), "alice", LIMIT)
    assert sign_in(person, "alice", "right").status_code == 429


def test_concurrent_sign_ins_cannot_take_more_places_than_the_budget(app, clock):
    """20 clients send 2 wrong passwords each, all at once: exactly 10 checked, whatever the interleaving."""
    before = password_checks()
    start = threading.Barrier(20)

    def guess_twice(client):
        start.wait()
        return fail(client, "alice", 2)

    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = sum(pool.map(guess_twice, [app.test_client() for _ in range(20)]), [])
    assert sorted(codes) == [200] * LIMIT + [429] * 30
    assert password_checks() == before + LIMIT


def test_a_sign_in_that_could_not_be_checked_gives_its_place_back(app, client, clock, monkeypatch):
    """No hashing slot free (503): the password was not checked, so it is no failure."""
    slots = threading.BoundedSemaphore(1)
    slots.acquire()
    monkeypatch.setattr(passwords, "_slots", slots)
    monkeypatch.setattr(passwords, "SLOT_WAIT_S", 0.01)
    assert [sign_in(client, "alice", "right").status_code for _ in range(LIMIT + 2)] == [503] * (LIMIT + 2)
    assert sql(app, "SELECT count(*) FROM signin_attempt") == [(0,)]


def test_the_database_keeps_no_names_and_no_expired_places(app, client, clock):
    """Budgets are keyed hashes, never the name typed; places older than the window are deleted."""
    fail(client, "my secret password", 3)
    [(bucket,)] = sql(app, "SELECT DISTINCT bucket FROM signin_attempt")
    assert re.fullmatch("[0-9a-f]{64}", bucket)
    assert sql(app, "SELECT count(*) FROM signin_attempt") == [(3,)]
    clock.advance(WINDOW)
    fail(client, "alice", 1)
    assert sql(app, "SELECT count(*) FROM signin_attempt") == [(1,)]


def test_a_right_password_keeps_no_place(app, client, clock):
    """Signing in leaves nothing behind: only failures fill a budget."""
    for _ in range(LIMIT + 5):
        assert sign_in(client, "alice", "right").status_code == 302
        client.get("/logout")
    assert sql(app, "SELECT count(*) FROM signin_attempt") == [(0,)]


def test_the_simulator_credential_is_never_throttled(app, api):
    """The API checks one shared credential, not a user's password: no budget, no hashing, no 429.

    Wrong credentials keep the contract's 403, and the simulator's right one is served right after.
    """
    before = password_checks()
    for _ in range(200):
        rv = api.get("/msgs", auth=False, headers=basic_auth("simulator:guess"))
        assert (rv.status_code, rv.json()) == (403, NOT_AUTHORIZED)
    assert api.get("/msgs").status_code == 200
    assert password_checks() == before
    assert sql(app, "SELECT count(*) FROM signin_attempt") == [(0,)]


@pytest.mark.parametrize("name", ["SIGNIN_FAILURE_LIMIT", "SIGNIN_FAILURE_WINDOW"])
def test_the_numbers_are_settings(monkeypatch, tmp_path, name):
    """Both numbers come from the environment; 0, negative or non-integer values stop start-up."""
    monkeypatch.setenv(name, "5")
    assert load_config(str(tmp_path))[name] == 5
    for bad in ("0", "-1", "ten"):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ConfigError, match=name):
            load_config(str(tmp_path))
