"""Configuration from the environment: ``_FILE`` secrets, production guards, the proxy."""

import ast
import logging
import os
import runpy
import subprocess
import sys

import pytest
from flask import request
from helpers.api import basic_auth
from helpers.data import insert_users
from helpers.programs import find_tool
from minitwit.config import DEFAULT_SIMULATOR_AUTH
from minitwit.config import DEV_SECRET_KEY
from minitwit.config import SETTINGS
from minitwit.config import ConfigError
from minitwit.config import cpu_quota
from minitwit.config import engine_options
from minitwit.config import hash_concurrency
from minitwit.config import normalise_database_url
from minitwit.config import usable_cores

from testkit import REPO_ROOT
from testkit import SERVICE_DIR

GOOD_KEY = "a-long-random-production-secret-key"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Start every test from an environment without MiniTwit settings."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)


def secret_file(tmp_path, name, content):
    """Write ``content`` (plus a newline, as editors do) to a secret file."""
    path = tmp_path / name
    path.write_text(content + "\n", encoding="utf-8")
    return str(path)


def add_whoami(app):
    """Add a route that shows what the app believes about the client."""
    app.add_url_rule("/_whoami", "whoami", lambda: f"{request.scheme} {request.remote_addr}")
    return app


# --- reading settings --------------------------------------------------------------


def names_read_by_config() -> set[str]:
    """Every environment variable config.py reads, found in its source."""
    tree = ast.parse((SERVICE_DIR / "minitwit" / "config.py").read_text())
    readers = {"get", "read_setting", "int_setting", "count_setting"}
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) in readers
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }


def test_settings_names_every_variable_the_config_reads():
    # The suite clears SETTINGS to stay hermetic: a variable missing there would leak in.
    assert names_read_by_config() == set(SETTINGS)


def test_development_defaults(app_factory):
    """Without settings: development, SQLite in the instance folder, dev key, /api."""
    app = app_factory(SECRET_KEY=None, SQLALCHEMY_DATABASE_URI=None, SQLALCHEMY_ENGINE_OPTIONS=None)
    assert app.config["MINITWIT_ENV"] == "development"
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    assert uri == "sqlite:///" + os.path.join(app.instance_path, "minitwit.db")
    assert app.config["SECRET_KEY"] == DEV_SECRET_KEY
    assert app.config["API_PREFIX"] == "/api"
    assert app.config["SESSION_COOKIE_SECURE"] is False
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True


def test_log_level_from_the_environment(app_factory, monkeypatch):
    """LOG_LEVEL sets the app's verbosity: at warning, request lines are no longer logged."""
    monkeypatch.setenv("LOG_LEVEL", "warning")
    app_factory()
    assert logging.getLogger("minitwit").level == logging.WARNING
    assert not logging.getLogger("minitwit.request").isEnabledFor(logging.INFO)
    monkeypatch.delenv("LOG_LEVEL")
    app_factory()
    assert logging.getLogger("minitwit.request").isEnabledFor(logging.INFO)


@pytest.mark.parametrize(
    "name, key, value",
    [
        ("SECRET_KEY", "SECRET_KEY", "from-the-environment-1234"),
        ("SIMULATOR_AUTH", "SIMULATOR_AUTH", "bot:pw"),
        ("DATABASE_URL", "SQLALCHEMY_DATABASE_URI", "sqlite:////tmp/x.db"),
    ],
)
def test_secrets_from_env_and_file(app_factory, monkeypatch, tmp_path, name, key, value):
    """Every secret is read from ``$NAME``, or from the file ``$NAME_FILE`` names."""
    drop = {key: None, "SQLALCHEMY_ENGINE_OPTIONS": None}
    monkeypatch.setenv(name, value)
    assert app_factory(**drop).config[key] == value
    monkeypatch.setenv(name, "ignored-when-a-file-is-given")
    monkeypatch.setenv(f"{name}_FILE", secret_file(tmp_path, name, value))
    assert app_factory(**drop).config[key] == value


def test_unreadable_secret_file_is_a_clear_error(app_factory, monkeypatch, tmp_path):
    """A ``_FILE`` that cannot be read stops start-up and names the setting."""
    monkeypatch.setenv("SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="SECRET_KEY_FILE"):
        app_factory(SECRET_KEY=None)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgres://u:p@db/minitwit", "postgresql+psycopg://u:p@db/minitwit"),
        ("postgresql://u@db:5432/m", "postgresql+psycopg://u@db:5432/m"),
        ("postgresql+psycopg://u@db/m", "postgresql+psycopg://u@db/m"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
    ],
)
def test_database_urls_use_psycopg3(url, expected):
    """Plain PostgreSQL URLs are normalised to the psycopg 3 driver."""
    assert normalise_database_url(url) == expected


