"""The observability configuration agrees with the real things it observes.

Metric names are collected from running programs, not from a list: the app under
gunicorn (after a register/tweet/follow through /api), the real Traefik binary routing
to it, and a real Prometheus that scrapes both with the committed rule files loaded.
Every metric a dashboard or rule uses must be one of those (or a recording rule), every
rule must evaluate without error and every dashboard query must parse. Static checks
cover Loki, Alloy, Grafana provisioning and, once it exists, stack/minitwit.yml.
A missing tool skips its tests, except under MINITWIT_STRICT=1 where that fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
from helpers.api import HttpApi
from helpers.api import api_follow
from helpers.api import api_post
from helpers.api import api_register
from helpers.programs import find_tool
from helpers.programs import http_get
from helpers.programs import prometheus_command
from helpers.programs import run_checked
from helpers.programs import wait_until

from testkit import REPO_ROOT
from testkit.app import gunicorn_server
from testkit.ports import free_port
from testkit.processes import running
from testkit.skip import skip_or_fail

yaml = pytest.importorskip("yaml")

STACK = REPO_ROOT / "stack"
PROMETHEUS_YML = STACK / "prometheus" / "prometheus.yml"
RULE_FILES = sorted((STACK / "prometheus" / "rules").glob("*.yml"))
LOKI_YML = STACK / "loki" / "loki.yml"
ALLOY_CONFIG = STACK / "alloy" / "config.alloy"
DATASOURCES_YML = STACK / "grafana" / "provisioning" / "datasources" / "datasources.yml"
PROVIDER_YML = STACK / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARDS = sorted((STACK / "grafana" / "dashboards").glob("*.json"))
STACK_YML = STACK / "minitwit.yml"
TRAEFIK_YML = REPO_ROOT / "traefik" / "traefik.yml"
# Host and PostgreSQL metrics, and the backup collector's (ansible/roles/pgbackrest/files/
# minitwit-backup-metrics), which node exporter serves from its textfile directory:
# tests/infra/test_exporter_metrics.py checks them against the real node and postgres exporters,
# node exporter serving a file the collector's own code wrote.
EXPORTER_METRIC = re.compile(r"(node|pg)_\w+|minitwit_(backup|wal)_\w+")
# PromQL words that look like metric names but are not.
PROMQL_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "bool",
    "offset",
    "group_left",
    "group_right",
    "inf",
    "nan",
}


# --- helpers --------------------------------------------------------------------------


def exposed_names(exposition: str) -> set[str]:
    """Sample names in a Prometheus text exposition (``foo_total``, ``bar_bucket``...)."""
    return {
        re.split(r"[{\s]", line, maxsplit=1)[0] for line in exposition.splitlines() if line and not line.startswith("#")
    }


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (Grafana variables allowed)."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\$\w+", " ", expr)  # matchers, ranges, $vars
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][\w:]*", expr):
        if not expr[match.end() :].lstrip().startswith("(") and match[0] not in PROMQL_KEYWORDS:
            names.add(match[0])
    return names


def load_yaml(path):
    """Parse one YAML file."""
    return yaml.safe_load(path.read_text())


def rules():
    """Every rule of the committed rule files."""
    return [rule for path in RULE_FILES for group in load_yaml(path)["groups"] for rule in group["rules"]]


def panels(dashboard: dict):
    """All panels of a dashboard, including those nested in collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_targets(datasource_type: str):
    """(dashboard file, query) for every target of the given datasource type."""
    for path in DASHBOARDS:
        for panel in panels(json.loads(path.read_text())):
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == datasource_type:
                    yield path.name, target["expr"]


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's interval variables so Prometheus can run the query."""
    return expr.replace("$__rate_interval", "1m").replace("$__range", "1h")


# --- the real programs ----------------------------------------------------------------


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """The real app under gunicorn on loopback ports, with some API traffic behind it."""
    tmp = tmp_path_factory.mktemp("obs-app")
    with gunicorn_server(tmp, f"sqlite:///{tmp}/t.db", WEB_CONCURRENCY="2") as server:
        base = server.url
        api = HttpApi(base + "/api")
        for name in ("obs_alice", "obs_bob"):
            api_register(api, name)
        api_post(api, "obs_alice", "hello from the observability test")
        api_follow(api, "obs_alice", "obs_bob")
        api_follow(api, "obs_alice", "obs_bob", action="unfollow")
        for path in ("/public", "/api/latest", "/no-such-user-page/x"):
            with contextlib.suppress(urllib.error.HTTPError):
                http_get(base + path)
        yield server


