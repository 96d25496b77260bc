"""The host, PostgreSQL and backup alerts and panels read what the real exporters expose.

Debian's node exporter runs against this machine on a loopback port, Debian's postgres
exporter against a throwaway PostgreSQL as a least-privilege ``pg_monitor`` role, and a
real Prometheus scrapes both under the stack's job names (``node``, ``postgres``) with
rules/infrastructure.yml loaded. Node exporter also serves, from its textfile directory, the
backup collector's file, written by the collector's own code from answers pgBackRest and psql
could give. Every ``node_*``/``pg_*``/``minitwit_backup_*``/``minitwit_wal_*`` name in any rule
or dashboard must be exposed, every selector of the infrastructure rules and every query of
the Host, PostgreSQL and Backups panels must return series, a real deadlock and a real connection
surge must trip their alerts, and so must the collector's file of a repository outage.

CI runs Debian's node_exporter 1.5 and postgres_exporter 0.11; production runs the
upstream images. Names are the same, label sets differ (see docs/observability.md).
NODE_EXPORTER_BIN / POSTGRES_EXPORTER_BIN run this module against other binaries.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.machinery
import importlib.util
import json
import re
import time
import types

import pytest
from helpers.programs import find_tool
from helpers.programs import http_get
from helpers.programs import prometheus_command
from helpers.programs import wait_until

# The PromQL reading helpers live with the app/Traefik checks they were written for.
from test_observability_config import DASHBOARDS
from test_observability_config import EXPORTER_METRIC
from test_observability_config import RULE_FILES
from test_observability_config import dashboard_targets
from test_observability_config import exposed_names
from test_observability_config import grafana_to_promql
from test_observability_config import load_yaml
from test_observability_config import metric_names
from test_observability_config import panels
from test_observability_config import prometheus_query

from testkit import REPO_ROOT
from testkit.ports import free_port
from testkit.postgres import ThrowawayPostgres
from testkit.processes import running
from testkit.skip import Unavailable
from testkit.skip import skip_or_fail

psycopg = pytest.importorskip("psycopg")

INFRASTRUCTURE_RULES = REPO_ROOT / "stack" / "prometheus" / "rules" / "infrastructure.yml"
# The backup metrics collector the pgbackrest role installs on the database node.
BACKUP_COLLECTOR = REPO_ROOT / "ansible" / "roles" / "pgbackrest" / "files" / "minitwit-backup-metrics"
BACKUP_ALERTS = (
    "WalArchivingFailing",
    "WalArchiveLagging",
    "BackupRepositoryUnreachable",
    "BackupTooOld",
    "BackupMetricsMissing",
)
# Upstream node_exporter's defaults for the flags where Debian's build differs, so this
# machine exposes the series production does (docs/observability.md, "Exporters in CI and in production").
# The textfile directory is set as in the stack, to the collector's folder (fixture textfile).
NODE_EXPORTER_FLAGS = [
    "--no-collector.systemd",
    "--collector.netdev.device-exclude=",
    "--collector.filesystem.mount-points-exclude="
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)",
]
# max_connections small enough that the test can reach 80 % of it.
MAX_CONNECTIONS = 20
# Panels whose query is empty on a healthy machine, and why.
EMPTY_WHEN_HEALTHY = {"Days until disk full": "only filesystems that shrink have a value"}


# --- the real programs ----------------------------------------------------------------


@pytest.fixture(scope="module")
def textfile(tmp_path_factory):
    """The backup collector's file of a healthy repository, in a textfile directory of its own."""
    path = tmp_path_factory.mktemp("textfile") / "minitwit_backup.prom"
    write_backup_metrics(path)
    return path


