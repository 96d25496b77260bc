"""What continuous WAL archiving costs the users: the short replay at 16 clients, archiving off and on.

Two local stacks run side by side on the same commit, each PostgreSQL (durable, as production) and
gunicorn as ``scripts/bench.sh`` starts them: ``off`` is bench/local.py's stack itself; ``on`` is the
same with PostgreSQL archiving its WAL (archive_mode=on, archive_timeout=55) through pgBackRest's
asynchronous archive-push to a local S3 server over TLS, compressed and encrypted like production's
(testkit/pgbackrest.py). The runs alternate, off on on off off on ..., so a machine that drifts
favours neither side. Each run empties its database first, replays with the benchmark's own engine,
scheduler and statistics (bench/replay.py), then switches the WAL segment and waits until it is
archived: the catch-up time is reported, and no run's archiving spills into the next. Prints one line
per run and the median ratios on/off; no assert on timing.

A short run writes about 2 MB of WAL (a segment holds 16) in seconds (archive_timeout is 55), so with
production's settings it pushes hardly any segment while it runs. ``--switch-every 2`` closes a segment
every 2 s in both arms, so the "on" arm pushes several during each run: the cost of archive-push itself,
at many times production's rate.

  PYTHONPATH=.:service .venv/bin/python -m bench.archiving [--rounds 8] [--rows 3000] [--clients 16] [--switch-every 2]
"""

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from bench import local
from bench.client import parse_target
from bench.cpu import CpuProbe
from bench.engines import ENGINES
from bench.replay import machine
from bench.replay import measured
from bench.replay import replay_jobs
from bench.scenario import TIMEOUT_S
from bench.scenario import load_actions
from bench.scheduler import Scheduler
from testkit.app import gunicorn_server
from testkit.pgbackrest import archiving_cluster
from testkit.postgres import create_pg_database
from testkit.postgres import libpq_url
from testkit.skip import Unavailable
from testkit.skip import skipped_exit_status

CATCH_UP_TIMEOUT_S = 60
ARCHIVER_SQL = "SELECT archived_count, failed_count FROM pg_stat_archiver"


@contextlib.contextmanager
def archiving_stack():
    """bench/local.py's stack with a PostgreSQL that archives its WAL to S3 through pgBackRest."""
    workdir = Path(tempfile.mkdtemp(prefix="minitwit-bench-"))
    try:
        pg_options = {"max_connections": local.POSTGRES_DEFAULT_MAX_CONNECTIONS, "durable": True}
        with archiving_cluster(archive_timeout=55, **pg_options) as postgres:
            database_url = create_pg_database(postgres.url, "minitwit")
            with gunicorn_server(
                workdir, database_url, service_dir=local.SERVICE, **local.production_settings()
            ) as app:
                yield local.LocalStack(app.url, database_url, app.pid, postgres.pid)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def wal_position(database_url: str) -> tuple[int, int, int]:
    """(WAL bytes written so far, WAL files archived, archive attempts failed)."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        wal_bytes = conn.execute("SELECT wal_bytes FROM pg_stat_wal").fetchone()[0]
        archived, failed = conn.execute(ARCHIVER_SQL).fetchone()
    return int(wal_bytes), archived, failed


def catch_up(database_url: str) -> float | None:
    """Close the current WAL segment and wait until it is archived; seconds it took (None: archiving is off)."""
    started = time.monotonic()
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        if conn.execute("SHOW archive_mode").fetchone()[0] != "on":
            return None
        segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
        while (conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0] or "") < segment:
            if time.monotonic() - started > CATCH_UP_TIMEOUT_S:
                raise RuntimeError(f"WAL segment {segment} not archived after {CATCH_UP_TIMEOUT_S}s")
            time.sleep(0.1)
    return time.monotonic() - started


@contextlib.contextmanager
def wal_switches(database_url: str, every_s: float):
    """Close the WAL segment every ``every_s`` seconds during the block (never when 0), in both arms alike."""
    if not every_s:
        yield
        return
    done = threading.Event()

    def switch():
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            while not done.wait(every_s):
                conn.execute("SELECT pg_switch_wal()")

    thread = threading.Thread(target=switch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=30)


def one_run(stack: local.LocalStack, args: argparse.Namespace, actions) -> dict:
    """Empty the database, replay at ``args.clients``, let archiving catch up; the run's figures."""
    local.reset_database(stack.database_url)
    target = parse_target(stack.base_url + "/api", None, None)
    probe = CpuProbe({"app": stack.app_pid, "postgres": stack.postgres_pid})
    wal_before, archived_before, failed_before = wal_position(stack.database_url)
    jobs = replay_jobs(target, actions)
    with wal_switches(stack.database_url, args.switch_every):
        summary, _ = measured(ENGINES[args.engine], probe, target, jobs, Scheduler(actions), args.clients, TIMEOUT_S)
    wal_after, archived_during, _ = wal_position(stack.database_url)
    caught_up_s = catch_up(stack.database_url)
    _, archived_after, failed_after = wal_position(stack.database_url)
    return {
        "rps": summary["throughput_rps"],
        "p50_ms": summary["latency"]["p50_ms"],
        "p99_ms": summary["latency"]["p99_ms"],
        "errors": summary["errors"],
        "postgres_cpu_us": summary["cpu_us_per_request"].get("postgres"),
        "wal_mb": (wal_after - wal_before) / 2**20,
        "archived": f"{archived_during - archived_before}+{archived_after - archived_during}",
        "failed": failed_after - failed_before,
        "catch_up_s": caught_up_s,
    }


