"""The headers an outsider gets through the real Traefik, and the MDN HTTP Observatory's grade of them.

A small copy of the deployment's edge on a loopback address: the app under gunicorn behind
Traefik with the entrypoints of traefik/traefik.yml (port 80 redirecting to 443, the default
middlewares on 443) and every file of traefik/dynamic/, over TLS with a throwaway CA made by
openssl. It listens on ports 80 and 443 because the observatory scans only those: without the
right to bind them (root), the tests are skipped. The observatory is installed by
testkit/observatory.py (npm, once per cache).
"""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess

import pytest
import yaml
from helpers.programs import find_tool
from helpers.programs import wait_until
from minitwit.headers import API_HEADERS
from minitwit.headers import PAGE_HEADERS

from testkit import REPO_ROOT
from testkit import observatory
from testkit.app import gunicorn_server
from testkit.processes import running
from testkit.skip import Unavailable
from testkit.skip import skip_or_fail

ADDRESS = "127.0.80.43"
HOST = "minitwit.observatory.test"
HSTS = "max-age=31536000; includeSubDomains"
# Every test's best reachable result here: an empty HSTS preload list, and no cookie on "/".
EXPECTED = {
    "content-security-policy": "csp-implemented-with-no-unsafe-default-src-none",
    "cookies": "cookies-not-found",
    "cross-origin-resource-policy": "corp-implemented-with-same-origin",
    "cross-origin-resource-sharing": "cross-origin-resource-sharing-not-implemented",
    "redirection": "redirection-to-https",
    "referrer-policy": "referrer-policy-private",
    "strict-transport-security": "hsts-implemented-max-age-at-least-six-months",
    "subresource-integrity": "sri-implemented-and-all-scripts-loaded-securely",
    "x-content-type-options": "x-content-type-options-nosniff",
    "x-frame-options": "x-frame-options-implemented-via-csp",
}


def make_certificates(openssl: str, folder) -> None:
    """ca.pem, a throwaway CA, and cert.pem/key.pem for HOST signed by it, in ``folder``."""
    p256 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    (folder / "leaf.cnf").write_text(
        f"subjectAltName = DNS:{HOST}\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n"
    )
    commands = [
        [
            "req",
            "-x509",
            *p256,
            "-days",
            "2",
            "-subj",
            "/CN=MiniTwit throwaway CA",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ],
        ["req", "-new", *p256, "-subj", f"/CN={HOST}", "-keyout", "key.pem", "-out", "leaf.csr"],
        [
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.cnf",
            "-out",
            "cert.pem",
        ],
    ]
    for args in commands:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)


def bindable(port: int) -> bool:
    """Whether this process may listen on ADDRESS:port (ports below 1024 need root)."""
    with socket.socket() as sock:
        try:
            sock.bind((ADDRESS, port))
        except OSError:
            return False
    return True


