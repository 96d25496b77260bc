"""Sign-in guessing under load: 1,000 wrong passwords for one account from eight client addresses.

Starts its own PostgreSQL and gunicorn (production mode, gunicorn.conf.py's workers and threads),
registers the account under attack and eight others, and signs the account's owner in once at her
usual browser (which keeps the device cookie, minitwit/throttle.py). Then, for ``--seconds``, eight
attackers bound to 127.0.0.2 ... 127.0.0.9 send ``--guesses`` wrong passwords for her at an even pace,
while she signs in with the right password at her usual browser four times (10, 35, 60 and 85% in),
tries every 5 s from a browser that never signed in (the untrusted budget the attack fills: reported,
not asserted), and the eight others sign in one after another every 0.25 s (their latency is compared
with the same pace before the attack). The database's own record (``signin_attempt``, read often)
gives the exact time of every wrong guess that was checked.

Asserted, because they are counts and bounds by design: no more than the limit of wrong guesses checked
in any window; every sign-in at her usual browser succeeds at its first try; the server checked exactly
as many passwords as answers say were checked (a refusal costs no check). Latencies are printed, not
asserted. Exit status 1 when an assertion fails. Loopback only; about 90 s with the defaults.

    PYTHONPATH=.:service .venv/bin/python -m bench.signin [--guesses 1000] [--seconds 70] [--json PATH]
"""

import argparse
import functools
import http.client
import json
import os
import re
import secrets
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode
from urllib.parse import urlsplit

from minitwit.throttle import DEVICE_COOKIE
from minitwit.throttle import budget_name

from bench.cpu import CpuProbe
from bench.replay import machine
from bench.report import write_json
from bench.scenario import AUTHORIZATION
from bench.signin_figures import report
from bench.signin_figures import summarise
from bench.signin_figures import verdicts
from testkit.app import gunicorn_server
from testkit.postgres import ThrowawayPostgres
from testkit.postgres import create_pg_database
from testkit.postgres import libpq_url
from testkit.skip import Unavailable
from testkit.skip import skipped_exit_status

ATTACKERS = [f"127.0.0.{n}" for n in range(2, 10)]
VICTIM, PASSWORD = "alice", "correct horse battery staple"
OTHERS = [f"user{n}" for n in range(1, 9)]
LIMIT, WINDOW = 10, 60  # the app's defaults (tests/tools/test_bench_signin.py checks they agree)
OTHERS_PACE_S, NEW_BROWSER_PACE_S, BASELINE_S = 0.25, 5.0, 5.0


@dataclass(frozen=True)
class Answer:
    """One sign-in: when it was sent (seconds into the attack), its status, latency and device cookie."""

    at: float
    status: int
    latency: float
    cookie: str | None = None


def sign_in(base: str, username: str, password: str, source: str = "127.0.0.1", cookie: str | None = None, t0=0.0):
    """POST the sign-in form from ``source`` on a connection of its own; never follows the redirect."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30, source_address=(source, 0))
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Connection": "close"}
    if cookie:
        headers["Cookie"] = f"{DEVICE_COOKIE}={cookie}"
    started = time.perf_counter()
    try:
        conn.request("POST", "/login", urlencode({"username": username, "password": password}), headers)
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    set_cookies = response.headers.get_all("Set-Cookie") or []
    device = next((c.split(";")[0].split("=", 1)[1] for c in set_cookies if c.startswith(DEVICE_COOKIE + "=")), None)
    return Answer(started - t0, response.status, time.perf_counter() - started, device)


def register(base: str, username: str) -> None:
    """Register through the simulator API (the password is hashed like any sign-up)."""
    body = json.dumps({"username": username, "email": f"{username}@example.org", "pwd": PASSWORD}).encode()
    headers = {"Content-Type": "application/json", "Authorization": AUTHORIZATION}
    request = urllib.request.Request(base + "/api/register", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 204, response.status


def password_checks(metrics_url: str) -> float:
    """``minitwit_password_checks_total`` over every hash kind, as the server's metrics say."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    return sum(float(v) for v in re.findall(r"^minitwit_password_checks_total\{[^}]*\} (\S+)$", text, re.M))


def paced(t0: float, times: list[float], action, results: list) -> threading.Thread:
    """A thread that runs ``action(t0)`` at each of ``times`` (seconds after ``t0``) and keeps the answers."""

    def run():
        for at in times:
            time.sleep(max(0.0, t0 + at - time.perf_counter()))
            results.append(action(t0))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def others_signing_in(base: str, t0: float, seconds: float, results: list) -> threading.Thread:
    """The other accounts sign in one after another, every OTHERS_PACE_S, for ``seconds``."""
    users = iter(OTHERS * int(seconds / OTHERS_PACE_S + 1))
    times = [n * OTHERS_PACE_S for n in range(int(seconds / OTHERS_PACE_S))]
    return paced(t0, times, lambda t: sign_in(base, next(users), PASSWORD, t0=t), results)


def watch_attempts(database_url: str, bucket: str, stop: threading.Event, poll_s: float) -> dict[int, list]:
    """Read the account's places in the database every ``poll_s`` until ``stop``, then once more.

    Returns {attempt id: [attempted ms, polls that saw it, seen by the last poll]}. A failure keeps its
    place for the whole window; a success gives it back within milliseconds, so it is seen by one poll
    at most and never by the last, which runs after every sign-in has been answered.
    """
    import psycopg  # imported here: only this tool needs it

    seen: dict[int, list] = {}
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        while True:
            last = stop.is_set()
            query = "SELECT attempt_id, attempted_ms FROM signin_attempt WHERE bucket = %s"
            for attempt_id, attempted_ms in conn.execute(query, (bucket,)):
                entry = seen.setdefault(attempt_id, [attempted_ms, 0, False])
                entry[1] += 1
                entry[2] = last
            if last:
                return seen
            stop.wait(poll_s)


