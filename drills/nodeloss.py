"""Drill 6: lose a whole node of the multi-node lab (``scripts/lab.sh test``) under load.

The node is a test host container: ``docker stop`` on this machine is the power cut (the
node's dockerd and every container on it stop). Pausing is no stand-in: the node's containers
live outside its cgroup. The victim holds app replicas but not PostgreSQL (nor Traefik, so the
load's entry point stays up), and is one of the lab's three managers when one qualifies, so it
also costs the swarm a manager, and the control plane must keep answering on the two that remain.
"""

from __future__ import annotations

from drills import swarm
from drills.runner import REPLICAS
from drills.runner import Context
from drills.runner import DrillResult
from drills.runner import Envelope
from drills.runner import loss_objectives
from drills.stats import at_most
from drills.stats import is_true
from drills.stats import rounded

NODE_DOWN_BOUND_S = 60  # Swarm's heartbeat notices a silent node in about 12 s
RESCHEDULE_BOUND_S = 120  # node seen Down + a replacement started and healthy (start period 20 s)
REJOIN_BOUND_S = 60  # node booted again (systemd, dockerd) and Ready


def app_nodes(ctx: Context) -> list[str]:
    """Node of every Running app task (one entry per task)."""
    proc = swarm.run(
        [
            "docker",
            "service",
            "ps",
            ctx.stack.service("app"),
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
        ],
        timeout=30,
    )
    return [line.split()[0] for line in proc.stdout.splitlines() if " Running" in line]


def service_node(ctx: Context, short: str) -> str:
    """Node of the running task of a one-replica service ('' when none)."""
    proc = swarm.run(
        [
            "docker",
            "service",
            "ps",
            ctx.stack.service(short),
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}}",
        ],
        timeout=30,
    )
    return proc.stdout.split()[0] if proc.stdout.split() else ""


def node_status(node: str) -> str:
    """Swarm's view of a node (``ready``, ``down``...), '' when the managers do not answer."""
    proc = swarm.run(["docker", "node", "inspect", "--format", "{{.Status.State}}", node], timeout=20)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def is_manager(node: str) -> bool:
    """Whether the swarm counts ``node`` among its managers."""
    proc = swarm.run(["docker", "node", "inspect", "--format", "{{.Spec.Role}}", node], timeout=20)
    return proc.stdout.strip() == "manager"


def pick_victim(ctx: Context) -> str | None:
    """The last node (by name) holding an app replica but neither PostgreSQL nor Traefik, a manager
    when one qualifies (so the drill also costs the swarm a manager)."""
    keep = {service_node(ctx, "postgres"), service_node(ctx, "traefik")}
    candidates = sorted(set(app_nodes(ctx)) - keep)
    managers = [node for node in candidates if is_manager(node)]
    return (managers or candidates or [None])[-1]


def node_loss(ctx: Context, result: DrillResult) -> None:
    """Stop a node with app replicas under load; measure; start it again; watch it heal."""
    victim = pick_victim(ctx)
    if victim is None or not ctx.node_prefix:
        result.objectives.append(
            is_true("a node with app replicas but not PostgreSQL", False, "needs the multi-node lab (>= 2 nodes)")
        )
        return
    container = f"{ctx.node_prefix}{victim.removeprefix('node')}"
    before = app_nodes(ctx)
    with Envelope(ctx, "d6") as env:
        swarm.run(["docker", "stop", container], timeout=90, check=True, host=True)
        env.mark("node_stopped")
        down = swarm.wait_for(lambda: node_status(victim) == "down", timeout=NODE_DOWN_BOUND_S, interval=1)
        env.mark("node_down")
        control_plane = node_status(victim) != ""  # a manager answered with one of three gone
        healed = swarm.wait_for(
            lambda: len([n for n in app_nodes(ctx) if n != victim]) == REPLICAS,
            timeout=RESCHEDULE_BOUND_S,
            interval=1,
        )
        env.mark("replicas_back")
        env.finish()
    figures = env.figures(result)
    during = app_nodes(ctx)
    swarm.run(["docker", "start", container], timeout=90, check=True, host=True)
    rejoined = swarm.wait_for(lambda: node_status(victim) == "ready", timeout=REJOIN_BOUND_S, interval=1)
    after = app_nodes(ctx)
    figures.update(
        stopped_node=victim,
        node_down_s=rounded(down),
        recovery_s=rounded(None if healed is None else (down or 0) + healed),
        node_ready_again_s=rounded(rejoined),
        app_nodes_before=before,
        app_nodes_during=during,
        app_nodes_after_rejoin=after,
    )
    result.notes.append(
        "Swarm does not move running replicas back to a node that returns (that would cost a"
        " restart for no gain); the node takes new tasks at the next deploy or restart."
    )
    result.objectives += [
        at_most("node seen Down", figures["node_down_s"], NODE_DOWN_BOUND_S, " s"),
        is_true("control plane answered with a manager down", control_plane, "docker node inspect answered"),
        at_most("time to 3 healthy replicas on the other nodes", figures["recovery_s"], RESCHEDULE_BOUND_S, " s"),
        at_most("node Ready again after start", figures["node_ready_again_s"], REJOIN_BOUND_S, " s"),
    ]
    loss_objectives(result, figures)
