"""A throwaway PostgreSQL cluster in a temp dir, and databases created and dropped in a server.

The cluster runs on 127.0.0.1 with trust authentication and a private socket directory. initdb
refuses to run as root, so as root every PostgreSQL program runs as the ``postgres`` user (present
wherever Debian's package is installed) or ``nobody``.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

from testkit.ports import free_port
from testkit.skip import Unavailable

# Durability off: a test cluster is thrown away, so nothing is lost and every commit is faster.
NO_DURABILITY = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def postgres_bindir() -> pathlib.Path:
    """The directory with initdb and pg_ctl (pg_config, Debian's layout, PATH), or raise Unavailable."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(pathlib.Path(out.stdout.strip()))
    candidates += sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if shutil.which("initdb"):
        candidates.append(pathlib.Path(shutil.which("initdb")).parent)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise Unavailable("no PostgreSQL server programs initdb and pg_ctl (install postgresql)")


class ThrowawayPostgres:
    """A private PostgreSQL cluster: ``start()`` it (or use ``with``), ``stop()`` deletes it.

    ``durable=True`` keeps PostgreSQL's own fsync settings, for benchmarks that measure what
    production pays per commit; tests leave it off.
    """

    def __init__(self, max_connections: int = 200, durable: bool = False):
        self.bindir = postgres_bindir()
        self.max_connections = max_connections
        self.durable = durable
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="minitwit-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            self._drop_root()

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _drop_root(self):
        """Hand the temp dir to an unprivileged user and run every command as it."""
        user = "postgres" if _user_exists("postgres") else "nobody"
        entry = pwd.getpwnam(user)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.prefix = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]

    def _run(self, *args: str):
        """Run one PostgreSQL program, raising with its output when it fails."""
        cmd = [*self.prefix, str(self.bindir / args[0]), *args[1:]]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, env=_c_env())
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")

    def start(self) -> ThrowawayPostgres:
        """initdb (first time only) and start the server; wait until it accepts connections."""
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root}"
            f" -c max_connections={self.max_connections}"
        )
        if not self.durable:
            options += " " + NO_DURABILITY
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "-t", "60", "start")
        return self

    @property
    def pid(self) -> int:
        """Process id of the running postmaster (for CPU figures)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def halt(self):
        """Stop the server, keeping its data (an outage, for drills); ``start()`` brings it back."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop(self):
        """Stop the server and delete its files."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _user_exists(name: str) -> bool:
    """True when the system has a user called ``name``."""
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _c_env() -> dict:
    """Environment for PostgreSQL programs: a locale that always exists."""
    return {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}


def create_pg_database(server_url: str, name: str) -> str:
    """Create an empty database ``name`` next to ``server_url`` and return its URL (same scheme)."""
    import psycopg

    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(server_url: str, name: str):
    """Drop database ``name`` (terminating leftover sessions)."""
    import psycopg

    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def pg_database(server_url: str, name: str) -> Iterator[str]:
    """A fresh database ``name`` in ``server_url``'s server for the block; dropped afterwards."""
    url = create_pg_database(server_url, name)
    try:
        yield url
    finally:
        drop_pg_database(server_url, name)


def libpq_url(url: str) -> str:
    """Turn a SQLAlchemy URL (``postgresql+psycopg://``) into a libpq one."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def terminate_backends(admin, pids, timeout: float = 10.0):
    """pg_terminate_backend each pid and wait until those backend processes have exited.

    pg_terminate_backend only signals the backend; its socket closes a moment later, when
    the process exits. The servers in these checks run on this machine, so the wait is on
    the process itself.
    """
    for pid in pids:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    deadline = time.monotonic() + timeout
    for pid in pids:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            except PermissionError:
                pass  # another user's process: still there
            if time.monotonic() > deadline:
                raise AssertionError(f"backend {pid} still running {timeout}s after pg_terminate_backend")
            time.sleep(0.01)
