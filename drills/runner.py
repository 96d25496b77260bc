"""Shared drill machinery: the context, the load envelope, and the result record.

A drill is: preconditions (3 healthy replicas, ``/ready``), steady load for a
warm-up, the disruptive action while the load keeps going, a tail of load after
the action, then read-back verification of every accepted write.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

from bench.client import Target
from bench.client import send
from drills import alerts
from drills import swarm
from drills.load import LoadGenerator
from drills.stats import Objective
from drills.stats import all_passed
from drills.stats import at_most
from drills.stats import is_true
from drills.stats import summarise
from drills.verify import verify

REPLICAS = 3


@dataclass
class Context:
    """Everything a drill needs to know about the stack and the load."""

    target: Target
    stack: swarm.Stack
    rate: float = 16.0
    workers: int = 4
    warmup: float = 6.0
    tail: float = 8.0
    max_seconds: float = 420.0
    # Multi-node lab only: container name of node N is node_prefix + N (scripts/lab.sh).
    node_prefix: str = ""
    # Read the stack's alert-sink after each drill (off only where no stack is deployed).
    alert_sink: bool = True
    # The lab's S3 server, the backup repository (a container on this machine): drill 7 stops it.
    s3_container: str = ""


@dataclass
class DrillResult:
    """Figures and objectives of one drill, as the report shows them."""

    number: int
    name: str
    objectives: list[Objective] = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """True when every objective passed."""
        return all_passed(self.objectives)

    def as_dict(self) -> dict:
        """Plain dict for JSON."""
        return {
            "number": self.number,
            "name": self.name,
            "passed": self.passed,
            "seconds": round(self.seconds, 1),
            "figures": self.figures,
            "notes": self.notes,
            "objectives": [o.as_dict() for o in self.objectives],
        }


def probe(target: Target, path: str) -> int | None:
    """Status of a GET (``/ready``, ``/health``) through Traefik; None on error."""
    return send(target.root, "GET", path).status


def ready(ctx: Context) -> bool:
    """The app answers ``/ready`` 200 and exactly 3 app containers run, all healthy."""
    app = ctx.stack.service("app")
    if probe(ctx.target, "/ready") != 200:
        return False
    if ctx.node_prefix:  # replicas on other nodes: ask Swarm (Running = started and healthy)
        return swarm.running_tasks(app) == REPLICAS
    return swarm.healthy_containers(app) == REPLICAS


def run_drill(number: int, name: str, ctx: Context, body: Callable[[Context, DrillResult], None]) -> DrillResult:
    """Check preconditions, run ``body`` and turn any crash into a failed objective."""
    result = DrillResult(number, name)
    started = time.monotonic()
    waited = swarm.wait_for(lambda: ready(ctx), timeout=180, interval=2)
    if waited is None:
        app = ctx.stack.service("app")
        seen = f"{len(swarm.containers(app))} app containers, {swarm.healthy_containers(app)} healthy"
        result.objectives.append(is_true("precondition", False, f"3 healthy replicas and /ready 200 ({seen})"))
        result.notes.append(swarm.logs(ctx.stack.service("app")))
    else:
        try:
            body(ctx, result)
        except Exception as exc:  # a drill must report, never abort the whole run
            result.objectives.append(is_true("drill ran to completion", False, "no harness error"))
            result.notes.append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}")
    result.seconds = time.monotonic() - started
    return result


class Envelope:
    """Steady load around an action; ``mark()`` notes moments on the load's clock."""

    def __init__(self, ctx: Context, name: str):
        self.ctx = ctx
        self.load = LoadGenerator(
            ctx.target,
            name,
            rate=ctx.rate,
            workers=ctx.workers,
            max_seconds=ctx.max_seconds,
        )
        self.marks: dict[str, float] = {}
        # Wall-clock time of the fault: alert notifications are timed from it (drills/alerts.py).
        self.fault_at = 0.0

    def __enter__(self) -> Envelope:
        self.load.start()
        time.sleep(self.ctx.warmup)
        self.mark("action_start")
        self.fault_at = time.time()
        return self

    def __exit__(self, *exc_info) -> None:
        self.load.stop()

    def mark(self, label: str) -> float:
        """Remember the current load time under ``label`` and return it."""
        self.marks[label] = round(self.load.now(), 2)
        return self.marks[label]

    def finish(self) -> None:
        """Mark the end of the action, then keep the load on for the tail."""
        self.mark("action_end")
        time.sleep(self.ctx.tail)
        self.mark("load_end")

    def figures(self, result: DrillResult) -> dict:
        """Summarise requests (whole drill, action window), verify writes."""
        records = self.load.records
        checked = verify(self.ctx.target, self.load.writes)
        found = alerts.since(self.ctx.stack, self.fault_at) if self.ctx.alert_sink else []
        figures = {
            "alerts": alerts.summary(found),
            "notifications": found,
            "all": summarise(records),
            "action": summarise(records, self.marks["action_start"], self.marks.get("action_end", 1e9)),
            "writes": checked.as_dict(),
            "marks": self.marks,
        }
        result.figures.update(figures)
        return result.figures  # the drill adds its own figures to the same dict


def loss_objectives(result: DrillResult, figures: dict) -> None:
    """The two objectives every drill under load shares: no write answered 204 lost, every user readable."""
    writes = figures["writes"]
    result.objectives.append(at_most("writes answered 204 but lost", writes["lost"], 0))
    result.objectives.append(
        is_true("every touched user readable", not writes["unreadable_users"], "all users read back")
    )
