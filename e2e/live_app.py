"""Start the real MiniTwit on a fresh database, for the browser tests.

Nothing is faked: ``testkit.app.gunicorn_server`` migrates with ``flask --app minitwit migrate``
and serves with ``gunicorn -c service/gunicorn.conf.py "minitwit:create_app()"``, as in
production, on free loopback ports.
"""

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from testkit import SERVICE_DIR
from testkit.app import gunicorn_server
from testkit.postgres import ThrowawayPostgres
from testkit.postgres import pg_database

# The app's source; another copy can be tested (e.g. to prove a broken template fails).
SERVICE = Path(os.environ.get("E2E_SERVICE_DIR", SERVICE_DIR)).resolve()


@contextlib.contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    """A fresh SQLite file in the run's temp folder."""
    yield f"sqlite:///{workdir / 'e2e.db'}"


@contextlib.contextmanager
def postgresql_database(workdir: Path) -> Iterator[str]:
    """A fresh PostgreSQL database in TEST_DATABASE_URL's server or in a throwaway one."""
    name = f"minitwit_e2e_{uuid.uuid4().hex[:10]}"
    server_url = os.environ.get("TEST_DATABASE_URL")
    if server_url:
        with pg_database(server_url, name) as url:
            yield url
        return
    with ThrowawayPostgres() as server, pg_database(server.url, name) as url:
        yield url


@contextlib.contextmanager
def local_app(database: str, artifacts: Path) -> Iterator[str]:
    """The whole local setup for one database kind ("sqlite" or "postgresql"): yield its base URL."""
    factories = {"sqlite": sqlite_database, "postgresql": postgresql_database}
    if database not in factories:
        raise ValueError(f"E2E_DATABASE must be sqlite or postgresql, not {database!r}")
    with tempfile.TemporaryDirectory(prefix="minitwit-e2e-") as tmp:
        with (
            factories[database](Path(tmp)) as url,
            gunicorn_server(
                Path(tmp), url, service_dir=SERVICE, log_path=artifacts / "app.log", LOG_LEVEL="warning"
            ) as server,
        ):
            yield server.url
