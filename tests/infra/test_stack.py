"""The Swarm stack, its overrides, Traefik's configuration and the image agree with each other.

These tests read the committed files (stack/*.yml, traefik/, Dockerfile, .dockerignore) and
check the rules a deploy would only reveal later: pinned images, declared secrets and configs,
ports published only by Traefik, Traefik labels Swarm can use, a rolling update that can roll
back, content-versioned configs. `docker stack config` itself runs in scripts/check-stack.sh.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from testkit import REPO_ROOT

yaml = pytest.importorskip("yaml")

STACK_DIR = REPO_ROOT / "stack"
BASE = STACK_DIR / "minitwit.yml"
OVERRIDES = [STACK_DIR / "ci.yml", STACK_DIR / "external-db.yml"]
TRAEFIK_STATIC = REPO_ROOT / "traefik" / "traefik.yml"
TRAEFIK_DYNAMIC = sorted((REPO_ROOT / "traefik" / "dynamic").glob("*.yml"))
GUNICORN_CONF = REPO_ROOT / "service" / "gunicorn.conf.py"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def load(path):
    """One YAML document."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def base():
    return load(BASE)


@pytest.fixture(scope="module", params=OVERRIDES, ids=lambda path: path.name)
def override(request):
    return load(request.param)


def seconds(duration: str) -> float:
    """Seconds in a compose duration such as ``1m30s``, ``60s`` or ``500ms``."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def with_defaults(text: str) -> str:
    """``text`` with each variable replaced by its default, or ``<NAME>`` when it has none."""

    def replace(match):
        if match["op"] in (":-", "-"):
            return match["arg"]
        return f"<{match['name']}>"

    return VARIABLE.sub(replace, text)


def labels(service: dict) -> dict[str, str]:
    """Service-level labels (``deploy.labels``, list or mapping form) as a mapping."""
    raw = (service.get("deploy") or {}).get("labels") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


def dynamic_middlewares() -> set[str]:
    """Middlewares the file provider defines, as ``<name>@file``."""
    names = set()
    for path in TRAEFIK_DYNAMIC:
        names |= {f"{name}@file" for name in load(path).get("http", {}).get("middlewares", {})}
    return names


# --- images ---------------------------------------------------------------------------


def all_images(*documents) -> list[str]:
    """Every service image string across stack files."""
    return [svc["image"] for doc in documents for svc in doc["services"].values() if "image" in svc]


def test_images_are_pinned_never_latest(base):
    """Every image, with its variable's default, names an explicit tag that is not latest."""
    for image in all_images(base, *map(load, OVERRIDES)):
        resolved = with_defaults(image)
        if resolved.startswith("<"):
            # A required variable with no default (MINITWIT_IMAGE): the operator supplies the tag.
            assert ":?" in image, image
            continue
        name, _, tag = resolved.rpartition(":")
        assert name and "/" not in tag, f"{image} has no tag"
        assert tag != "latest", image


def test_app_image_is_required_not_defaulted(base):
    """The app's image has no default, so nobody deploys an unintended build."""
    match = VARIABLE.fullmatch(base["services"]["app"]["image"])
    assert match and match["name"] == "MINITWIT_IMAGE" and match["op"] == ":?"


# --- secrets and configs ----------------------------------------------------------------


def merged_top_level(key: str, *documents) -> dict:
    """Top-level ``secrets``/``configs`` as Compose merges them across files."""
    merged = {}
    for document in documents:
        merged.update(document.get(key) or {})
    return merged


def referenced(key: str, *documents) -> set[str]:
    """Names of secrets/configs that services mount (short or long syntax)."""
    names = set()
    for document in documents:
        for service in document["services"].values():
            for ref in service.get(key) or []:
                names.add(ref if isinstance(ref, str) else ref["source"])
    return names


@pytest.mark.parametrize("key", ["secrets", "configs"])
def test_every_secret_and_config_used_is_declared(base, override, key):
    """Each mounted secret/config is declared at top level, and each declared one is used."""
    declared = merged_top_level(key, base, override)
    used = referenced(key, base, override)
    assert used <= set(declared), used - set(declared)
    assert set(declared) <= used, set(declared) - used


def test_declared_config_files_exist(base, override):
    """Every file-backed secret or config of the stack is a file in the repository."""
    for key in ("configs", "secrets"):
        for definition in merged_top_level(key, base).values():
            if "file" in definition:
                assert (STACK_DIR / definition["file"]).is_file(), definition["file"]


