"""The one HTTP/1.1 client of bench/ and drills/: one connection per request, like the simulator.

It connects to ``connect_host`` (127.0.0.1, or a test host's address) but speaks to the public host
name in ``Host`` and TLS SNI, like ``curl --resolve``, so a run through Traefik never leaves the machine.
Raw sockets instead of ``requests``/``http.client`` keep the generator's CPU cost per request low (it
shares two cores with the app and PostgreSQL). Errors are named like the simulator's log lines:
``ConnectionError`` (refused, reset, connect or TLS timeout, malformed answer) and ``ReadTimeout`` (no
answer within the timeout); they are returned, never raised, so a run can count them. As in requests,
the timeout applies to the connect and to each read, not to the whole exchange.

Two ways to send: ``fetch``/``fetch_async`` take a request serialised once by ``build_request`` and
return only the status (the replay's hot path); ``send`` builds the request and returns a ``Response``
with body and latency (the drills, which read answers back).
"""

import asyncio
import json
import socket
import ssl
import time
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from urllib.parse import urlsplit

from bench.scenario import AUTHORIZATION

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Target:
    """Where requests go: ``host``/``port`` as in the URL, ``connect_host`` where the socket connects.

    ``base_path`` (the URL's path, e.g. the API prefix) goes before every request path; ``root`` is the
    same server without it. ``timeout`` is what ``send`` waits (``fetch`` takes its own).
    """

    host: str
    port: int
    base_path: str
    tls: bool
    connect_host: str
    ssl_context: ssl.SSLContext | None = None
    timeout: float = 5.0

    @property
    def host_header(self) -> str:
        """The Host header value (port only when not the scheme's default)."""
        default = 443 if self.tls else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"

    @property
    def root(self) -> "Target":
        """The same server without the base path (``/public``, ``/health`` and ``/ready`` live at the root)."""
        return replace(self, base_path="")


def parse_target(url: str, cacert: str | None = None, resolve: str | None = None, timeout: float = 5.0) -> Target:
    """Parse ``http(s)://host[:port][/base]``; ``resolve`` is an address to connect to instead of DNS."""
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    context = ssl.create_default_context(cafile=cacert) if tls else None
    port = parts.port or (443 if tls else 80)
    base = parts.path.rstrip("/")
    return Target(parts.hostname, port, base, tls, resolve or parts.hostname, context, timeout)


@dataclass
class Response:
    """Outcome of one ``send``: a status (None on a transport error, then ``error`` says which)."""

    status: int | None
    body: bytes = b""
    latency: float = 0.0
    error: str | None = None
    # Header names lower-cased (the last value of a repeated header wins).
    headers: dict[str, str] = field(default_factory=dict)

    def json(self):
        """Decode the body as JSON, or return None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def build_request(
    target: Target,
    method: str,
    path: str,
    body: bytes = b"",
    auth: bool = True,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """Serialise one request once, so sending it costs a single ``sendall``."""
    lines = [
        f"{method} {target.base_path}{path} HTTP/1.1",
        f"Host: {target.host_header}",
        "User-Agent: minitwit-bench",
        "Accept: */*",
        "Connection: close",
    ]
    if auth:
        lines.append(f"Authorization: {AUTHORIZATION}")
    if request_id:
        lines.append(f"X-Request-ID: {request_id}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_head(head: bytes) -> tuple[int, int | None]:
    """Return (status, Content-Length or None) from a response head (without the blank line)."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return status, int(value.strip())
    return status, None


