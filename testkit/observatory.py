"""The MDN HTTP Observatory, run from here: install it once, scan a host, require an A+.

    python -m testkit.observatory <https://host/ or host> [--ca ca.pem] [--resolve host:ip]
                                  [--min-score N] [--json result.json]

``scripts/observatory.sh`` is the same command. The scanner is the npm package
``@mdn/mdn-http-observatory`` (MPL-2.0), the code behind developer.mozilla.org/observatory, pinned
to VERSION and installed into a cache directory outside git (``$MINITWIT_CACHE_DIR`` or
``~/.cache/minitwit``) with ``--ignore-scripts``: its install scripts would download Chromium's
HSTS preload list and IANA's list of top-level domains, which is not possible everywhere. The two
files they would write are created instead: an empty preload list (no host counts as preloaded;
a preloaded production domain scores 5 points more at the public service than here) and an empty
list of top-level domains (read only by the package's API server, which is not run). The scan runs
``src/scan.js``, not the package's ``bin/wrapper.js``: the wrapper points Node at Mozilla's bundle
of intermediate certificates, which another skipped install script downloads. Node's own roots
(Mozilla's) are used instead, so a server must send its whole chain (Traefik does).

It scans ``http://<host>/`` and ``https://<host>/`` on the standard ports and follows redirects,
as the public service does. ``--ca`` adds a CA to Node's trust (``NODE_EXTRA_CA_CERTS``, e.g.
Pebble's root in the lab): an untrusted certificate is not an error for the scanner, it marks
HSTS and the redirection as "invalid certificate" and grades down. ``--resolve`` pins a host name
to an address for this scan only, as curl's option does (the lab's name is in /etc/hosts anyway).

Exit status 0 only when the grade is A+, every test passes and the score reaches ``--min-score``;
1 otherwise; the grade, the score and every test's result are printed either way. Without npm or
Node.js 20 it says SKIPPED and exits 0, or 1 under ``MINITWIT_STRICT=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

from testkit.skip import Unavailable
from testkit.skip import skipped_exit_status

PACKAGE = "@mdn/mdn-http-observatory"
VERSION = "1.4.8"
NODE_MAJOR = 20  # the package's own minimum
SCAN_TIMEOUT_S = 120  # the scanner gives up on a request after 10 s; a scan makes a handful
# Test name -> its result with the most points, for the report (scoring: src/grader/charts.js).
BEST = {
    "content-security-policy": "csp-implemented-with-no-unsafe-default-src-none",
    "cookies": "cookies-secure-with-httponly-sessions-and-samesite",
    "cross-origin-resource-policy": "corp-implemented-with-same-origin",
    "referrer-policy": "referrer-policy-private",
    "strict-transport-security": "hsts-preloaded",
    "subresource-integrity": "sri-implemented-and-all-scripts-loaded-securely",
    "x-frame-options": "x-frame-options-implemented-via-csp",
}
# Loaded with ``node --import``: answers dns.lookup for the pinned names, defers to it for the rest.
RESOLVE_HOOK = """\
import dns from "node:dns";
const pins = new Map(
  (process.env.OBSERVATORY_RESOLVE || "").split(",").filter(Boolean).map((pin) => {
    const colon = pin.indexOf(":");
    return [pin.slice(0, colon).toLowerCase(), pin.slice(colon + 1)];
  })
);
const lookup = dns.lookup;
dns.lookup = function (hostname, options, callback) {
  if (typeof options === "function") [callback, options] = [options, {}];
  if (typeof options === "number") options = { family: options };
  const address = pins.get(String(hostname).toLowerCase());
  if (address === undefined) return lookup.call(this, hostname, options, callback);
  const family = address.includes(":") ? 6 : 4;
  if (options && options.all) return process.nextTick(callback, null, [{ address, family }]);
  return process.nextTick(callback, null, address, family);
};
"""


class ScanError(RuntimeError):
    """The scanner ran but could not grade the site (down, refused, an unexpected status)."""


def cache_dir() -> Path:
    """Where the scanner is installed: outside the repository, kept between runs."""
    root = os.environ.get("MINITWIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "minitwit"
    )
    return Path(root) / f"mdn-http-observatory-{VERSION}"


def node_binary() -> str:
    """Node.js 20 or newer, or Unavailable."""
    node = shutil.which("node")
    if not node:
        raise Unavailable("Node.js is not installed (apt-get install nodejs npm)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < NODE_MAJOR:
        raise Unavailable(f"the observatory needs Node.js {NODE_MAJOR} or newer, not {version}")
    return node


def install(cache: Path) -> Path:
    """Install the pinned scanner into ``cache`` once, with its two data files; return the package's folder."""
    package = cache / "node_modules" / "@mdn" / "mdn-http-observatory"
    data = package / "conf"
    if (data / "hsts-preload.json").exists() and (data / "tld-list.json").exists():
        return package
    npm = shutil.which("npm")
    if not npm:
        raise Unavailable("npm is not installed (apt-get install npm)")
    cache.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--prefix", str(cache), "--ignore-scripts", "--omit=dev", "--no-audit", "--no-fund"]
    done = subprocess.run([*command, f"{PACKAGE}@{VERSION}"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Unavailable(f"npm install {PACKAGE}@{VERSION} failed:\n{done.stdout}{done.stderr}")
    (data / "tld-list.json").write_text("[]\n")
    (data / "hsts-preload.json").write_text("{}\n")  # written last: it marks a finished install
    return package


def scan(host: str, ca: str | None = None, resolve: list[str] | None = None) -> dict:
    """Run the scanner's command line on ``host``; return its JSON answer (``scan`` and ``tests``)."""
    node, package = node_binary(), install(cache_dir())
    hook = cache_dir() / "resolve-hook.mjs"
    hook.write_text(RESOLVE_HOOK)
    env = {**os.environ, "OBSERVATORY_RESOLVE": ",".join(resolve or [])}
    env.pop("NODE_EXTRA_CA_CERTS", None)
    if ca:
        env["NODE_EXTRA_CA_CERTS"] = ca
    command = [node, "--import", hook.as_uri(), str(package / "src" / "scan.js"), host]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=SCAN_TIMEOUT_S, check=False)
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise ScanError(f"the scanner exited with {done.returncode}:\n{done.stdout}{done.stderr}") from exc
    if "error" in result:
        raise ScanError(f"the scanner could not grade {host}: {result['error']}")
    return result


def problems(result: dict, min_score: int = 0) -> list[str]:
    """Why ``result`` is not good enough: a grade below A+, a failed test, a score under ``min_score``."""
    found = []
    summary = result["scan"]
    if summary["grade"] != "A+":
        found.append(f"grade {summary['grade']}, not A+")
    if summary["score"] < min_score:
        found.append(f"score {summary['score']} below {min_score}")
    found += [f"test {name} failed: {test['result']}" for name, test in result["tests"].items() if not test["pass"]]
    return found


def report(result: dict) -> str:
    """The grade, the score and one line per test: passed, points, result, and the best result when missed."""
    summary = result["scan"]
    lines = [
        f"MDN HTTP Observatory {VERSION}: grade {summary['grade']}, score {summary['score']}, "
        f"{summary['testsPassed']}/{summary['testsQuantity']} tests passed (status {summary['statusCode']})"
    ]
    for name, test in sorted(result["tests"].items()):
        best = BEST.get(name)
        missed = f"  (best: {best})" if best and test["result"] != best else ""
        verdict = "pass" if test["pass"] else "FAIL"
        lines.append(f"  {verdict}  {test['scoreModifier']:+4d}  {name:30}  {test['result']}{missed}")
    return "\n".join(lines)


def host_of(target: str) -> str:
    """The host name the scanner takes, from a URL (scheme, standard port and "/" only) or a bare name."""
    if "//" not in target:
        target = "https://" + target
    url = urllib.parse.urlsplit(target)
    if url.port not in (None, 80, 443) or url.path not in ("", "/") or url.query or not url.hostname:
        raise ValueError(f"{target}: the observatory scans http(s)://<host>/ on the standard ports only")
    return url.hostname


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(
        prog="scripts/observatory.sh", description="Grade a site with the MDN HTTP Observatory."
    )
    parser.add_argument("target", help="https://host/ or host")
    parser.add_argument("--ca", help="PEM file of a CA to trust besides Node's own (e.g. Pebble's root)")
    parser.add_argument("--resolve", action="append", default=[], metavar="HOST:IP", help="pin a name to an address")
    parser.add_argument("--min-score", type=int, default=100, help="fail below this score (default 100, the A+ line)")
    parser.add_argument("--json", type=Path, help="also write the scanner's full answer here")
    args = parser.parse_args(argv)
    for pin in args.resolve:
        if not re.fullmatch(r"[A-Za-z0-9.-]+:[0-9A-Fa-f.:]+", pin):
            parser.error(f"--resolve {pin}: expected HOST:IP")
    return args


def main(argv: list[str] | None = None) -> int:
    """Scan, print the report, and exit 0 only for an A+ with every test passed."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        host = host_of(args.target)
        result = scan(host, args.ca, args.resolve)
    except ValueError as exc:
        print(f"usage: {exc}", file=sys.stderr)
        return 2
    except Unavailable as missing:
        return skipped_exit_status(missing)
    except ScanError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(report(result))
    found = problems(result, args.min_score)
    for problem in found:
        print(f"FAILED: {host}: {problem}", file=sys.stderr)
    if not found:
        print(f"OK: {host} grades {result['scan']['grade']} with {result['scan']['score']} points")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
