"""Direct database access, for what the public interfaces cannot show or would make slow."""

from __future__ import annotations

import functools


def sql(app, statement: str, rows: list[dict] | None = None, **params):
    """Run one SQL statement (once per dict in ``rows`` if given); return its rows."""
    from minitwit.extensions import db
    from sqlalchemy import text

    with app.app_context():
        result = db.session.execute(text(statement), rows if rows else params)
        rows = result.all() if result.returns_rows else []
        db.session.commit()
        return rows


ARGON2ID = "$argon2id$v=19$m=19456,t=2,p=1$"  # how every new hash starts (OWASP's parameters)


@functools.cache
def cached_hash(password: str) -> str:
    """A current argon2id hash of ``password``, made once per password for the whole suite."""
    from minitwit.passwords import HASHER

    return HASHER.hash(password)


def insert_users(app, names, password="default", pw_hash=None):
    """Insert users straight into the database; they can log in with ``password``."""
    pw_hash = pw_hash or cached_hash(password)
    rows = [{"u": name, "e": f"{name}@x.org", "h": pw_hash} for name in names]
    sql(app, 'INSERT INTO "user" (username, email, pw_hash) VALUES (:u, :e, :h)', rows)


def insert_messages(app, username, count, start=1_000_000, flagged=0):
    """Insert ``count`` messages by ``username`` with pub_date start, start+1, ..."""
    [(user_id,)] = sql(app, 'SELECT user_id FROM "user" WHERE username = :u', u=username)
    rows = [{"a": user_id, "t": f"message {i}", "p": start + i, "f": flagged} for i in range(count)]
    statement = "INSERT INTO message (author_id, text, pub_date, flagged)"
    sql(app, statement + " VALUES (:a, :t, :p, :f)", rows)