def test_pool_pings_on_checkout_only_when_asked(monkeypatch):
    """No ping round trip by default (closed connections are dropped at checkout anyway)."""
    monkeypatch.delenv("DB_POOL_PRE_PING", raising=False)
    assert engine_options("postgresql+psycopg://db/m")["pool_pre_ping"] is False
    monkeypatch.setenv("DB_POOL_PRE_PING", "1")
    assert engine_options("postgresql+psycopg://db/m")["pool_pre_ping"] is True


def test_pool_settings_from_env(monkeypatch):
    """PostgreSQL pool sizes come from the environment; SQLite gets a busy timeout."""
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    assert engine_options("postgresql+psycopg://db/m")["pool_size"] == 7
    assert engine_options("sqlite://")["connect_args"]["timeout"] > 0
    monkeypatch.setenv("DB_POOL_SIZE", "")
    assert engine_options("postgresql+psycopg://db/m")["pool_size"] > 0


@pytest.mark.parametrize("name, value", [("MINITWIT_ENV", "staging"), ("TRUSTED_PROXY_HOPS", "lots")])
def test_invalid_settings_are_refused(app_factory, monkeypatch, name, value):
    """An unknown environment or a non-integer number stops start-up clearly."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        app_factory()


def test_simulator_credentials_are_configurable(app_factory, monkeypatch):
    """``SIMULATOR_AUTH`` replaces the default credentials of the API."""
    monkeypatch.setenv("SIMULATOR_AUTH", "bot:pw")
    client = app_factory().test_client()
    assert client.get("/api/msgs", headers=basic_auth("bot:pw")).status_code == 200
    default = basic_auth(DEFAULT_SIMULATOR_AUTH)
    assert client.get("/api/msgs", headers=default).status_code == 403


def test_api_prefix_is_configurable(app_factory, monkeypatch):
    """``API_PREFIX`` moves the API; a trailing slash is ignored."""
    monkeypatch.setenv("API_PREFIX", "/sim/")
    client = app_factory().test_client()
    assert client.get("/sim/latest").get_json() == {"latest": -1}
    assert client.get("/api/latest").status_code == 404


# --- password hashing: HASH_CONCURRENCY -------------------------------------------------------


def test_hash_concurrency_defaults_to_one_per_usable_core():
    """Unset (or empty), one hashing slot per core this process may use, at least one."""
    assert hash_concurrency() == usable_cores()
    assert 1 <= usable_cores() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    "affinity, quota, expected",
    [(8, None, 8), (8, 1.0, 1), (8, 2.5, 3), (8, 0.5, 1), (2, 16.0, 2)],
)
def test_usable_cores_is_the_affinity_capped_by_the_cpu_limit(monkeypatch, affinity, quota, expected):
    """A container's CPU limit (rounded up) caps the cores its affinity allows; unlimited, the affinity counts."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)))
    monkeypatch.setattr("minitwit.config.cpu_quota", lambda: quota)
    assert usable_cores() == expected
    assert hash_concurrency() == expected
    monkeypatch.setenv("HASH_CONCURRENCY", "")
    assert hash_concurrency() == expected


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({}, None),
    ],
)
def test_cpu_limit_from_cgroup_v2_or_v1(tmp_path, files, expected):
    """Swarm's ``cpus`` arrives as cgroup v2 ``cpu.max`` or v1's CFS quota and period; none means no limit."""
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    assert cpu_quota(tmp_path) == expected


@pytest.mark.parametrize("value, expected", [("1", 1), ("3", 3), (" 2 ", 2), ("64", 64)])
def test_hash_concurrency_from_the_environment(monkeypatch, value, expected):
    """``HASH_CONCURRENCY`` replaces the default, above the core count too."""
    monkeypatch.setenv("HASH_CONCURRENCY", value)
    assert hash_concurrency() == expected


@pytest.mark.parametrize(
    "value, message",
    [
        ("abc", "HASH_CONCURRENCY must be an integer, got 'abc'"),
        ("1.5", "HASH_CONCURRENCY must be an integer, got '1.5'"),
        ("0", "HASH_CONCURRENCY must be 1 or more, got 0"),
        ("-1", "HASH_CONCURRENCY must be 1 or more, got -1"),
    ],
)
def test_hash_concurrency_refuses_what_is_not_a_count(monkeypatch, tmp_path, value, message):
    """A bad value is a configuration error naming the variable, also where gunicorn's master reads it."""
    monkeypatch.setenv("HASH_CONCURRENCY", value)
    with pytest.raises(ConfigError) as refused:
        hash_concurrency()
    assert str(refused.value) == message
    with pytest.raises(ConfigError, match="HASH_CONCURRENCY"):
        gunicorn_settings(monkeypatch, tmp_path)