def test_base_secrets_are_external_with_overridable_names(base):
    """Secrets come from outside the stack (Ansible or by hand), under a versionable name."""
    for name, definition in base["secrets"].items():
        assert definition.get("external") is True, name
        assert VARIABLE.fullmatch(definition["name"]), name


def test_app_reads_secrets_through_file_variables(base):
    """Each ``*_FILE`` variable names a secret the app mounts; no secret value is in env."""
    app = base["services"]["app"]
    targets = {f"/run/secrets/{ref['target']}" for ref in app["secrets"]}
    env = app["environment"]
    file_vars = {name: value for name, value in env.items() if name.endswith("_FILE")}
    assert set(file_vars) == {"SECRET_KEY_FILE", "DATABASE_URL_FILE", "SIMULATOR_AUTH_FILE"}
    assert set(file_vars.values()) == targets
    assert not {"SECRET_KEY", "DATABASE_URL", "SIMULATOR_AUTH"} & set(env)


def config_versions() -> dict[str, str]:
    """``NAME=value`` pairs printed by stack/config-versions.sh."""
    output = subprocess.run([str(STACK_DIR / "config-versions.sh")], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in output.splitlines())


def test_configs_are_content_versioned(base):
    """Every config name carries a version variable that config-versions.sh computes."""
    versions = config_versions()
    for name, definition in base["configs"].items():
        variables = {m["name"] for m in VARIABLE.finditer(definition["name"])}
        (variable,) = variables & set(versions) or {None}
        assert variable, f"config {name} is not content-versioned: {definition['name']}"
        assert re.fullmatch(r"[0-9a-f]{12}", versions[variable])


def test_config_version_follows_content(tmp_path):
    """Changing a file changes its group's version, and only that group's."""
    for part in ("stack", "traefik"):
        shutil.copytree(REPO_ROOT / part, tmp_path / part)
    script = str(tmp_path / "stack" / "config-versions.sh")
    before = subprocess.run([script], check=True, capture_output=True, text=True).stdout
    with open(tmp_path / "traefik" / "dynamic" / "middlewares.yml", "a", encoding="utf-8") as handle:
        handle.write("# changed\n")
    after = subprocess.run([script], check=True, capture_output=True, text=True).stdout
    changed = set(before.splitlines()) ^ set(after.splitlines())
    assert {line.split("=")[0] for line in changed} == {"TRAEFIK_CONFIG_VERSION"}


# --- ports and networks ---------------------------------------------------------------


def test_only_traefik_publishes_ports_in_host_mode(base, override):
    """80 and 443 on Traefik, host mode (no routing mesh); nothing else publishes a port."""
    for document in (base, override):
        for name, service in document["services"].items():
            if name != "traefik":
                assert "ports" not in service, name
    ports = base["services"]["traefik"]["ports"]
    assert sorted(port["published"] for port in ports) == [80, 443]
    assert {port["mode"] for port in ports} == {"host"}


def test_internal_networks_and_who_joins_them(base):
    """Database and monitoring networks are internal; only the proxy network leads out, and
    the alerting network for Alertmanager alone (SMTP, chat and heartbeat are outside)."""
    networks = base["networks"]
    assert networks["database"].get("internal") is True
    assert networks["monitoring"].get("internal") is True
    assert not networks["proxy"].get("internal")
    assert not networks["alerting"].get("internal")
    members = {name: set(service.get("networks") or []) for name, service in base["services"].items()}
    assert {name for name, nets in members.items() if "proxy" in nets} == {"traefik", "app", "grafana"}
    assert {name for name, nets in members.items() if "database" in nets} == {"app", "postgres", "postgres-exporter"}
    assert {name for name, nets in members.items() if "alerting" in nets} == {"alertmanager"}


# --- Traefik ---------------------------------------------------------------------------


def traefik_services(base) -> dict[str, dict[str, str]]:
    """Labels of every service Traefik routes (traefik.enable=true)."""
    return {
        name: labels(service)
        for name, service in base["services"].items()
        if labels(service).get("traefik.enable") == "true"
    }


def test_traefik_labels_are_deploy_labels(base, override):
    """Swarm ignores container labels: no traefik.* label outside deploy.labels."""
    for document in (base, override):
        for name, service in document["services"].items():
            container_labels = service.get("labels") or []
            assert not [key for key in container_labels if str(key).startswith("traefik.")], name