@pytest.fixture(scope="module")
def app_metrics(app_server):
    """The app's metrics exposition after the traffic above."""
    return http_get(app_server.metrics_url)


@pytest.fixture(scope="module")
def traefik_server(app_server, tmp_path_factory):
    """The real Traefik routing to the app, metrics on their own entrypoint, one TLS cert."""
    traefik, openssl = find_tool("traefik", "TRAEFIK_BIN"), find_tool("openssl")
    tmp = tmp_path_factory.mktemp("obs-traefik")
    run_checked(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=minitwit.test",
            "-keyout",
            tmp / "key.pem",
            "-out",
            tmp / "cert.pem",
        ]
    )
    dynamic = {
        "http": {
            "routers": {"app": {"rule": "PathPrefix(`/`)", "service": "app", "entryPoints": ["web"]}},
            "services": {"app": {"loadBalancer": {"servers": [{"url": app_server.url}]}}},
        },
        "tls": {"certificates": [{"certFile": str(tmp / "cert.pem"), "keyFile": str(tmp / "key.pem")}]},
    }
    (tmp / "dynamic.yml").write_text(yaml.safe_dump(dynamic))
    web, metrics = free_port(), free_port()
    args = [
        traefik,
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        f"--entryPoints.web.address=127.0.0.1:{web}",
        f"--entryPoints.metrics.address=127.0.0.1:{metrics}",
        "--metrics.prometheus.entryPoint=metrics",
        "--metrics.prometheus.addServicesLabels=true",
        "--metrics.prometheus.addRoutersLabels=true",
        f"--providers.file.filename={tmp}/dynamic.yml",
    ]
    with running(args, tmp / "traefik.log"):
        wait_until(
            lambda: http_get(f"http://127.0.0.1:{web}/public"), "Traefik routing to the app", log=tmp / "traefik.log"
        )
        http_get(f"http://127.0.0.1:{web}/api/latest")
        yield {"metrics_port": metrics}


@pytest.fixture(scope="module")
def traefik_metrics(traefik_server):
    """Traefik's metrics exposition after requests went through it."""
    return http_get(f"http://127.0.0.1:{traefik_server['metrics_port']}/metrics")


@pytest.fixture(scope="module")
def exporters(tmp_path_factory):
    """The real node and postgres exporters (Debian's packages), on loopback ports.

    The postgres exporter is pointed at a closed port: it then exposes pg_up 0, which is
    what PostgresDown reads. Job name -> port.
    """
    tmp = tmp_path_factory.mktemp("obs-exporters")
    node, postgres = free_port(), free_port()
    node_args = [find_tool("prometheus-node-exporter", "NODE_EXPORTER_BIN"), f"--web.listen-address=127.0.0.1:{node}"]
    postgres_args = [
        find_tool("prometheus-postgres-exporter", "POSTGRES_EXPORTER_BIN"),
        f"--web.listen-address=127.0.0.1:{postgres}",
    ]
    postgres_env = {**os.environ, "DATA_SOURCE_NAME": "postgresql://monitor@127.0.0.1:1/minitwit?sslmode=disable"}
    with (
        running(node_args, tmp / "node.log"),
        running(postgres_args, tmp / "postgres.log", env=postgres_env),
    ):
        wait_until(lambda: http_get(f"http://127.0.0.1:{node}/metrics"), "node exporter", log=tmp / "node.log")
        wait_until(
            lambda: http_get(f"http://127.0.0.1:{postgres}/metrics"), "postgres exporter", log=tmp / "postgres.log"
        )
        yield {"node": node, "postgres": postgres}


