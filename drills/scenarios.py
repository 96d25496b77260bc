"""The five drills.  Each one fills a DrillResult with figures and objectives.

Bounds (the "stated bounds" of docs/reliability.md) are the constants below.
"""

from __future__ import annotations

import time

from drills import alerts
from drills import swarm
from drills.runner import REPLICAS
from drills.runner import Context
from drills.runner import DrillResult
from drills.runner import Envelope
from drills.runner import loss_objectives
from drills.runner import probe
from drills.stats import at_most
from drills.stats import is_true
from drills.stats import outage_answers
from drills.stats import rounded
from drills.stats import summarise

CRASH_RECOVERY_BOUND_S = 90  # restart delay + start + healthcheck start period
# Time to notify, from the fault to the alert-sink (docs/reliability.md): the replica dip is seen
# within a scrape and an evaluation (30 s), then the ticket route's 30 s group_wait; "resolved"
# comes a minute after the last replica is back, plus up to a 1 m group_interval.
CRASH_NOTIFY_BOUND_S = 120
CRASH_RESOLVED_BOUND_S = 300
DB_OUTAGE_S = 12  # PostgreSQL stays down at least this long in drill 3...
# ...and until the PostgresDown page arrives: firing in Prometheus within a scrape (its 10 s
# timeout on the vanished database), an evaluation and `for: 30s` (measured ~60 s from the
# stop), then the page route's group_wait 10 s, or up to its group_interval 60 s when a
# PostgresDown resolved less than 15 min before: Prometheus resends resolved alerts that long,
# which keeps Alertmanager's group alive, and a group that exists sends on its next tick.
# Measured 55.8-102.4 s (docs/reliability.md); the bound allows the 130 s worst case.
DB_NOTIFY_BOUND_S = 150
DB_RECOVERY_BOUND_S = 30  # app fully serving again after PostgreSQL is back
# A release that starts but never gets healthy: it serves on the wrong port, so the
# stack's healthcheck (/health on :5000, which overrides any image HEALTHCHECK) fails.
UNHEALTHY_IMAGE = "FROM {image}\nENV PORT=5999\n"


def _deploy(ctx: Context, image: str) -> tuple[int, str, float]:
    """Run deploy.yml with ``image``; return rc, its output's tail, its duration."""
    started = time.monotonic()
    proc = swarm.playbook(ctx.stack, "deploy.yml", {ctx.stack.image_var: image})
    return (
        proc.returncode,
        (proc.stdout + proc.stderr)[-4000:],
        time.monotonic() - started,
    )


def rolling_update(ctx: Context, result: DrillResult) -> None:
    """Drill 1: deploy a second tag of the same image through deploy.yml under load."""
    app = ctx.stack.service("app")
    current = swarm.service_image(app)
    new = f"{current.rsplit(':', 1)[0]}:drill-{int(time.time())}"
    swarm.tag_image(current, new)
    with Envelope(ctx, "d1") as env:
        rc, output, seconds = _deploy(ctx, new)
        env.finish()
    figures = env.figures(result)
    figures.update(
        deploy_seconds=round(seconds, 1),
        playbook_rc=rc,
        image_before=current,
        image_after=new,
    )
    if rc != 0:
        result.notes.append(output)
    result.objectives += [
        at_most("failed requests", figures["all"]["failed"], 0),
        is_true("deploy.yml succeeded", rc == 0, "exit code 0"),
        is_true("service runs the new tag", swarm.service_image(app) == new, new),
        is_true("3 replicas running", swarm.running_tasks(app) == REPLICAS, "3"),
    ]
    loss_objectives(result, figures)


def replica_crash(ctx: Context, result: DrillResult) -> None:
    """Drill 2: SIGKILL one app container; reads must not fail, nothing lost."""
    app = ctx.stack.service("app")
    victim = swarm.containers(app)[0]
    with Envelope(ctx, "d2") as env:
        swarm.kill(victim)
        recovered = swarm.wait_for(
            lambda: victim not in swarm.containers(app)
            and swarm.healthy_containers(app) == REPLICAS
            and swarm.running_tasks(app) == REPLICAS,
            timeout=CRASH_RECOVERY_BOUND_S + 30,
            interval=1,
        )
        env.finish()
    fired = alerts.wait_for(ctx.stack, env.fault_at, "MinitwitReplicaLost", "firing", CRASH_NOTIFY_BOUND_S)
    resolved = alerts.wait_for(ctx.stack, env.fault_at, "MinitwitReplicaLost", "resolved", CRASH_RESOLVED_BOUND_S)
    figures = env.figures(result)
    figures.update(
        killed_container=victim[:12],
        recovery_s=rounded(recovered),
        replica_alert_s=fired,
        replica_alert_resolved_s=resolved,
    )
    result.objectives += [
        at_most("failed reads", figures["all"]["failed_reads"], 0),
        at_most(
            "time to 3 healthy replicas",
            figures["recovery_s"],
            CRASH_RECOVERY_BOUND_S,
            " s",
        ),
        at_most("replica alert at the sink, from the kill", fired, CRASH_NOTIFY_BOUND_S, " s"),
        at_most("its resolution at the sink, from the kill", resolved, CRASH_RESOLVED_BOUND_S, " s"),
    ]
    loss_objectives(result, figures)


