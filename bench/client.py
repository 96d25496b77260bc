"""A minimal HTTP/1.1 client for the load generator: one connection per request, like the simulator.

Raw sockets instead of ``requests``/``http.client`` keep the generator's CPU cost per request low (it shares
two cores with the app and PostgreSQL). Errors are named like the simulator's log lines: ``ConnectionError``
(refused, reset, connect or TLS timeout, malformed answer) and ``ReadTimeout`` (no answer within the timeout).
As in requests, the timeout applies to the connect and to each read, not to the whole exchange.
"""

import asyncio
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.scenario import AUTHORIZATION


@dataclass(frozen=True)
class Target:
    """Where requests go: ``host``/``port`` as in the URL, ``connect_host`` where the socket connects."""

    host: str
    port: int
    base_path: str
    tls: bool
    connect_host: str
    ssl_context: ssl.SSLContext | None = None

    @property
    def host_header(self) -> str:
        """The Host header value (port only when not the scheme's default)."""
        default = 443 if self.tls else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def parse_target(url: str, cacert: str | None = None, resolve: str | None = None) -> Target:
    """Parse ``http(s)://host[:port][/base]``; ``resolve`` is an address to connect to instead of DNS."""
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    context = ssl.create_default_context(cafile=cacert) if tls else None
    port = parts.port or (443 if tls else 80)
    base = parts.path.rstrip("/")
    return Target(parts.hostname, port, base, tls, resolve or parts.hostname, context)


def build_request(target: Target, method: str, path: str, body: bytes = b"", auth: bool = True) -> bytes:
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


def fetch(target: Target, raw: bytes, timeout: float) -> tuple[int | None, str | None]:
    """Send one request on a fresh connection; return (status, None) or (None, error kind)."""
    try:
        sock = socket.create_connection((target.connect_host, target.port), timeout=timeout)
    except OSError:
        return None, "ConnectionError"
    try:
        if target.ssl_context:
            sock = target.ssl_context.wrap_socket(sock, server_hostname=target.host)
        sock.sendall(raw)
        return _read_status(sock), None
    except TimeoutError:
        return None, "ReadTimeout"
    except (OSError, ValueError, IndexError):
        return None, "ConnectionError"
    finally:
        sock.close()


def _read_status(sock: socket.socket) -> int:
    """Read the head and the whole body (by Content-Length, else until close) and return the status."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError("connection closed before the response head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    status, length = parse_head(head)
    received = len(body)
    while length is None or received < length:
        chunk = sock.recv(65536)
        if not chunk:
            if length is None:
                break
            raise ValueError("connection closed inside the response body")
        received += len(chunk)
    return status


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