@pytest.fixture(scope="module")
def prometheus(app_server, traefik_server, exporters, tmp_path_factory):
    """Real Prometheus running the committed scrape jobs and rules against the real targets.

    The DNS service discovery of prometheus.yml cannot resolve Swarm names here, so each
    job keeps its name but gets the loopback address of the real program instead.
    """
    tmp = tmp_path_factory.mktemp("obs-prometheus")
    port = free_port()
    local = {
        "minitwit": urllib.parse.urlsplit(app_server.metrics_url).port,
        "traefik": traefik_server["metrics_port"],
        "prometheus": port,
        **exporters,
    }
    config = load_yaml(PROMETHEUS_YML)
    config["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    config["rule_files"] = [str(copy_rules_evaluated_every_scrape(path, tmp)) for path in RULE_FILES]
    # No Alertmanager here (tests/infra/test_stack.py and the stack test cover it).
    config.pop("alerting")
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] != "alertmanager"]
    for job in config["scrape_configs"]:
        if job["job_name"] == "postgres":
            # Its failed login to the closed port takes about a second per scrape.
            job.update(scrape_interval="5s", scrape_timeout="4s")
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{local[job['job_name']]}"]}]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    with running(prometheus_command(tmp, port), tmp / "prometheus.log"):
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: all_targets_up(url), "every scrape target up", log=tmp / "prometheus.log")
        wait_until(lambda: all_rules_evaluated(url), "every rule evaluated", log=tmp / "prometheus.log")
        yield url


def copy_rules_evaluated_every_scrape(path, directory):
    """A copy of a rule file whose groups all use the global interval (the 1m of the
    long-window group would make the test wait up to a minute for its first run)."""
    groups = load_yaml(path)
    for group in groups["groups"]:
        group.pop("interval", None)
    copy = directory / path.name
    copy.write_text(yaml.safe_dump(groups))
    return copy


def all_targets_up(url: str) -> bool:
    """True once each of the five jobs has a target and all are healthy."""
    targets = json.loads(http_get(f"{url}/api/v1/targets"))["data"]["activeTargets"]
    return len(targets) == 5 and all(t["health"] == "up" for t in targets)


def all_rules_evaluated(url: str) -> bool:
    """True once every loaded rule has been evaluated at least once."""
    groups = json.loads(http_get(f"{url}/api/v1/rules"))["data"]["groups"]
    loaded = [rule for group in groups for rule in group["rules"]]
    return len(loaded) == len(rules()) and all(r["health"] != "unknown" for r in loaded)


def prometheus_query(url: str, expr: str) -> dict:
    """Run an instant query; return Prometheus' JSON answer, errors included."""
    try:
        return json.loads(http_get(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
    except urllib.error.HTTPError as err:
        return json.loads(err.read().decode())


@pytest.fixture(scope="module")
def known_names(app_metrics, traefik_metrics, exporters, prometheus):
    """Every metric name Prometheus can hold: exposed by the app, Traefik or Prometheus
    itself or the exporters, synthesised by scraping (up, scrape_*), or recorded by our rules."""
    stored = json.loads(http_get(f"{prometheus}/api/v1/label/__name__/values"))["data"]
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    return exposed_names(app_metrics) | exposed_names(traefik_metrics) | set(stored) | recorded


# --- metrics: dashboards and rules use only what really exists ------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le) (rate(a_bucket{job="x", le="0.3"}[$__rate_interval]))', {"a_bucket"}),
        ("b / on (job) group_left(version) c offset 1d > bool 1e3", {"b", "c"}),
        ("histogram_quantile(0.95, sum(rate(d[5m])) by (le)) or vector(0) * time()", {"d"}),
        ("1 - job:e:ratio_rate30d / 0.005", {"job:e:ratio_rate30d"}),
    ],
)
def test_metric_name_extraction(expr, names):
    """The PromQL reader below finds exactly the selected metrics."""
    assert metric_names(expr) == names


def test_app_exposes_what_the_interfaces_promise(app_metrics):
    """The scraped app has the HTTP histogram by endpoint and the business counters."""
    names = exposed_names(app_metrics)
    for name in (
        "flask_http_request_total",
        "flask_http_request_duration_seconds_bucket",
        "minitwit_app_info",
        "minitwit_users_registered_total",
        "minitwit_messages_posted_total",
        "minitwit_follows_total",
        "minitwit_unfollows_total",
    ):
        assert name in names
    assert re.search(r'flask_http_request_duration_seconds_bucket\{[^}]*endpoint="api\.', app_metrics)
    # The backup collector's prefixes are not the app's, so checking them elsewhere hides nothing here.
    assert not any(EXPORTER_METRIC.fullmatch(name) for name in names)


