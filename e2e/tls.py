"""HTTPS against a deployment whose certificates come from a test CA (Pebble in the stack run).

With `E2E_CA_BUNDLE` the chain is checked twice: by Python's ssl (a clear error message)
and by Chromium itself, which trusts the bundle through an NSS database in a private
HOME (needs `certutil`, Debian package libnss3-tools). Without certutil, or without a
bundle, Chromium falls back to ignore_https_errors in this mode only.
"""

import os
import re
import shutil
import socket
import ssl
import subprocess
import urllib.parse
from pathlib import Path

PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def resolve_like_chromium(hostname: str) -> str:
    """Apply `MAP <host> <ip>` rules from E2E_HOST_RESOLVER_RULES, as Chromium will."""
    for rule in os.environ.get("E2E_HOST_RESOLVER_RULES", "").split(","):
        parts = rule.split()
        if len(parts) == 3 and parts[0] == "MAP" and parts[1] == hostname:
            return parts[2]
    return hostname


def check_tls_against_bundle(base_url: str, bundle: str) -> None:
    """Handshake with the server: chain and host name must verify against bundle."""
    url = urllib.parse.urlsplit(base_url)
    context = ssl.create_default_context(cafile=bundle)
    with socket.create_connection((resolve_like_chromium(url.hostname), url.port or 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=url.hostname):
            pass  # the handshake raises on an untrusted chain or a wrong name


def nss_home_trusting(bundle: str, home: Path) -> Path | None:
    """A HOME whose ~/.pki/nssdb trusts every certificate in bundle; None without certutil."""
    certutil = shutil.which("certutil")
    if not certutil:
        return None
    nssdb = f"sql:{home / '.pki' / 'nssdb'}"
    (home / ".pki" / "nssdb").mkdir(parents=True)
    subprocess.run([certutil, "-d", nssdb, "-N", "--empty-password"], check=True, capture_output=True)
    for number, pem in enumerate(PEM_CERT.findall(Path(bundle).read_text())):
        add = [certutil, "-d", nssdb, "-A", "-t", "C,,", "-n", f"e2e-ca-{number}"]
        subprocess.run(add, input=pem.encode(), check=True, capture_output=True)
    return home