def test_routed_services_name_a_loadbalancer_port(base):
    """Swarm reports no ports to Traefik, so each routed service names its server port."""
    routed = traefik_services(base)
    assert {"app", "grafana", "traefik"} <= set(routed)
    for name, service_labels in routed.items():
        port_label = re.compile(r"traefik\.http\.services\.[\w-]+\.loadbalancer\.server\.port")
        ports = [key for key in service_labels if port_label.fullmatch(key)]
        assert ports, name
        assert all(service_labels[key].isdigit() for key in ports), name


def test_routers_use_tls_known_services_and_middlewares(base):
    """Routers listen on websecure with the le resolver; their services and middlewares exist."""
    middlewares = dynamic_middlewares()
    for service_labels in traefik_services(base).values():
        defined = {key.split(".")[3] for key in service_labels if key.startswith("traefik.http.services.")}
        routers = {key.split(".")[3] for key in service_labels if key.startswith("traefik.http.routers.")}
        for router in routers:
            prefix = f"traefik.http.routers.{router}."
            assert service_labels[prefix + "entrypoints"] == "websecure", router
            assert service_labels[prefix + "tls.certresolver"] == "le", router
            assert service_labels[prefix + "service"] in defined | {"api@internal"}, router
            for middleware in service_labels.get(prefix + "middlewares", "").split(","):
                assert not middleware or middleware in middlewares, (router, middleware)


def test_ui_is_rate_limited_and_api_is_not(base):
    """One simulator IP must not be throttled: the API router has no rate limit."""
    app = labels(base["services"]["app"])
    assert "ui-ratelimit@file" in app["traefik.http.routers.minitwit-web-https.middlewares"]
    assert "PathPrefix(`/api`)" in app["traefik.http.routers.minitwit-api-https.rule"]
    assert "ratelimit" not in app.get("traefik.http.routers.minitwit-api-https.middlewares", "")
    assert "9200" not in " ".join(app.values()), "the metrics port must never be routed"


def test_traefik_static_configuration(base):
    """Redirect to HTTPS, ACME over HTTP-01, Swarm provider on the proxy network, no insecure API."""
    static = load(TRAEFIK_STATIC)
    web = static["entryPoints"]["web"]["http"]["redirections"]["entryPoint"]
    assert (web["to"], web["scheme"]) == ("websecure", "https")
    websecure = static["entryPoints"]["websecure"]["http"]
    assert websecure["tls"]["certResolver"] == "le"
    assert set(websecure["middlewares"]) <= dynamic_middlewares()
    acme = static["certificatesResolvers"]["le"]["acme"]
    assert acme["httpChallenge"]["entryPoint"] == "web"
    assert acme["storage"].startswith("/letsencrypt/")
    swarm = static["providers"]["swarm"]
    assert swarm["exposedByDefault"] is False
    assert swarm["network"] == base["networks"]["proxy"]["name"]
    assert static["api"].get("insecure") is False
    assert static["ping"]["entryPoint"] in static["entryPoints"]