def test_cli_refuses_to_start_with_a_bad_hash_concurrency(tmp_path):
    """The image's entrypoint migrates first: that command exits non-zero naming the variable."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in SETTINGS},
        "HASH_CONCURRENCY": "0",
        "PYTHONPATH": str(SERVICE_DIR),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
    }
    cmd = [sys.executable, "-m", "flask", "--app", "minitwit", "migrate"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "ConfigError: HASH_CONCURRENCY must be 1 or more, got 0" in proc.stdout + proc.stderr
    assert not (tmp_path / "x.db").exists()


# --- production --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (None, "SECRET_KEY is not set, or is the development key"),
        (DEV_SECRET_KEY, "SECRET_KEY is not set, or is the development key"),
        ("short", "SECRET_KEY is too short: 5 characters, production needs 16 or more"),
        # The vault example's placeholder is 50 characters long: the message must not talk about length.
        (
            "CHANGE-ME-python3 -c 'import secrets; print(secrets.token_urlsafe(48))'",
            "SECRET_KEY is still the CHANGE-ME placeholder from vault.example.yml",
        ),
    ],
)
def test_production_refuses_a_development_secret_key(app_factory, monkeypatch, key, problem):
    """Production does not start with a missing, default, placeholder or short key, and says which."""
    monkeypatch.setenv("MINITWIT_ENV", "production")
    if key:
        monkeypatch.setenv("SECRET_KEY", key)
    with pytest.raises(ConfigError) as refused:
        app_factory(SECRET_KEY=None)
    message = str(refused.value)
    assert message.startswith(problem + ":")
    assert "vault_minitwit_secret_key" in message
    assert "16+" not in message


def test_production_cli_refuses_to_start_without_a_key(tmp_path):
    """The real ``flask`` command exits non-zero with a clear message."""
    env = {
        **os.environ,
        "MINITWIT_ENV": "production",
        "PYTHONPATH": str(SERVICE_DIR),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
    }
    env.pop("SECRET_KEY", None)
    env.pop("SECRET_KEY_FILE", None)
    cmd = [sys.executable, "-m", "flask", "--app", "minitwit", "migrate"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "SECRET_KEY" in proc.stdout + proc.stderr
    assert not (tmp_path / "x.db").exists()


def test_production_with_key_file(app_factory, monkeypatch, tmp_path):
    """Production starts with a real key from a file, with secure cookies and https."""
    monkeypatch.setenv("MINITWIT_ENV", "production")
    monkeypatch.setenv("SECRET_KEY_FILE", secret_file(tmp_path, "key", GOOD_KEY))
    app = app_factory(SECRET_KEY=None)
    assert app.config["SECRET_KEY"] == GOOD_KEY
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["PREFERRED_URL_SCHEME"] == "https"


# --- behind the proxy --------------------------------------------------------------


def test_proxy_headers_are_trusted_for_one_hop(app_factory):
    """ProxyFix takes scheme and client address from the one proxy in front."""
    client = add_whoami(app_factory()).test_client()
    headers = {
        "X-Forwarded-For": "198.51.100.1, 203.0.113.9",
        "X-Forwarded-Proto": "https",
    }
    # only the last hop (Traefik's view of the client) is trusted, not a forged one
    assert client.get("/_whoami", headers=headers).text == "https 203.0.113.9"
    assert client.get("/_whoami").text == "http 127.0.0.1"


def test_proxy_headers_ignored_without_trusted_hops(app_factory, monkeypatch):
    """With ``TRUSTED_PROXY_HOPS=0`` forwarded headers are not believed."""
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "0")
    client = add_whoami(app_factory()).test_client()
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    assert client.get("/_whoami", headers=headers).text == "http 127.0.0.1"


def session_cookie_header(response) -> str:
    """The Set-Cookie header of the session cookie."""
    cookies = response.headers.getlist("Set-Cookie")
    [cookie] = [c for c in cookies if c.startswith("session=")]
    return cookie


def test_secure_session_cookie_over_https_in_production(app_factory, monkeypatch):
    """Behind HTTPS in production the session cookie is Secure, HttpOnly, SameSite."""
    monkeypatch.setenv("MINITWIT_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
    app = app_factory(SECRET_KEY=None)
    insert_users(app, ["alice"])
    client = app.test_client()
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    data = {"username": "alice", "password": "default"}
    # a browser's same-origin form post, as the browser describes it behind the TLS proxy
    headers = {**https, "Origin": "https://localhost", "Sec-Fetch-Site": "same-origin"}
    rv = client.post("/login", data=data, headers=headers)
    assert rv.status_code == 302
    cookie = session_cookie_header(rv)
    for attribute in ("Secure", "HttpOnly", "SameSite=Lax"):
        assert attribute in cookie


def test_development_cookie_is_not_secure(app_factory):
    """On plain HTTP in development the cookie works without the Secure flag."""
    app = app_factory()
    insert_users(app, ["alice"])
    rv = app.test_client().post("/login", data={"username": "alice", "password": "default"})
    cookie = session_cookie_header(rv)
    assert "Secure" not in cookie
    assert "HttpOnly" in cookie


# --- serving: gunicorn.conf.py -----------------------------------------------------


def gunicorn_settings(monkeypatch, tmp_path, **env):
    """Evaluate service/gunicorn.conf.py under ``env`` and return its settings."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SERVICE_DIR / "gunicorn.conf.py"))


