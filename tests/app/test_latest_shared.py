"""``latest`` lives in the database, so every replica reports the same value.

Two app instances (own engines and pools, as two replicas have) share one
database on SQLite and PostgreSQL; then two real gunicorn processes do the same.
"""

import json

import pytest
from helpers.api import API_AUTH
from helpers.api import FlaskApi
from helpers.app import dispose
from helpers.app import make_app
from helpers.programs import http

from testkit.app import gunicorn_server
from testkit.postgres import pg_database


@pytest.fixture
def replicas(app, database_url):
    """Two API clients on two separate app instances over one database."""
    second = make_app(database_url)
    yield FlaskApi(app.test_client()), FlaskApi(second.test_client())
    dispose(second)


def latest(api):
    """``GET /latest`` of one replica."""
    return api.get("/latest").json()["latest"]


def test_latest_is_shared_between_instances(replicas):
    """A value recorded by one instance is what the other reports, in both directions."""
    one, two = replicas
    assert latest(one) == latest(two) == -1
    one.get("/msgs", params={"latest": 5})
    assert latest(two) == 5
    two.post("/register", json={"username": "a", "email": "a@a", "pwd": "a"}, params={"latest": 6})
    assert latest(one) == 6


def test_last_write_wins_across_instances(replicas):
    """Alternating writers: the last request wins wherever it landed."""
    one, two = replicas
    for i in range(1, 11):
        (one if i % 2 else two).get("/msgs", params={"latest": i})
    assert latest(one) == latest(two) == 10


def test_failed_requests_on_one_instance_are_seen_by_the_other(replicas):
    """A 403 on one instance still records ``latest`` for both."""
    one, two = replicas
    assert one.get("/msgs", params={"latest": 77}, auth=False).status_code == 403
    assert latest(two) == 77


@pytest.fixture
def shared_postgres(postgres_server):
    """An empty PostgreSQL database of its own (the servers migrate it), dropped afterwards."""
    with pg_database(postgres_server, "latest_shared") as database_url:
        yield database_url


def test_two_gunicorn_processes_share_latest(shared_postgres, tmp_path):
    """Two real server processes on one PostgreSQL database agree on ``latest``."""
    database_url = shared_postgres
    single = {"WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "2"}
    with gunicorn_server(tmp_path, database_url, **single) as a, gunicorn_server(tmp_path, database_url, **single) as b:
        assert http(a.url + "/api/msgs?latest=41", headers=API_AUTH)[0] == 200
        assert json.loads(http(b.url + "/api/latest")[1]) == {"latest": 41}
        assert http(b.url + "/api/msgs?latest=42", headers=API_AUTH)[0] == 200
        assert json.loads(http(a.url + "/api/latest")[1]) == {"latest": 42}