def run_order(rounds: int) -> list[str]:
    """off on, on off, off on...: each side goes first as often as the other."""
    return [mode for i in range(rounds) for mode in (("off", "on") if i % 2 == 0 else ("on", "off"))]


def table(runs: list[tuple[str, dict]]) -> list[str]:
    """One line per run in the order they ran, then the medians and the ratios on/off."""
    header = "run  archiving   req/s   p50 ms   p99 ms  errors  pg CPU us/req  WAL MB  archived  failed  catch-up s"
    lines = [header]
    for i, (mode, r) in enumerate(runs, 1):
        catch = f"{r['catch_up_s']:.1f}" if r["catch_up_s"] is not None else "-"
        lines.append(
            f"{i:>3}  {mode:<9}{r['rps']:>8.1f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['errors']:>8}"
            f"{r['postgres_cpu_us'] or 0:>15.0f}{r['wal_mb']:>8.1f}{r['archived']:>10}{r['failed']:>8}{catch:>12}"
        )
    median = {
        (mode, key): statistics.median(r[key] for m, r in runs if m == mode)
        for mode in ("off", "on")
        for key in ("rps", "p50_ms", "p99_ms")
    }
    for mode in ("off", "on"):
        rps = [r["rps"] for m, r in runs if m == mode]
        lines.append(
            f"median {mode:<6}{median[mode, 'rps']:>8.1f}{median[mode, 'p50_ms']:>9.1f}{median[mode, 'p99_ms']:>9.1f}"
            f"   (req/s from {min(rps):.1f} to {max(rps):.1f})"
        )
    ratios = ", ".join(f"{key} {median['on', key] / median['off', key]:.3f}" for key in ("rps", "p50_ms", "p99_ms"))
    lines.append(f"on/off (medians): {ratios}")
    paired = round_ratios(runs)
    lines.append(
        f"on/off req/s per round: {' '.join(f'{r:.3f}' for r in paired)}; median {statistics.median(paired):.3f}"
    )
    return lines


def round_ratios(runs: list[tuple[str, dict]]) -> list[float]:
    """Each round's on/off throughput: two neighbouring runs, so drift between rounds cancels out."""
    rounds = [dict(runs[i : i + 2]) for i in range(0, len(runs) - 1, 2)]
    return [pair["on"]["rps"] / pair["off"]["rps"] for pair in rounds]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.archiving", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=8, help="pairs of runs, one off and one on each (default 8)")
    p.add_argument("--rows", type=int, default=3000, help="scenario rows per run (default 3000: the short replay)")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument(
        "--switch-every",
        type=float,
        default=0,
        metavar="SECONDS",
        help="close the WAL segment every SECONDS during each run, archiving on or off (default 0: only"
        " archive_timeout=55 does, and a short run writes about 2 MB, so it pushes hardly any segment)",
    )
    p.add_argument("--engine", choices=sorted(ENGINES), default="threads", help="load engine (default threads)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start both stacks, run them alternately, print the table."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    actions = load_actions(rows=args.rows)
    switches = f", a WAL switch every {args.switch_every:g} s" if args.switch_every else ""
    print(f"{machine()}; {len(actions)} rows, {args.clients} clients, engine {args.engine}{switches}", flush=True)
    try:
        with local.local_stack() as off, archiving_stack() as on:
            runs = []
            for mode in run_order(args.rounds):
                runs.append((mode, one_run(off if mode == "off" else on, args, actions)))
                print(f"  run {len(runs)} ({mode}): {runs[-1][1]['rps']} req/s", flush=True)
    except Unavailable as missing:
        return skipped_exit_status(missing)
    print("\n".join(table(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
