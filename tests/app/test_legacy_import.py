"""Importing an original MiniTwit SQLite database with ``flask --app minitwit import-legacy``.

The source is built with the original ``schema.sql`` layout (no constraints, so it
holds duplicate follower rows, a repeated user name and rows of unknown users).
"""

import hashlib
import os
import sqlite3
import subprocess
import sys

import pytest
from helpers.api import FlaskApi
from helpers.api import api_register
from helpers.app import invoke
from helpers.data import ARGON2ID
from helpers.data import sql
from helpers.ui import login
from werkzeug.security import generate_password_hash

from testkit import REPO_ROOT
from testkit import SERVICE_DIR

# The course's schema.sql (the Flask original lacks ``flagged``).
SCHEMA = """
drop table if exists user;
create table user (
  user_id integer primary key autoincrement,
  username string not null,
  email string not null,
  pw_hash string not null
);
drop table if exists follower;
create table follower (
  who_id integer,
  whom_id integer
);
drop table if exists message;
create table message (
  message_id integer primary key autoincrement,
  author_id integer not null,
  text string not null,
  pub_date integer,
  flagged integer
);
"""
USERS = [
    (1, "alice", "alice@example.com", generate_password_hash("alice-pw", method="pbkdf2:sha256:1000")),
    (2, "bob", "bob@example.com", hashlib.md5(b"bob-pw").hexdigest()),
    (3, "Jane Doe", "jane@example.com", "x"),
    (4, "Søren", "soren@example.dk", "x"),
    (5, "alice", "impostor@example.com", "x"),  # the old code's race let names repeat
]
MESSAGES = [
    (1, 1, "first by alice", 1_000, 0),
    (2, 1, "hidden by alice", 2_000, 1),
    (3, 1, "second by alice", 3_000, None),
    (4, 2, "<b>bold</b> & ünïcode 🐦", 4_000, 0),
    (5, 3, "jane here", 5_000, 0),
    (6, 5, "by the impostor", 6_000, 0),
    (7, 99, "by nobody", 7_000, 0),
]
FOLLOWS = [(1, 2), (1, 2), (1, 2), (2, 1), (1, 3), (3, 99), (5, 1)]
SUMMARY = "imported 4 users, 5 messages, 3 follows (skipped 1 users, 2 messages, 2 follows)"


def build_legacy_db(path, with_flagged=True):
    """Write an original-layout MiniTwit database to ``path``."""
    schema = SCHEMA if with_flagged else SCHEMA.replace(",\n  flagged integer", "")
    conn = sqlite3.connect(path)
    try:
        conn.executescript(schema)
        conn.executemany("insert into user values (?, ?, ?, ?)", USERS)
        if with_flagged:
            conn.executemany("insert into message values (?, ?, ?, ?, ?)", MESSAGES)
        else:
            conn.executemany("insert into message values (?, ?, ?, ?)", [m[:4] for m in MESSAGES])
        conn.executemany("insert into follower values (?, ?)", FOLLOWS)
        conn.commit()
    finally:
        conn.close()
    return str(path)


@pytest.fixture
def legacy_db(tmp_path):
    """Path of an original MiniTwit database."""
    return build_legacy_db(tmp_path / "minitwit.db")


def test_import_summary_and_rows(app, legacy_db):
    """Users, messages and follows arrive once; duplicates and orphans are skipped."""
    result = invoke(app, "import-legacy", legacy_db)
    assert result.exit_code == 0, result.output
    # messages: 7 rows, minus the impostor's and nobody's; the flagged one is kept
    assert SUMMARY in result.output
    users = sql(app, 'SELECT user_id, username, email, pw_hash FROM "user" ORDER BY user_id')
    assert users == [tuple(u) for u in USERS[:4]]
    assert sql(app, "SELECT who_id, whom_id FROM follower ORDER BY who_id, whom_id") == [(1, 2), (1, 3), (2, 1)]
    rows = sql(app, "SELECT message_id, author_id, text, pub_date, flagged FROM message ORDER BY message_id")
    assert rows == [(*m[:4], m[4] or 0) for m in MESSAGES[:5]]


def test_imported_data_is_served(app, legacy_db):
    """The API and the UI show the imported data; flagged messages stay hidden."""
    invoke(app, "import-legacy", legacy_db)
    api = FlaskApi(app.test_client())
    assert [m["content"] for m in api.get("/msgs/alice").json()] == ["second by alice", "first by alice"]
    assert api.get("/msgs/bob").json()[0]["content"] == "<b>bold</b> & ünïcode 🐦"
    assert sorted(api.get("/fllws/alice").json()["follows"]) == ["Jane Doe", "bob"]
    html = app.test_client().get("/public").get_data(as_text=True)
    assert "jane here" in html and "hidden by alice" not in html


@pytest.mark.parametrize("username, password", [("alice", "alice-pw"), ("bob", "bob-pw")])
def test_legacy_passwords_work_and_are_upgraded(app, legacy_db, username, password):
    """Imported users log in with their old passwords; the hash becomes argon2id."""
    invoke(app, "import-legacy", legacy_db)
    client = app.test_client()
    assert "You were logged in" in login(client, username, password).get_data(as_text=True)
    [(pw_hash,)] = sql(app, 'SELECT pw_hash FROM "user" WHERE username = :u', u=username)
    assert pw_hash.startswith(ARGON2ID)


def test_new_rows_after_import_get_fresh_ids(app, legacy_db):
    """Registering and posting after an import works (PostgreSQL sequences moved on)."""
    invoke(app, "import-legacy", legacy_db)
    api = FlaskApi(app.test_client())
    api_register(api, "newcomer")
    assert api.post("/msgs/newcomer", json={"content": "hello"}).status_code == 204
    assert sql(app, "SELECT user_id FROM \"user\" WHERE username = 'newcomer'") == [(5,)]
    assert sql(app, "SELECT max(message_id) FROM message") == [(6,)]


def test_import_without_flagged_column(app, tmp_path):
    """The Flask original's layout (no ``flagged``) imports every message as visible."""
    path = build_legacy_db(tmp_path / "old.db", with_flagged=False)
    assert invoke(app, "import-legacy", path).exit_code == 0
    assert sql(app, "SELECT count(*) FROM message WHERE flagged = 0") == [(5,)]


def test_import_refuses_a_non_empty_database(app, legacy_db):
    """Importing twice fails clearly and changes nothing."""
    invoke(app, "import-legacy", legacy_db)
    result = invoke(app, "import-legacy", legacy_db)
    assert result.exit_code != 0
    assert "already has users" in result.output
    assert sql(app, 'SELECT count(*) FROM "user"') == [(4,)]


def test_import_of_a_missing_file_fails(app, tmp_path):
    """A wrong path is a usage error, not a traceback."""
    result = invoke(app, "import-legacy", str(tmp_path / "nope.db"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_real_command_end_to_end(blank_database_url, legacy_db):
    """The documented commands: ``migrate`` then ``import-legacy``, in fresh processes."""
    env = {**os.environ, "DATABASE_URL": blank_database_url, "PYTHONPATH": str(SERVICE_DIR)}
    env.pop("MINITWIT_ENV", None)
    flask = [sys.executable, "-m", "flask", "--app", "minitwit"]
    for args in (["migrate"], ["import-legacy", legacy_db]):
        proc = subprocess.run(flask + args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert SUMMARY in proc.stdout