def test_latency_slo_threshold_is_a_histogram_bucket(app_metrics):
    """The 300 ms latency SLI counts le="0.3": that bucket must exist in the app."""
    assert re.search(r'flask_http_request_duration_seconds_bucket\{[^}]*le="0\.3"', app_metrics)
    uses = [r["expr"] for r in rules() if "le=" in r["expr"]]
    assert uses and all('le="0.3"' in expr for expr in uses)


def test_traefik_exposes_per_service_and_certificate_metrics(traefik_metrics):
    """Requests through the real Traefik produce the per-service series the rules read."""
    assert re.search(r'traefik_service_requests_total\{[^}]*code="200"', traefik_metrics)
    assert "traefik_tls_certs_not_after" in exposed_names(traefik_metrics)


def unknown_names(used: set[str], known_names: set[str]) -> list[str]:
    """Names in ``used`` that no program here exposes (exporter metrics are checked elsewhere)."""
    return sorted(name for name in used - known_names if not EXPORTER_METRIC.fullmatch(name))


def test_every_metric_in_rules_exists(known_names):
    """Recording and alert rules only read metrics the app, Traefik or Prometheus have."""
    used = {name for rule in rules() for name in metric_names(rule["expr"])}
    assert used
    assert not unknown_names(used, known_names)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_metric_in_dashboards_exists(path, known_names):
    """Dashboard panels only query metrics that exist (or that our rules record)."""
    used = {name for file, expr in dashboard_targets("prometheus") if file == path.name for name in metric_names(expr)}
    assert used
    assert not unknown_names(used, known_names)


def test_rules_evaluate_without_errors(prometheus):
    """Real Prometheus loads every rule file and evaluates every rule successfully."""
    groups = json.loads(http_get(f"{prometheus}/api/v1/rules"))["data"]["groups"]
    failing = {r["name"]: r.get("lastError") for g in groups for r in g["rules"] if r["health"] != "ok"}
    assert not failing


def test_rules_see_the_real_traffic(prometheus):
    """The app's job in prometheus.yml matches the rules: traffic is recorded per job."""
    answer = wait_until(
        lambda: prometheus_query(prometheus, "job:flask_http_request:rate5m")["data"]["result"],
        "job:flask_http_request:rate5m to have a value",
    )
    assert answer[0]["metric"]["job"] == "minitwit"


def test_dashboard_queries_parse_in_prometheus(prometheus):
    """Every Prometheus query of every dashboard is valid PromQL for real Prometheus."""
    errors = {}
    for file, expr in dashboard_targets("prometheus"):
        answer = prometheus_query(prometheus, grafana_to_promql(expr))
        if answer["status"] != "success":
            errors[f"{file}: {expr}"] = answer.get("error")
    assert not errors


# --- Grafana --------------------------------------------------------------------------


def provisioned_datasources() -> dict:
    """uid -> datasource as provisioned from datasources.yml."""
    return {ds["uid"]: ds for ds in load_yaml(DATASOURCES_YML)["datasources"]}


def test_dashboard_datasource_uids_are_provisioned():
    """Every datasource reference in every dashboard names a provisioned uid and type."""
    provisioned = provisioned_datasources()
    seen = set()
    for path in DASHBOARDS:
        for panel in panels(json.loads(path.read_text())):
            for ref in [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]:
                if ref:
                    assert ref["uid"] in provisioned, (path.name, panel["title"], ref)
                    assert ref["type"] == provisioned[ref["uid"]]["type"]
                    seen.add(ref["uid"])
    assert seen == {"prometheus", "loki"}


def test_dashboards_have_fixed_unique_uids_and_titles():
    """Provisioned dashboards need stable uids; two files with one uid would clash."""
    boards = [json.loads(path.read_text()) for path in DASHBOARDS]
    assert {path.name for path in DASHBOARDS} == {"minitwit-overview.json", "infrastructure.json"}
    assert len({b["uid"] for b in boards}) == len({b["title"] for b in boards}) == len(boards)


def test_overview_logs_panels_filter_on_level_metadata():
    """The logs panels query Loki by stream labels and filter level as metadata."""
    queries = [expr for file, expr in dashboard_targets("loki") if file == "minitwit-overview.json"]
    assert any('service="minitwit_app"' in q and "| level=~" in q for q in queries)


# --- Loki and Alloy (no binaries obtainable here: checked statically) -----------------


