"""Configuration read from the environment, in one place.

Every secret can also be given as ``<NAME>_FILE``: the path of a file holding the
value, which is how Docker secrets arrive (``/run/secrets/<name>``).
"""

import base64
import math
import os
from pathlib import Path
from typing import Any

DEV_SECRET_KEY = "dev-only-insecure-secret-key"
# The course simulator's published user:password, defined here only: tests, e2e, bench and drills
# import it; scripts/lib/common.sh and the ci and lab inventories read this line (keep its form).
DEFAULT_SIMULATOR_AUTH = "simulator:super_safe!"
ENVIRONMENTS = ("development", "testing", "production")
# Every environment variable load_config reads (a secret also as <NAME>_FILE). The tests clear
# them all, so a developer's or container's settings never leak into the suite.
SETTINGS = (
    "MINITWIT_ENV",
    "DATABASE_URL",
    "SECRET_KEY",
    "SIMULATOR_AUTH",
    "API_PREFIX",
    "API_MAX_NO",
    "APP_VERSION",
    "LOG_LEVEL",
    "DRAIN_FILE",
    "TRUSTED_PROXY_HOPS",
    "SESSION_COOKIE_SECURE",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "DB_POOL_TIMEOUT",
    "DB_POOL_PRE_PING",
    "DB_CONNECT_TIMEOUT",
    "HASH_CONCURRENCY",
    "SIGNIN_FAILURE_LIMIT",
    "SIGNIN_FAILURE_WINDOW",
)


class ConfigError(RuntimeError):
    """Raised at start-up when the configuration is unusable."""


