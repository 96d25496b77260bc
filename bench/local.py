"""Throwaway PostgreSQL and gunicorn for benchmarks: started here, stopped at exit, nothing left behind.

Both come from ``testkit``: PostgreSQL from ``pg_config --bindir`` on 127.0.0.1 with its own durability
settings (a benchmark measures what production pays per commit), and the app served exactly like
production: ``flask --app minitwit migrate`` then gunicorn with ``service/gunicorn.conf.py``, in production
mode. WEB_CONCURRENCY, GUNICORN_THREADS, GUNICORN_WORKER_CLASS, DB_POOL_SIZE and DB_MAX_OVERFLOW (and
HASH_CONCURRENCY) from the caller's environment pass through unchanged.
"""

import os
import secrets
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testkit import SERVICE_DIR
from testkit.app import gunicorn_server
from testkit.postgres import ThrowawayPostgres
from testkit.postgres import create_pg_database
from testkit.postgres import libpq_url

# BENCH_SERVICE_DIR benchmarks another copy of service/ (a worktree, an experiment) with the same harness.
SERVICE = Path(os.environ.get("BENCH_SERVICE_DIR", SERVICE_DIR)).resolve()
TUNABLES = (
    "WEB_CONCURRENCY",
    "GUNICORN_THREADS",
    "GUNICORN_WORKER_CLASS",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "HASH_CONCURRENCY",
)
POSTGRES_DEFAULT_MAX_CONNECTIONS = 100  # as the stack's PostgreSQL: the pool budget must fit it


@dataclass(frozen=True)
class LocalStack:
    """A running local stack: where to send requests, the database, and the process ids to watch."""

    base_url: str
    database_url: str
    app_pid: int
    postgres_pid: int


def production_settings() -> dict[str, str]:
    """Production mode with a random secret, unless the caller's environment sets them."""
    return {
        "MINITWIT_ENV": os.environ.get("MINITWIT_ENV", "production"),
        "SECRET_KEY": os.environ.get("SECRET_KEY", secrets.token_hex(32)),
    }


@contextmanager
def local_stack():
    """PostgreSQL + gunicorn in a temporary directory, removed afterwards; yield a LocalStack."""
    workdir = Path(tempfile.mkdtemp(prefix="minitwit-bench-"))
    try:
        with ThrowawayPostgres(max_connections=POSTGRES_DEFAULT_MAX_CONNECTIONS, durable=True) as postgres:
            database_url = create_pg_database(postgres.url, "minitwit")
            settings = production_settings()
            with gunicorn_server(workdir, database_url, service_dir=SERVICE, **settings) as app:
                yield LocalStack(app.url, database_url, app.pid, postgres.pid)
    finally:
        if os.environ.get("BENCH_KEEP_WORKDIR") != "1":
            shutil.rmtree(workdir, ignore_errors=True)


def reset_database(database_url: str) -> None:
    """Empty every application table (keeping Alembic's version), so each replay starts from zero."""
    import psycopg  # imported here: only local runs need it

    with psycopg.connect(libpq_url(database_url)) as conn:
        tables = conn.execute(
            "SELECT quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        ).fetchall()
        if tables:
            conn.execute(f"TRUNCATE {', '.join(t for (t,) in tables)} RESTART IDENTITY CASCADE")
