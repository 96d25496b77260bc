"""What must hold of the deployed stack, checked from outside as a user and as an operator.

``python -m drills.checks --env-file /tmp/minitwit-lab17/env --stage single|multi [--out DIR]``

``single``: right after the first deploy on one node. The certificate, the redirect, the
published ports, replicas serving and logging, the dashboard's authentication, the body
limits, Prometheus's targets and business counters, the exporters, the Watchdog at the alert
sink, the project's API contract and browser suites against the deployed URL, and the backups
(drills/backup_checks.py: the timers, the repository's ciphertext, bad input refused).
``multi``: after the lab grew to several nodes. Every node Ready, the pinned services on the
stateful node, requests reaching replicas on other nodes, Prometheus's targets across the
overlay, a second ``provision.yml`` and ``deploy.yml`` that change nothing, and an nmap scan
of every node from the lab network.

A check either passes (its line goes to ``checks.json``/``checks.md``) or stops the run with
what it saw. Traffic goes only to the lab nodes' addresses; everything else is ``docker exec``.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import shlex
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from bench.client import send
from bench.scenario import AUTHORIZATION
from drills import alerts
from drills import backup_checks
from drills import swarm
from drills.lab import CheckFailed
from drills.lab import Lab
from drills.lab import expect
from drills.lab import lab_from
from drills.lab import poll
from drills.lab import prometheus
from drills.lab import prometheus_exactly
from drills.lab import served_by

REPO_ROOT = Path(__file__).resolve().parent.parent
REPLICAS = 3
# The Watchdog reaches the heartbeat receiver within this bound of Alertmanager's start:
# Prometheus evaluates it every 15 s and resends firing alerts every minute, Alertmanager's
# heartbeat route waits 0 s. A resend plus two evaluations.
WATCHDOG_BOUND_S = 120
# The app refuses bodies over 64 KiB with its JSON 413; Traefik refuses those over 10 MiB.
APP_LIMITED_BODY = 5_000_000
TRAEFIK_LIMITED_BODY = 11_000_000
APP_413 = b'{"error_msg":"The request body is too large.","status":413}'


# --- single node: what the first deploy must give users and operators ---


def check_certificate(lab: Lab) -> None:
    """The host name's certificate was issued over ACME by Pebble, verifies with its root, is ECDSA."""
    expect(send(lab.site, "GET", "/health").status == 200, f"GET https://{lab.domain}/health with Pebble's root")
    context = ssl.create_default_context(cafile=lab.ca_file)
    with socket.create_connection((lab.address, 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=lab.domain) as tls:
            der = tls.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    issuer = cert.issuer.rfc4514_string()
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    expect("Pebble" in issuer, f"certificate not issued by Pebble: {issuer}")
    expect(lab.domain in names, f"certificate not for {lab.domain}: {names}")
    # keyType EC256: a handshake costs Traefik an ECDSA P-256 signature, not an RSA-4096 one (~200x the CPU).
    expect(isinstance(cert.public_key(), ec.EllipticCurvePublicKey), "certificate key is not ECDSA")
    lab.ok(f"certificate for {lab.domain} (ECDSA) issued over ACME by Pebble ({issuer})")


def check_redirect(lab: Lab) -> None:
    """Plain HTTP answers with a permanent redirect to the same URL over HTTPS."""
    answer = send(lab.target(f"http://{lab.domain}"), "GET", "/public")
    location = answer.headers.get("location", "")
    expect(
        answer.status in (301, 308) and location == f"https://{lab.domain}/public",
        f"HTTP is not redirected to HTTPS: {answer.status} {location}",
    )
    lab.ok(f"http://{lab.domain}/public -> {answer.status} {location}")


def check_only_traefik_publishes(lab: Lab) -> None:
    """Only Traefik publishes ports (80 and 443, host mode); Alertmanager and the exporters none."""
    listed = swarm.run(
        [
            "docker",
            "service",
            "ls",
            "--format",
            "{{.Name}}",
            "--filter",
            f"label=com.docker.stack.namespace={lab.stack.name}",
        ],
        timeout=30,
        check=True,
    ).stdout.split()
    for short in ("alertmanager", "node-exporter", "postgres-exporter"):
        expect(lab.stack.service(short) in listed, f"{lab.stack.service(short)} is not deployed")
    template = "{{range .Spec.EndpointSpec.Ports}}{{.PublishedPort}}/{{.PublishMode}} {{end}}"
    for service in listed:
        ports = swarm.run(["docker", "service", "inspect", "--format", template, service], timeout=30).stdout.split()
        if service == lab.stack.service("traefik"):
            expect(ports == ["80/host", "443/host"], f"traefik publishes {ports}, expected 80/host 443/host")
        else:
            expect(not ports, f"{service} publishes {ports}; only Traefik may")
    lab.ok("only traefik publishes ports (80/host 443/host); alertmanager and the exporters publish none")


def check_replicas_serve(lab: Lab) -> None:
    """30 requests spread over the 3 replicas, which echo X-Request-ID and log it."""
    api = lab.target(f"https://{lab.domain}/api")
    run_id = f"checks-{os.getpid()}"
    served = []
    for i in range(1, 31):
        answer = send(api, "GET", "/latest", auth=True, request_id=f"{run_id}-{i}")
        expect(answer.headers.get("x-request-id") == f"{run_id}-{i}", f"X-Request-ID not echoed: {answer.headers}")
        served.append(served_by(answer))
    counts = Counter(served)
    expect(len(counts) == REPLICAS, f"30 requests were served by {len(counts)} replica(s), expected 3: {counts}")
    # That replica's own log line for the first request (`docker logs`, bounded: `docker service
    # logs` can hang on tasks whose containers are gone).
    first = served[0]
    container = swarm.run(
        [
            "docker",
            "ps",
            "-q",
            "--filter",
            f"id={first}",
            "--filter",
            f"label=com.docker.swarm.service.name={lab.stack.service('app')}",
        ],
        timeout=30,
    ).stdout.strip()
    logs = swarm.run(["docker", "logs", "--since", "10m", container], timeout=30) if container else None
    lines = [] if logs is None else [ln for ln in (logs.stdout + logs.stderr).splitlines() if f'{run_id}-1"' in ln]
    expect(any(f'"host": "{first}"' in ln for ln in lines), f"request {run_id}-1 not logged by replica {first}")
    lab.figures["requests_per_replica"] = dict(counts)
    lab.ok(f"30 requests spread over {len(counts)} replicas ({dict(counts)}), X-Request-ID echoed and logged")


def check_dashboard_auth(lab: Lab) -> None:
    """The Traefik dashboard is behind basic auth."""
    dashboard = lab.target(f"https://traefik.{lab.domain}")
    password = (lab.state_dir / "secrets" / "traefik_dashboard_password").read_text().strip()
    # Pebble issues this host's certificate when Traefik first sees its router: allow 30 s.
    poll(lambda: 1.0 if send(dashboard, "GET", "/dashboard/").status else None, 1, 30, 2)
    anonymous = send(dashboard, "GET", "/dashboard/").status
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    authorised = send(dashboard, "GET", "/dashboard/", headers={"Authorization": f"Basic {token}"}).status
    expect(
        anonymous == 401 and authorised == 200,
        f"dashboard: anonymous {anonymous} (want 401), with credentials {authorised} (want 200)",
    )
    lab.ok("Traefik dashboard: 401 without credentials, 200 with")


def post_oversized(lab: Lab, path: str, size: int) -> tuple[int | None, bytes]:
    """POST ``size`` bytes to the API and read the answer, also when the server answers (and
    closes) before the body is all sent, as Traefik does past its limit."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {lab.domain}\r\nAuthorization: {AUTHORIZATION}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    ).encode()
    context = ssl.create_default_context(cafile=lab.ca_file)
    with socket.create_connection((lab.address, 443), timeout=30) as raw:
        with context.wrap_socket(raw, server_hostname=lab.domain) as tls:
            tls.sendall(head)
            chunk, sent, answer = b"x" * 65536, 0, b""
            while sent < size and not answer:
                answer = _read_now(tls)  # the answer may come before the whole body: stop sending
                if not answer:
                    try:
                        tls.sendall(chunk[: size - sent])
                    except OSError:
                        break
                    sent += len(chunk)
            try:
                while b"\r\n\r\n" not in answer or len(answer) < 4096:
                    data = tls.recv(65536)
                    if not data:
                        break
                    answer += data
            except OSError:
                pass
    if not answer.startswith(b"HTTP/"):
        return None, answer
    head_bytes, _, body = answer.partition(b"\r\n\r\n")
    return int(head_bytes.split(b" ", 2)[1]), body


def _read_now(tls: ssl.SSLSocket) -> bytes:
    """Application data the server has sent already, without waiting (TLS records such as
    session tickets are no answer: the read then wants more and returns nothing)."""
    tls.settimeout(0.0)
    try:
        return tls.recv(65536)
    except (ssl.SSLWantReadError, BlockingIOError):
        return b""
    finally:
        tls.settimeout(30)


def check_body_limits(lab: Lab) -> None:
    """5 MB to the API gets the app's 413 JSON through Traefik; over 10 MiB, Traefik's own 413."""
    path = "/api/msgs/checks"
    status, body = post_oversized(lab, path, APP_LIMITED_BODY)
    expect(status == 413 and body.startswith(APP_413), f"a 5 MB POST answered {status}: {body[:200]!r}")
    status, body = post_oversized(lab, path, TRAEFIK_LIMITED_BODY)
    expect(
        status == 413 and not body.startswith(b"{"),
        f"an 11 MB POST answered {status}, not Traefik's 413: {body[:200]!r}",
    )
    lab.ok("body limits: 5 MB -> the app's 413 JSON, 11 MB -> Traefik's 413")


def post_through_api(lab: Lab) -> None:
    """Register a user and post 3 messages through the simulator API (real writes through Traefik)."""
    api = lab.target(f"https://{lab.domain}/api")
    user = f"checks{os.getpid()}{int(time.time()) % 100000}"
    answer = send(
        api,
        "POST",
        "/register?latest=1",
        {"username": user, "email": f"{user}@example.org", "pwd": f"pw-{user}"},
        auth=True,
    )
    expect(answer.status == 204, f"POST /api/register answered {answer.status}: {answer.body[:200]!r}")
    for i in range(1, 4):
        answer = send(api, "POST", f"/msgs/{user}?latest={i + 1}", {"content": f"checks message {i}"}, auth=True)
        expect(answer.status == 204, f"POST /api/msgs/{user} answered {answer.status}")


def check_prometheus(lab: Lab) -> None:
    """Prometheus scrapes 3 app replicas and Traefik, and the business counters move with traffic."""
    up = prometheus_exactly(lab, 'count(up{job="minitwit"} == 1)', REPLICAS, 90)
    expect(up == REPLICAS, f"Prometheus sees {up} healthy app targets, expected 3")
    traefik = prometheus(lab, 'count(up{job="traefik"} == 1)', 1, 60)
    expect(traefik == 1, f"Prometheus sees {traefik} healthy traefik targets, expected 1")
    before = swarm.prometheus_value(lab.stack, "sum(minitwit_messages_posted_total)") or 0
    post_through_api(lab)
    after = prometheus(lab, "sum(minitwit_messages_posted_total)", before + 3, 90)
    expect(after is not None and after >= before + 3, f"messages posted did not grow by 3 ({before} -> {after})")
    # The registration may have landed on a replica that Prometheus has not scraped since: wait too.
    registered = prometheus(lab, 'sum(minitwit_users_registered_total{source="api"})', 1, 60)
    expect((registered or 0) >= 1, f'minitwit_users_registered_total{{source="api"}} is {registered}')
    lab.ok(
        f"Prometheus: 3 app targets and traefik up; messages posted {before:g} -> {after:g}, API registrations {registered:g}"
    )


def check_exporters(lab: Lab) -> None:
    """Prometheus scrapes node, postgres (logged in: pg_up 1) and Alertmanager, and notifies it."""
    for job in ("node", "postgres", "alertmanager"):
        n = prometheus(lab, f'count(up{{job="{job}"}} == 1)', 1, 120)
        expect((n or 0) >= 1, f"Prometheus sees {n} healthy {job} targets, expected at least 1")
    pg_up = prometheus(lab, 'max(pg_up{job="postgres"})', 1, 60)
    expect(pg_up == 1, f"postgres-exporter cannot log in to PostgreSQL (pg_up {pg_up}): is the monitoring role there?")
    found = prometheus(lab, "prometheus_notifications_alertmanagers_discovered", 1, 60)
    expect(found == 1, f"Prometheus discovered {found} Alertmanagers, expected 1")
    lab.ok("Prometheus: node, postgres (pg_up 1) and alertmanager targets up; 1 Alertmanager discovered")


def check_watchdog(lab: Lab) -> None:
    """The Watchdog reaches the heartbeat receiver (the sink) within WATCHDOG_BOUND_S of Alertmanager's start."""
    container = swarm.service_container(lab.stack.service("alertmanager"))
    expect(bool(container), "no running alertmanager container")
    started_text = swarm.run(
        ["docker", "inspect", "--format", "{{.State.StartedAt}}", container], timeout=30
    ).stdout.strip()
    started = _epoch(started_text)

    def arrived() -> float | None:
        times = [
            n["at"] for n in alerts.notifications(lab.stack) if n["alertname"] == "Watchdog" and n["via"] == "heartbeat"
        ]
        return min(times) - started if times else None

    after = poll(lambda: arrived(), -1e9, WATCHDOG_BOUND_S + 30, 5)
    expect(
        after is not None and after <= WATCHDOG_BOUND_S,
        f"Watchdog at the sink {after} s after Alertmanager started (bound {WATCHDOG_BOUND_S} s)",
    )
    lab.figures["watchdog_after_alertmanager_start_s"] = round(after, 1)
    lab.ok(
        f"Watchdog notification at the heartbeat sink {after:.1f} s after Alertmanager started (bound {WATCHDOG_BOUND_S} s)"
    )


def _epoch(docker_time: str) -> float:
    """Seconds since the epoch of Docker's RFC 3339 time with nanoseconds (``...T10:00:00.123456789Z``)."""
    whole, _, rest = docker_time.rstrip("Z").partition(".")
    stamp = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC).timestamp()
    return stamp + (float(f"0.{rest}") if rest else 0.0)


