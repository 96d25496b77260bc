"""The backup metrics textfile (ansible/roles/pgbackrest/files/minitwit-backup-metrics) says what is true.

Against the real programs: a PostgreSQL 15 archiving its WAL through pgBackRest's asynchronous
archive-push to a real S3 server (``rclone serve s3``, ``testkit.pgbackrest``). A full backup and
archived WAL show in the figures; then the S3 server stops and the figures show the outage (the
repository down, failed archive attempts, WAL waiting); then it comes back and archiving catches
up. The script runs with ``--local``; its Docker mode is checked against a stand-in ``docker`` that
records the command lines and answers with real output recorded from pgBackRest and psql.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

import pytest
from helpers.programs import wait_until
from prometheus_client.parser import text_string_to_metric_families

from testkit import REPO_ROOT
from testkit.pgbackrest import archiving_cluster
from testkit.skip import Unavailable
from testkit.skip import skip_or_fail

SCRIPT = REPO_ROOT / "ansible" / "roles" / "pgbackrest" / "files" / "minitwit-backup-metrics"
# A stopped repository fails archive-push within seconds instead of pgBackRest's default minutes.
QUICK_FAILURE = {"archive-timeout": "5", "io-timeout": "5"}
WRITE_AND_SWITCH = ("CREATE TABLE IF NOT EXISTS t (x int)", "INSERT INTO t SELECT 1", "SELECT pg_switch_wal()")


@pytest.fixture(scope="module")
def cluster():
    """PostgreSQL archiving to a real S3 server through pgBackRest, failing fast when the server is down."""
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(archiving_cluster(options=QUICK_FAILURE))
        except Unavailable as missing:
            skip_or_fail(str(missing))
        yield cluster


def run_script(*args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the script with this Python (as production's python3: the standard library only)."""
    command = [sys.executable, str(SCRIPT), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def collect(cluster, output) -> dict[str, float]:
    """Run the script in local mode against ``cluster``; return the textfile's samples by series."""
    connection = f"-h {cluster.root} -p {cluster.port} -U postgres -d postgres"
    config = f"--pgbackrest-config={cluster.config}"
    result = run_script("--local", "--timeout=10", config, f"--psql-args={connection}", f"--output={output}")
    assert result.returncode == 0, result.stderr
    return samples(output.read_text())


def samples(text: str) -> dict[str, float]:
    """Samples as ``name{label="value"}`` -> value, read with prometheus_client's parser (which checks the format)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


def test_the_figures_follow_a_backup_an_outage_of_the_repository_and_its_return(cluster, tmp_path):
    output = tmp_path / "minitwit_backup.prom"
    started = time.time()
    cluster.sql(*WRITE_AND_SWITCH)
    cluster.pgbackrest("--type=full", "backup")

    healthy = collect(cluster, output)
    assert healthy['minitwit_backup_metrics_collect_success{source="pgbackrest"}'] == 1
    assert healthy['minitwit_backup_metrics_collect_success{source="postgres"}'] == 1
    assert healthy["minitwit_backup_repo_up"] == 1
    assert started - 1 <= healthy['minitwit_backup_last_success_timestamp_seconds{type="full"}'] <= time.time()
    assert healthy['minitwit_backup_last_size_bytes{type="full"}'] > 0
    assert healthy['minitwit_backup_last_repo_size_bytes{type="full"}'] > 0
    assert 0 <= healthy['minitwit_backup_last_duration_seconds{type="full"}'] <= time.time() - started
    assert healthy['minitwit_backup_count{type="full"}'] == 1
    assert healthy['minitwit_backup_count{type="diff"}'] == 0
    assert 'minitwit_backup_last_success_timestamp_seconds{type="diff"}' not in healthy
    assert healthy["minitwit_wal_archived_total"] > 0
    assert healthy["minitwit_wal_archive_failed_total"] == 0
    assert started - 1 <= healthy["minitwit_wal_last_archived_timestamp_seconds"] <= time.time()
    assert healthy["minitwit_wal_last_failed_timestamp_seconds"] == 0
    assert abs(healthy["minitwit_backup_metrics_timestamp_seconds"] - time.time()) < 60
    objects = cluster.s3.objects()
    assert objects and all(path.read_bytes().startswith(b"Salted__") for path in objects), "unencrypted objects"

    cluster.s3.halt()
    cluster.sql(*WRITE_AND_SWITCH)
    outage = wait_until(
        lambda: (m := collect(cluster, output))["minitwit_wal_archive_failed_total"] > 0 and m,
        "a failed archive-push while the S3 server is down",
        seconds=40,
    )
    assert outage["minitwit_backup_repo_up"] == 0
    assert outage['minitwit_backup_metrics_collect_success{source="pgbackrest"}'] == 1
    assert 'minitwit_backup_count{type="full"}' not in outage, "no backup figures from an unreadable repository"
    assert outage["minitwit_wal_archive_ready_files"] >= 1
    assert outage["minitwit_wal_archive_oldest_ready_age_seconds"] > 0
    assert outage["minitwit_wal_last_failed_timestamp_seconds"] >= started - 1

    cluster.s3.start()
    cluster.sql(*WRITE_AND_SWITCH)  # a new segment wakes the archiver, which retries every waiting one
    caught_up = wait_until(
        lambda: (m := collect(cluster, output))["minitwit_wal_archive_ready_files"] == 0 and m,
        "archiving to catch up once the S3 server is back",
        seconds=40,
    )
    assert caught_up["minitwit_backup_repo_up"] == 1
    assert caught_up["minitwit_wal_archive_oldest_ready_age_seconds"] == 0
    assert caught_up["minitwit_wal_archived_total"] > outage["minitwit_wal_archived_total"]


# --- Docker mode, with a stand-in docker ------------------------------------------------------------------

# What the stand-in answers: pgBackRest's info of a healthy repository (trimmed) and psql's archiver row.
INFO = [
    {
        "name": "minitwit",
        "repo": [{"key": 1, "status": {"code": 0, "message": "ok"}}],
        "status": {"code": 0, "message": "ok"},
        "backup": [
            {"type": "full", "error": False, "label": "20261207-082629F",
             "info": {"size": 23066102, "repository": {"size": 2835728}},
             "timestamp": {"start": 1796631989, "stop": 1796631993}},
            {"type": "full", "error": False, "label": "20261207-092629F",
             "info": {"size": 23066202, "repository": {"size": 2835828}},
             "timestamp": {"start": 1796635589, "stop": 1796635599}},
            {"type": "incr", "error": True, "label": "20261207-092629F_20261207-093000I",
             "info": {"size": 1, "repository": {"size": 1}},
             "timestamp": {"start": 1796635800, "stop": 1796635801}},
        ],
    }
]  # fmt: skip
ARCHIVER_ROW = "2|31.5|17|3|1796635599.25|1796635000"
STAND_IN = r"""#!/bin/sh
{ printf '%s' "$*" | tr '\n' ' '; echo; } >> "$DOCKER_CALLS"
case "$1 $5" in
  "ps "*) if [ -n "$DOCKER_CONTAINER" ]; then echo "$DOCKER_CONTAINER"; fi ;;
  "exec pgbackrest") cat "$DOCKER_INFO" ;;
  "exec sh") echo "$DOCKER_ROW" ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
