"""Replay the ITU simulator scenario against MiniTwit and report throughput, latency and errors.

Without ``--url`` it starts its own PostgreSQL + gunicorn (``bench/local.py``) and empties the database
before each replay; with ``--url`` it targets a running deployment (e.g. https://minitwit.test/api).
Each replay is followed by the same number of requests to the no-op endpoint (``/health``, no database)
with the same engine and concurrency, so the report can state the app's throughput relative to it.
Usage: scripts/bench.sh --help
"""

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench import local
from bench.client import Target
from bench.client import build_request
from bench.client import parse_target
from bench.client import send
from bench.cpu import CpuProbe
from bench.engines import ENGINES
from bench.engines import FlatOrder
from bench.engines import Job
from bench.engines import RunResult
from bench.floor import hash_cost
from bench.floor import hash_floor
from bench.report import render
from bench.report import write_json
from bench.scenario import TIMEOUT_S
from bench.scenario import error_kind
from bench.scenario import load_actions
from bench.scenario import request_for
from bench.scheduler import Scheduler
from bench.stats import summarize
from testkit.skip import Unavailable
from testkit.skip import skipped_exit_status


def replay_jobs(target: Target, actions) -> list[Job]:
    """Serialise every scenario request up front and attach the simulator's error rule."""
    jobs = []
    for action in actions:
        method, path, body = request_for(action)
        check = (lambda command: lambda status: error_kind(command, status))(action.command)
        jobs.append(Job(action.command, build_request(target, method, path, body), check))
    return jobs


def noop_jobs(target: Target, path: str, n: int) -> list[Job]:
    """``n`` GET requests to the no-op endpoint; anything but 200 is an error."""
    raw = build_request(target, "GET", path, auth=False)
    job = Job("noop", raw, lambda status: None if status == 200 else f"HTTP {status}")
    return [job] * n


def final_latest(target: Target, wait_s: float = 60) -> int | None:
    """GET /latest once the server is idle again (it may still be working off timed-out requests)."""
    answer = send(replace(target, timeout=wait_s), "GET", "/latest", auth=True)
    return answer.json().get("latest") if answer.status == 200 else None


def measured(run, probe: CpuProbe | None, *args) -> tuple[dict, RunResult]:
    """Run one engine pass and summarise it, adding the server's CPU cost per request when we can see it."""
    before = probe.read() if probe else None
    result = run(*args)
    summary = summarize(result)
    cpu = {"generator": summary["generator_cpu_us_per_request"]}
    if probe:
        cpu |= CpuProbe.per_request(before, probe.read(), summary["requests"])
    summary["cpu_us_per_request"] = cpu
    # What two cores could serve if CPU were the only limit (ignores fsync waits and scheduling).
    summary["cpu_bound_capacity_rps"] = round((os.cpu_count() or 1) * 1e6 / sum(cpu.values())) if probe else None
    return summary, result


def run_once(
    target: Target,
    actions,
    clients: int,
    engine: str,
    noop_path: str,
    probe: CpuProbe | None,
    window: int | None = None,
    cost: tuple[str, float] | None = None,
) -> dict:
    """One replay with ``clients`` concurrent clients, then the no-op twin; return the run's summary.

    With ``cost`` (the service's hash method, CPU seconds per hash) the replay's summary also states
    what the password hash costs it (``bench/floor.py``).
    """
    run, origin, n = ENGINES[engine], target.root, len(actions)
    order = Scheduler(actions, window=window)
    replay_s, replay_r = measured(run, probe, target, replay_jobs(target, actions), order, clients, TIMEOUT_S)
    latest = final_latest(target)
    noop_s, _ = measured(run, probe, origin, noop_jobs(origin, noop_path, n), FlatOrder(n), clients, TIMEOUT_S)
    if cost:
        noop_cpu_us = sum(noop_s["cpu_us_per_request"].values()) if probe else None
        cores = os.cpu_count() or 1
        replay_s["hash_floor"] = hash_floor(replay_r.samples, replay_r.wall_s, cores, TIMEOUT_S, cost, noop_cpu_us)
    return {
        "mode": "sequential" if clients == 1 else "concurrent",
        "clients": clients,
        "window": window,
        "engine": engine,
        "replay": replay_s,
        "final_latest": latest,
        "expected_latest": actions[-1].latest,
        "noop_path": noop_path,
        "noop": noop_s,
        "app_vs_noop": replay_s["throughput_rps"] / noop_s["throughput_rps"] if noop_s["throughput_rps"] else 0.0,
    }


def compare_engines(target: Target, noop_path: str, n: int, clients: int) -> dict:
    """Drive the no-op endpoint with each engine: the generator's own CPU cost per request."""
    origin = target.root
    out = {}
    for name, run in ENGINES.items():
        result = run(origin, noop_jobs(origin, noop_path, n), FlatOrder(n), clients, TIMEOUT_S)
        out[name] = summarize(result)
    return out