def write_backup_metrics(path, repo_status: int = 0, failed: int = 0, oldest_age: float = 0) -> None:
    """The collector's file, written by its own code from what pgBackRest and psql could answer:
    a full backup 3 days old and a differential of an hour ago; ``repo_status`` is pgBackRest's
    (0 ok, 99 unreadable), ``failed`` the archive attempts failed so far, ``oldest_age`` that of
    the one segment waiting (none when 0)."""
    loader = importlib.machinery.SourceFileLoader("minitwit_backup_metrics", str(BACKUP_COLLECTOR))
    collector = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(collector)
    now = time.time()
    status = {"code": repo_status, "message": "ok" if repo_status == 0 else "other"}
    backups = [recorded_backup("full", now - 3 * 86400), recorded_backup("diff", now - 3600)]
    info = [{"name": "minitwit", "status": status, "repo": [{"key": 1, "status": status}], "backup": backups}]
    row = f"{int(oldest_age > 0)}|{oldest_age}|120|{failed}|{now - 30}|{now - 60 if failed else 0}"
    answers = types.SimpleNamespace(pgbackrest_info=lambda: json.dumps(info), psql=lambda sql: row)
    collector.Commands = lambda options: answers  # in place of docker exec into the container
    families = collector.collect(collector.parse_args(["--output", str(path)]))
    collector.write_atomically(str(path), collector.render(families))


def recorded_backup(kind: str, stop: float) -> dict:
    """One backup as ``pgbackrest info --output=json`` lists it."""
    sizes = {"size": 23066102, "repository": {"size": 2835728}}
    return {"type": kind, "error": False, "info": sizes, "timestamp": {"start": int(stop) - 40, "stop": int(stop)}}


@pytest.fixture(scope="module")
def node_exporter(textfile, tmp_path_factory):
    """Debian's node exporter on a loopback port, serving the backup collector's file: its address."""
    binary = find_tool("prometheus-node-exporter", "NODE_EXPORTER_BIN")
    log = tmp_path_factory.mktemp("node-exporter") / "node-exporter.log"
    address = f"127.0.0.1:{free_port()}"
    flags = [*NODE_EXPORTER_FLAGS, f"--collector.textfile.directory={textfile.parent}"]
    with running([binary, f"--web.listen-address={address}", *flags], log):
        wait_until(lambda: http_get(f"http://{address}/metrics"), "node exporter metrics", log=log)
        yield address


@pytest.fixture(scope="module")
def monitored_postgres():
    """A PostgreSQL of its own (the test fills its connections) with a pg_monitor role."""
    try:
        server = ThrowawayPostgres(max_connections=MAX_CONNECTIONS).start()
    except Unavailable as missing:
        skip_or_fail(str(missing))
    try:
        with psycopg.connect(admin_dsn(server), autocommit=True) as admin:
            # The stack's monitoring role: may read statistics, nothing else.
            admin.execute("CREATE ROLE mt_monitor LOGIN CONNECTION LIMIT 3")
            admin.execute("GRANT pg_monitor TO mt_monitor")
            admin.execute("CREATE DATABASE minitwit")
        yield server
    finally:
        server.stop()


def admin_dsn(server: ThrowawayPostgres, database: str = "postgres") -> str:
    """libpq URL of the server's superuser."""
    return f"postgresql://postgres@127.0.0.1:{server.port}/{database}"


@pytest.fixture(scope="module")
def postgres_exporter(monitored_postgres, tmp_path_factory):
    """Debian's postgres exporter, connected as the monitoring role: its address."""
    binary = find_tool("prometheus-postgres-exporter", "POSTGRES_EXPORTER_BIN")
    log = tmp_path_factory.mktemp("postgres-exporter") / "postgres-exporter.log"
    address = f"127.0.0.1:{free_port()}"
    dsn = f"postgresql://mt_monitor@127.0.0.1:{monitored_postgres.port}/postgres?sslmode=disable"
    with running([binary, f"--web.listen-address={address}"], log, env={"DATA_SOURCE_NAME": dsn}):
        wait_until(lambda: "pg_up 1" in http_get(f"http://{address}/metrics"), "pg_up 1", log=log)
        yield address


@pytest.fixture(scope="module")
def exposed(node_exporter, postgres_exporter):
    """Every sample name the two exporters expose."""
    return exposed_names(http_get(f"http://{node_exporter}/metrics")) | exposed_names(
        http_get(f"http://{postgres_exporter}/metrics")
    )


@pytest.fixture(scope="module")
def prometheus(node_exporter, postgres_exporter, tmp_path_factory):
    """Real Prometheus scraping both exporters every second, infrastructure rules loaded
    and evaluated every second."""
    tmp = tmp_path_factory.mktemp("exporters-prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(INFRASTRUCTURE_RULES)],
        "scrape_configs": [
            {"job_name": "node", "static_configs": [{"targets": [node_exporter]}]},
            {"job_name": "postgres", "static_configs": [{"targets": [postgres_exporter]}]},
        ],
    }
    (tmp / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    with running(prometheus_command(tmp, port), tmp / "prometheus.log"):
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: series(url, "pg_up") and series(url, "node_load1"), "both exporters scraped")
        yield url