# Mozilla's Server Side TLS "intermediate" profile as Traefik serves it (traefik/dynamic/tls.yml):
# TLS 1.3's three suites and six ECDHE AEAD suites for TLS 1.2 (Go has no DHE), three curves.
TLS_PROFILE_SUITES = {
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}
TLS_PROFILE_CURVES = {"X25519", "prime256v1", "secp384r1"}
# Findings that belong to the ACME test server's throwaway certificates, not to the stack.
TESTSSL_EXCLUDED = {
    "cert_validityPeriod": "Pebble issues certificates valid for 5 years; Let's Encrypt's last 90 days",
    "cert_revocation": "Pebble's certificates name no CRL or OCSP URL; Let's Encrypt's carry a CRL URL",
    "DNS_CAArecord": "the lab has no DNS (the host name resolves through /etc/hosts); CAA is set at the DNS provider",
}


def check_tls(lab: Lab) -> None:
    """testssl.sh from outside: TLS 1.2 and 1.3 only, exactly the profile's suites and curves, and
    no finding rated above LOW but those of the test CA's certificates (TESTSSL_EXCLUDED)."""
    out = lab.state_dir / "testssl.json"
    out.unlink(missing_ok=True)
    proc = subprocess.run(
        [
            "testssl",
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--add-ca",
            lab.ca_file,
            "--jsonfile",
            str(out),
            "--ip",
            lab.address,
            f"https://{lab.domain}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    expect(out.is_file(), f"testssl wrote no report (exit {proc.returncode}): {proc.stdout[-1500:]}")
    findings = json.loads(out.read_text())
    by_id = {f["id"]: f for f in findings}
    offered = sorted(
        p
        for p in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3")
        if by_id.get(p, {}).get("finding", "").startswith("offered")
    )
    suites = {f["finding"].split()[-1] for f in findings if f["id"].startswith("cipher_x")}
    curves = set(by_id.get("PFS_ECDHE_curves", {}).get("finding", "").split())
    severe = [
        f"{f['severity']} {f['id']}: {f['finding']}"
        for f in findings
        if f["severity"] in ("MEDIUM", "HIGH", "CRITICAL") and f["id"] not in TESTSSL_EXCLUDED
    ]
    lab.figures.update(
        tls_protocols=",".join(offered),
        tls_suites=len(suites),
        tls_curves=",".join(sorted(curves)),
        tls_findings_low=sum(f["severity"] == "LOW" for f in findings),
        tls_findings_excluded=",".join(sorted(i for i in TESTSSL_EXCLUDED if i in by_id)),
    )
    (lab.state_dir / "testssl-exclusions.json").write_text(json.dumps(TESTSSL_EXCLUDED, indent=2))
    expect(offered == ["TLS1_2", "TLS1_3"], f"protocols offered: {offered}, expected TLS 1.2 and 1.3 only")
    expect(
        suites and suites <= TLS_PROFILE_SUITES, f"suites outside the profile: {sorted(suites - TLS_PROFILE_SUITES)}"
    )
    expect(
        curves and curves <= TLS_PROFILE_CURVES, f"curves outside the profile: {sorted(curves - TLS_PROFILE_CURVES)}"
    )
    expect(not severe, f"testssl findings above LOW: {severe}")
    lab.ok(
        f"testssl: {', '.join(offered)} only, {len(suites)} suites and curves {sorted(curves)} all in Mozilla's"
        f" intermediate profile, nothing above LOW but the test CA's {sorted(TESTSSL_EXCLUDED)}"
    )


# The MDN HTTP Observatory's score with every bonus the stack can earn (CSP, CORP,
# frame-ancestors, Referrer-Policy, SRI): a lost header's bonus fails the check although the
# grade could still be A+. Not reachable here: the HSTS preload list and cookie bonuses.
OBSERVATORY_MIN_SCORE = 135


def check_headers(lab: Lab) -> None:
    """The UI grades A+ at the MDN HTTP Observatory with every test passed; the API's JSON carries
    an API's policy; no answer names its server software."""
    out = lab.state_dir / "observatory.json"
    proc = subprocess.run(
        [
            str(REPO_ROOT / "scripts/observatory.sh"),
            f"https://{lab.domain}/",
            "--ca",
            lab.ca_file,
            "--resolve",
            f"{lab.domain}:{lab.address}",
            "--min-score",
            str(OBSERVATORY_MIN_SCORE),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHON": str(REPO_ROOT / ".venv/bin/python")},
    )
    expect(proc.returncode == 0, f"observatory: {proc.stdout[-2000:]}{proc.stderr[-1000:]}")
    scan = json.loads(out.read_text()) if out.is_file() else {}
    grade, score = (
        scan.get("grade") or scan.get("scan", {}).get("grade"),
        scan.get("score") or scan.get("scan", {}).get("score"),
    )
    api = send(lab.target(f"https://{lab.domain}/api"), "GET", "/latest", auth=True)
    expect(api.status == 200, f"GET /api/latest answered {api.status}")
    expect(
        api.headers.get("content-security-policy", "").startswith("default-src 'none'"),
        f"the API's CSP is {api.headers.get('content-security-policy')!r}",
    )
    page = send(lab.site, "GET", "/public")
    expect(
        "server" not in page.headers and "server" not in api.headers,
        f"a Server header is sent: {page.headers.get('server')!r} {api.headers.get('server')!r}",
    )
    lab.figures.update(observatory_grade=grade, observatory_score=score)
    lab.ok(
        f"MDN HTTP Observatory: {grade} ({score}/100+, at least {OBSERVATORY_MIN_SCORE}), every test passed;"
        " the API answers with default-src 'none'; no Server header"
    )


def check_containers_least_privilege(lab: Lab) -> None:
    """The app and the exporters, as they run: not root, no capabilities at all, no new privileges,
    a read-only root filesystem (read from the tasks' containers and their first process)."""
    seen = {}
    for short in ("app", "node-exporter", "postgres-exporter"):
        container = swarm.service_container(lab.stack.service(short))
        expect(bool(container), f"no running {short} container on the first manager")
        fields = (
            swarm.run(
                [
                    "docker",
                    "inspect",
                    "--format",
                    "{{.Config.User}}|{{json .HostConfig.CapDrop}}|{{.HostConfig.ReadonlyRootfs}}",
                    container,
                ],
                timeout=30,
                check=True,
            )
            .stdout.strip()
            .split("|")
        )
        status = swarm.run(["docker", "exec", container, "cat", "/proc/1/status"], timeout=30, check=True).stdout
        proc = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uid = proc["Uid"].split()[1]  # effective
        expect(uid != "0", f"{short} runs as root")
        expect(
            int(proc["CapEff"].strip(), 16) == 0,
            f"{short} has capabilities {proc['CapEff'].strip()} (CapDrop {fields[1]})",
        )
        expect(
            proc["NoNewPrivs"].strip() == "1", f"{short} may gain privileges (NoNewPrivs {proc['NoNewPrivs'].strip()})"
        )
        expect(fields[2] == "true", f"{short}'s root filesystem is writable")
        seen[short] = f"uid {uid}"
    lab.figures["least_privilege"] = seen
    lab.ok(
        f"app, node-exporter, postgres-exporter: not root ({seen}), no capabilities, no new privileges, read-only root"
    )


def check_project_suites(lab: Lab) -> None:
    """The project's own suites against the deployed URL: the API contract, then the browser e2e."""
    env = {**os.environ, "MINITWIT_API_URL": f"https://{lab.domain}/api", "MINITWIT_CA_BUNDLE": lab.ca_file}
    contract = subprocess.run(
        [str(REPO_ROOT / ".venv/bin/pytest"), "-q", "-p", "no:cacheprovider", "tests/app/test_api_contract.py"],
        cwd=REPO_ROOT,
        env=env,
        timeout=600,
        check=False,
    )
    expect(contract.returncode == 0, "the API contract suite failed against the deployment")
    e2e_env = {
        **os.environ,
        "E2E_BASE_URL": f"https://{lab.domain}",
        "E2E_CA_BUNDLE": lab.ca_file,
        "E2E_HOST_RESOLVER_RULES": f"MAP {lab.domain} {lab.address}",
    }
    e2e = subprocess.run([str(REPO_ROOT / "scripts/e2e.sh")], cwd=REPO_ROOT, env=e2e_env, timeout=1200, check=False)
    expect(e2e.returncode == 0, "the e2e suite failed against the deployment")
    lab.ok(f"API contract suite and browser e2e suite passed against https://{lab.domain}")


# --- several nodes: what growing the swarm by an inventory edit must give ---


def check_nodes_ready(lab: Lab) -> None:
    """Every node is Ready; the first three are managers (the control plane survives losing one),
    the others workers: both ways of joining the swarm."""
    lines = swarm.run(
        ["docker", "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.ManagerStatus}}"], timeout=30, check=True
    ).stdout.splitlines()
    ready = [line for line in lines if line.split()[1:2] == ["Ready"]]
    managers = [line for line in ready if len(line.split()) > 2]
    expect(len(ready) == lab.nodes, f"{len(ready)} of {lab.nodes} nodes Ready: {lines}")
    expect(len(managers) == min(lab.nodes, 3), f"{len(managers)} managers, expected {min(lab.nodes, 3)}: {lines}")
    lab.figures.update(nodes_ready=len(ready), managers=len(managers))
    lab.ok(f"{len(ready)} of {lab.nodes} nodes Ready: {len(managers)} managers, {len(ready) - len(managers)} worker(s)")


def app_task_nodes(lab: Lab) -> dict[str, str]:
    """Container id (12 characters, as in X-Served-By) -> node hostname, per running app task."""
    tasks = swarm.run(
        ["docker", "service", "ps", "-q", "--filter", "desired-state=running", lab.stack.service("app")],
        timeout=30,
        check=True,
    ).stdout.split()
    found = {}
    for task in tasks:
        fields = swarm.run(
            ["docker", "inspect", "--format", "{{.Status.ContainerStatus.ContainerID}} {{.NodeID}}", task], timeout=30
        ).stdout.split()
        if len(fields) == 2:
            host = swarm.run(
                ["docker", "node", "inspect", "--format", "{{.Description.Hostname}}", fields[1]], timeout=30
            ).stdout.strip()
            found[fields[0][:12]] = host
    return found


def service_node(lab: Lab, short: str) -> str:
    """Node of the running task of a one-replica service ('' when none)."""
    out = swarm.run(
        [
            "docker",
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}}",
            lab.stack.service(short),
        ],
        timeout=30,
    ).stdout.split()
    return out[0] if out else ""


def check_placement(lab: Lab) -> None:
    """PostgreSQL, Traefik and Prometheus on the labelled node, app replicas on at least two nodes."""
    for short in ("postgres", "traefik", "prometheus"):
        node = service_node(lab, short)
        expect(node == "node1", f"{short} runs on '{node}', expected the labelled node node1")
    nodes = sorted(set(app_task_nodes(lab).values()))
    expect(len(nodes) >= min(2, lab.nodes), f"app replicas on {nodes}, expected at least 2 nodes")
    lab.figures["app_nodes"] = len(nodes)
    lab.ok(f"postgres, traefik, prometheus on node1; app replicas on {len(nodes)} nodes ({', '.join(nodes)})")


def check_routes_across_nodes(lab: Lab) -> None:
    """Requests through Traefik on node1's 443 reach every replica, those on other nodes included."""
    api = lab.target(f"https://{lab.domain}/api")
    served = Counter(served_by(send(api, "GET", "/latest", auth=True)) for _ in range(30))
    where = app_task_nodes(lab)
    remote = [replica for replica in served if where.get(replica, "node1") != "node1"]
    expect(len(served) == REPLICAS, f"30 requests reached {len(served)} replica(s), expected 3: {dict(served)}")
    expect(bool(remote), f"no request reached a replica on another node: {where}")
    lab.figures.update(replicas_reached=len(served), replicas_reached_on_other_nodes=len(remote))
    lab.ok(f"30 requests via node1:443 reached {len(served)} replicas, {len(remote)} of them on other nodes")


def check_prometheus_targets(lab: Lab) -> None:
    """Prometheus on node1 scrapes all 3 replicas across the overlay."""
    up = prometheus_exactly(lab, 'count(up{job="minitwit"} == 1)', REPLICAS, 120)
    expect(up == REPLICAS, f"Prometheus sees {up} healthy app targets, expected 3")
    lab.figures["prometheus_app_targets_up"] = int(up)
    lab.ok("Prometheus has all 3 app targets up across the overlay")


def check_idempotent(lab: Lab) -> None:
    """A second provision.yml and deploy.yml (the same arguments as the first) change nothing on any node."""
    deploy_args = shlex.split(lab.env.get("MINITWIT_DEPLOY_ARGS", ""))
    for playbook, extra in (("provision.yml", []), ("deploy.yml", deploy_args)):
        started = time.monotonic()
        cmd = ["ansible-playbook", "-i", lab.stack.inventory, f"ansible/playbooks/{playbook}", *extra]
        proc = swarm.run(cmd, timeout=900)
        output = proc.stdout + proc.stderr
        (lab.state_dir / "logs" / f"{playbook.removesuffix('.yml')}-again.log").write_text(output)
        counters = swarm.recap(output)
        expect(
            proc.returncode == 0 and len(counters) == lab.nodes,
            f"second {playbook}: rc {proc.returncode}, recap {counters}",
        )
        changed = {host: c for host, c in counters.items() if c["changed"] or c["failed"] or c["unreachable"]}
        expect(
            not changed, f"second {playbook} is not idempotent: {changed}; changed tasks: {swarm.changed_tasks(output)}"
        )
        lab.figures[f"{playbook.removesuffix('.yml')}_again_s"] = round(time.monotonic() - started)
    lab.ok(f"second provision.yml and deploy.yml: changed=0 on all {lab.nodes} nodes")


def scan(lab: Lab, node: int) -> list[int]:
    """Every open TCP port of node ``node``, found by nmap from another address on the lab network."""
    address = f"{lab.address.rsplit('.', 1)[0]}.{10 + node}"
    proc = swarm.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            lab.env["MINITWIT_LAB_NETWORK"],
            lab.env["MINITWIT_SCANNER_IMAGE"],
            "nmap",
            "-Pn",
            "-n",
            "-sS",
            "-p-",
            "-T4",
            "--max-retries",
            "1",
            "--min-rate",
            "10000",
            "-oG",
            "-",
            address,
        ],
        timeout=300,
        check=True,
        host=True,
    )
    return sorted(int(word.split("/")[0]) for word in proc.stdout.split() if "/open/tcp" in word)