def edge_config(folder, app_url: str) -> None:
    """traefik.yml (the stack's web and websecure entrypoints, moved to ADDRESS) and dynamic/ in ``folder``.

    dynamic/ holds every file of traefik/dynamic/ and routes.yml: one router on websecure to the app,
    the certificate, as the stack's routers use the entrypoint's default middlewares and TLS.
    """
    entry_points = yaml.safe_load((REPO_ROOT / "traefik" / "traefik.yml").read_text())["entryPoints"]
    web, websecure = entry_points["web"], entry_points["websecure"]
    static = {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {
            "web": {**web, "address": f"{ADDRESS}:80"},
            # The certificate comes from the file provider here, not from ACME.
            "websecure": {**websecure, "address": f"{ADDRESS}:443", "http": {**websecure["http"], "tls": {}}},
        },
        "providers": {"file": {"directory": str(folder / "dynamic"), "watch": False}},
    }
    (folder / "traefik.yml").write_text(yaml.safe_dump(static))
    (folder / "dynamic").mkdir()
    for path in (REPO_ROOT / "traefik" / "dynamic").glob("*.yml"):
        shutil.copy(path, folder / "dynamic" / path.name)
    routes = {
        "http": {
            "routers": {
                "minitwit": {"rule": f"Host(`{HOST}`)", "entryPoints": ["websecure"], "service": "app", "tls": {}}
            },
            "services": {"app": {"loadBalancer": {"servers": [{"url": app_url}]}}},
        },
        "tls": {"certificates": [{"certFile": str(folder / "cert.pem"), "keyFile": str(folder / "key.pem")}]},
    }
    (folder / "dynamic" / "routes.yml").write_text(yaml.safe_dump(routes))


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to HOST (certificate and name verified against the throwaway CA) at ADDRESS."""

    def __init__(self, ca: str):
        super().__init__(HOST, 443, timeout=10)
        self.ca = ca

    def connect(self) -> None:
        """Connect to ADDRESS, then verify the TLS handshake as HOST."""
        raw = socket.create_connection((ADDRESS, 443), self.timeout)
        self.sock = ssl.create_default_context(cafile=self.ca).wrap_socket(raw, server_hostname=HOST)


def get(path: str, ca: str | None = None) -> http.client.HTTPResponse:
    """GET ``path`` from HOST over HTTPS (with ``ca``) or, without, over plain HTTP; the answer, read."""
    conn = PinnedHTTPSConnection(ca) if ca else http.client.HTTPConnection(ADDRESS, 80, timeout=10)
    conn.request("GET", path, headers={"Host": HOST})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """The app behind Traefik on ADDRESS:80 and :443; yields the CA file's path."""
    traefik, openssl = find_tool("traefik", "TRAEFIK_BIN"), find_tool("openssl")
    if not (bindable(80) and bindable(443)):
        skip_or_fail(f"cannot listen on {ADDRESS}:80 and :443 (needs root, and the ports free)")
    folder = tmp_path_factory.mktemp("edge")
    make_certificates(openssl, folder)
    with gunicorn_server(folder, f"sqlite:///{folder / 'minitwit.db'}", TRUSTED_PROXY_HOPS="1") as app:
        edge_config(folder, app.url)
        with running([traefik, f"--configFile={folder / 'traefik.yml'}"], folder / "traefik.log"):
            ca = str(folder / "ca.pem")
            wait_until(lambda: get("/health", ca).status == 200, "Traefik routing over TLS", log=folder / "traefik.log")
            yield ca


@pytest.mark.parametrize("path, expected", [("/public", PAGE_HEADERS), ("/api/latest", API_HEADERS)])
def test_the_edge_adds_hsts_removes_server_and_keeps_the_apps_headers(edge, path, expected):
    """What the browser gets: the app's headers unchanged, HSTS from Traefik, no Server header."""
    response = get(path, edge)
    assert response.status == 200
    assert {name: response.getheader(name) for name in expected} == expected
    assert response.getheader("Strict-Transport-Security") == HSTS
    assert response.getheader("Server") is None


def test_plain_http_redirects_to_https_on_the_same_host(edge):
    """Port 80 answers every path with a permanent redirect to the same URL over HTTPS."""
    response = get("/public?x=1")
    assert response.status in (301, 308)
    assert response.getheader("Location") == f"https://{HOST}/public?x=1"


def test_the_observatory_grades_the_edge_a_plus(edge):
    """The MDN HTTP Observatory: A+, every test passed with the best result reachable here."""
    try:
        result = observatory.scan(HOST, ca=edge, resolve=[f"{HOST}:{ADDRESS}"])
    except Unavailable as missing:
        skip_or_fail(f"the observatory cannot run: {missing}")
    print(observatory.report(result))
    assert {name: test["result"] for name, test in result["tests"].items()} == EXPECTED
    assert (result["scan"]["grade"], result["scan"]["score"]) == ("A+", 135)
    assert observatory.problems(result, min_score=135) == []
