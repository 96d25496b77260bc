"""Start the real MiniTwit under gunicorn on a fresh database, for the browser tests.

Nothing is faked: the app is migrated with `flask --app minitwit migrate` and served
by `gunicorn -c service/gunicorn.conf.py "minitwit:create_app()"`, as in production,
on free loopback ports.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
# The app's source; another copy can be tested (e.g. to prove a broken template fails).
SERVICE = Path(os.environ.get("E2E_SERVICE_DIR", REPO / "service")).resolve()
START_TIMEOUT_S = 40


class Unavailable(Exception):
    """A needed tool or service is missing (skip, or fail under MINITWIT_STRICT=1)."""


def get_free_port() -> int:
    """Ask the kernel for a free loopback port (tiny race window, fine for tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    """A fresh SQLite file in the run's temp folder."""
    yield f"sqlite:///{workdir / 'e2e.db'}"


@contextlib.contextmanager
def postgresql_database(workdir: Path) -> Iterator[str]:
    """A fresh PostgreSQL database in TEST_DATABASE_URL's server or a throwaway one."""
    admin_url = os.environ.get("TEST_DATABASE_URL")
    if admin_url:
        yield from _fresh_database_in(admin_url)
        return
    with _throwaway_server(workdir) as server_url:
        yield from _fresh_database_in(server_url)


def _fresh_database_in(admin_url: str) -> Iterator[str]:
    """Create a uniquely named database next to admin_url's and drop it afterwards."""
    name = f"minitwit_e2e_{uuid.uuid4().hex[:10]}"
    plain_url = admin_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = plain_url.rpartition("/")
    try:
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    finally:
        with psycopg.connect(plain_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def _throwaway_server(workdir: Path) -> Iterator[str]:
    """initdb + pg_ctl a private PostgreSQL on a free loopback port (as `postgres`)."""
    bindir = _postgres_bindir()
    pgdir = workdir / "pg"
    pgdir.mkdir()
    as_user = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(workdir, "postgres")
        shutil.chown(pgdir, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = get_free_port()
    data, log = pgdir / "data", pgdir / "server.log"
    run = [
        *as_user,
        f"{bindir}/initdb",
        "-D",
        str(data),
        "-U",
        "postgres",
        "--auth=trust",
    ]
    subprocess.run([*run, "--no-sync"], check=True, capture_output=True)
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {pgdir} -c fsync=off"
    ctl = [
        *as_user,
        f"{bindir}/pg_ctl",
        "-D",
        str(data),
        "-l",
        str(log),
        "-w",
        "-t",
        "30",
    ]
    subprocess.run([*ctl, "-o", opts, "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*ctl, "-m", "fast", "stop"], check=False, capture_output=True)


def _postgres_bindir() -> str:
    """Where initdb/pg_ctl live (`pg_config --bindir`), or raise Unavailable."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout
        if Path(bindir.strip(), "initdb").exists():
            return bindir.strip()
    raise Unavailable("no TEST_DATABASE_URL and no PostgreSQL server binaries (pg_config --bindir)")


def app_environment(database_url: str, port: int) -> dict[str, str]:
    """Environment for migrate and gunicorn: fresh DB, free ports, development mode."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(SERVICE),
        DATABASE_URL=database_url,
        MINITWIT_ENV="development",
        HOST="127.0.0.1",
        PORT=str(port),
        METRICS_PORT=str(get_free_port()),
        LOG_LEVEL="warning",
    )
    return env


@contextlib.contextmanager
def gunicorn_app(database_url: str, log_path: Path) -> Iterator[str]:
    """Migrate, serve under gunicorn, wait for /health; yield the URL; stop on exit."""
    if not (REPO / "service" / "gunicorn.conf.py").exists():
        raise Unavailable("service/gunicorn.conf.py not found (the app is not there yet)")
    port = get_free_port()
    env = app_environment(database_url, port)
    migrate = [sys.executable, "-m", "flask", "--app", "minitwit", "migrate"]
    subprocess.run(migrate, cwd=REPO, env=env, check=True, capture_output=True)
    serve = [sys.executable, "-m", "gunicorn", "-c", str(SERVICE / "gunicorn.conf.py")]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*serve, "minitwit:create_app()"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, proc, log_path)
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=40)


def wait_until_healthy(base_url: str, proc: subprocess.Popen, log_path: Path) -> None:
    """Poll GET /health until 200; fail with the log if gunicorn dies or is slow."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{log_path.read_text()}")
        with contextlib.suppress(urllib.error.URLError, ConnectionError):
            with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.3)
    raise RuntimeError(f"gunicorn not healthy after {START_TIMEOUT_S}s:\n{log_path.read_text()}")


@contextlib.contextmanager
def local_app(database: str, artifacts: Path) -> Iterator[str]:
    """The whole local setup for one database kind ("sqlite" or "postgresql")."""
    factories = {"sqlite": sqlite_database, "postgresql": postgresql_database}
    if database not in factories:
        raise ValueError(f"E2E_DATABASE must be sqlite or postgresql, not {database!r}")
    with tempfile.TemporaryDirectory(prefix="minitwit-e2e-") as tmp:
        with (
            factories[database](Path(tmp)) as url,
            gunicorn_app(url, artifacts / "app.log") as base,
        ):
            yield base