def duration_hours(value: str) -> float:
    """Hours in a Prometheus/Loki duration such as ``744h`` or ``35d``."""
    units = {"m": 1 / 60, "h": 1, "d": 24, "w": 168, "y": 8760}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([mhdwy])", value))


def test_loki_config_keeps_schema_retention_and_limits():
    """tsdb/v13 (structured metadata), compactor retention with its delete store, limits."""
    loki = load_yaml(LOKI_YML)
    schema = loki["schema_config"]["configs"][-1]
    assert (schema["store"], schema["schema"], schema["index"]["period"]) == ("tsdb", "v13", "24h")
    compactor = loki["compactor"]
    assert compactor["retention_enabled"] is True
    assert compactor["delete_request_store"] == schema["object_store"] == "filesystem"
    limits = loki["limits_config"]
    assert duration_hours(limits["retention_period"]) >= 30 * 24
    assert limits["allow_structured_metadata"] is True
    assert limits["ingestion_rate_mb"] > 0 and limits["ingestion_burst_size_mb"] > 0


def alloy_blocks(kind: str) -> list[str]:
    """Bodies of the top-level Alloy blocks of one component kind (``loki.write``...)."""
    text = re.sub(r"^\s*//[^\n]*\n", "", ALLOY_CONFIG.read_text(), flags=re.M)  # comment lines
    return re.findall(rf'^{re.escape(kind)} "\w+" {{\n(.*?)^}}', text, re.M | re.S)


def alloy_loki_url() -> str:
    """The push URL Alloy's loki.write sends to."""
    (body,) = alloy_blocks("loki.write")
    return re.search(r'url\s*=\s*"([^"]+)"', body)[1]


def test_alloy_keeps_only_the_stack_and_labels_it():
    """Discovery filters on the stack label; streams get stack, service and replica."""
    (discovery,) = alloy_blocks("discovery.docker")
    assert '"com.docker.stack.namespace=minitwit"' in discovery
    assert 'host             = "unix:///var/run/docker.sock"' in discovery
    (relabel,) = alloy_blocks("discovery.relabel")
    assert set(re.findall(r'target_label\s*=\s*"(\w+)"', relabel)) == {"stack", "service", "replica"}
    assert "task_name" in relabel


def test_alloy_turns_level_into_structured_metadata_not_a_label():
    """The app's JSON level is structured metadata; no stage makes it a label."""
    (process,) = alloy_blocks("loki.process")
    assert 'selector = "{service=\\"minitwit_app\\"}"' in process
    metadata = re.search(r"stage\.structured_metadata \{(.*?)\n    \}", process, re.S)[1]
    assert re.search(r"\blevel\s*=", metadata)
    assert "stage.labels" not in process
    assert re.fullmatch(r"http://[\w.-]+:\d+/loki/api/v1/push", alloy_loki_url())


# --- the stack file: names, ports, networks and mounts agree --------------------------


@pytest.fixture(scope="module")
def stack():
    """stack/minitwit.yml, written by the stack work; until it exists, these tests skip."""
    if not STACK_YML.exists():
        skip_or_fail("stack/minitwit.yml does not exist yet")
    return load_yaml(STACK_YML)


def networks_of(stack: dict, service: str) -> set[str]:
    """Networks a stack service joins (list or mapping form)."""
    return set(stack["services"][service].get("networks") or [])


def flag(stack: dict, service: str, name: str, default: str) -> str:
    """Value of a ``--name=value`` command-line flag of a stack service."""
    for arg in stack["services"][service].get("command") or []:
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    return default


def listen_ports(stack: dict) -> dict[str, int]:
    """The port each observed service listens on, from the files that decide it."""
    traefik = load_yaml(TRAEFIK_YML)
    entrypoint = traefik["metrics"]["prometheus"]["entryPoint"]
    app_env = stack["services"]["app"].get("environment") or {}
    return {
        "app": int(app_env.get("METRICS_PORT", 9200)),
        "traefik": int(traefik["entryPoints"][entrypoint]["address"].rsplit(":", 1)[1]),
        "prometheus": int(flag(stack, "prometheus", "--web.listen-address", ":9090").rsplit(":", 1)[1]),
        "loki": int(load_yaml(LOKI_YML)["server"]["http_listen_port"]),
        "node-exporter": int(flag(stack, "node-exporter", "--web.listen-address", ":9100").rsplit(":", 1)[1]),
        "postgres-exporter": int(flag(stack, "postgres-exporter", "--web.listen-address", ":9187").rsplit(":", 1)[1]),
        "alertmanager": int(flag(stack, "alertmanager", "--web.listen-address", ":9093").rsplit(":", 1)[1]),
    }


