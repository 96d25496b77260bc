"""Unit tests of the load generator (bench/): scenario parsing, the simulator's error rules, the per-user
scheduler, percentile maths and the raw HTTP client, on the real scenario and a real local HTTP server."""

import asyncio
import json
import random
import re
import shlex
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers.programs import find_tool

from bench.client import build_request
from bench.client import dechunk
from bench.client import fetch
from bench.client import fetch_async
from bench.client import parse_head
from bench.client import parse_target
from bench.client import send
from bench.engines import ENGINES
from bench.engines import FlatOrder
from bench.engines import Job
from bench.engines import Sample
from bench.floor import hash_cost
from bench.floor import hash_floor
from bench.floor import max_in_flight
from bench.replay import failed
from bench.replay import failures
from bench.replay import main as replay_main
from bench.replay import parse_args
from bench.replay import replay_jobs
from bench.report import floor_text
from bench.scale import ratios
from bench.scenario import AUTHORIZATION
from bench.scenario import error_kind
from bench.scenario import load_actions
from bench.scenario import request_for
from bench.scheduler import Scheduler
from bench.stats import during_registers
from bench.stats import latency_summary
from bench.stats import percentile
from testkit.skip import STRICT


@pytest.fixture(scope="module")
def scenario():
    """The whole real scenario."""
    return load_actions()


# --- the scenario and the simulator's rules -------------------------------------------


def test_scenario_has_the_simulator_workload(scenario):
    counts = {c: sum(1 for a in scenario if a.command == c) for c in ("register", "tweet", "follow", "unfollow")}
    assert len(scenario) == 25922
    assert counts == {"register": 200, "tweet": 11306, "follow": 9751, "unfollow": 4665}
    assert [a.latest for a in scenario] == list(range(25922))


def test_register_row_keeps_quotes_and_backslashes_in_the_password(scenario):
    first, third = scenario[0], scenario[2]
    assert (first.username, first.arg, first.pwd) == (
        "Roger Histand",
        "Roger+Histand@hotmail.com",
        "]=)[X{Km{z",
    )
    assert third.pwd == "6cl_[\\"


def test_rows_limits_the_scenario():
    assert [a.latest for a in load_actions(rows=5)] == [0, 1, 2, 3, 4]


def test_requests_are_built_like_the_simulator(scenario):
    method, path, body = request_for(scenario[0])
    assert (method, path) == ("POST", "/register?latest=0")
    assert json.loads(body) == {
        "username": "Roger Histand",
        "email": "Roger+Histand@hotmail.com",
        "pwd": "]=)[X{Km{z",
    }
    assert request_for(scenario[3])[1] == "/msgs/Roger%20Histand?latest=3"
    follow = next(a for a in scenario if a.command == "unfollow")
    assert json.loads(request_for(follow)[2]) == {"unfollow": follow.arg}


def test_non_ascii_content_is_escaped_like_json_dumps(scenario):
    tweet = next(a for a in scenario if a.command == "tweet")
    body = request_for(type(tweet)(1, "tweet", "a b", "blåbær ✓"))[2]
    assert body == b'{"content": "bl\\u00e5b\\u00e6r \\u2713"}'


@pytest.mark.parametrize(
    "command, status, expected",
    [
        ("register", 204, None),
        ("register", 400, None),
        ("register", 500, "HTTP 500"),
        ("tweet", 204, None),
        ("tweet", 400, "HTTP 400"),
        ("follow", 404, "HTTP 404"),
        ("unfollow", 200, "HTTP 200"),
        ("unfollow", 204, None),
    ],
)
def test_error_rules_are_the_simulators(command, status, expected):
    assert error_kind(command, status) == expected


# --- the per-user scheduler -----------------------------------------------------------


def drain(scheduler, clients: int, seed: int) -> list[tuple[str, int]]:
    """Simulate ``clients`` in flight finishing in random order; return the start/finish event log."""
    rng, in_flight, log = random.Random(seed), [], []
    while not scheduler.finished:
        while len(in_flight) < clients and (item := scheduler.pop()) is not None:
            in_flight.append(item[0])
            log.append(("start", item[0]))
        done = in_flight.pop(rng.randrange(len(in_flight)))
        log.append(("finish", done))
        scheduler.complete(done)
    return log


