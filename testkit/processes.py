"""Run a server program for the duration of a block, and stop it the one way every check stops servers."""

import contextlib
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from testkit import REPO_ROOT

# Longer than gunicorn's graceful_timeout (30 s in service/gunicorn.conf.py), so in-flight requests
# finish as in production; a program still running after that is killed.
STOP_TIMEOUT_S = 40


def stop(proc: subprocess.Popen) -> None:
    """Stop a server gracefully (SIGTERM), killing it if it has not exited after STOP_TIMEOUT_S."""
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def running(args: list, log_path: Path, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """Run ``args`` from the repository root, output to ``log_path``, for the block; always stop it."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(arg) for arg in args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT
        )
        try:
            yield proc
        finally:
            stop(proc)


def wait_for_http(url: str, proc: subprocess.Popen, log_path: Path, timeout_s: float = 60) -> None:
    """Poll ``url`` until it answers 200; raise with the log's end if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}:\n{_tail(log_path)}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s}s:\n{_tail(log_path)}")


def _tail(log_path: Path) -> str:
    """The end of a server's log, which says why it did not come up."""
    return log_path.read_text(errors="replace")[-3000:]
