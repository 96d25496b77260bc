"""The drill harness: loss accounting, objectives and the report (percentiles: tests/tools/test_bench.py).

The pure parts run on small hand-made inputs; the load generator and the verifier
run for real against the app (SQLite and PostgreSQL) served on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading

import pytest
from helpers.data import sql
from werkzeug.serving import make_server

from bench.client import Response
from bench.client import parse_target
from bench.client import send
from drills import report
from drills.__main__ import read_env
from drills.load import LoadGenerator
from drills.load import Record
from drills.load import Write
from drills.stats import all_passed
from drills.stats import at_most
from drills.stats import is_true
from drills.stats import outage_answers
from drills.stats import summarise
from drills.swarm import playbook_failure
from drills.verify import UserState
from drills.verify import reconcile
from drills.verify import verify

# --- request summaries ---


def rec(op, status, started=1.0, latency=0.010, error=None, body=""):
    """A record as the load generator makes it."""
    return Record(op, started, latency, status, error, body)


def test_summarise_counts_failures_by_kind_and_window():
    records = [
        rec("tweet", 204, 1.0, 0.010),
        rec("tweet", 502, 2.0, 0.020, body="Bad Gateway"),
        rec("read_msgs", 200, 3.0, 0.030),
        rec("read_public", None, 4.0, 5.0, error="ReadTimeout"),
        rec("register", 204, 9.0, 0.040),
    ]
    whole = summarise(records)
    assert whole["requests"] == 5
    assert (whole["failed"], whole["failed_reads"], whole["failed_writes"]) == (2, 1, 1)
    assert whole["writes_sent"] == 3
    assert whole["statuses"] == {"200": 1, "204": 2, "502": 1, "transport-error": 1}
    assert whole["p50_ms"] == 30.0 and whole["max_ms"] == 5000.0
    window = summarise(records, 1.5, 4.0)
    assert window["requests"] == 3 and window["failed"] == 2
    assert (window["p50_ms"], window["p99_ms"]) == (30.0, 5000.0)
    empty = summarise(records, 5.0, 8.0)  # nothing started then: no latency, and an objective on it fails
    assert (empty["requests"], empty["p50_ms"], empty["p99_ms"], empty["max_ms"]) == (0, None, None, None)
    assert not at_most("p99", empty["p99_ms"], 5000).passed


def test_a_write_needs_204_and_a_read_needs_200():
    assert rec("follow", 204).ok and not rec("follow", 200).ok
    assert rec("read_latest", 200).ok and not rec("read_latest", 204).ok
    assert not rec("tweet", None, error="ConnectionError").ok


def test_outage_answers_accept_only_clear_503s():
    records = [
        rec("tweet", 503, body='{"status": 503, "error_msg": "database unavailable"}'),
        rec("read_public", 503, body="<h2>Service unavailable</h2>"),
        rec("read_msgs", 500, body="Internal Server Error"),
        rec("read_msgs", 503, body="Traceback (most recent call last): unavailable"),
        rec("register", None, latency=5.0, error="ReadTimeout"),
        rec("read_msgs", 200),
    ]
    seen = outage_answers(records)
    assert (seen["failed"], seen["clear_503"], seen["unclear"]) == (5, 2, 3)
    assert "error_msg" in seen["clear_example"]


# --- loss accounting ---


def write(kind, user, value, status=204):
    """A write attempt as the load generator logs it."""
    return Write(kind, user, value, status, 1.0)


def test_reconcile_counts_verified_lost_and_failed_writes():
    writes = [
        write("register", "ann", "ann@x"),
        write("tweet", "ann", "hello"),
        write("tweet", "ann", "gone"),  # accepted but missing: lost
        write("follow", "ann", "bob"),
        write("tweet", "ann", "maybe", status=502),  # failed, yet stored
        write("follow", "ann", "cid", status=None),  # failed, not stored
        write("register", "dan", "dan@x", status=400),
    ]
    states = {
        "ann": UserState(True, ["hello", "maybe"], ["bob"]),
        "dan": UserState(False),
    }
    result = reconcile(writes, states)
    assert (result.accepted, result.verified) == (4, 3)
    assert [(w.kind, w.value) for w in result.lost] == [("tweet", "gone")]
    assert (result.failed_but_stored, result.failed_not_stored) == (1, 2)
    assert result.as_dict()["lost"] == 1


def test_reconcile_counts_an_unreadable_user_as_lost_and_flags_duplicates():
    writes = [write("tweet", "eve", "x"), write("tweet", "fay", "twice")]
    states = {"eve": None, "fay": UserState(True, ["twice", "twice"], [])}
    result = reconcile(writes, states)
    assert [w.user for w in result.lost] == ["eve"]
    assert result.unreadable_users == ["eve"]
    assert result.duplicated == ["twice"]


def test_a_missing_registration_is_lost():
    result = reconcile([write("register", "gus", "g@x")], {"gus": UserState(False)})
    assert result.verified == 0 and len(result.lost) == 1


# --- objectives and report ---


def test_objectives_fail_when_unmeasured_or_over_bound():
    assert at_most("failed", 0, 0).passed
    assert not at_most("failed", 1, 0).passed
    assert not at_most("recovery", None, 30).passed
    assert at_most("recovery", 29.9, 30, " s").required == "<= 30 s"
    assert all_passed([at_most("a", 0, 0), is_true("b", True, "yes")])
    assert not all_passed([at_most("a", 0, 0), is_true("b", False, "yes")])
    assert not all_passed([])


def test_report_renders_figures_and_failed_objectives(tmp_path):
    drill = {
        "number": 2,
        "name": "replica crash",
        "passed": False,
        "seconds": 41.0,
        "notes": [],
        "figures": {
            "all": summarise([rec("tweet", 204), rec("read_msgs", 502, body="x")]),
            "writes": {"accepted": 1, "verified": 1, "lost": 0},
            "recovery_s": 17.3,
        },
        "objectives": [at_most("failed reads", 1, 0).as_dict()],
    }
    document = {
        "started": "now",
        "seconds": 50.0,
        "passed": False,
        "load": {"rate": 16.0, "workers": 4, "timeout_s": 5.0},
        "drills": [drill],
        "out": tmp_path,  # not JSON: written as text
        "note": "steady load ✓ ünïcode",
    }
    json_path, md_path = report.write(document, tmp_path)
    text = md_path.read_text()
    assert "| 2. replica crash | **FAIL** | 2 | 1 (1/0) | 1 | 1 | 0 |" in text
    assert "17.3 s (3 healthy)" in text
    assert "❌ failed reads: measured `1`, required `<= 0`" in text
    written = json_path.read_text(encoding="utf-8")
    assert '"recovery_s": 17.3' in written and '"note": "steady load ✓ ünïcode"' in written
    assert json.loads(written)["out"] == str(tmp_path)


def test_read_env_understands_shell_assignments(tmp_path):
    env = tmp_path / "env"
    env.write_text(
        "# made by lab.sh\nexport MINITWIT_DOMAIN=minitwit.test\nMINITWIT_CA_FILE='/tmp/a b/ca.pem'\nEMPTY=\n"
    )
    assert read_env(env) == {
        "MINITWIT_DOMAIN": "minitwit.test",
        "MINITWIT_CA_FILE": "/tmp/a b/ca.pem",
        "EMPTY": "",
    }


def test_playbook_failure_keeps_the_lines_that_explain():
    output = (
        "TASK [minitwit : Deploy]\nok: [localhost]\n"
        "fatal: [localhost]: FAILED! => "
        '{"changed": false, "msg": "update rolled back"}\n'
        "PLAY RECAP\n"
    )
    assert playbook_failure(output) == (
        'fatal: [localhost]: FAILED! => {"changed": false, "msg": "update rolled back"}'
    )


# --- the load generator and the verifier, for real ---


@pytest.fixture
def served(app):
    """The app served over HTTP on 127.0.0.1 by a threaded WSGI server."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield parse_target(f"http://localhost:{server.server_port}/api", resolve="127.0.0.1", timeout=10)
    server.shutdown()
    thread.join()


