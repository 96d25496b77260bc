"""The deployed lab stack as the checks see it: its names and addresses, and the helpers every
check uses (drills/checks.py, drills/backup_checks.py)."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from bench.client import Response
from bench.client import Target
from bench.client import parse_target
from drills import swarm
from drills.__main__ import read_env


class CheckFailed(Exception):
    """A check saw something it must not: the message says what."""


@dataclass
class Lab:
    """The deployed stack as the environment file describes it."""

    env: dict[str, str]
    stack: swarm.Stack
    domain: str
    address: str
    ca_file: str
    nodes: int
    node_prefix: str
    state_dir: Path
    checks: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)

    def target(self, url: str, timeout: float = 10.0) -> Target:
        """A client target for ``url`` whose TCP goes to the first manager's address."""
        return parse_target(url, self.ca_file, self.address, timeout)

    @property
    def site(self) -> Target:
        return self.target(f"https://{self.domain}")

    def ok(self, message: str) -> None:
        """Record and print a passed check."""
        self.checks.append(message)
        print(f"[{time.strftime('%H:%M:%S')}] OK {message}", flush=True)


def lab_from(env_file: Path) -> Lab:
    """The lab's names and addresses, and the swarm CLI the env file names."""
    env = read_env(env_file)
    if env.get("MINITWIT_DOCKER"):
        swarm.DOCKER[:] = shlex.split(env["MINITWIT_DOCKER"])
    stack = swarm.Stack(name=env.get("MINITWIT_STACK", "minitwit"), inventory=env["MINITWIT_INVENTORY"])
    return Lab(
        env=env,
        stack=stack,
        domain=env["MINITWIT_DOMAIN"],
        address=env["MINITWIT_ADDRESS"],
        ca_file=env["MINITWIT_CA_FILE"],
        nodes=int(env.get("MINITWIT_LAB_NODES", "1")),
        node_prefix=env.get("MINITWIT_LAB_NODE_PREFIX", ""),
        state_dir=Path(env.get("MINITWIT_STATE_DIR", Path(env_file).parent)),
    )


def expect(condition: bool, message: str) -> None:
    """Stop the run with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def poll(read: Callable[[], float | None], minimum: float, timeout: float, interval: float = 5) -> float | None:
    """Read a value until it reaches ``minimum`` (then return it) or the time is up (return the last)."""
    deadline, value = time.monotonic() + timeout, None
    while True:
        value = read()
        if value is not None and value >= minimum:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def served_by(response: Response) -> str:
    """The replica (container hostname) that answered, from the app's ``X-Served-By`` header."""
    return response.headers.get("x-served-by", "").split()[0] if response.headers.get("x-served-by") else ""


def prometheus(lab: Lab, promql: str, minimum: float, timeout: float) -> float | None:
    """Poll an instant query until it reaches ``minimum``; the last value either way."""
    return poll(lambda: swarm.prometheus_value(lab.stack, promql), minimum, timeout)


def prometheus_exactly(lab: Lab, promql: str, wanted: float, timeout: float) -> float | None:
    """Poll an instant query until it equals ``wanted``; the last value either way. After a rolling
    restart the old tasks' targets count until the next DNS discovery (every 15 s) drops them."""
    deadline, value = time.monotonic() + timeout, None
    while True:
        value = swarm.prometheus_value(lab.stack, promql)
        if value == wanted or time.monotonic() >= deadline:
            return value
        time.sleep(5)