"""


def run_with_stand_in(
    tmp_path, container="c0ffee", output=None, info=INFO, row=ARCHIVER_ROW
) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run the script in Docker mode with the stand-in first on PATH; return its result and the docker calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(STAND_IN)
    (bin_dir / "docker").chmod(0o755)
    (tmp_path / "info.json").write_text(json.dumps(info))
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "DOCKER_CALLS": str(tmp_path / "calls"),
        "DOCKER_CONTAINER": container,
        "DOCKER_INFO": str(tmp_path / "info.json"),
        "DOCKER_ROW": row,
    }
    result = run_script("--output", str(output or tmp_path / "out.prom"), env=env)
    return result, (tmp_path / "calls").read_text().splitlines()


def test_docker_mode_asks_the_service_container_as_postgres(tmp_path):
    result, calls = run_with_stand_in(tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls[0] == ("ps -q --filter label=com.docker.swarm.service.name=minitwit_postgres --filter status=running")
    assert calls[1] == "exec --user postgres c0ffee pgbackrest --stanza=minitwit info --output=json --io-timeout=4"
    assert calls[2].startswith("exec --user postgres c0ffee sh -c exec psql -X -At -v ON_ERROR_STOP=1")
    assert '--username="$POSTGRES_USER" --dbname="$POSTGRES_DB" -c "$1" psql' in calls[2]
    assert "pg_stat_archiver" in calls[2] and "pg_ls_archive_statusdir()" in calls[2]


def test_docker_mode_reports_the_newest_good_backup_of_each_type_and_the_archiver(tmp_path):
    run_with_stand_in(tmp_path)
    text = (tmp_path / "out.prom").read_text()
    found = samples(text)
    assert found["minitwit_backup_repo_up"] == 1
    assert found['minitwit_backup_last_success_timestamp_seconds{type="full"}'] == 1796635599
    assert found['minitwit_backup_last_duration_seconds{type="full"}'] == 10
    assert found['minitwit_backup_last_size_bytes{type="full"}'] == 23066202
    assert found['minitwit_backup_last_repo_size_bytes{type="full"}'] == 2835828
    assert 'minitwit_backup_last_success_timestamp_seconds{type="incr"}' not in found, "the only incr failed"
    assert [found[f'minitwit_backup_count{{type="{kind}"}}'] for kind in ("full", "diff", "incr")] == [2, 0, 1]
    assert found["minitwit_wal_archive_ready_files"] == 2
    assert found["minitwit_wal_archive_oldest_ready_age_seconds"] == 31.5
    assert found["minitwit_wal_archived_total"] == 17
    assert found["minitwit_wal_archive_failed_total"] == 3
    assert found["minitwit_wal_last_archived_timestamp_seconds"] == 1796635599.25
    assert "# TYPE minitwit_wal_archived_total counter" in text
    assert "# TYPE minitwit_backup_repo_up gauge" in text


def test_a_stanza_without_backups_is_up_with_no_backup_counted_and_a_garbled_row_is_a_failed_source(tmp_path):
    """pgBackRest says code 2, "no valid backups", for a reachable repository before the first backup."""
    empty = [{"name": "minitwit", "repo": [{"key": 1, "status": {"code": 2, "message": "no valid backups"}}]}]
    result, _ = run_with_stand_in(tmp_path, info=empty, row="garbled")
    text = (tmp_path / "out.prom").read_text()
    found = samples(text)
    assert found["minitwit_backup_repo_up"] == 1
    assert [found[f'minitwit_backup_count{{type="{kind}"}}'] for kind in ("full", "diff", "incr")] == [0, 0, 0]
    assert "minitwit_backup_last_success_timestamp_seconds" not in text
    assert found['minitwit_backup_metrics_collect_success{source="postgres"}'] == 0
    assert not any(name.startswith("minitwit_wal_") for name in found)
    assert "postgres: unexpected output" in result.stderr


def test_without_a_running_container_both_sources_fail_and_nothing_is_faked(tmp_path):
    result, calls = run_with_stand_in(tmp_path, container="")
    assert result.returncode == 0
    assert "no running container of service minitwit_postgres" in result.stderr
    found = samples((tmp_path / "out.prom").read_text())
    assert found == {
        'minitwit_backup_metrics_collect_success{source="pgbackrest"}': 0,
        'minitwit_backup_metrics_collect_success{source="postgres"}': 0,
        "minitwit_backup_metrics_timestamp_seconds": pytest.approx(time.time(), abs=60),
    }
    assert not list(tmp_path.glob(".out.prom.*")), "a temporary file was left behind"


def test_bad_usage_exits_2_and_an_unwritable_file_exits_1(tmp_path):
    assert run_script("--pgbackrest-config", "/etc/pgbackrest.conf").returncode == 2
    assert run_script("--timeout", "0").returncode == 2
    unwritable, _ = run_with_stand_in(tmp_path, output=tmp_path / "no" / "such" / "dir" / "out.prom")
    assert unwritable.returncode == 1
    assert "cannot write" in unwritable.stderr
