"""Test helpers: UI actions, API clients, factories and a throwaway PostgreSQL server.

Everything here is plain functions and small classes so the test files read like the
original MiniTwit tests: ``register(client, "foo", "default")``, ``api.post(...)``.
"""

from __future__ import annotations

import contextlib
import functools
import json as jsonlib
import os
import pathlib
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import pytest
from minitwit.config import DEFAULT_SIMULATOR_AUTH
from minitwit.config import basic_authorization

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SERVICE_DIR = REPO_ROOT / "service"
STRICT = os.environ.get("MINITWIT_STRICT") == "1"
VENV_BIN = os.path.dirname(sys.executable)

API_AUTH = {"Authorization": basic_authorization(DEFAULT_SIMULATOR_AUTH)}
NOT_AUTHORIZED = {
    "status": 403,
    "error_msg": "You are not authorized to use this resource!",
}


# --- building apps ------------------------------------------------------------

TEST_SECRET_KEY = "test-secret-key-not-for-production"


def test_config(database_url: str, **overrides) -> dict:
    """The mapping every test app is created with (flaskr's ``test_config``)."""
    from minitwit.config import engine_options

    return {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": database_url,
        # options follow the URL (SQLite's busy timeout is no libpq option)
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(database_url),
        **overrides,
    }


test_config.__test__ = False  # not a test, despite the name


def make_app(database_url: str, **overrides):
    """Create an app bound to ``database_url``."""
    from minitwit import create_app

    return create_app(test_config(database_url, **overrides))


def dispose(app):
    """Close the app's pooled connections so PostgreSQL sessions do not pile up."""
    from minitwit.extensions import db

    with app.app_context():
        db.engine.dispose()


def migrate(database_url: str):
    """Bring ``database_url`` to the newest schema with the app's migrate command."""
    app = make_app(database_url)
    result = invoke(app, "migrate")
    dispose(app)
    assert result.exit_code == 0, result.output + repr(result.exception)


def invoke(app, *args: str):
    """Run a ``flask`` command of ``app`` in-process, inside an app context like the CLI."""
    with app.app_context():
        return app.test_cli_runner().invoke(args=list(args))


# --- UI actions (the original MiniTwit test helpers: plain form posts, no token) -------


def register(client, username, password, password2=None, email=None):
    """Register through the web form (the original MiniTwit helper)."""
    if password2 is None:
        password2 = password
    if email is None:
        email = username + "@example.com"
    data = {
        "username": username,
        "password": password,
        "password2": password2,
        "email": email,
    }
    return client.post("/register", data=data, follow_redirects=True)


def login(client, username, password):
    """Log in through the web form."""
    data = {
        "username": username,
        "password": password,
    }
    return client.post("/login", data=data, follow_redirects=True)


def register_and_login(client, username, password):
    """Register a user and log them in."""
    register(client, username, password)
    return login(client, username, password)


def logout(client):
    """Log the current user out."""
    return client.get("/logout", follow_redirects=True)


def add_message(client, text):
    """Post a message from My Timeline; check the flash when the text is not empty."""
    data = {"text": text}
    rv = client.post("/add_message", data=data, follow_redirects=True)
    if text:
        assert "Your message was recorded" in rv.get_data(as_text=True)
    return rv


# --- API clients: one interface over the Flask test client and over real HTTP ---------


@dataclass
class ApiResponse:
    """The parts of an HTTP answer the API tests look at."""

    status_code: int
    text: str
    headers: dict

    @property
    def ok(self) -> bool:
        """True for 2xx, like ``requests.Response.ok`` in the upstream tests."""
        return 200 <= self.status_code < 300

    def json(self):
        """Decode the body as JSON."""
        return jsonlib.loads(self.text)


