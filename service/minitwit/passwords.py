"""Password hashing: argon2id for every new hash, and every older kind verified so it can be upgraded.

New hashes are argon2id with OWASP's m=19456 KiB, t=2, p=1 (Password Storage Cheat Sheet; the
contract's section 1). Hashes that earlier versions stored are still accepted: Werkzeug's
``scrypt:``/``pbkdf2:`` and the original MiniTwit's bare MD5 hex digest (``import-legacy``);
``needs_rehash`` tells the caller to replace them (and argon2id hashes with older parameters).

A hash costs ~20 ms of CPU and 19 MiB of memory, so at most ``HASH_CONCURRENCY`` run at once per
replica (default: the cores the replica may use; see config.hash_concurrency). A burst of sign-ups
then queues for the slots instead of taking every core from the tweets, follows and page loads
served meanwhile. Callers must not hold a pooled database connection or a row lock while they call
in here.
"""

import hashlib
import hmac
import multiprocessing
import threading

from argon2 import PasswordHasher
from argon2 import Type
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError
from werkzeug.exceptions import ServiceUnavailable
from werkzeug.security import check_password_hash

from .config import hash_concurrency
from .metrics import PASSWORD_CHECKS

HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)
SLOT_WAIT_S = 10  # far beyond any queue the server's threads can form; reached only if a slot was lost
BUSY = "Too many sign-ins and sign-ups at once. Please try again in a moment."


def new_slots():
    """A semaphore that bounds hashing across processes forked after it is made (gunicorn's workers)."""
    return multiprocessing.BoundedSemaphore(hash_concurrency())


_slots: object = threading.BoundedSemaphore(hash_concurrency())  # this process alone, until share_slots


def share_slots(slots) -> None:
    """Bound hashing with ``slots``, made by gunicorn's master before it forked this worker."""
    global _slots
    _slots = slots


def with_slot(function, *args):
    """Run ``function(*args)`` in one of the replica's hashing slots (503 if none frees up in time)."""
    if not _slots.acquire(timeout=SLOT_WAIT_S):
        raise ServiceUnavailable(BUSY)
    try:
        return function(*args)
    finally:
        _slots.release()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` at the current parameters."""
    return with_slot(HASHER.hash, password)


def verify_password(pw_hash: str, password: str) -> bool:
    """Check ``password`` against any hash kind a MiniTwit database can hold; unknown kinds never match.

    Every call counts in ``minitwit_password_checks_total``: how the sign-in throttle is seen to
    refuse without checking (tests and bench/signin.py read it).
    """
    if pw_hash.startswith("$argon2"):
        PASSWORD_CHECKS.labels(kind="argon2").inc()
        return with_slot(verify_argon2, pw_hash, password)
    if pw_hash.startswith(("scrypt:", "pbkdf2:")):
        PASSWORD_CHECKS.labels(kind="werkzeug").inc()
        return with_slot(verify_werkzeug, pw_hash, password)
    PASSWORD_CHECKS.labels(kind="md5").inc()
    legacy = hashlib.md5(password.encode("utf-8")).hexdigest()  # only ever to verify old hashes
    return hmac.compare_digest(pw_hash.lower().encode(), legacy.encode())


def verify_argon2(pw_hash: str, password: str) -> bool:
    """argon2-cffi's verify as a boolean (it raises on a mismatch and on a malformed hash)."""
    try:
        return HASHER.verify(pw_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def verify_werkzeug(pw_hash: str, password: str) -> bool:
    """Werkzeug's check as a boolean (it raises ValueError on parameters it cannot use)."""
    try:
        return check_password_hash(pw_hash, password)
    except ValueError:
        return False


def needs_rehash(pw_hash: str) -> bool:
    """Tell whether a stored hash is of an older kind or weaker parameters than new hashes get."""
    return not pw_hash.startswith("$argon2id$") or HASHER.check_needs_rehash(pw_hash)
