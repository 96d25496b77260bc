"""Scale test: timelines must stay flat as the message table grows.

Starts its own PostgreSQL + gunicorn, COPY-seeds 10k users and 200k follows, then grows the message table
through each ``--messages`` size (default 10k, 100k, 1M) and at each size measures p50/p99 of the public
timeline, the busy user's page, the home timeline of a user following 150 users (logged in through the
form, session kept) and ``GET /api/msgs?no=100``. Prints, per page, the ratio of the largest to the
p99 at the smallest size (target <= 1.5). Usage: scripts/scale.sh --help
"""

import argparse
import http.client
import os
import sys
import time
from pathlib import Path
from urllib.parse import quote
from urllib.parse import urlencode
from urllib.parse import urlsplit

from bench import local
from bench import seed
from bench.replay import machine
from bench.report import latency_table
from bench.report import write_json
from bench.scenario import AUTHORIZATION
from bench.stats import latency_summary
from testkit.skip import Unavailable
from testkit.skip import skipped_exit_status


class Browser:
    """One keep-alive connection that keeps cookies, like a browser tab."""

    def __init__(self, base: str):
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None, headers: dict | None = None):
        """Send one request with our cookies; return (status, body bytes) and remember new cookies."""
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, value = header.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value
        return response.status, data

    def login(self, username: str, password: str) -> None:
        """Log in through the real form (its visible fields, no token); fail loudly if it does not work."""
        fields = {"username": username, "password": password}
        form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
        status, _ = self.request("POST", "/login", urlencode(fields), form_headers)
        if status != 302:
            raise RuntimeError(f"login as {username!r} answered {status}, expected 302")


def measure(browser: Browser, path: str, samples: int, headers: dict | None = None) -> dict:
    """Warm up, then time ``samples`` sequential GETs of ``path``; every answer must be 200."""
    latencies = []
    for n in range(samples + samples // 10):
        started = time.perf_counter()
        status, _ = browser.request("GET", path, headers=headers)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        if n >= samples // 10:
            latencies.append(time.perf_counter() - started)
    return latency_summary(latencies)


def pages() -> dict[str, tuple[str, dict | None]]:
    """Label -> (path, extra headers) of every page measured."""
    return {
        "public": ("/public", None),
        "user": ("/" + quote(seed.BUSY_USER), None),
        "home": ("/", None),
        "api_msgs": ("/api/msgs?no=100", {"Authorization": AUTHORIZATION}),
    }


def measure_all(base: str, samples: int) -> dict[str, dict]:
    """Measure every page; the home timeline as the fan, logged in through the form."""
    anonymous, fan = Browser(base), Browser(base)
    fan.login(seed.FAN_USER, seed.PASSWORD)
    results = {}
    for label, (path, headers) in pages().items():
        results[label] = measure(fan if label == "home" else anonymous, path, samples, headers)
    return results


def ratios(by_size: dict[int, dict[str, dict]]) -> dict[str, dict[str, float]]:
    """Per page: p99 at the largest size / p99 at the smallest (the target), and max/min p99 over all sizes."""
    sizes = sorted(by_size)
    out = {}
    for label in pages():
        p99s = [by_size[size][label]["p99_ms"] for size in sizes]
        out[label] = {
            "largest_vs_smallest": round(p99s[-1] / p99s[0], 2),
            "max_vs_min": round(max(p99s) / min(p99s), 2),
        }
    return out


def run(args: argparse.Namespace) -> dict:
    """Seed and measure at every size; return the result document."""
    sizes = sorted(int(s) for s in args.messages.split(","))
    meta = {"machine": machine(), "users": args.users, "samples": args.samples, "loadavg": {}}
    result = {"meta": meta, "sizes": {}}
    with local.local_stack() as stack:
        base = stack.base_url
        with seed.connect(stack.database_url) as conn:
            seed.seed_users(conn, args.users)
            meta["follows"] = seed.seed_follows(conn, args.users, args.follows)
            seeded = 0
            for size in sizes:
                started = time.perf_counter()
                seed.seed_messages(conn, args.users, seeded, size)
                seeded = size
                print(f"seeded {size} messages in {time.perf_counter() - started:.1f} s", flush=True)
                result["sizes"][size] = measure_all(base, args.samples)
                meta["loadavg"][size] = os.getloadavg()  # other work on the machine skews the figures
                print_size(size, result["sizes"][size])
    result["p99_ratios"] = ratios(result["sizes"])
    return result


def print_size(size: int, stats: dict[str, dict]) -> None:
    """Print the latency table of one size."""
    print(f"== {size} messages ==")
    print("\n".join(latency_table(stats)), flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="scripts/scale.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", default="10000,100000,1000000", help="comma-separated message counts")
    p.add_argument("--users", type=int, default=10_000, help="users to seed (default 10000)")
    p.add_argument("--follows", type=int, default=200_000, help="follower rows to seed (default 200000)")
    p.add_argument("--samples", type=int, default=1000, help="timed requests per page and size (default 1000)")
    p.add_argument(
        "--max-ratio", type=float, default=1.5, help="fail if a p99 ratio exceeds this (default 1.5; 0 = report only)"
    )
    p.add_argument("--json", type=Path, default=Path("artifacts/bench/scale.json"), help="JSON output path")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 1 if any page's p99 grows by more than --max-ratio (unless it is 0)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        result = run(args)
    except Unavailable as missing:
        return skipped_exit_status(missing)
    ratio = result["p99_ratios"]
    sizes = sorted(result["sizes"])
    print(f"p99 at {sizes[-1]} / p99 at {sizes[0]} messages: " + _ratios(ratio, "largest_vs_smallest"))
    print("p99 max / min over all sizes: " + _ratios(ratio, "max_vs_min"))
    write_json(result, args.json)
    print(f"JSON: {args.json}")
    worst = max(r["largest_vs_smallest"] for r in ratio.values())
    return 0 if not args.max_ratio or worst <= args.max_ratio else 1


def _ratios(ratio: dict, key: str) -> str:
    """One line of per-page ratios."""
    return ", ".join(f"{page} {r[key]}" for page, r in ratio.items())


if __name__ == "__main__":
    sys.exit(main())