def check_scanned_from_outside(lab: Lab) -> None:
    """nmap from the lab network, every node at once: node 1 (Traefik) exactly 22, 80, 443, the others 22.

    So Prometheus, Alertmanager, the exporters, PostgreSQL, Traefik's dashboard and metrics, the
    app's metrics port and Swarm's ports are unreachable from outside the swarm.
    """
    with ThreadPoolExecutor(lab.nodes) as pool:
        found = dict(
            zip(range(1, lab.nodes + 1), pool.map(lambda n: scan(lab, n), range(1, lab.nodes + 1)), strict=True)
        )
    for node, ports in found.items():
        lab.figures[f"open_tcp_ports_node{node}"] = ",".join(map(str, ports))
        expected = [22, 80, 443] if node == 1 else [22]
        expect(ports == expected, f"node{node} has open TCP ports {ports}; expected exactly {expected}")
    lab.ok("nmap from the lab network: node 1 (Traefik) has exactly 22, 80, 443 open, the others only 22")


STAGES: dict[str, tuple[Callable[[Lab], None], ...]] = {
    "single": (
        check_certificate,
        check_redirect,
        check_only_traefik_publishes,
        check_replicas_serve,
        check_dashboard_auth,
        check_body_limits,
        check_prometheus,
        check_exporters,
        check_watchdog,
        check_tls,
        check_headers,
        check_containers_least_privilege,
        check_project_suites,
        *backup_checks.CHECKS,
    ),
    "multi": (
        check_nodes_ready,
        check_placement,
        check_routes_across_nodes,
        check_prometheus_targets,
        check_scanned_from_outside,
        check_idempotent,
    ),
}