def read_setting(name: str, default: str | None = None) -> str | None:
    """Return ``$NAME``, or the stripped content of the file named by ``$NAME_FILE``."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={path} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def basic_authorization(credentials: str) -> str:
    """The HTTP Basic ``Authorization`` value carrying ``user:password`` (what the simulator sends)."""
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def int_setting(name: str, default: int) -> int:
    """Return an integer environment variable, refusing anything else with a clear message."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def count_setting(name: str, default: int) -> int:
    """Return an environment variable that counts something (1 or more), refusing anything else."""
    value = int_setting(name, default)
    if value < 1:
        raise ConfigError(f"{name} must be 1 or more, got {value}")
    return value


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, capped by its cgroup's quota (Swarm's ``cpus``)."""
    cores = len(os.sched_getaffinity(0))
    quota = cpu_quota()
    return cores if quota is None else max(1, min(cores, math.ceil(quota)))


def cpu_quota(cgroup: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The cgroup's CPU quota in cores (cgroup v2 ``cpu.max``, else v1 CFS files); None if unlimited or unknown."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu/cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu/cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    return None if quota in ("max", "-1") else int(quota) / int(period)


def hash_concurrency() -> int:
    """How many password hashes may run at once per replica: ``HASH_CONCURRENCY``, else one per usable core.

    Read when minitwit.passwords is imported and by gunicorn's master (service/gunicorn.conf.py),
    which makes the replica's slots before the app exists, so it is not part of ``load_config``.
    """
    return count_setting("HASH_CONCURRENCY", usable_cores())


def normalise_database_url(url: str) -> str:
    """Select psycopg 3 for PostgreSQL URLs (SQLAlchemy's plain ``postgresql://`` means psycopg2)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def engine_options(url: str) -> dict[str, Any]:
    """Connection pool settings; sized per process, see docs/performance.md for the budget."""
    if url.startswith("sqlite"):
        # Wait for a writer instead of failing with "database is locked".
        return {"connect_args": {"timeout": 15}}
    return {
        "pool_size": int_setting("DB_POOL_SIZE", 4),
        "max_overflow": int_setting("DB_MAX_OVERFLOW", 2),
        "pool_timeout": int_setting("DB_POOL_TIMEOUT", 5),
        "pool_recycle": 1800,
        # A restarted PostgreSQL leaves dead connections in the pool: extensions.discard_closed_connection
        # drops them at checkout for free; a full ping per checkout only on request.
        "pool_pre_ping": os.environ.get("DB_POOL_PRE_PING", "0") == "1",
        # Bound a connection attempt so an unreachable database answers 503 quickly, never hangs.
        "connect_args": {"connect_timeout": int_setting("DB_CONNECT_TIMEOUT", 3)},
    }


def load_config(instance_path: str) -> dict[str, Any]:
    """Build the Flask configuration mapping from the environment."""
    env = os.environ.get("MINITWIT_ENV", "development")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"MINITWIT_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    default_db = "sqlite:///" + os.path.join(instance_path, "minitwit.db")
    url = normalise_database_url(read_setting("DATABASE_URL") or default_db)
    production = env == "production"
    return {
        "MINITWIT_ENV": env,
        "SECRET_KEY": read_setting("SECRET_KEY") or DEV_SECRET_KEY,
        "SIMULATOR_AUTH": read_setting("SIMULATOR_AUTH") or DEFAULT_SIMULATOR_AUTH,
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(url),
        "API_PREFIX": os.environ.get("API_PREFIX", "/api").rstrip("/") or "/api",
        "APP_VERSION": os.environ.get("APP_VERSION", "dev"),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO").upper(),
        "DRAIN_FILE": os.environ.get("DRAIN_FILE") or None,  # set by the image's entrypoint on SIGTERM
        "TRUSTED_PROXY_HOPS": int_setting("TRUSTED_PROXY_HOPS", 1),
        "PER_PAGE": 30,
        "API_DEFAULT_NO": 100,
        "API_MAX_NO": int_setting("API_MAX_NO", 1000),
        "MAX_USERNAME_LENGTH": 64,
        "MAX_EMAIL_LENGTH": 254,
        "MAX_PASSWORD_LENGTH": 1024,
        "MAX_MESSAGE_LENGTH": 1000,
        "MAX_CONTENT_LENGTH": 64 * 1024,
        # Failed sign-ins per account (and per trusted browser) in any window of this many seconds:
        # beyond them a sign-in is refused without checking the password (throttle.py, docs/security.md).
        "SIGNIN_FAILURE_LIMIT": count_setting("SIGNIN_FAILURE_LIMIT", 10),
        "SIGNIN_FAILURE_WINDOW": count_setting("SIGNIN_FAILURE_WINDOW", 60),
        "SESSION_COOKIE_SECURE": os.environ.get("SESSION_COOKIE_SECURE", "1" if production else "0") == "1",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "PREFERRED_URL_SCHEME": "https" if production else "http",
    }


MIN_SECRET_KEY_LENGTH = 16
HOW_TO_SET_SECRET_KEY = (
    "set SECRET_KEY or SECRET_KEY_FILE to a random value, e.g. "
    "python3 -c 'import secrets; print(secrets.token_urlsafe(48))' "
    "(deployed with Ansible: vault_minitwit_secret_key in the inventory's group_vars/all/vault.yml)"
)


def secret_key_problem(key: str) -> str | None:
    """Say what is wrong with a production secret key, or None when it will do."""
    if key == DEV_SECRET_KEY:
        return "SECRET_KEY is not set, or is the development key"
    if "CHANGE-ME" in key.upper():  # the vault example's placeholder, however long
        return "SECRET_KEY is still the CHANGE-ME placeholder from vault.example.yml"
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"SECRET_KEY is too short: {len(key)} characters, production needs {MIN_SECRET_KEY_LENGTH} or more"
    return None


def check_config(config: dict[str, Any]) -> None:
    """Refuse to run production with development defaults, saying what is wrong and how to fix it."""
    if config["MINITWIT_ENV"] != "production":
        return
    problem = secret_key_problem(config["SECRET_KEY"])
    if problem:
        raise ConfigError(f"{problem}: {HOW_TO_SET_SECRET_KEY}")
