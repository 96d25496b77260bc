"""Run the drills against the lab stack that ``scripts/lab.sh up`` deployed.

Usage: ``python -m drills [--only 1,3] [--env-file FILE] [--out artifacts/drills]``.
Exit status: 0 when every objective passed, 1 when one was missed, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import time
from pathlib import Path

from bench.client import LOOPBACK
from bench.client import parse_target
from drills import report
from drills import swarm
from drills.nodeloss import node_loss
from drills.outage import repository_outage
from drills.restore import disk_loss
from drills.restore import point_in_time
from drills.runner import Context
from drills.runner import run_drill
from drills.scenarios import bad_release
from drills.scenarios import database_restart
from drills.scenarios import replica_crash
from drills.scenarios import rolling_update

DEFAULT_CA = "/tmp/minitwit-lab17/acme-root.pem"  # minitwit_verify_ca_path in the lab
# Run in the order given: 4 rolls back to the tag 1 deployed; 7 (the repository away) comes
# before 5 (disk loss), whose restore then proves that the outage lost nothing.
DRILLS = {
    1: ("rolling update", rolling_update),
    2: ("replica crash", replica_crash),
    3: ("database restart", database_restart),
    4: ("bad release", bad_release),
    5: ("disk loss: restore from the off-host repository", disk_loss),
    # Only in the multi-node lab (scripts/lab.sh test), not in the default selection.
    6: ("node loss", node_loss),
    7: ("backup repository away for 3 minutes", repository_outage),
    8: ("point-in-time recovery", point_in_time),
}
DEFAULT_ORDER = "1,2,3,4,7,5,8"


def read_env(path: Path) -> dict[str, str]:
    """Parse a shell-style ``KEY=value`` file (``export`` and quotes allowed)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        parts = shlex.split(value) if value else [""]
        values[key.strip()] = parts[0] if parts else ""
    return values


def _ca_file(env: dict[str, str]) -> str | None:
    """The CA that signed the stack's certificate (Pebble's per-run root in CI)."""
    for key in ("MINITWIT_CA_FILE", "MINITWIT_CA_BUNDLE"):
        if env.get(key):
            return env[key]
    return DEFAULT_CA if Path(DEFAULT_CA).is_file() else None


def context_from(env: dict[str, str], args: argparse.Namespace) -> Context:
    """Build the drill context from the stack environment file and the options."""
    # The API's URL on the public host name; TCP goes to MINITWIT_ADDRESS, loopback when unset or empty (never DNS).
    url = f"https://{env.get('MINITWIT_DOMAIN', 'minitwit.test')}{env.get('API_PREFIX', '/api')}"
    target = parse_target(url, _ca_file(env), env.get("MINITWIT_ADDRESS") or LOOPBACK, args.timeout)
    extra = tuple(shlex.split(env.get("MINITWIT_ANSIBLE_EXTRA_VARS", "")))
    stack = swarm.Stack(
        name=env.get("MINITWIT_STACK", "minitwit"),
        inventory=env.get("MINITWIT_INVENTORY", swarm.Stack.inventory),
        image_var=env.get("MINITWIT_IMAGE_VAR", swarm.Stack.image_var),
        extra_vars=extra,
        log_dir=f"{env['MINITWIT_STATE_DIR']}/logs" if env.get("MINITWIT_STATE_DIR") else "",
    )
    if env.get("MINITWIT_DOCKER"):
        swarm.DOCKER[:] = shlex.split(env["MINITWIT_DOCKER"])
    return Context(
        target,
        stack,
        rate=args.rate,
        workers=args.workers,
        node_prefix=env.get("MINITWIT_LAB_NODE_PREFIX", ""),
        s3_container=env.get("MINITWIT_LAB_S3_CONTAINER", ""),
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m drills", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default=DEFAULT_ORDER,
        help=f"comma-separated drill numbers, run in that order (default: {DEFAULT_ORDER})",
    )
    parser.add_argument("--env-file", type=Path, default=Path("/tmp/minitwit-lab17/env"))
    parser.add_argument("--out", type=Path, default=Path("artifacts/drills"))
    parser.add_argument("--rate", type=float, default=16.0, help="requests per second (default 16)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=5.0, help="client timeout per request, seconds")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the selected drills in order, rewriting the report after each one."""
    args = parse_args(argv)
    if not args.env_file.is_file():
        print(
            f"drills: {args.env_file} not found: run scripts/lab.sh up first",
            file=sys.stderr,
        )
        return 2
    ctx = context_from(read_env(args.env_file), args)
    selected = [int(n) for n in args.only.split(",")]
    started, wall = (
        datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        time.monotonic(),
    )
    results = []
    for number in selected:
        name, body = DRILLS[number]
        print(f"drills: {number}. {name} ...", flush=True)
        results.append(run_drill(number, name, ctx, body))
        print(
            f"drills: {number}. {name}: {'PASS' if results[-1].passed else 'FAIL'}",
            flush=True,
        )
        document = {
            "started": started,
            "seconds": round(time.monotonic() - wall, 1),
            "passed": all(r.passed for r in results) and len(results) == len(selected),
            "load": {
                "rate": ctx.rate,
                "workers": ctx.workers,
                "timeout_s": ctx.target.timeout,
            },
            "drills": [r.as_dict() for r in results],
            "commands": swarm.LOG,
        }
        paths = report.write(document, args.out)
    print(f"drills: report {paths[1]} and {paths[0]}")
    print(report.markdown(document).split("\n## ")[0])
    return 0 if document["passed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