def test_load_then_verify_finds_every_accepted_write_and_a_deleted_one(app, served):
    load = LoadGenerator(served, "t", rate=200, workers=2, max_requests=60).start()
    load.wait(60)
    load.stop()
    assert len(load.records) == 60
    assert summarise(load.records)["failed"] == 0
    kinds = {w.kind for w in load.writes if w.accepted}
    assert kinds == {"register", "tweet", "follow"}
    checked = verify(served, load.writes)
    assert checked.accepted == sum(w.accepted for w in load.writes)
    assert checked.verified == checked.accepted and not checked.lost

    victim = next(w for w in load.writes if w.kind == "tweet" and w.accepted)
    sql(app, "DELETE FROM message WHERE text = :t", t=victim.value)
    checked = verify(served, load.writes)
    assert [w.value for w in checked.lost] == [victim.value]


def test_only_the_apps_json_404_means_an_unknown_user():
    from drills.verify import _unknown_user

    assert _unknown_user(Response(404, b'{"status": 404, "error_msg": "Unknown user"}'))
    assert not _unknown_user(Response(404, b"404 page not found\n"))  # Traefik without a route
    assert not _unknown_user(Response(200, b"[]"))


def test_failure_timeline_buckets_failures_by_five_seconds():
    from drills.stats import failure_timeline

    failed = [rec("tweet", 502, 0.5), rec("read_msgs", 502, 4.9), rec("tweet", None, 7.0, error="reset")]
    assert failure_timeline(failed) == {"0-5s": {"502": 2}, "5-10s": {"transport-error": 1}}