def series(url: str, expr: str) -> list:
    """The result of an instant query; fails the test on a query error."""
    answer = prometheus_query(url, expr)
    assert answer["status"] == "success", (expr, answer.get("error"))
    return answer["data"]["result"]


def alert_state(url: str, name: str) -> str | None:
    """pending/firing for an alert that is active, else None."""
    alerts = json.loads(http_get(f"{url}/api/v1/alerts"))["data"]["alerts"]
    return next((a["state"] for a in alerts if a["labels"]["alertname"] == name), None)


# --- names: everything used exists ------------------------------------------------------


def exporter_names_used() -> dict[str, set[str]]:
    """node_*/pg_*/minitwit_backup_*/minitwit_wal_* names per rule file and dashboard."""
    used = {}
    for path in RULE_FILES:
        exprs = [rule["expr"] for group in load_yaml(path)["groups"] for rule in group["rules"]]
        used[path.name] = {n for e in exprs for n in metric_names(e) if EXPORTER_METRIC.fullmatch(n)}
    for path in DASHBOARDS:
        exprs = [expr for file, expr in dashboard_targets("prometheus") if file == path.name]
        used[path.name] = {n for e in exprs for n in metric_names(e) if EXPORTER_METRIC.fullmatch(n)}
    return used


def test_rules_and_dashboards_use_the_exporters():
    """The infrastructure rules and dashboard do read exporter metrics (else the checks below prove nothing)."""
    used = exporter_names_used()
    names = used["infrastructure.yml"] | used["infrastructure.json"]
    assert any(n.startswith("node_") for n in names) and any(n.startswith("pg_") for n in names)


def test_every_exporter_metric_used_exists(exposed):
    """Each node_*/pg_*/backup name of every rule file and dashboard is exposed by the real exporter."""
    missing = {file: sorted(names - exposed) for file, names in exporter_names_used().items() if names - exposed}
    assert not missing


# --- selectors and queries return series from the real exporters ----------------------


def rule_selectors() -> set[str]:
    """``metric{matchers}`` selectors of the infrastructure rules."""
    exprs = [rule["expr"] for group in load_yaml(INFRASTRUCTURE_RULES)["groups"] for rule in group["rules"]]
    return {m[0] for e in exprs for m in re.finditer(rf"\b(?:{EXPORTER_METRIC.pattern})\{{[^}}]*\}}", e)}


def test_every_rule_selector_matches_real_series(prometheus):
    """Label matchers (job, fstype, datname) select real series, so no alert is blind."""
    selectors = rule_selectors()
    assert len(selectors) >= 6
    empty = [selector for selector in sorted(selectors) if not series(prometheus, selector)]
    assert not empty


def exporter_panel_queries():
    """(panel title, query) of the infrastructure dashboard's Host, PostgreSQL and Backups rows."""
    board = json.loads((REPO_ROOT / "stack" / "grafana" / "dashboards" / "infrastructure.json").read_text())
    row, queries = None, []
    for panel in panels(board):
        if panel["type"] == "row":
            row = panel["title"]
        elif row in ("Host", "PostgreSQL", "Backups"):
            queries += [(panel["title"], target["expr"]) for target in panel["targets"]]
    return queries


def test_host_postgres_and_backup_panels_show_data(prometheus):
    """Every Host, PostgreSQL and Backups panel query returns series from the real exporters."""
    queries = exporter_panel_queries()
    expected = {"Disk used", "Days until disk full", "Connections", "Cache hit ratio", "WAL waiting to be archived"}
    assert {title for title, _ in queries} >= expected
    for title, expr in queries:
        if title not in EMPTY_WHEN_HEALTHY:
            wait_until(lambda expr=expr: series(prometheus, grafana_to_promql(expr)), f"data for {title}: {expr}")


def test_rules_evaluate_without_errors(prometheus):
    """Prometheus evaluates every infrastructure rule on the real series without error."""
    wait_until(lambda: all(r["health"] != "unknown" for r in loaded_rules(prometheus)), "rules evaluated")
    failing = {r["name"]: r.get("lastError") for r in loaded_rules(prometheus) if r["health"] != "ok"}
    assert not failing


