"""Drills 5 and 8: restore from the off-host pgBackRest repository with ``restore.yml``.

Drill 5, disk loss: under writes, the database node loses everything its disk held for the
database (PostgreSQL is killed, its data and spool volumes and the node's export folder are
deleted), and ``restore.yml`` brings the latest archived moment back from the repository. Every
write acknowledged more than ``RPO_BOUND_S`` before the fault must be back; the newer ones that
are missing are the measured recovery point. Rows counted ``SNAPSHOT_LEAD_S`` before the fault
must all be there too.

Drill 8, point in time: the load stops, the moment T is noted on the database's clock and every
row is listed; then every message is deleted, and ``restore.yml`` restores to T. Exactly the rows
of T must be back: none missing, none extra.
"""

from __future__ import annotations

import time

from drills import swarm
from drills.load import LoadGenerator
from drills.runner import Context
from drills.runner import DrillResult
from drills.runner import Envelope
from drills.runner import loss_objectives
from drills.runner import probe
from drills.stats import at_most
from drills.stats import is_true
from drills.stats import rounded
from drills.stats import summarise
from drills.verify import verify

# psql over the local socket as the postgres OS user, with the role and database the container's
# environment names (what restore.yml does).
PSQL = 'exec psql -At -v ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" -c "$1"'
SNAPSHOT_SQL = (
    "SELECT (SELECT coalesce(max(message_id), 0) FROM message), (SELECT count(*) FROM message),"
    ' (SELECT coalesce(max(user_id), 0) FROM "user"), (SELECT count(*) FROM "user"),'
    " (SELECT count(*) FROM follower)"
)
# Every row, as keys: what "exactly the rows of T" compares.
ROWS_SQL = {
    "messages": "SELECT message_id || ':' || md5(text) FROM message",
    "users": "SELECT user_id || ':' || username FROM \"user\"",
    "follows": "SELECT who_id || ':' || whom_id FROM follower",
}
# A segment is archived at most 60 s after its first write (archive_timeout 55 s + up to 1 s + the push,
# stack/minitwit.yml): a write older than that is in the repository.
RPO_BOUND_S = 60
# How long the load runs before the fault, so that writes older than the bound exist.
PRE_FAULT_S = 80
SNAPSHOT_LEAD_S = 65
RESTORE_BOUND_S = 300  # restore.yml from start to /ready 200 (RTO objective: fault to writes again)


def psql(ctx: Context, sql: str) -> str:
    """Run one SQL statement inside the PostgreSQL container; return psql's unaligned output."""
    container = swarm.containers(ctx.stack.service("postgres"))[0]
    proc = swarm.run(
        ["docker", "exec", "--user", "postgres", container, "sh", "-c", PSQL, "psql", sql],
        timeout=60,
        check=True,
    )
    return proc.stdout.strip()


def snapshot(ctx: Context) -> dict:
    """Highest ids and row counts at one moment."""
    values = [int(x) for x in psql(ctx, SNAPSHOT_SQL).split("|")]
    keys = ("max_message_id", "messages", "max_user_id", "users", "follows")
    return dict(zip(keys, values, strict=True))


def counts_up_to(ctx: Context, before: dict) -> dict:
    """After a restore: rows at or below the ids a snapshot saw (follows: all of them)."""
    sql = (
        f"SELECT (SELECT count(*) FROM message WHERE message_id <= {int(before['max_message_id'])}),"
        f' (SELECT count(*) FROM "user" WHERE user_id <= {int(before["max_user_id"])}),'
        " (SELECT count(*) FROM follower)"
    )
    messages, users, follows = (int(x) for x in psql(ctx, sql).split("|"))
    return {"messages": messages, "users": users, "follows": follows}


def rows(ctx: Context) -> dict[str, set[str]]:
    """Every message, user and follow as a key."""
    return {name: set(psql(ctx, sql).splitlines()) for name, sql in ROWS_SQL.items()}


def restore(ctx: Context, target: str = "") -> dict:
    """Run restore.yml (to ``target``, or the latest moment) and wait for /ready; figures."""
    started = time.monotonic()
    proc = swarm.playbook(ctx.stack, "restore.yml", {"minitwit_restore_target": target} if target else None)
    ready = swarm.wait_for(lambda: probe(ctx.target, "/ready") == 200, timeout=120)
    return {
        "rc": proc.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "ready": ready is not None,
        "failure": swarm.playbook_failure(proc.stdout + proc.stderr) if proc.returncode else "",
    }


def destroy_disk(ctx: Context) -> dict:
    """What a dead disk does to the database node: PostgreSQL gone without a shutdown, its data
    and WAL spool gone, the node's export folder gone. Swarm is kept from starting an empty
    PostgreSQL in its place (desired replicas 0), as a missing volume would."""
    service = ctx.stack.service("postgres")
    container = swarm.containers(service)[0]
    swarm.run(["docker", "kill", "--signal", "KILL", container], timeout=30, check=True)
    swarm.scale(service, 0)
    swarm.wait_for(lambda: not swarm.containers(service), timeout=60)
    stopped = swarm.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.swarm.service.name={service}"], timeout=30
    ).stdout.split()
    if stopped:
        swarm.run(["docker", "rm", "--force", *stopped], timeout=60, check=True)
    volumes = [ctx.stack.service("postgres_data"), ctx.stack.service("pgbackrest_spool")]
    removed = [swarm.run(["docker", "volume", "rm", v], timeout=60).returncode == 0 for v in volumes]
    exports = swarm.run(["docker", "exec", ctx.node_prefix + "1", "rm", "-rf", "/var/backups/minitwit"], host=True)
    return {"volumes": volumes, "volumes_removed": all(removed), "exports_removed": exports.returncode == 0}


