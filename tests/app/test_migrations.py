"""Alembic migrations on SQLite and PostgreSQL: up, down, agreement with the models,
and three replicas running ``flask --app minitwit migrate`` at the same time."""

import os
import subprocess
import sys

import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from helpers.app import dispose
from helpers.app import invoke
from helpers.app import make_app

from testkit import REPO_ROOT
from testkit import SERVICE_DIR

TABLES = {"user", "follower", "message", "latest", "signin_attempt"}


@pytest.fixture
def blank_app(blank_database_url):
    """An app on a database that has never been migrated."""
    app = make_app(blank_database_url)
    yield app
    dispose(app)


def table_names(app) -> set[str]:
    """The application tables present in the app's database."""
    from minitwit.extensions import db

    with app.app_context():
        return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


def current_revisions(app) -> list[str]:
    """The revisions recorded in ``alembic_version``."""
    from minitwit.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]


def head_revision(app) -> str:
    """The newest migration's revision id."""
    from alembic.script import ScriptDirectory

    with app.app_context():
        config = app.extensions["migrate"].migrate.get_config()
        return ScriptDirectory.from_config(config).get_current_head()


def test_migrate_command_creates_the_schema(blank_app):
    """``migrate`` creates every table and records the head revision."""
    result = invoke(blank_app, "migrate")
    assert result.exit_code == 0, result.output
    assert "database schema is up to date" in result.output
    assert table_names(blank_app) == TABLES
    assert current_revisions(blank_app) == [head_revision(blank_app)]


def test_migrate_is_idempotent(blank_app):
    """Running ``migrate`` again is a no-op that succeeds."""
    for _ in range(2):
        assert invoke(blank_app, "migrate").exit_code == 0
    assert current_revisions(blank_app) == [head_revision(blank_app)]


def test_constraints_and_indexes(blank_app):
    """Unique usernames, the follower key, and indexes for the timeline queries."""
    from minitwit.extensions import db

    invoke(blank_app, "migrate")
    with blank_app.app_context():
        inspector = sa.inspect(db.engine)
        uniques = [c["column_names"] for c in inspector.get_unique_constraints("user")]
        assert ["username"] in uniques
        assert inspector.get_pk_constraint("follower")["constrained_columns"] == ["who_id", "whom_id"]
        message_indexes = [i["column_names"] for i in inspector.get_indexes("message")]
        assert any(cols[:2] == ["author_id", "pub_date"] for cols in message_indexes)
        assert any(cols[0] == "pub_date" for cols in message_indexes)
        assert ["whom_id"] in [i["column_names"] for i in inspector.get_indexes("follower")]
        foreign = {
            (fk["referred_table"], tuple(fk["constrained_columns"])) for fk in inspector.get_foreign_keys("message")
        }
        assert ("user", ("author_id",)) in foreign


def test_models_match_the_migrations(blank_app):
    """Autogenerate finds nothing to do: the migrations build exactly the models."""
    from minitwit.extensions import db

    invoke(blank_app, "migrate")
    with blank_app.app_context(), db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert diff == []


def test_downgrade_to_base_and_up_again(blank_app):
    """Every migration can be undone, and the schema rebuilt afterwards."""
    invoke(blank_app, "migrate")
    with blank_app.app_context():
        flask_migrate.downgrade(revision="base")
    assert table_names(blank_app) == set()
    assert current_revisions(blank_app) == []
    with blank_app.app_context():
        flask_migrate.upgrade()
    assert table_names(blank_app) == TABLES
    assert current_revisions(blank_app) == [head_revision(blank_app)]


def test_schema_works_after_a_round_trip(blank_app):
    """After down and up again the app serves requests (sequences, defaults intact)."""
    invoke(blank_app, "migrate")
    with blank_app.app_context():
        flask_migrate.downgrade(revision="base")
        flask_migrate.upgrade()
    client = blank_app.test_client()
    body = {"username": "a", "email": "a@a", "pwd": "a"}
    assert client.post("/api/register", json=body, query_string={"latest": 1}).status_code == 204
    assert client.get("/api/latest").get_json() == {"latest": 1}


def test_three_concurrent_migrate_processes(blank_database_url):
    """Three replicas start at once: all succeed and the schema exists exactly once."""
    env = {**os.environ, "DATABASE_URL": blank_database_url, "PYTHONPATH": str(SERVICE_DIR)}
    env.pop("MINITWIT_ENV", None)
    cmd = [sys.executable, "-m", "flask", "--app", "minitwit", "migrate"]
    procs = [
        subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=180)[0] for proc in procs]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output
        assert "database schema is up to date" in output
    app = make_app(blank_database_url)
    try:
        assert table_names(app) == TABLES
        assert current_revisions(app) == [head_revision(app)]
    finally:
        dispose(app)