def mounted_files(stack: dict, service: str) -> dict[str, str]:
    """Container path -> repository file for every Swarm config a service mounts."""
    configs = stack["configs"]
    return {
        mount["target"]: str((STACK / configs[mount["source"]]["file"]).resolve().relative_to(REPO_ROOT))
        for mount in stack["services"][service].get("configs", [])
    }


def assert_reaches(stack: dict, client: str, url: str):
    """``url`` names a stack service on the port it listens on, over a shared network."""
    parsed = urllib.parse.urlsplit(url)
    assert parsed.hostname in stack["services"], url
    assert parsed.port == listen_ports(stack)[parsed.hostname], url
    assert networks_of(stack, client) & networks_of(stack, parsed.hostname), (client, url)


def test_prometheus_targets_match_stack_services(stack):
    """Each scrape job names a stack service (tasks.<service>) on its metrics port."""
    jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS_YML)["scrape_configs"]}
    services = {
        "minitwit": "app",
        "traefik": "traefik",
        "node": "node-exporter",
        "postgres": "postgres-exporter",
        "alertmanager": "alertmanager",
    }
    for job_name, service in services.items():
        (sd,) = jobs[job_name]["dns_sd_configs"]
        assert sd["names"] == [f"tasks.{service}"] and sd["type"] == "A"
        assert_reaches(stack, "prometheus", f"http://{service}:{sd['port']}")
    ((alertmanagers,),) = [am["dns_sd_configs"] for am in load_yaml(PROMETHEUS_YML)["alerting"]["alertmanagers"]]
    assert alertmanagers["names"] == ["tasks.alertmanager"]
    assert_reaches(stack, "prometheus", f"http://alertmanager:{alertmanagers['port']}")
    (own,) = jobs["prometheus"]["static_configs"][0]["targets"]
    assert int(own.rsplit(":", 1)[1]) == listen_ports(stack)["prometheus"]


def test_grafana_datasources_and_alloy_point_at_stack_services(stack):
    """Grafana's datasource URLs and Alloy's Loki URL are reachable stack services."""
    for datasource in provisioned_datasources().values():
        assert_reaches(stack, "grafana", datasource["url"])
    assert_reaches(stack, "alloy", alloy_loki_url())
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in stack["services"]["alloy"]["volumes"]


def test_stack_mounts_the_files_where_they_are_read(stack):
    """Swarm configs put each file where its program and its references expect it."""
    prometheus = mounted_files(stack, "prometheus")
    config_path = flag(stack, "prometheus", "--config.file", "/etc/prometheus/prometheus.yml")
    assert prometheus[config_path] == "stack/prometheus/prometheus.yml"
    for rule_file in load_yaml(PROMETHEUS_YML)["rule_files"]:
        target = os.path.join(os.path.dirname(config_path), rule_file)
        assert prometheus[target] == f"stack/prometheus/{rule_file}"
    loki = mounted_files(stack, "loki")
    assert loki[flag(stack, "loki", "-config.file", "")] == "stack/loki/loki.yml"
    alloy = mounted_files(stack, "alloy")
    assert alloy[stack["services"]["alloy"]["command"][-1]] == "stack/alloy/config.alloy"
    grafana = mounted_files(stack, "grafana")
    for path in (DATASOURCES_YML, PROVIDER_YML):
        target = "/etc/grafana/" + str(path.relative_to(STACK / "grafana"))
        assert grafana[target] == str(path.relative_to(REPO_ROOT))
    (provider,) = load_yaml(PROVIDER_YML)["providers"]
    for path in DASHBOARDS:
        target = f"{provider['options']['path']}/{path.name}"
        assert grafana[target] == str(path.relative_to(REPO_ROOT))


def test_prometheus_retention_covers_the_slo_window(stack):
    """The 30-day SLO and error-budget rules need 30 days of data kept."""
    retention = flag(stack, "prometheus", "--storage.tsdb.retention.time", "15d")
    assert duration_hours(retention) >= 30 * 24
