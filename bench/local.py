"""Throwaway PostgreSQL and gunicorn for benchmarks: started here, stopped at exit, nothing left behind.

PostgreSQL comes from ``pg_config --bindir`` (initdb + pg_ctl, trust auth on 127.0.0.1 and a private
socket directory, default settings otherwise); as root it runs as the ``postgres`` user, because initdb
refuses root. The app is served exactly like production: ``flask --app minitwit migrate`` then gunicorn with
``service/gunicorn.conf.py``; WEB_CONCURRENCY, GUNICORN_THREADS, GUNICORN_WORKER_CLASS, DB_POOL_SIZE and
DB_MAX_OVERFLOW (and HASH_CONCURRENCY) from the caller's environment pass through unchanged.
"""

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# BENCH_SERVICE_DIR benchmarks another copy of service/ (a worktree, an experiment) with the same harness.
SERVICE = Path(os.environ.get("BENCH_SERVICE_DIR", REPO / "service")).resolve()
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"
STRICT = os.environ.get("MINITWIT_STRICT") == "1"
TUNABLES = (
    "WEB_CONCURRENCY",
    "GUNICORN_THREADS",
    "GUNICORN_WORKER_CLASS",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "HASH_CONCURRENCY",
)


class Unavailable(RuntimeError):
    """A tool the benchmark needs is missing (a skip locally, a failure under MINITWIT_STRICT=1)."""


def free_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_checked(cmd: list[str], **kwargs) -> None:
    """Run a command quietly; on failure raise with the tail of its output, which says why."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip()[-2000:]
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{tail}")


def pg_bindir() -> Path:
    """PostgreSQL's server binaries, found through pg_config."""
    pg_config = shutil.which("pg_config")
    if not pg_config:
        raise Unavailable("pg_config not found (install postgresql)")
    bindir = Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
    if not (bindir / "initdb").exists():
        raise Unavailable(f"initdb not found in {bindir} (install the postgresql server package)")
    return bindir


def _as_postgres(cmd: list[str]) -> list[str]:
    """Prefix a command so it runs as the postgres user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise Unavailable("running as root needs a 'postgres' user (install postgresql)") from exc
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextmanager
def postgres(workdir: Path):
    """Start a fresh PostgreSQL cluster in ``workdir``; yield a SQLAlchemy URL for database ``minitwit``."""
    bindir, port = pg_bindir(), free_port()
    data, sockets = workdir / "pgdata", workdir / "pgsock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        shutil.chown(sockets, "postgres")
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "minitwit", "--auth=trust", "-E", "UTF8"]
    run_checked(_as_postgres([*initdb, "--no-locale"]))
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1"
    ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(workdir / "postgres.log"), "-w", "-t", "60"]
    run_checked(_as_postgres([*ctl, "-o", options, "start"]))
    try:
        createdb = [str(bindir / "createdb"), "-h", str(sockets), "-p", str(port), "-U", "minitwit", "minitwit"]
        run_checked(_as_postgres(createdb))
        yield f"postgresql+psycopg://minitwit@127.0.0.1:{port}/minitwit"
    finally:
        subprocess.run(_as_postgres([*ctl, "-m", "fast", "stop"]), capture_output=True)


def app_env(database_url: str, port: int) -> dict[str, str]:
    """Environment for migrate and gunicorn: production mode, a random secret, our ports and database."""
    env = dict(os.environ)
    env.setdefault("MINITWIT_ENV", "production")
    env.setdefault("SECRET_KEY", secrets.token_hex(32))
    env |= {
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "METRICS_PORT": str(free_port()),
        "PYTHONPATH": str(SERVICE),
    }
    return env


@contextmanager
def app_server(database_url: str, workdir: Path):
    """Migrate, start gunicorn as in production, wait for /health; yield the base URL (http://host:port)."""
    if not (SERVICE / "minitwit").is_dir():
        raise Unavailable(f"{SERVICE / 'minitwit'} does not exist yet")
    port = free_port()
    env = app_env(database_url, port)
    run_checked([str(VENV_BIN / "flask"), "--app", "minitwit", "migrate"], env=env, cwd=REPO)
    log = open(workdir / "gunicorn.log", "wb")
    cmd = [str(VENV_BIN / "gunicorn"), "-c", str(SERVICE / "gunicorn.conf.py"), "minitwit:create_app()"]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base + "/health", proc)
        yield base, proc.pid
    finally:
        stop(proc)
        log.close()


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    """Poll ``url`` until it answers 200; fail if the server exits or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before becoming healthy")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not healthy after {timeout_s}s")


def stop(proc: subprocess.Popen) -> None:
    """Stop gunicorn gracefully (SIGTERM), killing it if it does not exit within 35 s."""
    proc.terminate()
    try:
        proc.wait(timeout=35)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class LocalStack:
    """A running local stack: where to send requests, the database, and the process ids to watch."""

    base_url: str
    database_url: str
    app_pid: int
    postgres_pid: int


@contextmanager
def local_stack():
    """PostgreSQL + gunicorn in a temporary directory, removed afterwards; yield a LocalStack."""
    workdir = Path(tempfile.mkdtemp(prefix="minitwit-bench-"))
    try:
        with postgres(workdir) as database_url, app_server(database_url, workdir) as (base, app_pid):
            postmaster = int((workdir / "pgdata" / "postmaster.pid").read_text().split()[0])
            yield LocalStack(base, database_url, app_pid, postmaster)
    finally:
        if os.environ.get("BENCH_KEEP_WORKDIR") != "1":
            shutil.rmtree(workdir, ignore_errors=True)


def reset_database(database_url: str) -> None:
    """Empty every application table (keeping Alembic's version), so each replay starts from zero."""
    import psycopg  # imported here: only local runs need it

    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        tables = conn.execute(
            "SELECT quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        ).fetchall()
        if tables:
            conn.execute(f"TRUNCATE {', '.join(t for (t,) in tables)} RESTART IDENTITY CASCADE")
