"""Drill 7: the backup repository is away for 3 minutes under writes.

The lab's S3 server (a container on the lab network, not a node) is stopped and started again.
archive-push fails while it is away, so PostgreSQL keeps the closed segments in pg_wal and
retries: the users must not notice (0 failed requests), the operator must (the archiving alert
reaches the alert sink within its bound), and afterwards the backlog is archived. The restore of
drill 5, run after this one, proves that nothing older than a minute was lost on the way.
"""

from __future__ import annotations

import time

from drills import alerts
from drills import swarm
from drills.restore import psql
from drills.runner import Context
from drills.runner import DrillResult
from drills.runner import Envelope
from drills.runner import loss_objectives
from drills.stats import at_most
from drills.stats import is_true
from drills.stats import rounded

OUTAGE_S = 180
# The alert that says archiving fails (stack/prometheus/rules/alerts.yml), and its bound from the
# fault to the sink: see the rule's comment.
ALERT = "WalArchivingFailing"
ALERT_BOUND_S = 210
CATCH_UP_BOUND_S = 120  # S3 back to every waiting segment archived
ARCHIVER_SQL = (
    "SELECT (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'),"
    " archived_count, failed_count FROM pg_stat_archiver"
)


def archiver(ctx: Context) -> dict:
    """Segments waiting for the repository, and pg_stat_archiver's counters."""
    ready, archived, failed = (int(x) for x in psql(ctx, ARCHIVER_SQL).split("|"))
    return {"ready": ready, "archived": archived, "failed": failed}


def repository_outage(ctx: Context, result: DrillResult) -> None:
    """Run drill 7 and fill ``result``."""
    s3 = ctx.s3_container
    before = archiver(ctx)
    peak = 0
    with Envelope(ctx, "d7") as env:
        swarm.run(["docker", "stop", "--time", "1", s3], timeout=60, check=True, host=True)
        env.fault_at = time.time()
        env.mark("s3_stopped")
        deadline = time.monotonic() + OUTAGE_S
        while time.monotonic() < deadline:
            peak = max(peak, archiver(ctx)["ready"])
            time.sleep(5)
        during = archiver(ctx)
        swarm.run(["docker", "start", s3], timeout=60, check=True, host=True)
        env.mark("s3_started")
        started = time.monotonic()
        caught_up = swarm.wait_for(lambda: archiver(ctx)["ready"] == 0, timeout=CATCH_UP_BOUND_S + 60, interval=2)
        catch_up_s = time.monotonic() - started if caught_up is not None else None
        # The notification may still be on its way (group_wait): wait for it up to its bound.
        alerts.wait_for(ctx.stack, env.fault_at, ALERT, "firing", max(0.0, env.fault_at + ALERT_BOUND_S - time.time()))
        env.finish()
    figures = env.figures(result)
    figures.update(
        archiver_before=before,
        archiver_at_restart=during,
        archiver_after=archiver(ctx),
        waiting_segments_peak=peak,
        catch_up_s=rounded(catch_up_s),
        alert_after_s=alerts.first(figures["notifications"], ALERT, "firing"),
    )
    result.objectives += [
        at_most("failed requests while the repository was away", figures["all"]["failed"], 0),
        is_true(
            "archiving really failed",
            during["failed"] > before["failed"] and peak > 0,
            "pg_stat_archiver failures and waiting segments",
        ),
        at_most(f"{ALERT} at the alert sink after the fault", figures["alert_after_s"], ALERT_BOUND_S, " s"),
        at_most("repository back to every segment archived", figures["catch_up_s"], CATCH_UP_BOUND_S, " s"),
    ]
    loss_objectives(result, figures)
