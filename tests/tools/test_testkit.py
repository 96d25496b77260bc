"""The local test toolkit keeps its promises: the one stop policy, a hermetic app server, and a
throwaway PostgreSQL that is fast for tests and durable for benchmarks."""

from __future__ import annotations

import json
import sys

import psycopg
import pytest
from helpers.api import API_AUTH
from helpers.programs import http

from testkit import processes
from testkit.app import gunicorn_server
from testkit.postgres import ThrowawayPostgres
from testkit.postgres import libpq_url
from testkit.skip import Unavailable
from testkit.skip import skip_or_fail

# Ignores SIGTERM, as a server stuck in a request would; says when it is ready to be stopped.
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
)
POLITE = "import time; print('ready', flush=True); time.sleep(60)"


def run_until_ready(script: str, tmp_path) -> int:
    """Run ``script`` under ``processes.running``; return its exit status once the block has stopped it."""
    log = tmp_path / "program.log"
    with processes.running([sys.executable, "-c", script], log) as proc:
        while "ready" not in log.read_text():
            assert proc.poll() is None, log.read_text()
    return proc.returncode


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, monkeypatch):
    monkeypatch.setattr(processes, "STOP_TIMEOUT_S", 1)
    assert run_until_ready(STUBBORN, tmp_path) == -9


def test_a_server_that_honours_sigterm_stops_on_it(tmp_path):
    assert run_until_ready(POLITE, tmp_path) == -15


def test_the_app_server_ignores_the_shells_minitwit_settings(tmp_path, monkeypatch):
    """A developer's DATABASE_URL_FILE or metrics directory must not redirect the server."""
    monkeypatch.setenv("DATABASE_URL_FILE", str(tmp_path / "no-such-secret"))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "not-ours"))
    monkeypatch.setenv("MINITWIT_ENV", "production")  # tests serve development unless they say otherwise
    with gunicorn_server(tmp_path, f"sqlite:///{tmp_path / 'ours.db'}") as server:
        assert http(server.url + "/api/msgs?latest=7", headers=API_AUTH)[0] == 200
        assert json.loads(http(server.url + "/api/latest")[1]) == {"latest": 7}
    assert (tmp_path / "ours.db").stat().st_size > 0
    assert not (tmp_path / "not-ours").exists()


@pytest.fixture(params=[False, True], ids=["test", "durable"])
def cluster(request):
    """A throwaway cluster as the tests (durability off) and the benchmark (durable) run it."""
    try:
        server = ThrowawayPostgres(max_connections=30, durable=request.param).start()
    except Unavailable as missing:
        skip_or_fail(str(missing))
    yield request.param, server
    server.stop()
    assert not server.root.exists()  # nothing left behind


def test_throwaway_postgres_is_durable_only_when_asked(cluster):
    durable, server = cluster
    with psycopg.connect(libpq_url(server.url)) as conn:
        settings = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in ("fsync", "max_connections")}
    assert settings == {"fsync": "on" if durable else "off", "max_connections": "30"}
