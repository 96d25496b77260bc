"""Every alert is documented: the table of docs/observability.md lists each alert of each
rule file with its severity and receiver, and each infrastructure alert explains itself and
links its runbook section there (runbook_url, shown in every notification).
"""

from __future__ import annotations

import re

# The rule files and YAML reader of the observability checks.
from test_observability_config import RULE_FILES
from test_observability_config import load_yaml

from testkit import REPO_ROOT

INFRASTRUCTURE_RULES = REPO_ROOT / "stack" / "prometheus" / "rules" / "infrastructure.yml"
OBSERVABILITY_DOC = REPO_ROOT / "docs" / "observability.md"
RUNBOOK_BASE = "https://github.com/minitwit-ops/minitwit-ops/blob/main/docs/observability.md#"


def alert_rules(path) -> list[dict]:
    """The alerting rules of one rule file."""
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"] if "alert" in rule]


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown text."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_infrastructure_alerts_have_severity_text_and_runbook():
    """Each infrastructure alert is page or ticket, explains itself and links its runbook section."""
    anchors = heading_anchors(OBSERVABILITY_DOC.read_text())
    rules = alert_rules(INFRASTRUCTURE_RULES)
    assert len(rules) >= 4
    for rule in rules:
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(RUNBOOK_BASE) and url.removeprefix(RUNBOOK_BASE) in anchors, (rule["alert"], url)


def documented_alerts() -> dict[str, tuple[str, str]]:
    """alert -> (severity, receiver) from the table of every alert in docs/observability.md."""
    section = OBSERVABILITY_DOC.read_text().split("### Every alert", 1)[1].split("\n#", 1)[0]
    return {
        name: (severity, receiver)
        for name, severity, receiver in re.findall(r"^\| `(\w+)` \| (\w+) \| (\w+) \|", section, re.M)
    }


def test_every_alert_is_in_the_alert_table():
    """docs/observability.md lists every alert of every rule file with its severity and receiver."""
    table = documented_alerts()
    for path in RULE_FILES:
        for rule in alert_rules(path):
            severity = rule["labels"]["severity"]
            receiver = "heartbeat" if rule["alert"] == "Watchdog" else severity
            assert table.get(rule["alert"]) == (severity, receiver), (path.name, rule["alert"])
