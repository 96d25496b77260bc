"""What the app tells operators: JSON log lines, probes, 503s, and Prometheus metrics.

The metrics test runs a real gunicorn (two workers, multiprocess mode) on free
loopback ports and scrapes the master's separate metrics port.
"""

import io
import json
import logging
import socket
from datetime import datetime

import psycopg
import pytest
from helpers.api import API_AUTH
from helpers.api import api_follow
from helpers.api import api_post
from helpers.api import api_register
from helpers.app import dispose
from helpers.app import make_app
from helpers.programs import http
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from testkit.app import gunicorn_server
from testkit.app import run_flask
from testkit.ports import free_port
from testkit.postgres import ThrowawayPostgres
from testkit.postgres import create_pg_database
from testkit.postgres import terminate_backends
from testkit.skip import Unavailable
from testkit.skip import skip_or_fail

REQUEST_FIELDS = {
    "time",
    "level",
    "logger",
    "message",
    "method",
    "route",
    "path",
    "status",
    "duration_ms",
    "request_id",
    "host",
    "remote_addr",
}


@pytest.fixture
def logs():
    """Collect the app's JSON log lines; call the fixture value to get them parsed."""
    from minitwit.logs import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("minitwit")
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def request_lines(lines):
    """Only the per-request lines."""
    return [line for line in lines if line["logger"] == "minitwit.request"]


# --- JSON logs ---------------------------------------------------------------------


def test_one_json_line_per_request(client, logs):
    """Each request logs exactly one line with the documented fields."""
    client.get("/public")
    [line] = request_lines(logs())
    assert set(line) == REQUEST_FIELDS
    assert (line["level"], line["method"], line["path"], line["status"]) == ("info", "GET", "/public", 200)
    assert line["route"] == "/public"
    assert line["host"] == socket.gethostname()
    assert line["remote_addr"] == "127.0.0.1"
    assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0
    assert datetime.fromisoformat(line["time"]).tzinfo is not None


def test_route_is_the_template_not_the_path(api, logs):
    """Logs group by route template; the raw path is a separate field."""
    api.get("/msgs/nobody")
    [line] = request_lines(logs())
    assert line["route"] == "/api/msgs/<username>"
    assert line["path"] == "/api/msgs/nobody"
    assert line["status"] == 404


def test_unknown_url_has_no_route(client, logs):
    """A path no rule matches logs ``route: null``."""
    client.get("/a/b/c/d")
    [line] = request_lines(logs())
    assert line["route"] is None
    assert line["status"] == 404


def test_request_id_is_echoed_or_generated(client, logs):
    """``X-Request-ID`` is taken from the request or generated, and returned."""
    rv = client.get("/public", headers={"X-Request-ID": "trace-abc-123"})
    assert rv.headers["X-Request-ID"] == "trace-abc-123"
    generated = client.get("/public").headers["X-Request-ID"]
    assert len(generated) >= 16
    assert [line["request_id"] for line in request_lines(logs())] == ["trace-abc-123", generated]


def test_unexpected_error_logs_traceback_and_hides_it(app, logs):
    """A bug answers a plain 500 (HTML or JSON) and logs the traceback as one line."""

    def boom():
        raise RuntimeError("boom")

    app.add_url_rule("/_boom", "boom", boom)
    app.add_url_rule("/api/_boom", "api_boom", boom)
    client = app.test_client()
    rv = client.get("/_boom")
    assert rv.status_code == 500
    assert "text/html" in rv.headers["Content-Type"]
    assert "Traceback" not in rv.get_data(as_text=True) and "boom" not in rv.get_data(as_text=True)
    rv = client.get("/api/_boom")
    assert rv.status_code == 500
    assert rv.get_json()["status"] == 500
    errors = [line for line in logs() if line["level"] == "error"]
    assert len(errors) == 2
    assert all("RuntimeError: boom" in line["exc_info"] for line in errors)


