"""The stack's retry middlewares (traefik/dynamic/middlewares.yml) on the real Traefik.

A replica that dies while it holds a request resets Traefik's connection after the request was
sent. Traefik answers that with a 502, and its retry middleware does not re-send a request it
already wrote unless the answer's status is listed. Here one backend reads each request and
resets the connection (a crash mid-request), the other answers; Traefik balances between them.
GETs through ``retry-reads`` must all succeed, also when a replica is already gone (the
connection fails); POSTs, which the stack never retries, must reach the crashing backend once
and never be re-sent.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import pytest
import yaml
from helpers.programs import find_tool
from helpers.programs import traefik_file_command
from helpers.programs import wait_until

from testkit import REPO_ROOT
from testkit.ports import free_port
from testkit.processes import running

MIDDLEWARES = REPO_ROOT / "traefik" / "dynamic" / "middlewares.yml"
REQUESTS = 20


def stack_router_middlewares() -> dict[str, list[str]]:
    """The app's routers in stack/minitwit.yml and their file-provider middlewares, by name."""
    stack = yaml.safe_load((REPO_ROOT / "stack" / "minitwit.yml").read_text())
    labels = stack["services"]["app"]["deploy"]["labels"]
    routers: dict[str, list[str]] = {}
    for label in labels:
        key, _, value = label.partition("=")
        parts = key.split(".")
        if parts[:3] == ["traefik", "http", "routers"] and parts[4] == "rule":
            routers.setdefault(parts[3], [])
        if parts[:3] == ["traefik", "http", "routers"] and parts[4] == "middlewares":
            routers[parts[3]] = [m.removesuffix("@file") for m in value.split(",")]
    return routers


STACK_MIDDLEWARES = stack_router_middlewares()


def test_every_app_router_in_the_stack_retries_the_safe_way():
    """GET routers re-send reads (retry-reads); the routers that take writes never retry."""
    retries = {name: [m for m in mws if m.startswith("retry-")] for name, mws in STACK_MIDDLEWARES.items()}
    assert retries == {
        "minitwit-web-https": [],
        "minitwit-api-https": [],
        "minitwit-web-read-https": ["retry-reads"],
        "minitwit-api-read-https": ["retry-reads"],
    }


class Answering(BaseHTTPRequestHandler):
    """The healthy replica: 200 for GET, 204 for POST, counting both."""

    counts = {"GET": 0, "POST": 0}
    lock = threading.Lock()

    def count(self, method: str) -> None:
        with Answering.lock:
            Answering.counts[method] += 1

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.count("GET")
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.count("POST")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        """Quiet."""


class Crashing:
    """The dying replica: reads a request's head, then resets the connection (SO_LINGER 0)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.methods: list[str] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.crash, args=(conn,), daemon=True).start()

    def crash(self, conn: socket.socket):
        conn.settimeout(10)  # a connection Traefik opened but never used cannot hold the others up
        head = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in head and (chunk := conn.recv(65536)):
                head += chunk
        if head:
            self.methods.append(head.split(b" ", 1)[0].decode())
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def traefik(tmp_path):
    """Traefik with the repository's retry middlewares, routed as in stack/minitwit.yml.

    ``/`` goes to a crashing and a healthy backend, ``/gone/`` to a closed port and the healthy one.
    """
    traefik_bin = find_tool("traefik", "TRAEFIK_BIN")
    healthy = ThreadingHTTPServer(("127.0.0.1", 0), Answering)
    threading.Thread(target=healthy.serve_forever, daemon=True).start()
    Answering.counts = {"GET": 0, "POST": 0}
    crashing = Crashing()
    healthy_url = f"http://127.0.0.1:{healthy.server_address[1]}"
    middlewares = yaml.safe_load(MIDDLEWARES.read_text())["http"]["middlewares"]
    routers = {}
    for prefix, service in (("/", "crash"), ("/gone/", "gone")):
        routers[f"reads-{service}"] = {
            "rule": f"PathPrefix(`{prefix}`) && Method(`GET`)",
            "service": service,
            "middlewares": STACK_MIDDLEWARES["minitwit-api-read-https"],
        }
        routers[f"writes-{service}"] = {
            "rule": f"PathPrefix(`{prefix}`)",
            "service": service,
            "middlewares": STACK_MIDDLEWARES["minitwit-api-https"],
        }
    dynamic = {
        "http": {
            "middlewares": {name: middlewares[name] for name in ("retry-reads", "body-limit")},
            "routers": routers,
            "services": {
                "crash": {
                    "loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{crashing.port}"}, {"url": healthy_url}]}
                },
                "gone": {
                    "loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{free_port()}"}, {"url": healthy_url}]}
                },
            },
        }
    }
    (tmp_path / "dynamic.yml").write_text(yaml.safe_dump(dynamic))
    port = free_port()
    args = traefik_file_command(traefik_bin, tmp_path, port)
    try:
        with running(args, tmp_path / "traefik.log"):
            base = f"http://127.0.0.1:{port}"
            # Traefik is up once a GET gets through (which already exercises the retry)
            wait_until(lambda: status(base, "GET") == 200, "Traefik routing", log=tmp_path / "traefik.log")
            yield base, crashing
    finally:
        healthy.shutdown()
        healthy.server_close()
        crashing.close()


def status(url: str, method: str, path: str = "/") -> int:
    """Send one request with a new connection and return the status code."""
    request = urllib.request.Request(url + path, method=method, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_reads_are_re_sent_when_a_replica_dies_holding_them(traefik):
    base, crashing = traefik
    before = len(crashing.methods)
    assert [status(base, "GET") for _ in range(REQUESTS)] == [200] * REQUESTS
    assert crashing.methods[before:].count("GET") >= REQUESTS // 4  # the crashing replica did get reads


def test_writes_a_replica_held_are_never_re_sent(traefik):
    base, crashing = traefik
    statuses = [status(base, "POST") for _ in range(REQUESTS)]
    crashed = crashing.methods.count("POST")
    assert crashed >= REQUESTS // 4
    assert statuses.count(502) == crashed  # each POST the dead replica held failed, visibly
    assert statuses.count(204) == REQUESTS - crashed == Answering.counts["POST"]  # none applied twice


def test_reads_that_reached_no_replica_go_to_another(traefik):
    base, _ = traefik
    before = Answering.counts["GET"]
    assert [status(base, "GET", "/gone/") for _ in range(REQUESTS)] == [200] * REQUESTS
    assert Answering.counts["GET"] - before == REQUESTS
