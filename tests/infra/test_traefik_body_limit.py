"""The stack's body-limit middleware (traefik/dynamic/middlewares.yml) on the real Traefik,
in front of the real app under gunicorn, routed as the write routers in stack/minitwit.yml.

A client that sends 5 MB to ``POST /api/msgs/<user>`` must read the app's 413 JSON (Traefik
has read the whole body, so nobody resets the connection under the client); a body over
Traefik's own limit is refused by Traefik without reaching the app.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from helpers.api import API_AUTH
from helpers.programs import find_tool
from helpers.programs import traefik_file_command
from helpers.programs import wait_until
from minitwit.errors import DRAIN_LIMIT
from test_traefik_retry import STACK_MIDDLEWARES

from testkit import REPO_ROOT
from testkit.app import gunicorn_server
from testkit.ports import free_port
from testkit.processes import running

MIDDLEWARES = yaml.safe_load((REPO_ROOT / "traefik" / "dynamic" / "middlewares.yml").read_text())["http"]["middlewares"]
TRAEFIK_LIMIT = MIDDLEWARES["body-limit"]["buffering"]["maxRequestBodyBytes"]
JSON_413 = {"status": 413, "error_msg": "The request body is too large."}
HEADERS = {**API_AUTH, "Content-Type": "application/json", "Connection": "close"}


def test_the_write_routers_limit_bodies():
    """Both routers that take POSTs carry body-limit; the limit sits above 5 MB."""
    assert "body-limit" in STACK_MIDDLEWARES["minitwit-api-https"]
    assert "body-limit" in STACK_MIDDLEWARES["minitwit-web-https"]
    assert 5_000_000 < TRAEFIK_LIMIT <= 16 * 1024 * 1024


def test_the_app_drains_every_body_traefik_lets_through():
    """The app reads a refused body up to DRAIN_LIMIT: Traefik's limit must fit under it."""
    assert TRAEFIK_LIMIT <= DRAIN_LIMIT


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """The app under gunicorn (one worker, as in a replica), with a user to post as."""
    root = tmp_path_factory.mktemp("body-limit")
    database_url = f"sqlite:///{root / 'minitwit.db'}"
    with gunicorn_server(root, database_url, WEB_CONCURRENCY="1", GUNICORN_THREADS="2") as app:
        requests.post(app.url + "/api/register", json={"username": "alice", "email": "a@x", "pwd": "p"}, timeout=10)
        yield root, app


def test_a_refused_body_leaves_the_keep_alive_connection_usable(app_server):
    """gunicorn resets a connection whose body was left unread beyond 64 KiB; the app drains it.

    Traefik keeps its connections to the app alive, so without the drain the reset reaches it
    while it is still sending the 5 MB, and its client gets a 502 instead of the 413.
    """
    _, app = app_server
    address = urlsplit(app.url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    body = b'{"content": "' + b"x" * 5_000_000 + b'"}'
    headers = {**API_AUTH, "Content-Type": "application/json"}
    for _ in range(2):  # the second round goes over the same connection
        conn.request("POST", "/api/msgs/alice", body=body, headers=headers)
        rv = conn.getresponse()
        assert (rv.status, json.loads(rv.read())) == (413, JSON_413)
    conn.request("GET", "/api/latest", headers=API_AUTH)
    assert conn.getresponse().status == 200
    conn.close()


@pytest.fixture(scope="module")
def traefik(app_server):
    """Traefik on a free port with the stack's write-router middlewares, in front of gunicorn."""
    traefik_bin = find_tool("traefik", "TRAEFIK_BIN")
    root, app = app_server
    names = STACK_MIDDLEWARES["minitwit-api-https"]
    dynamic = {
        "http": {
            "middlewares": {name: MIDDLEWARES[name] for name in names},
            "routers": {"writes": {"rule": "PathPrefix(`/`)", "service": "app", "middlewares": names}},
            "services": {"app": {"loadBalancer": {"servers": [{"url": app.url}]}}},
        }
    }
    (root / "dynamic.yml").write_text(yaml.safe_dump(dynamic))
    port = free_port()
    args = traefik_file_command(traefik_bin, root, port)
    with running(args, root / "traefik.log"):
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(base + "/health", timeout=5).ok, "Traefik routing", log=root / "traefik.log")
        yield base


def post_body(base: str, size: int) -> requests.Response:
    """POST a JSON message of about ``size`` bytes, as the simulator would (Connection: close)."""
    body = b'{"content": "' + b"x" * size + b'"}'
    return requests.post(base + "/api/msgs/alice", data=body, headers=HEADERS, timeout=60)


def test_five_megabytes_through_traefik_get_the_apps_413_json(traefik):
    """Under Traefik's limit, the app answers, and the client reads its JSON."""
    for _ in range(3):
        rv = post_body(traefik, 5_000_000)
        assert rv.status_code == 413
        assert rv.json() == JSON_413


def test_bodies_over_traefiks_limit_never_reach_the_app(traefik):
    """Over the limit Traefik answers 413 itself (plain text): the app never sees the body."""
    rv = post_body(traefik, TRAEFIK_LIMIT + 1)
    assert rv.status_code == 413
    assert rv.text == "Request Entity Too Large"  # Traefik's words, not the app's JSON


def test_small_writes_pass_the_buffer(traefik):
    """An ordinary message goes through the buffering untouched."""
    rv = requests.post(traefik + "/api/msgs/alice", json={"content": "hi"}, headers=API_AUTH, timeout=10)
    assert rv.status_code == 204