def test_traefik_template_variables_come_from_its_environment(base):
    """`{{ env "X" }}` in the templated static config is set on the Traefik service."""
    settings = [line for line in TRAEFIK_STATIC.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    used = set(re.findall(r'\{\{\s*env\s+"(\w+)"\s*\}\}', "\n".join(settings)))
    assert used, "traefik.yml is expected to take ACME settings from the environment"
    assert used <= set(base["services"]["traefik"]["environment"])
    assert base["configs"]["traefik_static"]["template_driver"] == "golang"


def test_traefik_runs_once_on_a_manager_and_stops_first(base):
    """ACME state is single-instance; host ports cannot be bound twice during an update."""
    deploy = base["services"]["traefik"]["deploy"]
    assert deploy["replicas"] == 1
    assert "node.role == manager" in deploy["placement"]["constraints"]
    assert deploy["update_config"]["order"] == "stop-first"
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in base["services"]["traefik"]["volumes"]


def byte_size(value: str) -> int:
    """A size as Compose writes it (``256M``) or Go's runtime reads it (``200MiB``), in bytes."""
    match = re.fullmatch(r"(\d+)\s*([KMG])?(?:i?B)?", str(value), re.I)
    assert match, f"not a size: {value!r}"
    return int(match[1]) * 1024 ** " KMG".index((match[2] or " ").upper())


def test_traefik_collects_garbage_before_its_memory_limit(base):
    """GOGC is raised for CPU (docs/performance.md); GOMEMLIMIT keeps the heap under the task's limit."""
    traefik = base["services"]["traefik"]
    environment = traefik["environment"]
    limit = byte_size(traefik["deploy"]["resources"]["limits"]["memory"])
    soft = byte_size(environment["GOMEMLIMIT"])
    assert int(environment["GOGC"]) > 100
    assert soft <= 0.8 * limit, f"GOMEMLIMIT {soft} leaves too little of the {limit}-byte limit for the rest"


# --- the app service ----------------------------------------------------------------


def gunicorn_graceful_timeout() -> int:
    """gunicorn.conf.py's graceful_timeout (seconds)."""
    match = re.search(r"^graceful_timeout\s*=\s*(\d+)", GUNICORN_CONF.read_text(encoding="utf-8"), re.M)
    assert match, "service/gunicorn.conf.py sets graceful_timeout"
    return int(match[1])


def test_app_rolling_update_can_roll_back(base):
    """3 replicas, one at a time, start-first, automatic rollback; the monitor outlasts three missed
    checks after a task's first good one (a task that never gets healthy fails the update anyway:
    drill 4 deploys one and sees it rolled back)."""
    app = base["services"]["app"]
    deploy = app["deploy"]
    update = deploy["update_config"]
    assert deploy["replicas"] == 3
    assert (update["parallelism"], update["order"], update["failure_action"]) == (1, "start-first", "rollback")
    health = app["healthcheck"]
    assert seconds(update["monitor"]) > seconds(health["interval"]) * health["retries"]
    assert deploy["rollback_config"]["parallelism"] == 1
    assert deploy["restart_policy"]["condition"] in ("any", "on-failure")


def test_a_deploy_waits_seconds_not_minutes_on_unchanged_services(base):
    """`docker stack deploy --detach=false` waits out each service's monitor in turn, changed or
    not (Docker's default 5 s when unset): every service sets one, and all of them but the app's
    add up to under 15 s."""
    ci = load(STACK_DIR / "ci.yml")["services"]
    services = {**base["services"], **{k: v for k, v in ci.items() if k not in base["services"]}}
    monitors = {}
    for name, service in services.items():
        update = {
            **service.get("deploy", {}).get("update_config", {}),
            **ci.get(name, {}).get("deploy", {}).get("update_config", {}),
        }
        assert "monitor" in update, f"{name} sets no update_config.monitor (Docker's default is 5 s)"
        monitors[name] = seconds(update["monitor"])
    assert sum(v for k, v in monitors.items() if k != "app") < 15, monitors


def test_app_healthcheck_probes_health_without_curl(base):
    """The probe is Python against /health on the app port (the image has no curl)."""
    test = base["services"]["app"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python3"]
    assert "http://127.0.0.1:5000/health" in test[-1]


def test_app_stops_gracefully_with_bounded_resources(base):
    """stop_grace_period outlasts gunicorn's graceful timeout; limits and reservations set."""
    app = base["services"]["app"]
    assert seconds(app["stop_grace_period"]) > gunicorn_graceful_timeout()
    resources = app["deploy"]["resources"]
    assert {"cpus", "memory"} <= set(resources["limits"]) and {"cpus", "memory"} <= set(resources["reservations"])


def test_every_service_rotates_its_logs(base):
    """json-file with a size cap, so Alloy can read logs and the disk does not fill."""
    for name, service in base["services"].items():
        logging = service["logging"]
        assert logging["driver"] == "json-file", name
        assert {"max-size", "max-file"} <= set(logging["options"]), name


def test_postgres_is_pinned_to_a_labelled_node(base):
    """The database's volume lives on one node; the scheduler must keep it there."""
    postgres = base["services"]["postgres"]
    assert any(c.startswith("node.labels.") for c in postgres["deploy"]["placement"]["constraints"])
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"


def test_services_with_local_volumes_share_the_stateful_node_and_replicas_spread(base):
    """On several nodes, Traefik's ACME and Prometheus's TSDB volumes stay with PostgreSQL's
    node (the one DNS points at), and the app replicas go one per node (docs/deployment.md)."""
    pinned = {c for c in base["services"]["postgres"]["deploy"]["placement"]["constraints"] if "labels" in c}
    for name in ("traefik", "prometheus"):
        assert pinned <= set(base["services"][name]["deploy"]["placement"]["constraints"]), name
    assert {"spread": "node.id"} in base["services"]["app"]["deploy"]["placement"]["preferences"]


# --- the CI override --------------------------------------------------------------------


def test_ci_override_fits_a_machine_without_registry_or_ipvs(base):
    """Local images, dnsrr everywhere, Pebble as CA, unobtainable images scaled to zero."""
    ci = load(STACK_DIR / "ci.yml")
    for name in base["services"]:
        assert ci["services"][name]["deploy"]["endpoint_mode"] == "dnsrr", name
    for name in ("grafana", "loki", "alloy"):
        assert ci["services"][name]["deploy"]["replicas"] == 0, name
    for name in ("traefik", "postgres", "prometheus", "pebble"):
        assert ci["services"][name]["image"].startswith("local/"), name
    traefik = ci["services"]["traefik"]
    assert traefik["environment"]["ACME_CA_SERVER"] == "https://pebble:14000/dir"
    aliases = set(traefik["networks"]["proxy"]["aliases"])
    assert aliases == {"${MINITWIT_DOMAIN}", "${GRAFANA_DOMAIN}", "${TRAEFIK_DASHBOARD_DOMAIN}"}


# --- the image ----------------------------------------------------------------------------


def test_dockerfile_shape():
    """Overridable base, pinned deps before code, non-root, healthcheck, OCI labels, secret only in build."""
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "ARG BASE=python:3.12-slim" in text
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2 and all(stage.startswith("${BASE}") for stage in stages)
    build, final = stages
    assert "--mount=type=secret,id=ca" in build and "--mount=type=secret" not in final
    assert final.index("COPY --from=build /opt/venv") < final.index("COPY service/")
    assert re.search(r"^USER 10001", final, re.M)
    assert "HEALTHCHECK" in final and "/health" in final
    for key in ("source", "revision", "version"):
        assert f"org.opencontainers.image.{key}=" in final


def test_dockerignore_is_an_allow_list():
    """Everything is excluded except what the image needs: no tests, .git, databases, venvs."""
    lines = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == {"requirements.txt", "service/", "docker/entrypoint.sh"}
    assert "**/*.db" in lines


# --- Alertmanager ----------------------------------------------------------------------


def test_alertmanager_reads_every_credential_from_a_mounted_secret(base):
    """No password or webhook URL is written in the config: each is a *_file under
    /run/secrets that the service mounts, so git, labels and the image never hold one."""
    text = (STACK_DIR / "alertmanager" / "alertmanager.yml").read_text()
    files = set(re.findall(r"_file: (/run/secrets/\S+)", text))
    mounted = {f"/run/secrets/{secret['target']}" for secret in base["services"]["alertmanager"]["secrets"]}
    assert files == mounted and len(files) == 3
    inline = re.findall(r"^\s*-?\s*(api_url|url|webhook_url|smtp_auth_password|auth_password):", text, re.M)
    assert not inline


def test_alertmanager_and_exporters_publish_nothing(base, override):
    """They are reached over the internal networks only."""
    for name in ("alertmanager", "node-exporter", "postgres-exporter", "alert-sink"):
        for document in (base, override):
            assert not document["services"].get(name, {}).get("ports"), name


def test_every_router_gets_mozillas_intermediate_tls():
    """The file provider's `default` TLS option (every router that names none): TLS 1.2 and 1.3, the
    profile's ECDHE AEAD suites only (no CBC), its curves; no router picks another option."""
    options = load(STACK_DIR.parent / "traefik" / "dynamic" / "tls.yml")["tls"]["options"]
    assert set(options) == {"default"}
    default = options["default"]
    assert default["minVersion"] == "VersionTLS12" and "maxVersion" not in default
    assert all("_GCM_" in suite or "CHACHA20" in suite for suite in default["cipherSuites"])
    assert all(suite.startswith("TLS_ECDHE_") for suite in default["cipherSuites"])
    assert default["curvePreferences"] == ["X25519", "CurveP256", "CurveP384"]
    labels = [
        label for service in load(BASE)["services"].values() for label in service.get("deploy", {}).get("labels", [])
    ]
    assert not [label for label in labels if ".tls.options=" in label]


def test_app_and_exporters_run_with_least_privilege(base):
    """Read-only root filesystems and no capabilities for the app and the exporters; the app writes
    only its /tmp tmpfs; the engine forbids new privileges (Swarm services cannot ask for it)."""
    for name in ("app", "node-exporter", "postgres-exporter"):
        service = base["services"][name]
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert "user" not in service or service["user"] not in ("0", "root"), name
    app_mounts = [v for v in base["services"]["app"]["volumes"] if isinstance(v, dict)]
    assert [(m["type"], m["target"]) for m in app_mounts] == [("tmpfs", "/tmp")]
    daemon = load(STACK_DIR.parent / "ansible" / "roles" / "docker" / "defaults" / "main.yml")["docker_daemon_options"]
    assert daemon["no-new-privileges"] is True