def machine() -> str:
    """One line describing where the numbers come from."""
    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
            platform.processor(),
        )
    return (
        f"{os.cpu_count()} CPU(s) {cpu}, {platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="scripts/bench.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="API base URL of a running deployment (default: start a local server)")
    p.add_argument("--cacert", help="CA bundle to verify the HTTPS certificate")
    p.add_argument("--resolve-to", metavar="ADDR", help="connect to ADDR instead of resolving the URL's host")
    p.add_argument("--rows", type=int, help="replay only the first N scenario rows (default: all 25,922)")
    p.add_argument("--clients", default="1,16", help="comma-separated client counts; 1 = sequential (default 1,16)")
    p.add_argument(
        "--window",
        type=int,
        help="concurrent clients start an action only within N rows of the oldest unfinished one, so requests"
        " arrive roughly in file order (default: no limit, every action whose dependencies are done may start;"
        " all 200 registers then arrive at once)",
    )
    p.add_argument("--engine", choices=sorted(ENGINES), default="threads", help="load engine (default threads)")
    p.add_argument("--compare-engines", action="store_true", help="also measure both engines on the no-op")
    p.add_argument("--noop-path", default="/health", help="no-op endpoint, relative to the server root")
    p.add_argument("--json", type=Path, default=Path("artifacts/bench/replay.json"), help="JSON output path")
    p.add_argument(
        "--fail-on",
        choices=("any", "server", "starvation", "never"),
        default="any",
        help="exit 1 on any simulator error (default), only on HTTP 5xx/connection errors (CI on a shared"
        " machine, where timeouts measure the neighbours), on those and any tweet/follow/unfollow timeout"
        " (starvation: registrations took the cores from the other requests), or never",
    )
    p.add_argument(
        "--starved-allowed",
        type=float,
        default=0.0,
        metavar="PERCENT",
        help="with --fail-on starvation: the share of a run's tweet/follow/unfollow requests that may time out"
        " before it fails (default 0: any timeout fails; CI allows 4%%, see docs/performance.md)",
    )
    return p.parse_args(argv)


def bench(args: argparse.Namespace, url: str, database_url: str | None, probe: CpuProbe | None = None) -> dict:
    """Run every requested replay against ``url``; empty the database first when it is ours."""
    target = parse_target(url, args.cacert, args.resolve_to)
    actions = load_actions(rows=args.rows)
    cost = hash_cost()
    result = {
        "meta": {
            "url": url,
            "rows": len(actions),
            "machine": machine(),
            "timeout_s": TIMEOUT_S,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "loadavg_before": os.getloadavg(),
        },
        "runs": [],
    }
    for clients in (int(c) for c in args.clients.split(",")):
        if database_url:
            local.reset_database(database_url)
        result["runs"].append(run_once(target, actions, clients, args.engine, args.noop_path, probe, args.window, cost))
    result["meta"]["loadavg_after"] = os.getloadavg()
    if args.compare_engines:
        result["engines"] = compare_engines(
            target, args.noop_path, len(actions), max(int(c) for c in args.clients.split(","))
        )
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point: run, print the text report, write the JSON; exit 1 on any simulator error."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.url:
            result = bench(args, args.url, None)
        else:
            with local.local_stack() as stack:
                probe = CpuProbe({"app": stack.app_pid, "postgres": stack.postgres_pid})
                result = bench(args, stack.base_url + "/api", stack.database_url, probe)
                result["meta"]["server_env"] = {k: os.environ[k] for k in local.TUNABLES if k in os.environ}
    except Unavailable as missing:
        return skipped_exit_status(missing)
    print(render(result))
    write_json(result, args.json)
    print(f"\nJSON: {args.json}")
    reasons = failures(result, args.fail_on, args.starved_allowed)
    if reasons:
        print(f"FAILED (--fail-on {args.fail_on}): {', '.join(reasons)}", file=sys.stderr)
    return 1 if reasons else 0


STARVABLE = ("tweet", "follow", "unfollow")  # cheap requests: a timeout means something starved them


def failed(result: dict, fail_on: str, starved_allowed: float = 0.0) -> bool:
    """Whether the errors of a result fail the run under the --fail-on policy."""
    return bool(failures(result, fail_on, starved_allowed))


def failures(result: dict, fail_on: str, starved_allowed: float = 0.0) -> list[str]:
    """What fails the run under the --fail-on policy: the error kinds, and per starved run how many.

    ``starvation`` also fails a run in which more than ``starved_allowed`` percent of the cheap requests
    (tweet, follow, unfollow) timed out: registrations took the cores from them.
    """
    if fail_on == "never":
        return []
    kinds = [kind for run in result["runs"] for part in ("replay", "noop") for kind in run[part]["errors_by_kind"]]
    if fail_on in ("server", "starvation"):
        kinds = [kind for kind in kinds if kind == "ConnectionError" or kind.startswith("HTTP 5")]
    if fail_on == "starvation":
        kinds += [
            f"{starved} tweets/follows/unfollows timed out (over {starved_allowed:g}%)"
            for run in result["runs"]
            if (starved := starved_over(run, starved_allowed))
        ]
    return list(dict.fromkeys(kinds))


def starved_over(run: dict, allowed_percent: float) -> int:
    """The cheap requests of a run's replay that timed out, if more than ``allowed_percent`` of them did."""
    by_command = run["replay"]["by_command"]
    starved = sum(by_command.get(label, {}).get("timeouts", 0) for label in STARVABLE)
    sent = sum(by_command.get(label, {}).get("count", 0) for label in STARVABLE)
    return starved if starved > sent * allowed_percent / 100 else 0


if __name__ == "__main__":
    sys.exit(main())
