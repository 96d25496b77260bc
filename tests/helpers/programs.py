"""Real programs in tests: find them (or skip), their command lines, and waiting for and talking to them."""

from __future__ import annotations

import contextlib
import json as jsonlib
import os
import pathlib
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from testkit import REPO_ROOT
from testkit.skip import skip_or_fail

VENV_BIN = os.path.dirname(sys.executable)


def find_tool(name: str, env: str | None = None) -> str:
    """Path of a program from ``env``, the virtualenv or PATH, or skip/fail without it."""
    path = (env and os.environ.get(env)) or shutil.which(name, path=VENV_BIN) or shutil.which(name)
    if not path:
        skip_or_fail(f"{name} not installed")
    return path


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