def lost_by_age(lost: list, fault: float) -> dict[str, int]:
    """Writes acknowledged and lost, by their age at the fault in 10 s buckets ('>60' beyond)."""
    buckets: dict[str, int] = {}
    for write in lost:
        age = max(fault - write.answered_at, 0.0)  # answered just after the fault: age 0
        key = f">{RPO_BOUND_S}" if age > RPO_BOUND_S else f"{int(age // 10) * 10}-{int(age // 10) * 10 + 10}"
        buckets[key] = buckets.get(key, 0) + 1
    return dict(sorted(buckets.items()))


def disk_loss(ctx: Context, result: DrillResult) -> None:
    """Drill 5: the database node's disk dies under writes; restore.yml to the latest moment."""
    with Envelope(ctx, "d5") as env:
        time.sleep(PRE_FAULT_S - SNAPSHOT_LEAD_S)
        before = snapshot(ctx)
        env.mark("snapshot")
        time.sleep(SNAPSHOT_LEAD_S)
        fault = env.mark("fault")
        env.fault_at = time.time()
        destroyed = destroy_disk(ctx)
        restored = restore(ctx)
        env.finish()
    figures = env.figures(result)
    after = counts_up_to(ctx, before)
    checked = verify(ctx.target, env.load.writes)
    old = [w for w in checked.lost if fault - w.answered_at > RPO_BOUND_S]
    # Writes fail from the fault until the restored database is open: the outage is from the fault
    # to the first write accepted after the first one that failed.
    failed = [r.started for r in env.load.records if r.write and not r.ok and r.started >= fault]
    back = [r.started + r.latency for r in env.load.records if r.write and r.ok and failed and r.started > min(failed)]
    figures.update(
        destroyed=destroyed,
        restore=restored,
        snapshot_before=before,
        counts_after=after,
        lost_by_age_s=lost_by_age(checked.lost, fault),
        rpo_s=rounded(max((fault - w.answered_at for w in checked.lost), default=0.0)),
        writes_failed_during_outage=len(failed),
        rto_s=rounded(min(back) - fault) if back else None,
        after_restore_load=_probe_load(ctx),
    )
    result.objectives += [
        is_true("disk really lost", destroyed["volumes_removed"], "data and spool volumes deleted"),
        is_true("restore.yml succeeded", restored["rc"] == 0 and restored["ready"], "exit code 0, /ready 200"),
        at_most("fault to writes accepted again (RTO)", figures["rto_s"], RESTORE_BOUND_S, " s"),
        is_true("the outage was seen", bool(failed), "writes failed after the fault"),
        at_most(f"writes acknowledged > {RPO_BOUND_S} s before the fault, lost", len(old), 0),
        is_true(
            f"rows of {SNAPSHOT_LEAD_S} s before the fault all back",
            all(after[k] >= before[k] for k in ("messages", "users", "follows")),
            f">= {before}",
        ),
        at_most("failed requests after restore", figures["after_restore_load"]["failed"], 0),
        at_most("writes lost after restore", figures["after_restore_load"]["writes"]["lost"], 0),
    ]
    if restored["failure"]:
        result.notes.append(restored["failure"])


def point_in_time(ctx: Context, result: DrillResult) -> None:
    """Drill 8: every message deleted at T; restore.yml to T brings back exactly the rows of T."""
    with Envelope(ctx, "d8") as env:
        pass  # warm-up writes, then the load stops: T must have no write in flight
    time.sleep(1)
    moment = psql(ctx, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
    time.sleep(1)
    at_t = rows(ctx)
    time.sleep(1)
    deleted = int(psql(ctx, "WITH gone AS (DELETE FROM message RETURNING 1) SELECT count(*) FROM gone"))
    restored = restore(ctx, moment)
    after = rows(ctx)
    figures = env.figures(result)
    compared = {
        name: {
            "at_t": len(at_t[name]),
            "missing": len(at_t[name] - after[name]),
            "extra": len(after[name] - at_t[name]),
        }
        for name in ROWS_SQL
    }
    figures.update(
        target=moment,
        messages_deleted=deleted,
        restore=restored,
        rows=compared,
        after_restore_load=_probe_load(ctx),
    )
    loss_objectives(result, figures)
    result.objectives += [
        is_true("destructive change happened", deleted > 0, "messages deleted at T"),
        is_true("restore.yml to T succeeded", restored["rc"] == 0 and restored["ready"], "exit code 0, /ready 200"),
        at_most("restore.yml until /ready 200", restored["seconds"], RESTORE_BOUND_S, " s"),
        at_most("rows of T missing", sum(c["missing"] for c in compared.values()), 0),
        at_most("rows not in T (extra)", sum(c["extra"] for c in compared.values()), 0),
        at_most("failed requests after restore", figures["after_restore_load"]["failed"], 0),
    ]
    if restored["failure"]:
        result.notes.append(restored["failure"])


def _probe_load(ctx: Context) -> dict:
    """A short burst of the normal load after the restore: the service must work."""
    load = LoadGenerator(ctx.target, "restored", rate=ctx.rate, workers=ctx.workers, max_seconds=60).start()
    time.sleep(ctx.tail)
    load.stop()
    return {
        **summarise(load.records),
        "writes": verify(ctx.target, load.writes).as_dict(),
    }