def loaded_rules(url: str) -> list[dict]:
    """The rules Prometheus has loaded, with their health."""
    groups = json.loads(http_get(f"{url}/api/v1/rules"))["data"]["groups"]
    return [rule for group in groups for rule in group["rules"]]


# --- real events trip the alerts -------------------------------------------------------


def test_connection_surge_trips_connections_alert(prometheus, monitored_postgres):
    """17 of 20 connections in use (85 %) makes PostgresConnectionsHigh pending (for: 5m)."""
    assert alert_state(prometheus, "PostgresConnectionsHigh") is None
    with contextlib.ExitStack() as stack:
        for _ in range(17):
            stack.enter_context(psycopg.connect(admin_dsn(monitored_postgres, "minitwit")))
        wait_until(lambda: alert_state(prometheus, "PostgresConnectionsHigh"), "PostgresConnectionsHigh active")
    wait_until(lambda: alert_state(prometheus, "PostgresConnectionsHigh") is None, "PostgresConnectionsHigh gone")


def test_real_deadlock_fires_deadlock_alert(prometheus, monitored_postgres):
    """Two transactions locking two rows in opposite order: PostgreSQL aborts one, and
    PostgresDeadlocks fires for that database (no for:, so at once)."""
    assert alert_state(prometheus, "PostgresDeadlocks") is None
    dsn = admin_dsn(monitored_postgres, "minitwit")
    with psycopg.connect(dsn, autocommit=True) as setup:
        setup.execute("CREATE TABLE lockme (id int PRIMARY KEY)")
        setup.execute("INSERT INTO lockme VALUES (1), (2)")
    assert set(deadlock(dsn)) == {None, "DeadlockDetected"}
    wait_until(lambda: alert_state(prometheus, "PostgresDeadlocks") == "firing", "PostgresDeadlocks firing", 60)
    alerts = json.loads(http_get(f"{prometheus}/api/v1/alerts"))["data"]["alerts"]
    assert [a["labels"]["datname"] for a in alerts if a["labels"]["alertname"] == "PostgresDeadlocks"] == ["minitwit"]


def deadlock(dsn: str) -> list[str | None]:
    """Each of two sessions locks one row, then wants the other's: the outcome of each
    (None when it committed, else the error's class name)."""
    sessions = [psycopg.connect(dsn), psycopg.connect(dsn)]
    try:
        for session, row in zip(sessions, (1, 2), strict=True):
            session.execute("UPDATE lockme SET id = id WHERE id = %s", (row,))
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            waits = [pool.submit(take_row, session, row) for session, row in zip(sessions, (2, 1), strict=True)]
            return [wait.result(timeout=30) for wait in waits]
    finally:
        for session in sessions:
            session.close()


def take_row(session, row: int) -> str | None:
    """Lock ``row`` and commit; the error's class name if PostgreSQL refuses."""
    try:
        session.execute("UPDATE lockme SET id = id WHERE id = %s", (row,))
        session.commit()
    except psycopg.Error as error:
        session.rollback()
        return type(error).__name__
    return None


def active_backup_alerts(url: str) -> list[str]:
    """The backup alerts that are pending or firing."""
    return [name for name in BACKUP_ALERTS if alert_state(url, name)]


def test_repository_outage_in_the_collector_file_trips_the_backup_alerts(prometheus, textfile):
    """The collector's file of an outage (repository unreadable, 3 failed archive attempts, a
    segment waiting 200 s) fires WalArchivingFailing and WalArchiveLagging and makes
    BackupRepositoryUnreachable pending (for: 2m); the healthy file after it clears them."""
    assert not active_backup_alerts(prometheus)
    write_backup_metrics(textfile, repo_status=99, failed=3, oldest_age=200)
    try:
        for name, state in (("WalArchivingFailing", "firing"), ("WalArchiveLagging", "firing")):
            wait_until(lambda name=name, state=state: alert_state(prometheus, name) == state, f"{name} {state}")
        wait_until(lambda: alert_state(prometheus, "BackupRepositoryUnreachable"), "BackupRepositoryUnreachable")
    finally:
        write_backup_metrics(textfile, failed=3)
    wait_until(lambda: not active_backup_alerts(prometheus), "the backup alerts gone")