def schedules(seconds: float, guesses: int) -> dict[str, list[float]]:
    """When each role acts, in seconds after the start: one list per attacker, and the owner's two browsers."""
    plan = {
        address: [k * seconds / guesses for k in range(i, guesses, len(ATTACKERS))]
        for i, address in enumerate(ATTACKERS)
    }
    plan["usual_browser"] = [f * seconds for f in (0.10, 0.35, 0.60, 0.85)]
    plan["new_browser"] = [NEW_BROWSER_PACE_S * (n + 0.5) for n in range(int(seconds / NEW_BROWSER_PACE_S))]
    return plan


def attack(stack: dict, args: argparse.Namespace, device_cookie: str) -> dict:
    """Run the attack and everything measured during it; return the answers, the server's count of
    password checks meanwhile and the database's record of the account's places."""
    base, plan = stack["url"], schedules(args.seconds, args.guesses)
    stop, record = threading.Event(), {}
    bucket = budget_name(stack["secret"], "account", VICTIM)
    watcher = threading.Thread(target=lambda: record.update(watch_attempts(stack["db"], bucket, stop, args.poll)))
    watcher.start()
    answers = {"guesses": [], "usual_browser": [], "new_browser": [], "others": []}
    checks_before, cpu = password_checks(stack["metrics"]), CpuProbe(stack["pids"])
    cpu_before = cpu.read()
    t0 = time.perf_counter() + 0.5
    threads = []
    for address in ATTACKERS:
        guess = functools.partial(sign_in, base, VICTIM, "wrong guess", address)
        threads.append(paced(t0, plan[address], lambda t, guess=guess: guess(t0=t), answers["guesses"]))
    usual = functools.partial(sign_in, base, VICTIM, PASSWORD, cookie=device_cookie)
    threads.append(paced(t0, plan["usual_browser"], lambda t: usual(t0=t), answers["usual_browser"]))
    new = functools.partial(sign_in, base, VICTIM, PASSWORD)
    threads.append(paced(t0, plan["new_browser"], lambda t: new(t0=t), answers["new_browser"]))
    threads.append(others_signing_in(base, t0, args.seconds, answers["others"]))
    for thread in threads:
        thread.join()
    checks = password_checks(stack["metrics"]) - checks_before
    cpu_s = {name: round(seconds - cpu_before[name], 2) for name, seconds in cpu.read().items()}
    stop.set()
    watcher.join()
    return {"answers": answers | {"after": []}, "checks": checks, "record": record, "cpu_s": cpu_s}


def run(args: argparse.Namespace) -> dict:
    """Start PostgreSQL and gunicorn, set up the accounts, measure the quiet baseline, then the attack."""
    secret = secrets.token_hex(32)
    settings = {
        "MINITWIT_ENV": "production",
        "SECRET_KEY": secret,
        "SIGNIN_FAILURE_LIMIT": str(args.limit),
        "SIGNIN_FAILURE_WINDOW": str(args.window),
    }
    with tempfile.TemporaryDirectory(prefix="minitwit-signin-") as workdir, ThrowawayPostgres(durable=True) as pg:
        database_url = create_pg_database(pg.url, "minitwit")
        with gunicorn_server(Path(workdir), database_url, **settings) as server:
            for username in [VICTIM, *OTHERS]:
                register(server.url, username)
            first = sign_in(server.url, VICTIM, PASSWORD)  # her usual browser, before any attack
            assert first.status == 302 and first.cookie, first
            for username in OTHERS:  # warm up: every worker's pools and code paths, untimed
                sign_in(server.url, username, PASSWORD)
            baseline: list[Answer] = []
            others_signing_in(server.url, time.perf_counter(), BASELINE_S, baseline).join()
            stack = {"url": server.url, "metrics": server.metrics_url, "db": database_url, "secret": secret}
            stack["pids"] = {"app": server.pid, "postgres": pg.pid}
            raw = attack(stack, args, first.cookie)
            others_signing_in(server.url, time.perf_counter(), BASELINE_S, raw["answers"]["after"]).join()
    settings = {"guesses": args.guesses, "seconds": args.seconds, "limit": args.limit, "window_s": args.window}
    settings |= {"addresses": len(ATTACKERS), "new_browser_every_s": NEW_BROWSER_PACE_S}
    result = summarise(raw, baseline, settings)
    result["machine"], result["loadavg"] = machine(), os.getloadavg()  # other work on the machine skews latency
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.signin", description=__doc__.split("\n\n")[0])
    p.add_argument("--guesses", type=int, default=1000, help="wrong passwords to send (default 1000)")
    p.add_argument("--seconds", type=float, default=70.0, help="how long the attack lasts (default 70)")
    p.add_argument("--limit", type=int, default=LIMIT, help="SIGNIN_FAILURE_LIMIT for the server (default 10)")
    p.add_argument("--window", type=int, default=WINDOW, help="SIGNIN_FAILURE_WINDOW for the server (default 60)")
    p.add_argument("--poll", type=float, default=2.0, help="how often the database's record is read (s)")
    p.add_argument("--json", type=Path, default=Path("artifacts/bench/signin.json"), help="where the JSON goes")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run, print the figures, write the JSON; exit 1 if an assertion by design failed."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        result = run(args)
    except Unavailable as missing:
        return skipped_exit_status(missing)
    result["failed"] = verdicts(result, args.limit)
    write_json(result, args.json)
    print(report(result))
    for failure in result["failed"]:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
