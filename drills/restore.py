"""Drill 5: backup.yml under load, wipe the database volume, restore.yml, check.

"Existed at backup time" is checked two ways: (1) every write the load generator
saw answered 204 before backup.yml started is read back through the API, and
(2) row counts taken in PostgreSQL just before the backup (messages up to the
highest id, users up to the highest id, all follower rows; the drills never
unfollow) are all there again after the restore.
"""

from __future__ import annotations

import time

from drills import swarm
from drills.load import LoadGenerator
from drills.runner import Context
from drills.runner import DrillResult
from drills.runner import Envelope
from drills.runner import probe
from drills.stats import at_most
from drills.stats import is_true
from drills.stats import summarise
from drills.verify import verify

# As restore.yml does: psql over the local socket as the postgres OS user, with the
# role and database the container's environment names.
PSQL = 'exec psql -At -v ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" -c "$1"'
SNAPSHOT_SQL = (
    "SELECT (SELECT coalesce(max(message_id), 0) FROM message), (SELECT count(*) FROM message),"
    ' (SELECT coalesce(max(user_id), 0) FROM "user"), (SELECT count(*) FROM "user"),'
    " (SELECT count(*) FROM follower)"
)
RESTORE_BOUND_S = 300


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
    """Highest ids and row counts, the yardstick for "existed at backup time"."""
    values = [int(x) for x in psql(ctx, SNAPSHOT_SQL).split("|")]
    keys = ("max_message_id", "messages", "max_user_id", "users", "follows")
    return dict(zip(keys, values, strict=True))


def counts_up_to(ctx: Context, before: dict) -> dict:
    """After the restore: rows at or below the ids seen before the backup."""
    sql = (
        f"SELECT (SELECT count(*) FROM message WHERE message_id <= {int(before['max_message_id'])}),"
        f' (SELECT count(*) FROM "user" WHERE user_id <= {int(before["max_user_id"])}),'
        " (SELECT count(*) FROM follower)"
    )
    messages, users, follows = (int(x) for x in psql(ctx, sql).split("|"))
    return {"messages": messages, "users": users, "follows": follows}


def data_volume(ctx: Context) -> str:
    """Name of the named volume mounted into the PostgreSQL container."""
    container = swarm.containers(ctx.stack.service("postgres"))[0]
    proc = swarm.run(
        [
            "docker",
            "inspect",
            "--format",
            '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}',
            container,
        ],
        timeout=30,
        check=True,
    )
    names = proc.stdout.split()
    if len(names) != 1:
        raise RuntimeError(f"expected one volume on the PostgreSQL task, found {names}")
    return names[0]


def wipe(ctx: Context) -> dict:
    """Stop PostgreSQL, delete its data volume, start it again empty."""
    service = ctx.stack.service("postgres")
    volume = data_volume(ctx)
    swarm.scale(service, 0)
    swarm.wait_for(lambda: not swarm.containers(service), timeout=90)
    stopped = swarm.run(
        [
            "docker",
            "ps",
            "-aq",
            "--filter",
            f"label=com.docker.swarm.service.name={service}",
        ],
        timeout=30,
    ).stdout.split()
    if stopped:
        swarm.run(["docker", "rm", "-f", *stopped], timeout=60, check=True)
    removed = swarm.run(["docker", "volume", "rm", volume], timeout=60)
    swarm.scale(service, 1)
    swarm.wait_for(lambda: swarm.healthy_containers(service) == 1, timeout=120)
    empty = psql(ctx, "SELECT to_regclass('public.message') IS NULL") == "t"
    return {
        "volume": volume,
        "volume_removed": removed.returncode == 0,
        "empty_after_wipe": empty,
    }


def backup_restore(ctx: Context, result: DrillResult) -> None:
    """Run drill 5 and fill ``result``."""
    with Envelope(ctx, "d5") as env:
        before = snapshot(ctx)
        backup_at = env.mark("backup_start")
        backup = swarm.playbook(ctx.stack, "backup.yml")
        env.finish()
    expected = env.load.accepted_before(backup_at)
    if backup.returncode != 0:
        result.notes.append(backup.stdout[-3000:] + backup.stderr[-2000:])
    figures = env.figures(result)
    wiped = wipe(ctx)
    started = time.monotonic()
    restore = swarm.playbook(ctx.stack, "restore.yml")
    ready = swarm.wait_for(lambda: probe(ctx.target, "/ready") == 200, timeout=120)
    restore_s = time.monotonic() - started
    if restore.returncode != 0:
        result.notes.append(restore.stdout[-3000:] + restore.stderr[-2000:])
    after = counts_up_to(ctx, before)
    checked = verify(ctx.target, expected)
    # Writes accepted after the dump started may be missing: that is the backup's recovery point.
    newer = verify(ctx.target, [w for w in env.load.writes if w not in expected])
    figures.update(
        snapshot_before_backup=before,
        counts_after_restore=after,
        wipe=wiped,
        backup_rc=backup.returncode,
        restore_rc=restore.returncode,
        restore_s=round(restore_s, 1),
        ready_after_restore=ready is not None,
        backup_time_writes=checked.as_dict(),
        writes_after_backup_start_missing=newer.as_dict()["lost"],
        after_restore_load=_probe_load(ctx),
    )
    result.objectives += _objectives(figures, before, after)


def _probe_load(ctx: Context) -> dict:
    """A short burst of the normal load after the restore: the service must work."""
    load = LoadGenerator(ctx.target, "d5post", rate=ctx.rate, workers=ctx.workers, max_seconds=60).start()
    time.sleep(ctx.tail)
    load.stop()
    return {
        **summarise(load.records),
        "writes": verify(ctx.target, load.writes).as_dict(),
    }


def _objectives(figures: dict, before: dict, after: dict) -> list:
    backup_writes = figures["backup_time_writes"]
    return [
        is_true("backup.yml succeeded under load", figures["backup_rc"] == 0, "exit code 0"),
        at_most("failed requests during backup", figures["all"]["failed"], 0),
        is_true(
            "database really wiped",
            figures["wipe"]["volume_removed"] and figures["wipe"]["empty_after_wipe"],
            "volume removed, no tables",
        ),
        is_true("restore.yml succeeded", figures["restore_rc"] == 0, "exit code 0"),
        at_most(
            "restore.yml until /ready 200",
            figures["restore_s"] if figures["ready_after_restore"] else None,
            RESTORE_BOUND_S,
            " s",
        ),
        at_most("writes accepted before the backup but missing", backup_writes["lost"], 0),
        is_true(
            "all messages/users/follows of backup time back",
            all(after[k] >= before[k] for k in ("messages", "users", "follows")),
            f">= {before}",
        ),
        at_most("failed requests after restore", figures["after_restore_load"]["failed"], 0),
        at_most(
            "writes lost after restore",
            figures["after_restore_load"]["writes"]["lost"],
            0,
        ),
    ]
