"""A tiny HTTPS client that always connects to 127.0.0.1 and speaks to a host name.

The drills reach the stack exactly like a user would (through Traefik, over TLS,
with the public host name in SNI and ``Host``), but the TCP connection always goes
to the loopback address, so no traffic ever leaves the machine.  The standard
library is enough and keeps the harness free of extra dependencies.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from dataclasses import dataclass
from dataclasses import field

from minitwit.config import DEFAULT_SIMULATOR_AUTH
from minitwit.config import basic_authorization

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Target:
    """Where the stack answers and how to talk to it."""

    host: str = "minitwit.test"
    port: int = 443
    # Where TCP goes: loopback, or the multi-node lab's first manager (a test host's address).
    address: str = LOOPBACK
    cafile: str | None = None
    api_prefix: str = "/api"
    simulator_auth: str = DEFAULT_SIMULATOR_AUTH
    timeout: float = 5.0
    scheme: str = "https"

    def auth_header(self) -> str:
        """Return the simulator's Basic authorization header value."""
        return basic_authorization(self.simulator_auth)


@dataclass
class Response:
    """Outcome of one request: a status (None on a transport error) and timing."""

    status: int | None
    body: bytes = b""
    latency: float = 0.0
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def json(self):
        """Decode the body as JSON, or return None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class _LoopbackHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS connection to 127.0.0.1 that verifies the certificate for ``host``."""

    def __init__(self, target: Target, context: ssl.SSLContext):
        super().__init__(target.address, target.port, timeout=target.timeout, context=context)
        self._server_name = target.host
        self._address = target.address
        self._tls_context = context

    def connect(self):
        """Open TCP to the target address, then TLS with SNI set to the public host name."""
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls_context.wrap_socket(sock, server_hostname=self._server_name)


def tls_context(cafile: str | None) -> ssl.SSLContext:
    """Build a verifying TLS context that trusts ``cafile`` (e.g. Pebble's root)."""
    return ssl.create_default_context(cafile=cafile)


def _open(target: Target, context: ssl.SSLContext | None) -> http.client.HTTPConnection:
    if target.scheme == "http":
        return http.client.HTTPConnection(target.address, target.port, timeout=target.timeout)
    return _LoopbackHTTPSConnection(target, context or tls_context(target.cafile))


def send(
    target: Target,
    method: str,
    path: str,
    payload: dict | None = None,
    *,
    auth: bool = False,
    request_id: str | None = None,
    context: ssl.SSLContext | None = None,
) -> Response:
    """Send one request on a new connection (``Connection: close``, as the simulator).

    Transport problems (refused, reset, timeout, TLS) are returned as a Response with
    ``status=None`` and ``error`` set, never raised, so a drill can count them.
    """
    headers = {"Host": target.host, "Connection": "close"}
    body = None
    if payload is not None:
        body = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    if auth:
        headers["Authorization"] = target.auth_header()
    if request_id:
        headers["X-Request-ID"] = request_id
    started = time.monotonic()
    conn = _open(target, context)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, data, time.monotonic() - started, None, dict(resp.getheaders()))
    except (OSError, http.client.HTTPException) as exc:
        return Response(None, b"", time.monotonic() - started, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