def test_gunicorn_production_defaults(monkeypatch, tmp_path):
    """Keep-alive outlives Traefik's 90 s idle timeout; bounded timeouts; no access log."""
    for name in ("HOST", "PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_WORKER_CLASS", "METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = gunicorn_settings(monkeypatch, tmp_path)
    assert settings["keepalive"] > 90
    assert settings["graceful_timeout"] == 30
    assert settings["timeout"] == 30
    assert settings["bind"] == "127.0.0.1:5000"
    assert settings["metrics_port"] == 9200
    assert settings["accesslog"] is None  # the app logs one JSON line per request itself


def test_gunicorn_settings_from_environment(monkeypatch, tmp_path):
    """Bind address, worker counts and class come from the environment."""
    settings = gunicorn_settings(
        monkeypatch,
        tmp_path,
        HOST="0.0.0.0",
        PORT="8080",
        WEB_CONCURRENCY="5",
        GUNICORN_THREADS="3",
        GUNICORN_WORKER_CLASS="sync",
        METRICS_PORT="9300",
    )
    assert settings["bind"] == "0.0.0.0:8080"
    assert (settings["workers"], settings["threads"], settings["worker_class"]) == (5, 3, "sync")
    assert settings["metrics_port"] == 9300


def test_health_reports_draining_while_the_drain_file_exists(app_factory, tmp_path):
    """During the entrypoint's drain before stop, /health is 503 so the proxy stops routing here."""
    drain_file = tmp_path / "draining"
    client = app_factory(DRAIN_FILE=str(drain_file)).test_client()
    assert client.get("/health").status_code == 200
    drain_file.touch()
    rv = client.get("/health")
    assert rv.status_code == 503
    assert rv.get_json() == {"status": "draining"}


# --- the simulator's default credentials: one definition, read by shell and Ansible -----------


def test_shell_reads_the_default_simulator_credentials_from_the_config():
    script = f"source {REPO_ROOT}/scripts/lib/common.sh && simulator_default_auth"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout == DEFAULT_SIMULATOR_AUTH + "\n"


def test_the_stack_inventories_read_the_default_simulator_credentials_from_the_config(tmp_path):
    # The lab inventory deploys the stack the API suites and drills talk to. It is copied to a
    # tree shaped like the repository (the lab's hosts.yml only exists while a lab runs).
    ansible = find_tool("ansible")
    (tmp_path / "service").symlink_to(SERVICE_DIR)
    for inventory in ("lab",):
        directory = tmp_path / "ansible" / "inventories" / inventory
        directory.mkdir(parents=True)
        (directory / "group_vars").symlink_to(REPO_ROOT / "ansible" / "inventories" / inventory / "group_vars")
        (directory / "hosts.yml").write_text("all:\n  hosts:\n    node:\n      ansible_connection: local\n")
        result = subprocess.run(
            [ansible, "node", "-i", str(directory / "hosts.yml"), "-m", "ansible.builtin.debug"]
            + ["-a", "var=minitwit_simulator_auth"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "ANSIBLE_HOME": str(tmp_path / "home"), "ANSIBLE_NOCOLOR": "1"},
            cwd=REPO_ROOT,
        )
        assert f"minitwit_simulator_auth: {DEFAULT_SIMULATOR_AUTH}" in result.stdout, result.stdout + result.stderr
