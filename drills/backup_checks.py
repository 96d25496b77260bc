"""Deployed-stack checks of the backups (drills/checks.py runs them on the single-node lab).

What deploy.yml must leave behind: timers that run the backups without anyone, whose service
really takes a backup; the figures in Prometheus; a repository that holds only ciphertext. And
what restore.yml and deploy.yml must refuse before they change anything: a repository they
cannot read (wrong passphrase, refused keys, missing bucket, unreachable endpoint) and a target
that is not a time, in the future, or older than the repository's window.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from drills import swarm
from drills.lab import CheckFailed
from drills.lab import Lab
from drills.lab import expect
from drills.lab import prometheus
from drills.runner import REPLICAS

TIMERS = ("minitwit-backup-full.timer", "minitwit-backup-diff.timer", "minitwit-backup-metrics.timer")
CIPHERTEXT = b"Salted__"  # pgBackRest's aes-256-cbc files start like OpenSSL's
NOTHING_CHANGED = "Nothing was changed"


def _node1(lab: Lab, *cmd: str, timeout: float = 120) -> str:
    """Run a command on the database node (the first test host) as root; its stdout."""
    proc = swarm.run(["docker", "exec", f"{lab.node_prefix}1", *cmd], timeout=timeout, host=True)
    if proc.returncode != 0:
        raise CheckFailed(f"{' '.join(cmd)} on node1 failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-600:]}")
    return proc.stdout


def check_backups_run_by_themselves(lab: Lab) -> None:
    """The timers are enabled; the differential's service takes a backup; Prometheus has the figures."""
    enabled = _node1(lab, "systemctl", "is-enabled", *TIMERS).split()
    active = _node1(lab, "systemctl", "is-active", *TIMERS).split()
    expect(enabled == ["enabled"] * 3 and active == ["active"] * 3, f"timers {TIMERS}: {enabled} {active}")
    started = time.time()
    _node1(lab, "systemctl", "start", "minitwit-backup-diff.service", timeout=300)
    info = json.loads(_node1(lab, "minitwit-pgbackrest", "--output=json", "info"))[0]
    kinds = [b["type"] for b in info["backup"] if not b["error"]]
    diff = [b for b in info["backup"] if b["type"] == "diff" and b["timestamp"]["stop"] >= started - 1]
    expect("full" in kinds and diff, f"after the diff service ran the repository holds {kinds}")
    took = diff[-1]["timestamp"]["stop"] - diff[-1]["timestamp"]["start"]
    # The collector runs every 30 s and after each backup; Prometheus scrapes node-exporter every 15 s.
    query = 'max(minitwit_backup_last_success_timestamp_seconds{type="diff"})'
    seen = prometheus(lab, query, diff[-1]["timestamp"]["stop"], 120)
    expect(seen is not None and seen >= diff[-1]["timestamp"]["stop"], f"Prometheus: {query} is {seen}")
    repo_up = prometheus(lab, "min(minitwit_backup_repo_up)", 1, 60)
    archived = prometheus(lab, "max(minitwit_wal_archived_total)", 1, 60)
    expect(repo_up == 1 and (archived or 0) >= 1, f"Prometheus: repository up {repo_up}, WAL archived {archived}")
    lab.figures["backup_diff_s"] = took
    lab.ok(
        f"backups: 3 timers enabled; the differential's service took a backup in {took} s (full + diff in the"
        f" repository); Prometheus: repository up, {archived:g} WAL segments archived, the diff's time"
    )


def check_repository_holds_only_ciphertext(lab: Lab) -> None:
    """Every file the S3 server stores for the repository is encrypted by pgBackRest."""
    root = Path(lab.env["MINITWIT_LAB_S3_DATA"])
    files = [p for p in root.rglob("*") if p.is_file()]
    plain = [str(p.relative_to(root)) for p in files if p.read_bytes()[: len(CIPHERTEXT)] != CIPHERTEXT]
    expect(len(files) >= 10 and not plain, f"{len(files)} files in the repository, not encrypted: {plain[:5]}")
    lab.figures["repository_files"] = len(files)
    lab.ok(f"the repository holds only ciphertext: {len(files)} files, each aes-256-cbc (pgBackRest)")


# What restore.yml must refuse, and the words that say why (the repository's own, or the target's).
REFUSALS = (
    ("a target in the future", {"minitwit_restore_target": "2099-01-01 00:00:00+00"}, "is in the future"),
    ("a target before the window", {"minitwit_restore_target": "2020-01-01 00:00:00+00"}, "before the repository's"),
    ("a target that is no time", {"minitwit_restore_target": "yesterday at tea"}, "is not a time"),
    ("a wrong passphrase", {"pgbackrest_cipher_pass": "not-the-passphrase-of-this-repository-00"}, "cannot be used"),
    ("refused keys", {"pgbackrest_repo_s3_key_secret": "0" * 48}, "cannot be used"),
    ("a missing bucket", {"pgbackrest_repo_s3_bucket": "no-such-bucket"}, "cannot be used"),
    ("an unreachable endpoint", {"pgbackrest_repo_port": "9"}, "cannot be used"),
)


def _app_state(lab: Lab) -> tuple[str, int]:
    app = lab.stack.service("app")
    return swarm.service_image(app), swarm.running_tasks(app)


def check_bad_backup_input_is_refused(lab: Lab) -> None:
    """restore.yml (7 ways) and deploy.yml (a wrong passphrase) refuse before anything changes."""
    before = _app_state(lab)
    timings = {}
    for name, extra, words in REFUSALS:
        started = time.monotonic()
        proc = swarm.playbook(lab.stack, "restore.yml", extra, timeout=300)
        timings[name] = round(time.monotonic() - started)
        said = " ".join((proc.stdout + proc.stderr).split())  # Ansible wraps long messages
        expect(
            proc.returncode != 0 and words in said and NOTHING_CHANGED in said,
            f"restore.yml with {name}: {swarm.playbook_failure(proc.stdout + proc.stderr)}",
        )
    deploy_args = dict(a.split("=", 1) for a in lab.env["MINITWIT_DEPLOY_ARGS"].split() if "=" in a)
    wrong = {**deploy_args, "pgbackrest_cipher_pass": "not-the-passphrase-of-this-repository-00"}
    proc = swarm.playbook(lab.stack, "deploy.yml", wrong, timeout=600)
    said = " ".join((proc.stdout + proc.stderr).split())
    expect(
        proc.returncode != 0 and "cannot be used" in said and NOTHING_CHANGED in said,
        f"deploy.yml with a wrong passphrase: {swarm.playbook_failure(proc.stdout + proc.stderr)}",
    )
    after = _app_state(lab)
    expect(after == before and after[1] == REPLICAS, f"the app changed: {before} -> {after}")
    lab.figures["refusal_s"] = timings
    lab.ok(
        f"bad backup input refused before any change ({', '.join(n for n, _, _ in REFUSALS)}, and deploy.yml"
        f" with a wrong passphrase); the app untouched; {max(timings.values())} s at most each"
    )


CHECKS = (check_backups_run_by_themselves, check_repository_holds_only_ciphertext, check_bad_backup_input_is_refused)
