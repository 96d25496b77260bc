"""Which alerts reached a person during a drill, and when, measured from the fault.

In CI every Alertmanager receiver points at the stack's alert-sink (stack/ci.yml), which
prints one JSON line per notification with its arrival time (stack/alertmanager/ci_sink.py).
The drills note the wall-clock time of the fault and read the sink's log afterwards.
"""

from __future__ import annotations

import json
import time

from drills import swarm

SINK = "alert-sink"
# The heartbeat fires all the time; it says nothing about a drill.
IGNORED = {"Watchdog"}


def notifications(stack: swarm.Stack) -> list[dict]:
    """Every notification the sink received (empty when there is no sink)."""
    found = []
    for container in swarm.containers(stack.service(SINK)):
        proc = swarm.run(["docker", "logs", container], timeout=30)
        found += [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return sorted(found, key=lambda n: n["at"])


def since(stack: swarm.Stack, fault_at: float) -> list[dict]:
    """Notifications after the fault, with ``after_s`` (seconds from the fault)."""
    return [
        {**n, "after_s": round(n["at"] - fault_at, 1)}
        for n in notifications(stack)
        if n["at"] >= fault_at and n["alertname"] not in IGNORED
    ]


def first(found: list[dict], alertname: str, status: str) -> float | None:
    """Seconds from the fault to the first ``status`` notification of ``alertname``."""
    times = [n["after_s"] for n in found if n["alertname"] == alertname and n["status"] == status]
    return min(times, default=None)


def wait_for(stack: swarm.Stack, fault_at: float, alertname: str, status: str, timeout: float) -> float | None:
    """Poll the sink until ``alertname`` arrives with ``status``; seconds from the fault."""
    deadline = time.monotonic() + timeout
    while True:
        arrived = first(since(stack, fault_at), alertname, status)
        if arrived is not None or time.monotonic() >= deadline:
            return arrived
        time.sleep(3)


def summary(found: list[dict]) -> list[str]:
    """One line per alert and status: first arrival after the fault, and through what."""
    seen: dict[tuple[str, str], list[dict]] = {}
    for n in found:
        seen.setdefault((n["alertname"], n["status"]), []).append(n)
    return [
        f"{name} {status} +{group[0]['after_s']} s ({', '.join(sorted({n['via'] for n in group}))})"
        for (name, status), group in seen.items()
    ]