def test_one_client_replays_in_file_order(scenario):
    actions = scenario[:2000]
    log = drain(Scheduler(actions), clients=1, seed=1)
    assert [i for event, i in log if event == "start"] == list(range(2000))


@pytest.mark.parametrize("seed, window", [(1, None), (2, None), (3, 64)])
def test_concurrent_replay_keeps_each_users_order(scenario, seed, window):
    actions = scenario[:6000]
    log = drain(Scheduler(actions, window=window), clients=16, seed=seed)
    started = {i: n for n, (event, i) in enumerate(log) if event == "start"}
    finished = {i: n for n, (event, i) in enumerate(log) if event == "finish"}
    assert len(started) == len(finished) == len(actions)
    previous, registered = {}, {}
    for i, action in enumerate(actions):
        if action.username in previous:  # the user's previous action finished before this one started
            assert finished[previous[action.username]] < started[i]
        if action.target() in registered:  # so did the other user's register
            assert finished[registered[action.target()]] < started[i]
        previous[action.username] = i
        if action.command == "register":
            registered.setdefault(action.username, i)
    assert started[len(actions) - 1] > max(finished[i] for i in range(len(actions) - 1))


def test_concurrent_replay_really_overlaps(scenario):
    log = drain(Scheduler(scenario[:3000]), clients=16, seed=3)
    in_flight = peak = 0
    for event, _ in log:
        in_flight += 1 if event == "start" else -1
        peak = max(peak, in_flight)
    assert peak == 16


def test_a_window_keeps_starts_close_to_the_oldest_unfinished_action(scenario):
    """With a window, no action starts N or more rows after the oldest unfinished one."""
    actions = scenario[:6000]
    log = drain(Scheduler(actions, window=64), clients=16, seed=4)
    unfinished, oldest = set(range(len(actions))), 0
    for event, i in log:
        if event == "start":
            assert i < oldest + 64
        else:
            unfinished.discard(i)
            oldest = min(unfinished, default=len(actions))
    assert not unfinished
    with pytest.raises(ValueError):
        Scheduler(actions, window=0)


# --- percentiles ------------------------------------------------------------------------


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose: percentile sorts
    assert [percentile(values, p) for p in (1, 50, 90, 99, 100)] == [1.0, 50.0, 90.0, 99.0, 100.0]
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 51) == 3.0
    assert percentile([0.2, 0.1, 0.4], 50) == 0.2  # always an observed value
    assert percentile([0.2, 0.1, 0.4], 99) == 0.4  # ceil(0.99*3) = 3rd value
    assert percentile([7.0], 99) == 7.0


def test_percentile_of_nothing_is_none_and_bad_p_is_refused():
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 0)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary_in_milliseconds():
    summary = latency_summary([0.004, 0.001, 0.002, 0.003])
    assert summary == {
        "count": 4,
        "p50_ms": 2.0,
        "p90_ms": 4.0,
        "p99_ms": 4.0,
        "max_ms": 4.0,
    }


# --- the HTTP client and the engines against a real local server ------------------------


class Handler(BaseHTTPRequestHandler):
    """Answers by path: /204, /400, /health (200 JSON); /stall waits until the test releases it.

    /echo answers the request's X-Request-ID and Host as JSON in a chunked body (no Content-Length), as a proxy may.
    """

    release = threading.Event()
    stalled = 0  # requests that reached /stall
    lock = threading.Lock()
    seen: list[tuple[str, str, bytes]] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, self.headers["Authorization"], body))
        self.answer(int(self.path.split("?")[0].rsplit("/", 1)[1]))

    def do_GET(self):  # noqa: N802
        if self.path == "/stall":
            with Handler.lock:
                Handler.stalled += 1
            self.release.wait(5)
        if self.path == "/echo":
            echo = {"request_id": self.headers["X-Request-ID"], "host": self.headers["Host"]}
            return self.chunked(json.dumps(echo).encode())
        self.answer(200, b'{"status":"ok"}')

    def chunked(self, body):
        """Send ``body`` in two chunks, then the last chunk; the connection closes after it."""
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        half = len(body) // 2
        for part in (body[:half], body[half:], b""):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))

    def answer(self, status, body=b""):
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        """Keep the test output quiet."""


