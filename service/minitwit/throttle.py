"""Failed sign-ins throttled per account, in the database so every replica counts the same failures.

Each account has a budget of ``SIGNIN_FAILURE_LIMIT`` failed sign-ins in any ``SIGNIN_FAILURE_WINDOW``
seconds (a sliding window). A sign-in takes a place in the budget *before* its password is checked
(``begin``: one short transaction, serialised per budget), keeps it if the password was wrong, and
gives it back if it was right (``give_back``). When the budget is full the sign-in is refused at once,
without looking at the password: no hash is computed, so the guesses an attacker gets verified per
account are bounded, and so is the hashing work an attack can take from everybody else. The oldest
failure leaves the window at most ``SIGNIN_FAILURE_WINDOW`` seconds later, and with it the refusal:
no lockout outlives the window.

Not every sign-in shares the account's budget. A browser that signed in to the account before holds a
signed device cookie for it and has a budget of its own, the same size (OWASP's "Slow Down Online
Guessing Attacks with Device Cookies"). An attacker without the password has no such cookie, so an
attack fills only the budget of untrusted browsers, and the real person at their usual browser signs
in during the attack as if there were none. Names nobody registered are throttled exactly like real
ones, so a refusal tells nothing about who exists.

Budgets are named by a keyed hash (HMAC-SHA256 with the app's secret key), never by the name typed:
people type their password into the name field now and then.
"""

import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass

from flask import current_app
from flask import request
from flask import url_for
from itsdangerous import BadData
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import delete
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import text

from . import metrics
from .extensions import db
from .models import SigninAttempt

CLOCK = "minitwit_signin_clock"  # app.extensions key of the time source (time.time; tests put their own)
DEVICE_COOKIE = "signin_device"
DEVICE_COOKIE_MAX_AGE = 365 * 24 * 3600  # renewed at every sign-in from that browser
CLEANUP_BATCH = 100  # expired places each attempt deletes at most: bounded work, and the table stays small
# pg_advisory_xact_lock(class, key) serialises one budget's check and insert across replicas; the
# two-key form is a key space of its own (the migrate command locks a one-key advisory lock).
LOCK_CLASS = 0x5369676E  # "Sign"
LOCK = text("SELECT pg_advisory_xact_lock(:class_id, :key)")
REFUSED = "Too many failed sign-ins for this account. Please try again in {wait}."


@dataclass(frozen=True)
class Attempt:
    """A sign-in holding a place in a budget (``attempt_id``), or refused (``retry_after`` seconds)."""

    attempt_id: int | None
    retry_after: int = 0

    @property
    def refused(self) -> bool:
        """Tell whether the budget was full, so the password must not be checked."""
        return self.attempt_id is None

    @property
    def message(self) -> str:
        """What the sign-in page says to a refused sign-in."""
        wait = "1 second" if self.retry_after == 1 else f"{self.retry_after} seconds"
        return REFUSED.format(wait=wait)


def now_ms() -> int:
    """Now, in Unix epoch milliseconds, from the app's time source (``time.time`` unless a test set one)."""
    return int(current_app.extensions.get(CLOCK, time.time)() * 1000)


def bucket_key(kind: str, value: str) -> str:
    """The name of a budget in this app: ``kind`` "account" with the name typed, or "device" with a nonce."""
    return budget_name(str(current_app.config["SECRET_KEY"]), kind, value)


def budget_name(secret: str, kind: str, value: str) -> str:
    """HMAC-SHA256 of ``kind`` and ``value`` under ``secret``, in hex: what ``signin_attempt.bucket`` holds."""
    message = f"{kind}\x00{value}".encode("utf-8", "surrogatepass")
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def device_cookies() -> URLSafeTimedSerializer:
    """Signs and checks device cookies with the app's secret key."""
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="minitwit-signin-device")