def write_report(lab: Lab, stage: str, passed: bool, failure: str, out: Path) -> None:
    """checks-<stage>.json and .md: the passed checks, the figures, and the failure if any."""
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "stage": stage,
        "passed": passed,
        "nodes": lab.nodes,
        "checks": lab.checks,
        "failure": failure,
        "figures": lab.figures,
    }
    (out / f"checks-{stage}.json").write_text(json.dumps(document, indent=2) + "\n")
    lines = [f"# Deployed-stack checks, {stage} ({lab.nodes} node(s)): {'PASS' if passed else 'FAIL'}", ""]
    lines += [f"- {check}" for check in lab.checks]
    if failure:
        lines += ["", f"**Failed:** {failure}"]
    lines += ["", "| Figure | Value |", "|---|---|", *(f"| {k} | {v} |" for k, v in sorted(lab.figures.items()))]
    (out / f"checks-{stage}.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m drills.checks", description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, required=True)
    parser.add_argument("--stage", choices=sorted(STAGES), required=True)
    parser.add_argument("--out", type=Path, default=Path("artifacts/lab"))
    args = parser.parse_args(argv)
    lab = lab_from(args.env_file)
    started, failure = time.monotonic(), ""
    try:
        for check in STAGES[args.stage]:
            check(lab)
    except CheckFailed as exc:
        failure = str(exc)
    lab.figures[f"{args.stage}_checks_s"] = round(time.monotonic() - started)
    write_report(lab, args.stage, not failure, failure, args.out)
    if failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print(f"checks ({args.stage}): {len(lab.checks)} passed in {lab.figures[f'{args.stage}_checks_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