def test_envelope_figures_are_the_results_figures(served):
    from drills.runner import Context
    from drills.runner import DrillResult
    from drills.runner import Envelope
    from drills.swarm import Stack

    # No stack here (and no dockerd on a fresh CI machine at this point): no alert-sink to read.
    ctx = Context(served, Stack(), rate=40, workers=2, warmup=0.5, tail=0.5, alert_sink=False)
    result = DrillResult(9, "envelope")
    with Envelope(ctx, "env") as env:
        env.finish()
    figures = env.figures(result)
    figures["recovery_s"] = 1.0  # what a drill adds must reach the report
    assert result.figures["recovery_s"] == 1.0
    assert result.figures["all"]["failed"] == 0 and result.figures["writes"]["lost"] == 0
    assert set(result.figures["marks"]) == {"action_start", "action_end", "load_end"}
    assert result.figures["alerts"] == [] and result.figures["notifications"] == []


# --- the multi-node lab's hooks (scripts/lab.sh test, drill 6) ---


def test_the_client_connects_to_the_targets_address_not_always_loopback(app):
    server = make_server("127.0.0.2", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        there = parse_target(f"http://localhost:{server.server_port}", resolve="127.0.0.2")
        assert send(there, "GET", "/health").status == 200
        loopback = parse_target(f"http://localhost:{server.server_port}", resolve="127.0.0.1", timeout=2)
        assert send(loopback, "GET", "/health").status is None  # nothing listens on 127.0.0.1
    finally:
        server.shutdown()
        thread.join()


def test_the_stack_environment_file_points_the_drills_at_loopback(tmp_path):
    import argparse

    from drills.__main__ import context_from

    env = tmp_path / "env"
    env.write_text("MINITWIT_DOMAIN=minitwit.test\nMINITWIT_ADDRESS=\nAPI_PREFIX=/api\n")
    target = context_from(read_env(env), argparse.Namespace(timeout=7.0, rate=16.0, workers=4)).target
    assert (target.host, target.port, target.tls) == ("minitwit.test", 443, True)
    assert (target.connect_host, target.base_path, target.timeout) == ("127.0.0.1", "/api", 7.0)


def test_docker_commands_go_to_the_swarms_cli_unless_meant_for_this_host(monkeypatch):
    from drills import swarm

    monkeypatch.setattr(swarm, "DOCKER", ["echo", "exec", "node1", "docker"])
    assert swarm.run(["docker", "node", "ls"]).stdout == "exec node1 docker node ls\n"
    assert swarm.LOG[-1]["cmd"] == ["echo", "exec", "node1", "docker", "node", "ls"]
    proc = swarm.run(["docker", "--definitely-not-an-option"], host=True)
    assert swarm.LOG[-1]["cmd"][0] == "docker" and "exec node1" not in proc.stdout


def test_the_lab_environment_file_points_the_drills_at_the_lab(tmp_path, monkeypatch):
    import argparse

    from drills import swarm
    from drills.__main__ import context_from

    monkeypatch.setattr(swarm, "DOCKER", ["docker"])
    env = tmp_path / "env"
    env.write_text(
        "MINITWIT_DOMAIN=minitwit-lab.test\nMINITWIT_ADDRESS=10.78.0.11\n"
        'MINITWIT_DOCKER="docker exec minitwit-lab17-node1 docker"\n'
        "MINITWIT_LAB_NODE_PREFIX=minitwit-lab17-node\n"
    )
    args = argparse.Namespace(timeout=5.0, rate=16.0, workers=4)
    ctx = context_from(read_env(env), args)
    assert (ctx.target.host, ctx.target.connect_host) == ("minitwit-lab.test", "10.78.0.11")
    assert ctx.node_prefix == "minitwit-lab17-node"
    assert swarm.DOCKER == ["docker", "exec", "minitwit-lab17-node1", "docker"]


def test_lost_writes_are_counted_by_their_age_at_the_fault():
    # Drill 5's recovery point: a write answered 75 s before the fault is older than the bound.
    from drills.restore import RPO_BOUND_S
    from drills.restore import lost_by_age

    fault = 100.0
    lost = [Write("tweet", "u", f"m{age}", 204, fault - age) for age in (0.5, 9.9, 12.0, 59.0, 75.0)]
    assert RPO_BOUND_S == 60
    assert lost_by_age(lost, fault) == {">60": 1, "0-10": 2, "10-20": 1, "50-60": 1}
    assert lost_by_age([], fault) == {}


def test_drills_run_in_the_order_given():
    # 7 (repository away) must run before 5 (disk loss), whose restore proves 7 lost nothing.
    from drills import __main__ as drills_main

    assert drills_main.parse_args([]).only == "1,2,3,4,7,5,8"
    assert set(drills_main.DRILLS) == {1, 2, 3, 4, 5, 6, 7, 8}
