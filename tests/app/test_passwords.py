"""Password hashing (minitwit.passwords): the per-replica bound on hashes, and no connection held while hashing.

Which hash kinds verify and upgrade at sign-in is in test_auth.py; this file is about how hashing
shares the machine with everything else the replica serves.
"""

import multiprocessing
import multiprocessing.synchronize
import runpy
import threading
import time

import pytest
from helpers.data import ARGON2ID
from helpers.data import insert_users
from helpers.data import sql
from minitwit import passwords
from werkzeug.security import generate_password_hash

from testkit import SERVICE_DIR


def test_new_hash_uses_owasp_argon2id_parameters():
    """argon2id, m=19456 KiB, t=2, p=1 (OWASP); it verifies, and a wrong password does not."""
    pw_hash = passwords.hash_password("correct horse")
    assert pw_hash.startswith(ARGON2ID)
    assert passwords.verify_password(pw_hash, "correct horse")
    assert not passwords.verify_password(pw_hash, "correct horse ")
    assert not passwords.needs_rehash(pw_hash)


def hold_slot(slots, current, peak, seconds):
    """In a forked worker: take a slot the way the app does and count how many holders overlap."""
    passwords.share_slots(slots)

    def work():
        with current.get_lock():
            current.value += 1
            peak.value = max(peak.value, current.value)
        time.sleep(seconds)
        with current.get_lock():
            current.value -= 1

    passwords.with_slot(work)


@pytest.mark.parametrize("limit", [1, 2])
def test_slots_bound_hashing_across_forked_workers(monkeypatch, limit):
    """Slots made before the fork (as gunicorn's master does) bound all workers together."""
    monkeypatch.setenv("HASH_CONCURRENCY", str(limit))
    context = multiprocessing.get_context("fork")
    slots, current, peak = passwords.new_slots(), context.Value("i", 0), context.Value("i", 0)
    workers = [context.Process(target=hold_slot, args=(slots, current, peak, 0.2)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    assert [w.exitcode for w in workers] == [0] * 4
    assert peak.value == limit


@pytest.fixture
def no_free_slot(monkeypatch):
    """Every hashing slot is taken and stays taken; waiting for one gives up after 50 ms."""
    slots = threading.BoundedSemaphore(1)
    slots.acquire()
    monkeypatch.setattr(passwords, "_slots", slots)
    monkeypatch.setattr(passwords, "SLOT_WAIT_S", 0.05)


def test_api_register_without_a_free_slot_answers_503(app, api, no_free_slot):
    """The simulator gets a JSON 503 saying why (its client may retry), and no user is stored."""
    rv = api.post("/register", json={"username": "a", "email": "a@a.a", "pwd": "a"})
    assert rv.status_code == 503
    assert rv.json() == {"status": 503, "error_msg": passwords.BUSY}
    assert sql(app, 'SELECT count(*) FROM "user"') == [(0,)]


def test_login_without_a_free_slot_answers_503_page(app, auth, no_free_slot):
    """A person signing in sees the same message on a page, not a traceback."""
    insert_users(app, ["alice"], password="pw")
    rv = auth.login("alice", "pw")
    assert rv.status_code == 503
    assert passwords.BUSY in rv.get_data(as_text=True)


@pytest.fixture
def connections_while_hashing(app, monkeypatch):
    """Record, at every hash or verification, whether the request's session is in a transaction and
    how many connections are checked out of the ORM's pool and of the API's (the same pool on SQLite)."""
    from minitwit.extensions import api_engine
    from minitwit.extensions import db

    held = []
    real = passwords.with_slot

    def spy(function, *args):
        pools = {db.engine.pool, api_engine().pool}
        checked_out = sum(getattr(pool, "checkedout", lambda: 0)() for pool in pools)
        held.append((db.session().in_transaction(), checked_out))
        return real(function, *args)

    monkeypatch.setattr(passwords, "with_slot", spy)
    return held


def test_no_connection_held_while_hashing(app, api, auth, connections_while_hashing):
    """API register, web register, and web logins that verify and then upgrade an old hash."""
    assert api.post("/register", json={"username": "sim", "email": "s@s", "pwd": "pw"}).status_code == 204
    auth.register("web", "pw")
    insert_users(app, ["old"], pw_hash=generate_password_hash("pw", method="scrypt:1024:8:1"))
    assert "Invalid password" in auth.login("old", "nope").get_data(as_text=True)
    assert "You were logged in" in auth.login("old", "pw").get_data(as_text=True)
    assert sql(app, """SELECT pw_hash FROM "user" WHERE username = 'old'""")[0][0].startswith(ARGON2ID)
    # 2 registrations, 2 verifications, 1 upgrade: never inside a transaction, no connection checked out
    assert connections_while_hashing == [(False, 0)] * 5


def test_gunicorn_hands_every_worker_the_masters_slots(monkeypatch, tmp_path):
    """gunicorn.conf.py makes the slots in the master; post_fork gives each worker those same slots."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # the config file sets it otherwise
    monkeypatch.setenv("HASH_CONCURRENCY", "3")
    monkeypatch.setattr(passwords, "_slots", passwords._slots)  # restored after the test
    conf = runpy.run_path(str(SERVICE_DIR / "gunicorn.conf.py"))
    conf["post_fork"](None, None)
    assert passwords._slots is conf["hash_slots"]
    assert isinstance(conf["hash_slots"], multiprocessing.synchronize.BoundedSemaphore)
    assert conf["hash_slots"].get_value() == 3