def test_csrf_failure_is_logged_as_warning(client, logs):
    """A refused cross-site form leaves a warning line."""
    client.post("/login", data={"username": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert any(line["level"] == "warning" and "CSRF" in line["message"] for line in logs())


# --- probes and database outages ---------------------------------------------------


def test_health_and_ready(client):
    """Liveness and readiness answer their JSON when the database is up."""
    assert client.get("/health").get_json() == {"status": "ok"}
    rv = client.get("/ready")
    assert rv.status_code == 200
    assert rv.get_json() == {"status": "ready"}


@pytest.fixture(params=["postgresql", "sqlite"])
def unreachable_app(request, tmp_path):
    """An app whose database cannot be reached."""
    if request.param == "postgresql":
        url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/minitwit"
    else:
        url = f"sqlite:///{tmp_path / 'no-such-dir' / 'minitwit.db'}"
    return make_app(url)


def test_database_outage_is_503_never_500(unreachable_app):
    """Without a database: /health stays 200, everything else answers a clear 503."""
    client = unreachable_app.test_client()
    assert client.get("/health").status_code == 200
    rv = client.get("/ready")
    assert rv.status_code == 503
    assert rv.get_json() == {"status": "unavailable", "error_msg": "database unavailable"}
    rv = client.get("/public")
    assert rv.status_code == 503
    assert "database is unavailable" in rv.get_data(as_text=True)
    assert "Traceback" not in rv.get_data(as_text=True)
    assert rv.headers["Retry-After"]
    for path in ("/latest", "/msgs"):
        rv = client.get("/api" + path, headers=API_AUTH)
        assert rv.status_code == 503
        assert rv.get_json()["status"] == 503
    rv = client.post("/api/register", json={"username": "a", "email": "a@a", "pwd": "a"})
    assert rv.status_code == 503


@pytest.fixture
def own_postgres():
    """A private PostgreSQL server this test may stop and start; yields (server, db URL)."""
    try:
        server = ThrowawayPostgres().start()
    except Unavailable as missing:
        skip_or_fail(str(missing))
    try:
        url = create_pg_database(server.url, "outage")
        run_flask(url, "migrate")
        yield server, url
    finally:
        server.stop()


def test_database_restart_is_503_then_recovers(own_postgres):
    """While PostgreSQL is down requests get 503; after it returns they succeed again."""
    server, url = own_postgres
    app = make_app(url)
    client = app.test_client()
    try:
        assert client.get("/api/msgs", headers=API_AUTH, query_string={"latest": 1}).status_code == 200
        server.halt()
        assert client.get("/api/msgs", headers=API_AUTH).status_code == 503
        assert client.get("/public").status_code == 503
        assert client.get("/ready").status_code == 503
        server.start()
        # the pool's dead connections are dropped at checkout, no request fails after recovery
        assert client.get("/ready").status_code == 200
        assert client.get("/api/latest").get_json() == {"latest": 1}
    finally:
        dispose(app)


def test_connections_closed_by_the_server_cost_no_request(own_postgres):
    """Pooled connections the server closed (restart, terminated backend) are replaced at
    checkout without a ping round trip: the first requests afterwards succeed."""
    server, url = own_postgres
    app = make_app(url)
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is False
    client = app.test_client()
    try:
        assert client.get("/api/msgs", headers=API_AUTH, query_string={"latest": 1}).status_code == 200
        server.halt()  # no request while it is down: the pool still holds the old connection
        server.start()
        assert client.get("/api/msgs", headers=API_AUTH, query_string={"latest": 2}).status_code == 200
        assert client.get("/public").status_code == 200
        admin = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True)
        with admin:
            pids = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()"
            ).fetchall()
            assert pids  # the app's pooled connection
            terminate_backends(admin, [pid for (pid,) in pids])
        assert client.post("/api/register", json={"username": "a", "email": "a@a", "pwd": "a"}).status_code == 204
        assert client.get("/api/latest").get_json() == {"latest": 2}
    finally:
        dispose(app)


def test_only_a_live_idle_connection_passes_the_checkout_check(postgres_server):
    """The checkout check refuses a closed connection and one the server hung up on."""
    from minitwit.extensions import discard_closed_connection
    from sqlalchemy.exc import DisconnectionError

    plain_url = postgres_server.replace("postgresql+psycopg", "postgresql")
    conn = psycopg.connect(plain_url, autocommit=True)
    discard_closed_connection(conn, None, None)  # idle and open: kept
    with psycopg.connect(plain_url, autocommit=True) as admin:
        terminate_backends(admin, [conn.info.backend_pid])
    with pytest.raises(DisconnectionError, match="server closed"):
        discard_closed_connection(conn, None, None)
    conn.close()
    with pytest.raises(DisconnectionError, match="is closed"):
        discard_closed_connection(conn, None, None)


# --- business counters (in-process, the default registry) ---------------------------


def counter(name, source):
    """Current value of a business counter for ``source``."""
    return REGISTRY.get_sample_value(f"minitwit_{name}_total", {"source": source}) or 0.0


def test_business_counters_count_api_and_ui(app, api, client, auth):
    """Registrations, messages, follows and unfollows are counted by source."""
    names = ["users_registered", "messages_posted", "follows", "unfollows"]
    before = {(n, s): counter(n, s) for n in names for s in ("api", "ui")}
    api_register(api, "alice")
    api_register(api, "bob")
    api_post(api, "alice", "hi")
    api_follow(api, "alice", "bob")
    api_follow(api, "alice", "bob", action="unfollow")
    auth.register("carol", "pw")
    auth.login("carol", "pw")
    client.post("/add_message", data={"text": "hey"})
    client.get("/bob/follow")
    client.get("/bob/unfollow")
    delta = {key: counter(*key) - value for key, value in before.items()}
    assert delta == {
        ("users_registered", "api"): 2,
        ("users_registered", "ui"): 1,
        ("messages_posted", "api"): 1,
        ("messages_posted", "ui"): 1,
        ("follows", "api"): 1,
        ("follows", "ui"): 1,
        ("unfollows", "api"): 1,
        ("unfollows", "ui"): 1,
    }