def send(
    target: Target,
    method: str,
    path: str,
    payload: dict | None = None,
    *,
    auth: bool = False,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Send one request (a JSON ``payload`` makes it a body) and return the whole answer, timed.

    ``headers`` are sent as given (an ``Authorization`` of your own, for instance, with ``auth`` False).
    """
    body = json.dumps(payload).encode() if payload is not None else b""
    raw = build_request(target, method, path, body, auth, request_id, headers)
    started = time.perf_counter()
    head: list[bytes] = []
    status, data, error = _exchange(target, raw, target.timeout, keep_body=True, head_out=head)
    return Response(status, data, time.perf_counter() - started, error, parse_headers(head[0] if head else b""))


def parse_headers(head: bytes) -> dict[str, str]:
    """The header fields of a response head (without the status line), names lower-cased."""
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            fields[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return fields


def fetch(target: Target, raw: bytes, timeout: float) -> tuple[int | None, str | None]:
    """Send one serialised request on a fresh connection; return (status, None) or (None, error kind)."""
    status, _, error = _exchange(target, raw, timeout, keep_body=False)
    return status, error


def _exchange(
    target: Target, raw: bytes, timeout: float, keep_body: bool, head_out: list[bytes] | None = None
) -> tuple[int | None, bytes, str | None]:
    """Connect, send ``raw``, read the answer: (status, body or b"", None) or (None, b"", error kind).

    ``head_out``, when given, receives the response head (status line and header fields).
    """
    try:
        sock = socket.create_connection((target.connect_host, target.port), timeout=timeout)
    except OSError:
        return None, b"", "ConnectionError"
    try:
        if target.ssl_context:
            sock = target.ssl_context.wrap_socket(sock, server_hostname=target.host)
        sock.sendall(raw)
        return *_read_response(sock, keep_body, head_out), None
    except TimeoutError:
        return None, b"", "ReadTimeout"
    except (OSError, ValueError, IndexError):
        return None, b"", "ConnectionError"
    finally:
        sock.close()


def _read_response(sock: socket.socket, keep_body: bool, head_out: list[bytes] | None = None) -> tuple[int, bytes]:
    """Read the head and the whole body (by Content-Length, else until close); return status and body.

    The body is kept only when asked for (the replay needs just the status and reads the body only to
    finish the exchange). A chunked body is only possible without Content-Length, so it is read to the end
    and then decoded.
    """
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError("connection closed before the response head")
        buf += chunk
    head, _, first = buf.partition(b"\r\n\r\n")
    if head_out is not None:
        head_out.append(head)
    status, length = parse_head(head)
    chunks, received = [first], len(first)
    while length is None or received < length:
        chunk = sock.recv(65536)
        if not chunk:
            if length is None:
                break
            raise ValueError("connection closed inside the response body")
        received += len(chunk)
        if keep_body:
            chunks.append(chunk)
    if not keep_body:
        return status, b""
    body = b"".join(chunks)
    return status, dechunk(body) if length is None and _is_chunked(head) else body


def _is_chunked(head: bytes) -> bool:
    """Whether the head says ``Transfer-Encoding: chunked``."""
    return any(
        name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower()
        for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
    )


def dechunk(body: bytes) -> bytes:
    """Decode a chunked body (``size CRLF data CRLF ... 0 CRLF CRLF``); trailers are dropped."""
    out, rest = [], body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            return b"".join(out)
        if len(rest) < size + 2:
            raise ValueError("chunked body ends inside a chunk")
        out.append(rest[:size])
        rest = rest[size + 2 :]


async def fetch_async(target: Target, raw: bytes, timeout: float) -> tuple[int | None, str | None]:
    """The asyncio twin of ``fetch`` (same error names; the timeout bounds connect, head and body reads)."""
    tls = {"ssl": target.ssl_context, "server_hostname": target.host} if target.ssl_context else {}
    try:
        conn = asyncio.open_connection(target.connect_host, target.port, **tls)
        reader, writer = await asyncio.wait_for(conn, timeout)
    except (OSError, TimeoutError):
        return None, "ConnectionError"
    try:
        writer.write(raw)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status, length = parse_head(head[:-4])
        body = reader.readexactly(length) if length is not None else reader.read()
        await asyncio.wait_for(body, timeout)
        return status, None
    except TimeoutError:
        return None, "ReadTimeout"
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None, "ConnectionError"
    finally:
        writer.close()