@pytest.fixture
def server():
    """A real HTTP server on 127.0.0.1, shut down after the test."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.release.clear()
    Handler.seen.clear()
    Handler.stalled = 0
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    Handler.release.set()
    httpd.shutdown()
    httpd.server_close()


def test_parse_head():
    assert parse_head(b"HTTP/1.1 204 NO CONTENT\r\nServer: x") == (204, None)
    assert parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 15") == (200, 15)


def test_fetch_sends_the_simulators_headers_and_reads_the_status(server):
    target = parse_target(server + "/api")
    raw = build_request(target, "POST", "/400?latest=7", b'{"a": 1}')
    assert raw.startswith(b"POST /api/400?latest=7 HTTP/1.1\r\n")
    assert b"\r\nConnection: close\r\n" in raw and b"\r\nContent-Type: application/json\r\n" in raw
    assert fetch(target, raw, 2.0) == (400, None)
    assert Handler.seen == [("/api/400?latest=7", AUTHORIZATION, b'{"a": 1}')]


def test_fetch_names_timeouts_and_refused_connections_like_the_simulator(server):
    target = parse_target(server)
    assert fetch(target, build_request(target, "GET", "/stall"), 0.1) == (
        None,
        "ReadTimeout",
    )
    closed = parse_target("http://127.0.0.1:9")  # discard port: nothing listens
    assert fetch(closed, build_request(closed, "GET", "/"), 0.3) == (
        None,
        "ConnectionError",
    )


def test_resolve_to_connects_elsewhere_but_keeps_the_host_header(server):
    port = server.rsplit(":", 1)[1]
    target = parse_target(f"http://minitwit.test:{port}", resolve="127.0.0.1")
    assert (target.connect_host, target.host_header) == (
        "127.0.0.1",
        f"minitwit.test:{port}",
    )
    assert fetch(target, build_request(target, "GET", "/health"), 2.0) == (200, None)


def test_send_returns_the_body_and_sends_the_request_id_and_payload(server):
    target = parse_target(server + "/api", timeout=2.0)
    answer = send(target.root, "GET", "/echo", request_id="drill-1")
    assert (answer.status, answer.json()["request_id"], answer.error) == (200, "drill-1", None)
    assert answer.latency > 0
    posted = send(target, "POST", "/204?latest=3", {"content": "ünïcode ✓"}, auth=True)
    assert (posted.status, posted.body) == (204, b"")
    assert Handler.seen == [("/api/204?latest=3", AUTHORIZATION, json.dumps({"content": "ünïcode ✓"}).encode())]


def test_send_returns_transport_errors_instead_of_raising(server):
    stalled = send(parse_target(server, timeout=0.1), "GET", "/stall")
    assert (stalled.status, stalled.error, stalled.body) == (None, "ReadTimeout", b"")
    assert send(parse_target("http://127.0.0.1:9", timeout=0.3), "GET", "/").error == "ConnectionError"


@pytest.fixture
def tls_server(tmp_path):
    """The same server over TLS with a self-signed certificate for minitwit.test; records the SNI names seen."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subject = ["-subj", "/CN=minitwit.test", "-addext", "subjectAltName=DNS:minitwit.test"]
    openssl = [find_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", *subject]
    subprocess.run([*openssl, "-keyout", key, "-out", cert], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names = []
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], str(cert), names
    httpd.shutdown()
    httpd.server_close()


def test_the_client_speaks_tls_to_the_public_name_at_the_resolved_address(tls_server):
    port, ca, names = tls_server
    target = parse_target(f"https://minitwit.test:{port}/api", cacert=ca, resolve="127.0.0.1", timeout=5.0)
    answer = send(target.root, "GET", "/echo", request_id="tls")
    assert (answer.status, answer.json()) == (200, {"request_id": "tls", "host": f"minitwit.test:{port}"})
    assert names == ["minitwit.test"]  # SNI: the public name, not the address connected to
    raw = build_request(target, "GET", "/health")
    assert fetch(target, raw, 5.0) == (200, None)
    assert asyncio.run(fetch_async(target, raw, 5.0)) == (200, None)


def test_the_client_refuses_a_certificate_it_cannot_verify(tls_server):
    port, _, _ = tls_server
    untrusted = parse_target(f"https://minitwit.test:{port}", resolve="127.0.0.1", timeout=5.0)  # system CAs only
    assert send(untrusted, "GET", "/health").error == "ConnectionError"
    wrong_name = parse_target(f"https://127.0.0.1:{port}", cacert=tls_server[1], timeout=5.0)
    assert send(wrong_name, "GET", "/health").error == "ConnectionError"


def test_dechunk():
    assert dechunk(b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\n\r\n") == b"Wikipedia "
    with pytest.raises(ValueError):
        dechunk(b"a\r\nshort\r\n")


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_engines_apply_the_error_rules_to_every_request(server, engine, scenario):
    target = parse_target(server)
    jobs = [
        Job(
            "ok",
            build_request(target, "POST", "/204", b"{}"),
            lambda s: error_kind("tweet", s),
        )
    ] * 30
    jobs += [
        Job(
            "bad",
            build_request(target, "POST", "/404", b"{}"),
            lambda s: error_kind("follow", s),
        )
    ] * 10
    result = ENGINES[engine](target, jobs, FlatOrder(len(jobs)), 4, 2.0)
    assert [s.error for s in result.samples] == [None] * 30 + ["HTTP 404"] * 10
    assert all(s.latency > 0 for s in result.samples)


def test_replay_jobs_carry_each_commands_rule(server, scenario):
    target = parse_target(server)
    jobs = replay_jobs(target, scenario[:4])
    assert [j.label for j in jobs] == ["register", "register", "register", "tweet"]
    assert [j.check(400) for j in jobs] == [None, None, None, "HTTP 400"]


def result_with(errors_by_kind: dict, timeouts: dict | None = None, sent: int = 100) -> dict:
    """A minimal replay result whose replay pass had these errors, and these timeouts out of ``sent``
    requests per command."""
    by_command = {label: {"count": sent, "timeouts": n} for label, n in (timeouts or {}).items()}
    replay = {"errors_by_kind": errors_by_kind, "by_command": by_command}
    return {"runs": [{"replay": replay, "noop": {"errors_by_kind": {}}}]}


@pytest.mark.parametrize(
    "errors, policy, expected",
    [
        ({}, "any", False),
        ({"ReadTimeout": 3}, "any", True),
        ({"ReadTimeout": 3, "HTTP 404": 1}, "server", False),
        ({"HTTP 500": 1}, "server", True),
        ({"ConnectionError": 1}, "server", True),
        ({"HTTP 500": 1}, "never", False),
    ],
)
def test_fail_on_policy(errors, policy, expected):
    assert failed(result_with(errors), policy) is expected


@pytest.mark.parametrize(
    "timeouts, expected",
    [
        ({"register": 5}, False),  # registrations that did not fit in 0.3 s, and the 404s after them
        ({"register": 5, "tweet": 0}, False),
        ({"tweet": 1}, True),
        ({"follow": 1}, True),
        ({"unfollow": 2}, True),
    ],
)
def test_fail_on_starvation(timeouts, expected):
    """``starvation`` fails on any tweet/follow/unfollow timeout, and on server errors like ``server``."""
    errors = {"ReadTimeout": sum(timeouts.values()), "HTTP 404": 3}
    assert failed(result_with(errors, timeouts), "starvation") is expected
    assert failed(result_with({"HTTP 502": 1}), "starvation") is True


@pytest.mark.parametrize(
    "timeouts, allowed, expected",
    [
        ({"tweet": 2, "follow": 1}, 1.0, False),  # 3 of 300 cheap requests: exactly 1%
        ({"tweet": 3, "follow": 1}, 1.0, True),  # 4 of 300
        ({"tweet": 6}, 2.0, False),  # 6 of 300: 2%
        ({"tweet": 7}, 2.0, True),
        ({"register": 90}, 2.0, False),  # registers never count, however many time out
        ({"tweet": 1}, 0.0, True),
    ],
)
def test_starvation_allowance_is_a_share_of_the_cheap_requests(timeouts, allowed, expected):
    """The allowance is a percentage of all tweets, follows and unfollows sent (300 here), summed."""
    result = result_with({"ReadTimeout": sum(timeouts.values())}, {"tweet": 0, "follow": 0, "unfollow": 0} | timeouts)
    assert failed(result, "starvation", allowed) is expected
    assert failed(result, "server", allowed) is False


def test_a_failed_run_says_why():
    """The reasons are printed when the run fails: server errors by kind, starvation with its count."""
    result = result_with({"HTTP 502": 2, "ReadTimeout": 4, "HTTP 404": 1}, {"tweet": 3, "follow": 1, "unfollow": 0})
    assert failures(result, "starvation", 1.0) == ["HTTP 502", "4 tweets/follows/unfollows timed out (over 1%)"]
    assert failures(result, "server") == ["HTTP 502"]
    assert failures(result, "never") == []


def test_starvation_allowance_holds_per_run():
    """A run over its allowance fails even when the runs together stay under it."""
    quiet = result_with({}, {"tweet": 0}, sent=1000)["runs"][0]
    starved = result_with({"ReadTimeout": 5}, {"tweet": 5}, sent=100)["runs"][0]
    assert failed({"runs": [quiet, starved]}, "starvation", 2.0) is True
    assert failed({"runs": [quiet, quiet]}, "starvation", 2.0) is False


def ci_bench_commands() -> list[list[str]]:
    """The arguments of every ``scripts/bench.sh`` that CI runs (in .ci/run, and through Traefik in
    scripts/lab.sh), with shell variables expanded and command substitutions as an address."""
    root = Path(__file__).resolve().parents[2]
    return [*_bench_commands(root / ".ci" / "run"), *_bench_commands(root / "scripts" / "lab.sh")]


def _bench_commands(path: Path) -> list[list[str]]:
    text = re.sub(r"\$\([^)]*\)", "10.0.0.1", path.read_text().replace("\\\n", " "))
    arrays = {name: shlex.split(body) for name, body in re.findall(r"^(\w+)=\((.*)\)", text, re.MULTILINE)}
    scalars = dict(re.findall(r"^(\w+)=([^(\s]\S*)$", text, re.MULTILINE))
    commands = []
    for line in re.findall(r"scripts/bench\.sh (.*)", text):
        args = []
        for word in shlex.split(line.split(" #")[0]):
            if array := re.fullmatch(r"\$\{(\w+)\[@\]\}", word):
                args += arrays[array.group(1)]
            else:
                args.append(re.sub(r"\$(\w+)", lambda m: scalars.get(m.group(1), "https://ci.invalid/api"), word))
        commands.append(args)
    return commands


def test_ci_gates_both_short_runs_on_starvation():
    """Both short runs (local in .ci/run, through Traefik in scripts/lab.sh) parse, and fail on server
    errors and on more than 4% starved requests."""
    commands = ci_bench_commands()
    assert len(commands) == 2
    for argv in commands:
        args = parse_args(argv)
        assert (args.fail_on, args.starved_allowed, args.rows) == ("starvation", 4.0, 3000)
        assert "16" in args.clients.split(",")


def test_during_registers_covers_the_requests_started_while_a_register_ran():
    """Only other commands started while some register was in flight count, timeouts included."""
    samples = [
        Sample("register", 0.25, None, 0.0),
        Sample("register", 0.30, "ReadTimeout", 0.1),  # with the first: busy from 0.0 to 0.4
        Sample("tweet", 0.30, "ReadTimeout", 0.2),
        Sample("follow", 0.01, None, 0.4),
        Sample("tweet", 0.5, None, 0.41),  # between two registers
        Sample("register", 0.1, None, 1.0),  # busy from 1.0 to 1.1
        Sample("unfollow", 0.02, None, 1.05),
    ]
    burst = during_registers(samples)
    assert burst["seconds"] == 0.5
    assert burst["count"] == 3 and burst["max_ms"] == 300.0 and burst["timeouts"] == 1
    assert during_registers([Sample("tweet", 0.1, None, 0.0)]) == {}


def test_scale_ratios_compare_the_largest_size_with_the_smallest():
    def sizes(public, api):
        return {label: {"p99_ms": v} for label, v in (("public", public), ("user", 1), ("home", 1), ("api_msgs", api))}

    got = ratios({10_000: sizes(2.0, 4.0), 100_000: sizes(1.0, 1.0), 1_000_000: sizes(3.0, 2.0)})
    assert got["public"] == {"largest_vs_smallest": 1.5, "max_vs_min": 3.0}
    assert got["api_msgs"] == {"largest_vs_smallest": 0.5, "max_vs_min": 4.0}


# --- the password hash's cost (bench/floor.py) ----------------------------------------------


def sample(label: str, started: float, latency: float) -> Sample:
    return Sample(label, latency, None, started)


def test_max_in_flight_counts_overlapping_requests_of_one_label():
    samples = [
        sample("register", 0.0, 1.0),
        sample("register", 0.5, 1.0),
        sample("register", 1.0, 1.0),  # starts as the first one ends: never three at once
        sample("tweet", 0.6, 1.0),
        sample("register", 5.0, 0.1),
    ]
    assert max_in_flight(samples) == 2
    assert max_in_flight(samples, "tweet") == 1
    assert max_in_flight([]) == 0


def release_once_stalled(n: int) -> None:
    """Release the server's /stall requests once ``n`` of them are waiting (or after 5 s)."""

    def watch():
        deadline = time.monotonic() + 5
        while Handler.stalled < n and time.monotonic() < deadline:
            time.sleep(0.005)
        Handler.release.set()

    threading.Thread(target=watch, daemon=True).start()


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_engines_record_when_each_request_started(server, engine):
    """The server holds requests until ``clients`` of them wait at once: the samples show that overlap."""
    target = parse_target(server)
    jobs = [Job("register", build_request(target, "GET", "/stall", auth=False), lambda s: None)] * 4
    for clients in (4, 2):
        Handler.release.clear()
        Handler.stalled = 0
        release_once_stalled(clients)
        result = ENGINES[engine](target, jobs, FlatOrder(len(jobs)), clients, 2.0)
        assert [s.error for s in result.samples] == [None] * 4
        assert max_in_flight(result.samples) == clients


def test_hash_cost_measures_the_method_the_app_hashes_with():
    from minitwit.passwords import hash_password

    method, seconds = hash_cost(samples=1)
    assert method == hash_password("x").rsplit("$", 2)[0] == "$argon2id$v=19$m=19456,t=2,p=1"
    assert 0 < seconds < 5


def test_hash_floor_figures():
    samples = [sample("register", i * 0.1, 0.2) for i in range(4)] + [sample("tweet", 1, 0.01)] * 6
    floor = hash_floor(samples, wall_s=2.0, cores=2, timeout_s=0.3, cost=("scrypt:32768:8:1", 0.1), noop_cpu_us=500)
    assert floor == {
        "method": "scrypt:32768:8:1",
        "hash_cpu_ms": 100.0,
        "registers": 4,
        "registers_cpu_s": 0.4,
        "registers_share_of_cpu": 0.1,  # 0.4 CPU-s of 2 cores x 2 s
        "max_registers_in_flight": 2,
        "cores": 2,
        "timeout_s": 0.3,
        "hashes_within_timeout": 6,
        "ceiling_rps": 49,  # 10 requests x 2 cores / (0.4 s of hashes + 10 x 0.5 ms)
        "ceiling_vs_noop": 0.012,
    }
    remote = hash_floor(samples, wall_s=2.0, cores=2, timeout_s=0.3, cost=("m", 0.1))
    assert remote["ceiling_rps"] is None and remote["ceiling_vs_noop"] is None
    text = "\n".join(floor_text(floor))
    assert "scrypt:32768:8:1 costs 100.0 ms CPU per hash" in text
    assert "4 registers = 0.4 CPU-s, 10% of 2 cores" in text
    assert "up to 2 at once; 2 cores finish at most 6 hashes within the 0.3 s timeout" in text
    assert "49 req/s, 1% of what the no-op's CPU cost allows" in text
    assert "ceiling" not in "\n".join(floor_text(remote))


def test_a_local_replay_reports_the_hash_floor(tmp_path, capsys):
    """The real thing, briefly: own PostgreSQL + gunicorn, the first 40 rows with 4 clients."""
    out = tmp_path / "replay.json"
    code = replay_main(["--rows", "40", "--clients", "4", "--fail-on", "server", "--json", str(out)])
    printed = capsys.readouterr()
    if not out.exists() and "SKIPPED" in printed.err and not STRICT:
        pytest.skip(printed.err.strip())
    assert code == 0, printed.out + printed.err
    run = json.loads(out.read_text())["runs"][0]
    floor = run["replay"]["hash_floor"]
    assert floor["registers"] == sum(1 for a in load_actions(rows=40) if a.command == "register")
    assert 1 <= floor["max_registers_in_flight"] <= 4
    assert floor["ceiling_rps"] > 0  # local: the no-op's CPU cost is known
    assert "password hash: $argon2id$v=19$m=19456,t=2,p=1 costs" in printed.out
    if not run["replay"]["errors"]:  # a timed-out last request may still be running when /latest is read
        assert run["final_latest"] == run["expected_latest"]