# --- a real gunicorn with multiprocess metrics ---------------------------------------


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    """A real gunicorn (2 workers) on free ports; yields (app_url, metrics_url, log_path)."""
    root = tmp_path_factory.mktemp("gunicorn")
    database_url = f"sqlite:///{root / 'minitwit.db'}"
    env = {"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "2", "APP_VERSION": "test-1.2.3"}
    with gunicorn_server(root, database_url, **env) as server:
        yield server


def test_gunicorn_leaves_no_metrics_directory_behind(tmp_path):
    """Every local server names a new directory (per port): on exit gunicorn removes its own."""
    with gunicorn_server(tmp_path, f"sqlite:///{tmp_path / 'minitwit.db'}") as server:
        http(server.url + "/health")
        directory = tmp_path / f"metrics-{server.url.rsplit(':', 1)[1]}"
        assert any(directory.glob("*.db")), "the workers write their metrics here"
    assert not directory.exists()


def send_traffic(base):
    """A little of everything, through both workers."""
    api = base + "/api"
    for name in ("alice", "bob"):
        http(api + "/register", "POST", {"username": name, "email": f"{name}@x", "pwd": "p"})
    http(api + "/msgs/alice", "POST", {"content": "hi"}, API_AUTH)
    http(api + "/fllws/alice", "POST", {"follow": "bob"}, API_AUTH)
    http(api + "/fllws/alice", "POST", {"unfollow": "bob"}, API_AUTH)
    for _ in range(4):
        http(api + "/msgs/alice", headers=API_AUTH)
        http(api + "/msgs/bob", headers=API_AUTH)
        http(base + "/public")
        http(base + "/health")
    http(base + "/nobody")


def samples(metrics_url):
    """All samples of a scrape as (name, labels, value)."""
    text = http(metrics_url)[1]
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def value(all_samples, name, **labels):
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(v for n, lab, v in all_samples if n == name and labels.items() <= lab.items())


def test_gunicorn_serves_multiprocess_metrics(gunicorn):
    """The master's metrics port has HTTP metrics by endpoint and the business counters."""
    base, metrics_url = gunicorn.url, gunicorn.metrics_url
    send_traffic(base)
    scraped = samples(metrics_url)
    count = "flask_http_request_duration_seconds_count"
    assert value(scraped, count, endpoint="api.get_user_messages", method="GET", status="200") == 8
    assert value(scraped, count, endpoint="timeline.public_timeline", status="200") == 4
    assert value(scraped, count, endpoint="timeline.user_timeline", status="404") == 1
    assert value(scraped, "flask_http_request_total", method="GET", status="200") >= 12
    assert value(scraped, "flask_http_request_duration_seconds_bucket", le="0.3") > 0
    assert value(scraped, "minitwit_users_registered_total", source="api") == 2
    assert value(scraped, "minitwit_messages_posted_total", source="api") == 1
    assert value(scraped, "minitwit_follows_total", source="api") == 1
    assert value(scraped, "minitwit_unfollows_total", source="api") == 1
    assert value(scraped, "minitwit_app_info", version="test-1.2.3") >= 1


def test_metrics_never_use_raw_paths_and_skip_probes(gunicorn):
    """No label carries a URL path (cardinality), and probes are not tracked."""
    base, metrics_url = gunicorn.url, gunicorn.metrics_url
    send_traffic(base)
    scraped = samples(metrics_url)
    assert all(not str(v).startswith("/") for _, labels, _ in scraped for v in labels.values())
    endpoints = {labels.get("endpoint") for _, labels, _ in scraped}
    assert "health.health" not in endpoints


def test_metrics_are_not_on_the_app_port(gunicorn):
    """The application port does not serve metrics."""
    base = gunicorn.url
    status, text = http(base + "/metrics")
    assert status == 404
    assert "flask_http_request" not in text


def test_gunicorn_stdout_is_json_lines(gunicorn):
    """Everything gunicorn and the app print is one JSON object per line."""
    base, log_path = gunicorn.url, gunicorn.log_path
    http(base + "/public", headers={"X-Request-ID": "gunicorn-line-check"})
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    [line] = [entry for entry in lines if entry.get("request_id") == "gunicorn-line-check"]
    assert set(line) == REQUEST_FIELDS
    assert line["route"] == "/public"
    assert any(entry["logger"].startswith("gunicorn") for entry in lines)
