"""The swarm as the drills and the deployed-stack checks reach it: the docker CLI and ansible-playbook.

Only read-only inspection plus the few actions a drill needs (kill a task's
container, scale a service, tag/build an image, run a playbook).  Every call has a
timeout, and every command and its output is kept in ``LOG`` for the report.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LOG: list[dict] = []
# The docker CLI that sees the swarm: plain `docker` here, the lab's first manager's through
# `docker exec` in the multi-node lab (MINITWIT_DOCKER in its environment file).
DOCKER: list[str] = ["docker"]


@dataclass(frozen=True)
class Stack:
    """Names of the deployed stack, from the environment file ``scripts/lab.sh up`` writes."""

    name: str = "minitwit"
    image: str = ""
    inventory: str = "ansible/inventories/lab/hosts.yml"
    image_var: str = "minitwit_image"
    extra_vars: tuple[str, ...] = ()
    # Where each playbook run's whole output goes (its per-task timings included); '' for nowhere.
    log_dir: str = ""

    def service(self, short: str) -> str:
        """Swarm name of a stack service, e.g. ``minitwit_app``."""
        return f"{self.name}_{short}"


def run(
    cmd: list[str],
    *,
    timeout: float = 120,
    check: bool = False,
    env: dict | None = None,
    host: bool = False,
) -> subprocess.CompletedProcess:
    """Run a command with a timeout; log it; raise only if ``check`` and it failed.

    ``docker ...`` goes to the swarm's CLI (``DOCKER``) unless ``host`` asks for this machine's
    own engine (the lab's nodes are containers on it).
    """
    if cmd[0] == "docker" and not host:
        cmd = [*DOCKER, *cmd[1:]]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired as exc:
        proc = subprocess.CompletedProcess(cmd, 124, _text(exc.stdout), _text(exc.stderr) + "\nTIMEOUT")
    LOG.append(
        {
            "cmd": cmd,
            "rc": proc.returncode,
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


def _text(data) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> float | None:
    """Poll ``predicate`` until true; return the seconds it took, or None on timeout."""
    started = time.monotonic()
    while time.monotonic() - started <= timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    return None


def running_tasks(service: str) -> int:
    """Tasks of ``service`` that Swarm reports Running (i.e. started and healthy)."""
    proc = run(
        [
            "docker",
            "service",
            "ps",
            service,
            "--filter",
            "desired-state=running",
            "--format",
            "{{.CurrentState}}",
        ],
        timeout=30,
    )
    return sum(1 for line in proc.stdout.splitlines() if line.startswith("Running"))


def containers(service: str) -> list[str]:
    """IDs of the running local containers of ``service``."""
    proc = run(
        [
            "docker",
            "ps",
            "-q",
            "--filter",
            f"label=com.docker.swarm.service.name={service}",
        ],
        timeout=30,
        check=True,
    )
    return proc.stdout.split()


def healthy_containers(service: str) -> int:
    """Running containers of ``service`` whose Docker healthcheck says healthy."""
    ids = containers(service)
    if not ids:
        return 0
    proc = run(["docker", "inspect", "--format", "{{.State.Health.Status}}", *ids], timeout=30)
    return sum(1 for line in proc.stdout.splitlines() if line.strip() == "healthy")


def service_image(service: str) -> str:
    """The image reference in the service spec (without a digest)."""
    proc = run(
        [
            "docker",
            "service",
            "inspect",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
            service,
        ],
        timeout=30,
        check=True,
    )
    return proc.stdout.strip().split("@")[0]


def update_state(service: str) -> str:
    """Swarm's UpdateStatus.State (``completed``, ``rollback_completed``...) or ''."""
    proc = run(
        [
            "docker",
            "service",
            "inspect",
            "--format",
            "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
            service,
        ],
        timeout=30,
    )
    return proc.stdout.strip()


def scale(service: str, replicas: int) -> None:
    """Set the replica count without waiting (the drill measures the wait itself)."""
    run(
        ["docker", "service", "scale", "--detach", f"{service}={replicas}"],
        timeout=60,
        check=True,
    )


def kill(container: str) -> None:
    """SIGKILL a container, as a crash or an OOM kill would."""
    run(["docker", "kill", container], timeout=30, check=True)


def tag_image(source: str, target: str) -> None:
    """Give an existing local image a second tag."""
    run(["docker", "tag", source, target], timeout=30, check=True)


def build_from(dockerfile: str, tag: str) -> None:
    """Build a small image from a Dockerfile given as text (no context, no pull), in the swarm
    CLI's engine (the lab's first manager through ``docker exec -i``, which passes stdin on)."""
    cmd = [*DOCKER, "build", "-t", tag, "-"]
    if cmd[1:2] == ["exec"]:
        cmd.insert(2, "-i")
    proc = subprocess.run(cmd, input=dockerfile, capture_output=True, text=True, timeout=300)
    LOG.append({"cmd": cmd, "rc": proc.returncode})
    if proc.returncode != 0:
        raise RuntimeError(f"building {tag} failed: {proc.stderr[-2000:]}")


def playbook(
    stack: Stack, name: str, extra: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run ``ansible/playbooks/<name>`` on the stack's inventory, as the operator does."""
    cmd = ["ansible-playbook", "-i", stack.inventory, f"ansible/playbooks/{name}"]
    for item in stack.extra_vars:
        cmd += ["-e", item]
    if extra:  # as JSON: a value may hold spaces (a restore target's date and time)
        cmd += ["-e", json.dumps(extra)]
    proc = run(cmd, timeout=timeout)
    if stack.log_dir:
        path = Path(stack.log_dir) / f"{name.removesuffix('.yml')}-{time.strftime('%H%M%S')}.log"
        path.write_text(proc.stdout + proc.stderr)
        LOG[-1]["log"] = str(path)
    return proc


def logs(service: str, since: str = "5m", tail: int = 60) -> str:
    """Recent logs of a service, for the report when something went wrong."""
    proc = run(
        [
            "docker",
            "service",
            "logs",
            "--no-task-ids",
            "--since",
            since,
            "--tail",
            str(tail),
            service,
        ],
        timeout=60,
    )
    return (proc.stdout + proc.stderr)[-6000:]


def playbook_failure(output: str) -> str:
    """Lines of ansible-playbook output that say why it failed (fatal/msg)."""
    keep = [
        line.strip()
        for line in output.splitlines()
        if "fatal:" in line or '"msg"' in line or line.strip().startswith("msg:")
    ]
    return "\n".join(keep)[-1500:]


def service_container(service: str) -> str:
    """A running container of ``service`` on the swarm CLI's node ('' when none runs there)."""
    ids = containers(service)
    return ids[0] if ids else ""


def prometheus_value(stack: Stack, promql: str) -> float | None:
    """The first sample of an instant query, asked inside the Prometheus container (it publishes
    no port); None when the query has no result or Prometheus does not answer."""
    container = service_container(stack.service("prometheus"))
    if not container:
        return None
    proc = run(
        ["docker", "exec", container, "promtool", "query", "-o", "json", "instant", "http://127.0.0.1:9090", promql],
        timeout=30,
    )
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        return None
    return float(result[0]["value"][1]) if result else None


RECAP_LINE = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def recap(output: str) -> dict[str, dict[str, int]]:
    """Each host's PLAY RECAP counters (changed, unreachable, failed) from ansible-playbook's output."""
    return {
        host: {"changed": int(changed), "unreachable": int(unreachable), "failed": int(failed)}
        for host, changed, unreachable, failed in RECAP_LINE.findall(output)
    }


def changed_tasks(output: str) -> list[str]:
    """The task headers followed by a ``changed:`` line, to say what a second run changed."""
    found, task = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line.strip("* ")
        elif line.startswith("changed:") and task not in found:
            found.append(task)
    return found
