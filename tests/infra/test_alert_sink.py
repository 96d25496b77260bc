"""The CI alert sink (stack/alertmanager/ci_sink.py) records what Alertmanager sends, and the
drills read it back per alert and status (drills/alerts.py).

The sink runs for real on loopback ports and is fed the way Alertmanager feeds it: Slack's
JSON, the webhook JSON and SMTP through Python's smtplib. That Alertmanager itself reaches it
is proven on the real stack (scripts/lab.sh test: the checks and the drills).
"""

from __future__ import annotations

import json
import os
import smtplib
import sys
import urllib.error
import urllib.request
from email.message import EmailMessage

import pytest
from helpers.programs import wait_until

from drills import alerts
from testkit import REPO_ROOT
from testkit.ports import free_port
from testkit.processes import running

SINK = REPO_ROOT / "stack" / "alertmanager" / "ci_sink.py"


@pytest.fixture
def sink(tmp_path):
    """The sink on free loopback ports; yields (http port, smtp port, its stdout file)."""
    http_port, smtp_port = free_port(), free_port()
    env = {
        **os.environ,
        "ALERT_SINK_HOST": "127.0.0.1",
        "ALERT_SINK_HTTP_PORT": str(http_port),
        "ALERT_SINK_SMTP_PORT": str(smtp_port),
    }
    log = tmp_path / "sink.log"
    with running([sys.executable, str(SINK)], log, env=env):
        wait_until(lambda: "alert sink:" in log.read_text(), "the sink to listen", log=log)
        yield http_port, smtp_port, log


def post(port: int, path: str, body: dict) -> tuple[int, bytes]:
    """POST JSON like Alertmanager does; return status and body."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


def recorded(log) -> list[dict]:
    """The JSON lines the sink printed."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_sink_records_chat_heartbeat_and_email(sink):
    """Each channel gives one line with the alert name, its status and the time it arrived."""
    http_port, smtp_port, log = sink
    # Slack's notifier treats anything but the body "ok" as a failure.
    assert post(http_port, "/chat", {"attachments": [{"title": "[FIRING:1] PostgresDown (postgres)"}]}) == (200, b"ok")
    post(http_port, "/heartbeat", {"status": "firing", "groupLabels": {"alertname": "Watchdog"}})
    message = EmailMessage()
    message["Subject"] = "[RESOLVED] MinitwitReplicaLost (minitwit ticket)"
    message["From"], message["To"] = "am@minitwit.test", "ops@minitwit.test"
    message.set_content("body\n.\nwith a dot line")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
        client.send_message(message)
    lines = wait_until(lambda: len(recorded(log)) == 3 and recorded(log), "three notifications", log=log)
    assert [(n["via"], n["status"], n["alertname"]) for n in lines] == [
        ("chat", "firing", "PostgresDown"),
        ("heartbeat", "firing", "Watchdog"),
        ("email", "resolved", "MinitwitReplicaLost"),
    ]
    assert lines[2]["to"] == "ops@minitwit.test"
    assert all(isinstance(n["at"], float) for n in lines)


def test_sink_refuses_unknown_paths(sink):
    """A wrong receiver URL shows as an Alertmanager error, not as a delivered notification."""
    http_port, _, log = sink
    with pytest.raises(urllib.error.HTTPError) as err:
        post(http_port, "/elsewhere", {})
    assert err.value.code == 404
    err.value.close()
    assert recorded(log) == []


def test_alert_summary_times_each_alert_and_status_from_the_fault():
    """The drill report names each alert and status once, with its first arrival."""
    found = [
        {"at": 110.0, "after_s": 10.0, "via": "email", "status": "firing", "alertname": "PostgresDown"},
        {"at": 110.5, "after_s": 10.5, "via": "chat", "status": "firing", "alertname": "PostgresDown"},
        {"at": 190.0, "after_s": 90.0, "via": "chat", "status": "resolved", "alertname": "PostgresDown"},
    ]
    assert alerts.summary(found) == [
        "PostgresDown firing +10.0 s (chat, email)",
        "PostgresDown resolved +90.0 s (chat)",
    ]
    assert alerts.first(found, "PostgresDown", "resolved") == 90.0
    assert alerts.first(found, "MinitwitReplicaLost", "firing") is None
