"""Shared fixtures: the app on SQLite and PostgreSQL, its clients, a throwaway server.

Every test that asks for ``app`` (or ``client``, ``auth``, ``api``) runs twice, once per
backend. The schema is created once per session per backend by the app's own migrate
command; between tests the tables are emptied, which keeps the suite fast.

PostgreSQL comes from ``TEST_DATABASE_URL`` (CI service container) or from a server this
file starts itself; without either the PostgreSQL runs are skipped, except under
``MINITWIT_STRICT=1`` where that is a failure.
"""

from __future__ import annotations

import os

# prometheus_client picks its storage when first imported, and a container's
# PROMETHEUS_MULTIPROC_DIR would switch it to files: drop it before the imports below load the app.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
os.environ.pop("prometheus_multiproc_dir", None)

import uuid

import pytest
from helpers.api import FlaskApi
from helpers.api import HttpApi
from helpers.app import dispose
from helpers.app import empty_database
from helpers.app import fresh_app
from helpers.app import migrate
from helpers.app import test_config
from helpers.data import insert_users
from helpers.ui import login
from helpers.ui import logout
from helpers.ui import register
from minitwit.config import SETTINGS

from testkit.postgres import ThrowawayPostgres
from testkit.postgres import create_pg_database
from testkit.postgres import drop_pg_database
from testkit.skip import Unavailable
from testkit.skip import skip_or_fail

# The suite is hermetic: a developer's or container's MiniTwit settings must not leak in.
for _name in SETTINGS:
    os.environ.pop(_name, None)
    os.environ.pop(f"{_name}_FILE", None)

BACKENDS = ["sqlite", "postgresql"]
LIVE_API_URL = os.environ.get("MINITWIT_API_URL")


# --- databases ------------------------------------------------------------------------

POSTGRES_STATUS = ["PostgreSQL: not needed by the selected tests"]


@pytest.fixture(scope="session")
def postgres_server():
    """URL of a PostgreSQL server where tests may create databases (SQLAlchemy form)."""
    from minitwit.config import normalise_database_url

    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        POSTGRES_STATUS[0] = "PostgreSQL: TEST_DATABASE_URL"
        yield normalise_database_url(url)
        return
    try:
        server = ThrowawayPostgres().start()
    except Unavailable as missing:
        reason = f"no TEST_DATABASE_URL and {missing}"
        POSTGRES_STATUS[0] = f"PostgreSQL run SKIPPED: {reason}"
        skip_or_fail(f"PostgreSQL run skipped: {reason}")
    POSTGRES_STATUS[0] = f"PostgreSQL: throwaway server from {server.bindir} on 127.0.0.1:{server.port}"
    yield server.url
    server.stop()


def pytest_terminal_summary(terminalreporter):
    """Say at the end which PostgreSQL the suite ran against, or that it was skipped."""
    terminalreporter.write_line(POSTGRES_STATUS[0])


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory):
    """A migrated SQLite database file shared by the session."""
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'minitwit.db'}"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def postgresql_database(postgres_server):
    """A migrated PostgreSQL database shared by the session."""
    url = create_pg_database(postgres_server, "minitwit_test")
    migrate(url)
    return url


@pytest.fixture(params=BACKENDS)
def database_url(request):
    """URL of a migrated database; every test using it runs once per backend."""
    return request.getfixturevalue(f"{request.param}_database")


@pytest.fixture(params=BACKENDS)
def blank_database_url(request, tmp_path):
    """URL of a brand-new database without any schema (per test, per backend)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"blank_{uuid.uuid4().hex[:12]}"
    yield create_pg_database(server, name)
    drop_pg_database(server, name)


# --- the app and its clients ----------------------------------------------------------


@pytest.fixture
def app(database_url):
    """The app on a fresh database (SQLite and PostgreSQL)."""
    with fresh_app(database_url) as app:
        yield app


@pytest.fixture
def client(app):
    """A test client for the web UI."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner for the app's flask commands."""
    return app.test_cli_runner()


@pytest.fixture
def api(app):
    """The simulator API through the Flask test client."""
    return FlaskApi(app.test_client(), app.config.get("API_PREFIX", "/api"))


@pytest.fixture(params=["live"] if LIVE_API_URL else BACKENDS)
def sim_api(request):
    """The simulator API: the deployment at MINITWIT_API_URL, else the app."""
    if request.param == "live":
        yield HttpApi(LIVE_API_URL, os.environ.get("MINITWIT_CA_BUNDLE"))
        return
    with fresh_app(request.getfixturevalue(f"{request.param}_database")) as app:
        yield FlaskApi(app.test_client(), app.config.get("API_PREFIX", "/api"))


@pytest.fixture
def app_factory(sqlite_database):
    """Build apps with extra config on the session's (emptied) SQLite database.

    A key given as None is dropped from the test mapping, so the environment
    decides it: ``app_factory(SECRET_KEY=None)`` reads ``SECRET_KEY``/``_FILE``.
    """
    from minitwit import create_app

    apps = []

    def factory(**overrides):
        config = test_config(sqlite_database, **overrides)
        app = create_app({key: value for key, value in config.items() if value is not None})
        apps.append(app)
        return app

    empty_database(sqlite_database)
    yield factory
    for app in apps:
        dispose(app)


class AuthActions:
    """Log in and out through the real forms (flaskr's ``AuthActions``)."""

    def __init__(self, client, app):
        self._client = client
        self._app = app

    def register(self, username="foo", password="default", **kwargs):
        """Register ``username`` through the form."""
        return register(self._client, username, password, **kwargs)

    def login(self, username="foo", password="default"):
        """Log in as ``username``."""
        return login(self._client, username, password)

    def register_and_login(self, username="foo", password="default"):
        """Register and log in as ``username``."""
        self.register(username, password)
        return self.login(username, password)

    def login_as(self, username="foo", password="default"):
        """Create ``username`` with a cheap hash and log in through the form (fast)."""
        insert_users(self._app, [username], password)
        return self.login(username, password)

    def logout(self):
        """Log out."""
        return logout(self._client)


@pytest.fixture
def auth(client, app):
    """Form-based login/logout actions on ``client``."""
    return AuthActions(client, app)