class FlaskApi:
    """Simulator API calls through a Flask test client under the API prefix."""

    def __init__(self, client, prefix: str = "/api"):
        self.client = client
        self.prefix = prefix

    def request(
        self,
        method,
        path,
        *,
        params=None,
        json=None,
        data=None,
        headers=None,
        auth=True,
    ):
        """Send one request; ``auth`` adds the simulator's Authorization header."""
        rv = self.client.open(
            self.prefix + path,
            method=method,
            query_string=params,
            data=_body(json, data),
            headers=_headers(headers, auth, json is not None),
        )
        return ApiResponse(rv.status_code, rv.get_data(as_text=True), dict(rv.headers))

    def get(self, path, **kwargs):
        """GET ``path``."""
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        """POST ``path``."""
        return self.request("POST", path, **kwargs)


class HttpApi(FlaskApi):
    """Simulator API calls over real HTTP(S) to a deployment, e.g. https://minitwit.test/api."""

    def __init__(self, base_url: str, ca_bundle: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None

    def request(
        self,
        method,
        path,
        *,
        params=None,
        json=None,
        data=None,
        headers=None,
        auth=True,
    ):
        """Send one request like the simulator does (``Connection: close``)."""
        url = self.base_url + urllib.parse.quote(path, safe="/%")
        if params:
            url += "?" + urllib.parse.urlencode(params)
        hdrs = _headers(headers, auth, json is not None)
        hdrs.setdefault("Connection", "close")
        req = urllib.request.Request(url, data=_body(json, data), headers=hdrs, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.context) as rv:
                return ApiResponse(rv.status, rv.read().decode(), dict(rv.headers))
        except urllib.error.HTTPError as err:
            return ApiResponse(err.code, err.read().decode(), dict(err.headers))


def _body(json, data):
    """Encode a JSON payload, or pass raw ``data`` through unchanged."""
    if json is not None:
        return jsonlib.dumps(json).encode()
    if isinstance(data, str):
        return data.encode()
    return data


def _headers(headers, auth, is_json):
    """Build request headers: JSON content type and simulator auth unless overridden."""
    result = {"Content-Type": "application/json"} if is_json else {}
    if auth:
        result.update(API_AUTH)
    result.update(headers or {})
    return result


# --- factories through the public API (black-box, same for both databases) ------------


def api_register(api, username, email=None, pwd="secret"):
    """Register ``username`` through the simulator API and assert it worked."""
    rv = api.post(
        "/register",
        json={"username": username, "email": email or f"{username}@x.org", "pwd": pwd},
    )
    assert rv.status_code == 204, rv.text
    return rv


def api_post(api, username, content):
    """Post a message as ``username`` through the simulator API."""
    rv = api.post(f"/msgs/{username}", json={"content": content})
    assert rv.status_code == 204, rv.text
    return rv


def api_follow(api, who, whom, action="follow"):
    """Make ``who`` follow (or ``action="unfollow"``) ``whom`` through the API."""
    rv = api.post(f"/fllws/{who}", json={action: whom})
    assert rv.status_code == 204, rv.text
    return rv


# --- direct database access for what the public interfaces cannot show ----------------


def sql(app, statement: str, rows: list[dict] | None = None, **params):
    """Run one SQL statement (once per dict in ``rows`` if given); return its rows."""
    from minitwit.extensions import db
    from sqlalchemy import text

    with app.app_context():
        result = db.session.execute(text(statement), rows if rows else params)
        rows = result.all() if result.returns_rows else []
        db.session.commit()
        return rows


ARGON2ID = "$argon2id$v=19$m=19456,t=2,p=1$"  # how every new hash starts (OWASP's parameters)


@functools.cache
def cached_hash(password: str) -> str:
    """A current argon2id hash of ``password``, made once per password for the whole suite."""
    from minitwit.passwords import HASHER

    return HASHER.hash(password)


def insert_users(app, names, password="default", pw_hash=None):
    """Insert users straight into the database; they can log in with ``password``."""
    pw_hash = pw_hash or cached_hash(password)
    rows = [{"u": name, "e": f"{name}@x.org", "h": pw_hash} for name in names]
    sql(app, 'INSERT INTO "user" (username, email, pw_hash) VALUES (:u, :e, :h)', rows)


def insert_messages(app, username, count, start=1_000_000, flagged=0):
    """Insert ``count`` messages by ``username`` with pub_date start, start+1, ..."""
    [(user_id,)] = sql(app, 'SELECT user_id FROM "user" WHERE username = :u', u=username)
    rows = [{"a": user_id, "t": f"message {i}", "p": start + i, "f": flagged} for i in range(count)]
    statement = "INSERT INTO message (author_id, text, pub_date, flagged)"
    sql(app, statement + " VALUES (:a, :t, :p, :f)", rows)


# --- a throwaway PostgreSQL server, one per test session ------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bindir() -> pathlib.Path | None:
    """Find the directory with initdb and pg_ctl (pg_config, Debian layout, PATH)."""
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
    return None


def terminate_backends(admin, pids, timeout: float = 10.0):
    """pg_terminate_backend each pid and wait until those backend processes have exited.

    pg_terminate_backend only signals the backend; its socket closes a moment later, when
    the process exits. The servers in these tests run on this machine, so the wait is on
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


class ThrowawayPostgres:
    """A private PostgreSQL cluster in a temp dir, on 127.0.0.1 with trust auth.

    initdb refuses to run as root, so as root the server runs as the ``postgres`` user
    (present wherever Debian's package is installed) or ``nobody``.
    """

    def __init__(self, bindir: pathlib.Path, max_connections: int = 200):
        self.bindir = bindir
        self.max_connections = max_connections
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="minitwit-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            self._drop_root()

    def _drop_root(self):
        """Hand the temp dir to an unprivileged user and run every command as it."""
        user = "postgres" if _user_exists("postgres") else "nobody"
        entry = pwd.getpwnam(user)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.prefix = [
            "setpriv",
            f"--reuid={entry.pw_uid}",
            f"--regid={entry.pw_gid}",
            "--clear-groups",
        ]

    def _run(self, *args: str):
        """Run one PostgreSQL tool, raising with its output when it fails."""
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
            f" -c max_connections={self.max_connections} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")
        return self

    def halt(self):
        """Stop the server, keeping its data (an outage, for drills)."""
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
    """Environment for PostgreSQL tools: a locale that always exists."""
    return {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}


def create_pg_database(server_url: str, name: str) -> str:
    """Create an empty database ``name`` next to ``server_url`` and return its URL."""
    import psycopg

    with psycopg.connect(_libpq_url(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(server_url: str, name: str):
    """Drop database ``name`` (terminating leftover sessions)."""
    import psycopg

    with psycopg.connect(_libpq_url(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _libpq_url(url: str) -> str:
    """Turn a SQLAlchemy URL (``postgresql+psycopg://``) into a libpq one."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def basic_auth(credentials: str) -> dict:
    """Authorization header for ``user:password``."""
    return {"Authorization": basic_authorization(credentials)}


# --- real processes: the flask CLI and gunicorn ----------------------------------------


def process_env(database_url: str, **extra: str) -> dict:
    """Environment for a MiniTwit process started from the repository root."""
    env = {**os.environ, "PYTHONPATH": str(SERVICE_DIR), "DATABASE_URL": database_url, **extra}
    for name in ("MINITWIT_ENV", "PROMETHEUS_MULTIPROC_DIR", "SECRET_KEY_FILE", "DATABASE_URL_FILE"):
        if name not in extra:
            env.pop(name, None)
    return env


def run_flask(database_url: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run ``flask --app minitwit <args>`` in a fresh process; fail with its output."""
    cmd = [sys.executable, "-m", "flask", "--app", "minitwit", *args]
    env = process_env(database_url)
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def http(url, method="GET", body=None, headers=None):
    """One request to a local server; returns (status, text)."""
    data = jsonlib.dumps(body).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json", **(headers or {})} if data else dict(headers or {})
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as rv:
            return rv.status, rv.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def wait_until_up(url, proc, attempts=120) -> bool:
    """Poll ``url`` (at most ``attempts`` x 0.25 s) until it answers 200."""
    for _ in range(attempts):
        if proc.poll() is not None:
            return False
        try:
            return http(url)[0] == 200
        except OSError:
            time.sleep(0.25)
    return False


@dataclass
class Server:
    """A running gunicorn: its app URL, metrics URL and captured stdout."""

    url: str
    metrics_url: str
    log_path: pathlib.Path


@contextlib.contextmanager
def gunicorn_server(root: pathlib.Path, database_url: str, **extra: str):
    """Serve the app with the real gunicorn.conf.py on free loopback ports."""
    port, metrics_port = free_port(), free_port()
    settings = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "METRICS_PORT": str(metrics_port),
        "MINITWIT_ENV": "development",
        "PROMETHEUS_MULTIPROC_DIR": str(root / f"metrics-{port}"),
        **extra,
    }
    server = Server(
        f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", root / f"gunicorn-{port}.log"
    )
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    cmd = [gunicorn, "-c", str(SERVICE_DIR / "gunicorn.conf.py"), "minitwit:create_app()"]
    with open(server.log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=process_env(database_url, **settings), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        assert wait_until_up(server.url + "/health", proc), server.log_path.read_text()
        assert wait_until_up(server.metrics_url, proc), server.log_path.read_text()
        yield server
    finally:
        stop(proc)


def stop(proc: subprocess.Popen):
    """Stop a server gracefully (SIGTERM), killing it if it does not exit in time."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def unavailable(reason: str):
    """Skip with a clear reason, or fail when MINITWIT_STRICT=1 demands every check."""
    if STRICT:
        pytest.fail(f"{reason} (MINITWIT_STRICT=1)")
    pytest.skip(f"SKIPPED: {reason}")


def traefik_file_command(traefik: str, directory: pathlib.Path, port: int) -> list[str]:
    """The command line of the real Traefik on 127.0.0.1:``port`` with ``directory``/dynamic.yml."""
    return [
        traefik,
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        f"--entryPoints.web.address=127.0.0.1:{port}",
        f"--providers.file.filename={directory}/dynamic.yml",
    ]


def prometheus_command(directory: pathlib.Path, port: int) -> list[str]:
    """The command line of the real Prometheus serving ``directory``/prometheus.yml on 127.0.0.1:``port``."""
    return [
        find_tool("prometheus", "PROMETHEUS_BIN"),
        f"--config.file={directory}/prometheus.yml",
        f"--storage.tsdb.path={directory}/data",
        f"--web.listen-address=127.0.0.1:{port}",
    ]


def find_tool(name: str, env: str | None = None) -> str:
    """Path of a program from ``env``, the virtualenv or PATH, or skip/fail without it."""
    path = (env and os.environ.get(env)) or shutil.which(name, path=VENV_BIN) or shutil.which(name)
    if not path:
        unavailable(f"{name} not installed")
    return path


def http_get(url: str) -> str:
    """GET ``url`` and return the body (raises on non-2xx)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def wait_until(check, what: str, seconds: float = 30, log=None):
    """Poll ``check()`` until it returns a truthy value; fail after ``seconds``
    (with the end of the server's ``log`` file, if given)."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            last = check()
            if last:
                return last
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-3000:] if log else ""
    pytest.fail(f"timed out after {seconds}s waiting for {what}; last answer: {last!r}\n{tail}")


def run_checked(args: list, env: dict | None = None):
    """Run a short command to completion; fail the test with its output if it fails."""
    result = subprocess.run(
        [str(a) for a in args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{args[:3]} failed:\n{result.stdout}{result.stderr}"


@contextlib.contextmanager
def running(args: list[str], log_path, env: dict | None = None):
    """Run a server process for the duration of the block and always stop it."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
