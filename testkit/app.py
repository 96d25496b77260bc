"""The app served the production way: ``flask --app minitwit migrate``, then gunicorn with
``service/gunicorn.conf.py``, on free loopback ports, ready once /health and the metrics answer.

Only what the caller passes as settings reaches the processes besides the environment's
own variables (e.g. WEB_CONCURRENCY, GUNICORN_THREADS, DB_POOL_SIZE for a benchmark); the
MiniTwit settings that would make a run depend on the developer's shell are dropped.
"""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from testkit import REPO_ROOT
from testkit import SERVICE_DIR
from testkit.ports import free_port
from testkit.processes import stop
from testkit.processes import wait_for_http
from testkit.skip import Unavailable

# Settings a developer's shell or a container may carry that must not leak into a run unless
# the caller passes them; PROMETHEUS_MULTIPROC_DIR in particular switches prometheus_client to files.
HERMETIC = ("MINITWIT_ENV", "PROMETHEUS_MULTIPROC_DIR", "SECRET_KEY_FILE", "DATABASE_URL_FILE")


@dataclass(frozen=True)
class Server:
    """A running gunicorn: its app URL, metrics URL, log file and master process id."""

    url: str
    metrics_url: str
    log_path: Path
    pid: int


def app_env(database_url: str, service_dir: Path = SERVICE_DIR, **settings: str) -> dict[str, str]:
    """Environment for a MiniTwit process: the caller's, minus HERMETIC, plus the database and ``settings``."""
    env = {name: value for name, value in os.environ.items() if name not in HERMETIC}
    return {**env, "PYTHONPATH": str(service_dir), "DATABASE_URL": database_url, **settings}


def run_flask(database_url: str, *args: str, service_dir: Path = SERVICE_DIR, **settings: str):
    """Run ``flask --app minitwit <args>`` in a fresh process; raise with its output if it fails."""
    cmd = [sys.executable, "-m", "flask", "--app", "minitwit", *args]
    env = app_env(database_url, service_dir, **settings)
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


@contextlib.contextmanager
def gunicorn_server(
    root: Path, database_url: str, *, service_dir: Path = SERVICE_DIR, log_path: Path | None = None, **settings: str
) -> Iterator[Server]:
    """Migrate ``database_url``, serve it under gunicorn, wait until it is up; stop it after the block.

    ``root`` holds the log (unless ``log_path`` is given) and the metrics directory; ``settings``
    are environment variables for the app (MINITWIT_ENV defaults to development).
    """
    if not (service_dir / "minitwit").is_dir():
        raise Unavailable(f"{service_dir / 'minitwit'} does not exist")
    port, metrics_port = free_port(), free_port()
    settings = {"HOST": "127.0.0.1", "PORT": str(port), "METRICS_PORT": str(metrics_port)} | settings
    settings.setdefault("MINITWIT_ENV", "development")
    run_flask(database_url, "migrate", service_dir=service_dir, **settings)
    multiproc = {"PROMETHEUS_MULTIPROC_DIR": str(root / f"metrics-{port}")}
    log_path = log_path or root / f"gunicorn-{port}.log"
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(service_dir / "gunicorn.conf.py"), "minitwit:create_app()"]
    env = app_env(database_url, service_dir, **settings, **multiproc)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", log_path, proc.pid)
    try:
        wait_for_http(server.url + "/health", proc, log_path)
        wait_for_http(server.metrics_url, proc, log_path)
        yield server
    finally:
        stop(proc)
