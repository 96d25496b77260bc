"""Operator commands: ``flask --app minitwit migrate`` and ``flask --app minitwit import-legacy``."""

import contextlib
import fcntl
import sqlite3
from pathlib import Path

import click
import flask_migrate
from flask import Flask
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import text

from .extensions import db
from .models import Follower
from .models import Message
from .models import User

# Any constant shared by all replicas; it names the PostgreSQL advisory lock.
MIGRATION_LOCK_ID = 7_202_620
MIGRATION_LOCK_WAIT = "300s"


@contextlib.contextmanager
def schema_lock():
    """Let one process migrate at a time: three replicas starting at once queue here."""
    engine = db.engine
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text(f"SET lock_timeout = '{MIGRATION_LOCK_WAIT}'"))
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
    else:
        lock_path = Path(current_app.instance_path) / "migrate.lock"
        with open(lock_path, "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            yield


@click.command("migrate")
@with_appcontext
def migrate_command() -> None:
    """Upgrade the database schema to the newest migration (safe to run concurrently)."""
    with schema_lock():
        flask_migrate.upgrade()
    click.echo("database schema is up to date")


def read_legacy(path: str) -> tuple[list[dict], list[dict], set[tuple[int, int]]]:
    """Read users, messages and (deduplicated) follows from an original MiniTwit SQLite file."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        columns = {row["name"] for row in conn.execute("PRAGMA table_info(message)")}
        flagged = "flagged" if "flagged" in columns else "0"
        users = [dict(r) for r in conn.execute("SELECT user_id, username, email, pw_hash FROM user ORDER BY user_id")]
        messages = [
            dict(r)
            for r in conn.execute(
                f"SELECT message_id, author_id, text, pub_date, COALESCE({flagged}, 0) AS flagged "
                "FROM message ORDER BY message_id"
            )
        ]
        follows = {(r["who_id"], r["whom_id"]) for r in conn.execute("SELECT who_id, whom_id FROM follower")}
    finally:
        conn.close()
    return users, messages, follows


def clean_legacy(users, messages, follows):
    """Drop what the new schema's constraints refuse: repeated names and rows of unknown users."""
    seen_names, kept_users = set(), []
    for user in users:
        if user["username"] and user["username"] not in seen_names:
            seen_names.add(user["username"])
            kept_users.append(user)
    ids = {user["user_id"] for user in kept_users}
    kept_messages = [m for m in messages if m["author_id"] in ids and m["text"] is not None]
    for message in kept_messages:
        message["pub_date"] = int(message["pub_date"] or 0)
        message["flagged"] = int(message["flagged"] or 0)
    kept_follows = [{"who_id": a, "whom_id": b} for a, b in sorted(follows) if a in ids and b in ids]
    return kept_users, kept_messages, kept_follows


def reset_sequences() -> None:
    """Move PostgreSQL's id sequences past the imported ids."""
    if db.engine.dialect.name != "postgresql":
        return
    for table, column in (("user", "user_id"), ("message", "message_id")):
        db.session.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'), "
                f'COALESCE((SELECT MAX({column}) FROM "{table}"), 0) + 1, false)'
            )
        )


@click.command("import-legacy")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def import_legacy_command(path: str) -> None:
    """Import an original MiniTwit SQLite database (schema.sql layout) into an empty database."""
    if db.session.scalar(select(func.count()).select_from(User)):
        raise click.ClickException("the target database already has users; import only into an empty database")
    raw = read_legacy(path)
    users, messages, follows = clean_legacy(*raw)
    for model, rows in ((User, users), (Message, messages), (Follower, follows)):
        if rows:
            db.session.execute(insert(model), rows)
    reset_sequences()
    db.session.commit()
    skipped = (len(raw[0]) - len(users), len(raw[1]) - len(messages), len(raw[2]) - len(follows))
    click.echo(
        f"imported {len(users)} users, {len(messages)} messages, {len(follows)} follows "
        f"(skipped {skipped[0]} users, {skipped[1]} messages, {skipped[2]} follows)"
    )


def init_app(app: Flask) -> None:
    """Register the commands with the app's CLI."""
    app.cli.add_command(migrate_command)
    app.cli.add_command(import_legacy_command)