def trusted_device(account: str) -> str | None:
    """The budget of this browser for ``account`` if it holds a valid device cookie for it, else None."""
    cookie = request.cookies.get(DEVICE_COOKIE)
    if not cookie:
        return None
    try:
        cookie_account, nonce = device_cookies().loads(cookie, max_age=DEVICE_COOKIE_MAX_AGE)
    except (BadData, TypeError, ValueError):  # forged, expired, or not a pair
        return None
    return bucket_key("device", str(nonce)) if cookie_account == account else None


def begin(username: str) -> Attempt:
    """Take a place in the budget that this sign-in of ``username`` draws on, or be refused."""
    account = bucket_key("account", username)
    device = trusted_device(account)
    bucket, client = (device, "device") if device else (account, "untrusted")
    attempt = reserve(bucket)
    if attempt.refused:
        metrics.SIGNINS_THROTTLED.labels(client=client).inc()
    return attempt


def reserve(bucket: str) -> Attempt:
    """In one transaction: drop expired places, and add one to ``bucket`` unless its window is full."""
    limit = current_app.config["SIGNIN_FAILURE_LIMIT"]
    window_ms = current_app.config["SIGNIN_FAILURE_WINDOW"] * 1000
    now = now_ms()
    db.session.commit()  # whatever the request read before: the transaction below starts fresh
    drop_expired(now - window_ms)
    lock_budget(bucket)
    in_window = select(SigninAttempt.attempted_ms).where(
        SigninAttempt.bucket == bucket, SigninAttempt.attempted_ms > now - window_ms
    )
    places = list(db.session.scalars(in_window.order_by(SigninAttempt.attempted_ms).limit(limit)))
    if len(places) >= limit:
        db.session.commit()
        return Attempt(None, retry_after=max(1, math.ceil((places[0] + window_ms - now) / 1000)))
    added = insert(SigninAttempt).values(bucket=bucket, attempted_ms=now).returning(SigninAttempt.attempt_id)
    attempt_id = db.session.scalar(added)
    db.session.commit()
    return Attempt(attempt_id)


def drop_expired(cutoff_ms: int) -> None:
    """Delete a batch of places that left every window (the first statement of ``reserve``'s transaction).

    Rows another transaction is deleting are skipped, not waited for (PostgreSQL), so two sign-ins
    never wait on each other here. On SQLite this write takes the database's write lock, held to
    the commit, which is what serialises ``reserve`` there.
    """
    expired = select(SigninAttempt.attempt_id).where(SigninAttempt.attempted_ms <= cutoff_ms)
    expired = expired.limit(CLEANUP_BATCH).with_for_update(skip_locked=True)
    db.session.execute(delete(SigninAttempt).where(SigninAttempt.attempt_id.in_(expired)))


def lock_budget(bucket: str) -> None:
    """PostgreSQL: hold ``bucket``'s advisory lock to the commit, so no other replica checks it meanwhile.

    Without it two sign-ins could both count the last free place and both take it.
    """
    if db.engine.dialect.name == "postgresql":
        db.session.execute(LOCK, {"class_id": LOCK_CLASS, "key": lock_key(bucket)})


def lock_key(bucket: str) -> int:
    """A signed 32-bit advisory lock key for a budget (a collision only serialises two budgets)."""
    return int.from_bytes(bytes.fromhex(bucket[:8]), "big", signed=True)


def give_back(attempt: Attempt) -> None:
    """Free the attempt's place: the password was right (no failure), or it was never checked."""
    db.session.execute(delete(SigninAttempt).where(SigninAttempt.attempt_id == attempt.attempt_id))
    db.session.commit()


def trust_device(response, username: str) -> None:
    """Give this browser (a new) device cookie for ``username``, so it keeps a budget of its own."""
    value = device_cookies().dumps([bucket_key("account", username), secrets.token_urlsafe(16)])
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=DEVICE_COOKIE_MAX_AGE,
        path=url_for("auth.login"),  # sent to the sign-in form only
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