def database_restart(ctx: Context, result: DrillResult) -> None:
    """Drill 3: stop PostgreSQL for DB_OUTAGE_S, start it again, watch the app cope."""
    postgres = ctx.stack.service("postgres")
    with Envelope(ctx, "d3") as env:
        swarm.scale(postgres, 0)
        gone = swarm.wait_for(lambda: not swarm.containers(postgres), timeout=60)
        env.mark("db_down")
        watched = _watch_outage(ctx, DB_OUTAGE_S)
        # Keep it down until a person would have been paged (or the bound has passed).
        paged = alerts.wait_for(
            ctx.stack, env.fault_at, "PostgresDown", "firing", DB_NOTIFY_BOUND_S - (time.time() - env.fault_at)
        )
        env.mark("db_start")
        swarm.scale(postgres, 1)
        back = swarm.wait_for(lambda: swarm.healthy_containers(postgres) == 1, timeout=120)
        pg_back = env.mark("db_back")
        app_ready = swarm.wait_for(lambda: probe(ctx.target, "/ready") == 200, timeout=60, interval=0.5)
        env.mark("app_ready")
        env.finish()
    figures = env.figures(result)
    # Every failure of the whole drill must be a clear 503, not only those while PostgreSQL is away.
    outage_records = [r for r in env.load.records if env.marks["action_start"] <= r.started <= pg_back]
    late = [r.started - pg_back for r in env.load.records if r.started > pg_back and not r.ok]
    figures.update(
        postgres_stopped_s=rounded(gone),
        postgres_back_s=rounded(back),
        ready_after_db_back_s=rounded(app_ready),
        last_failure_after_db_back_s=rounded(max(late, default=0.0)),
        postgres_alert_s=paged,
        outage=outage_answers(env.load.records),
        outage_window=summarise(outage_records),
        probes=watched,
    )
    result.objectives += [
        at_most(
            "failures that are not a 503 with a message",
            figures["outage"]["unclear"],
            0,
        ),
        is_true(
            "/ready said not ready during the outage",
            watched["ready_503"] > 0,
            "/ready 503 seen",
        ),
        at_most("/health failures during the outage", watched["health_not_200"], 0),
        at_most("PostgresDown page at the sink, from the stop", paged, DB_NOTIFY_BOUND_S, " s"),
        at_most(
            "slowest answer during the outage",
            figures["outage_window"]["max_ms"],
            ctx.target.timeout * 1000,
            " ms",
        ),
        at_most(
            "/ready 200 after PostgreSQL is back",
            figures["ready_after_db_back_s"],
            DB_RECOVERY_BOUND_S,
            " s",
        ),
        at_most(
            "last failed request after PostgreSQL is back",
            figures["last_failure_after_db_back_s"],
            DB_RECOVERY_BOUND_S,
            " s",
        ),
    ]
    loss_objectives(result, figures)


def _watch_outage(ctx: Context, seconds: float) -> dict:
    """Probe /ready and /health through Traefik twice a second during the outage."""
    seen = {"ready_503": 0, "ready_other": 0, "health_not_200": 0, "probes": 0}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready_status, health_status = (
            probe(ctx.target, "/ready"),
            probe(ctx.target, "/health"),
        )
        seen["probes"] += 1
        seen["ready_503" if ready_status == 503 else "ready_other"] += 1
        seen["health_not_200"] += health_status != 200
        time.sleep(0.5)
    return seen


def bad_release(ctx: Context, result: DrillResult) -> None:
    """Drill 4: deploy an image whose healthcheck always fails; Swarm must roll back."""
    app = ctx.stack.service("app")
    good = swarm.service_image(app)
    bad = f"{good.rsplit(':', 1)[0]}:drill-bad-{int(time.time())}"
    swarm.build_from(UNHEALTHY_IMAGE.format(image=good), bad)
    with Envelope(ctx, "d4") as env:
        rc, output, seconds = _deploy(ctx, bad)
        settled = swarm.wait_for(lambda: swarm.running_tasks(app) == REPLICAS, timeout=120, interval=1)
        env.finish()
    figures = env.figures(result)
    after = swarm.service_image(app)
    figures.update(
        deploy_seconds=round(seconds, 1),
        playbook_rc=rc,
        bad_image=bad,
        image_after=after,
        update_state=swarm.update_state(app),
        settled_s=rounded(settled),
        playbook_message=swarm.playbook_failure(output),
    )
    result.notes.append(output)
    result.objectives += [
        at_most("failed requests", figures["all"]["failed"], 0),
        is_true("deploy.yml exited non-zero", rc != 0, "exit code != 0"),
        is_true(
            "playbook says it rolled back",
            "roll" in figures["playbook_message"].lower(),
            "message mentions the rollback",
        ),
        is_true("service back on the good image", after == good, good),
        is_true("3 replicas running", settled is not None, "3"),
    ]
    loss_objectives(result, figures)
