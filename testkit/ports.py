"""Free loopback ports for the servers a check starts."""

import socket


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the race window is tiny)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
