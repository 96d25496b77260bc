"""The shell scripts' process handling: a server they start is nobody's job, and nothing waits for
"every child". The CI run of 294ba67 hung 85 minutes because a stack script started
dockerd as a background job and scripts/provision-test.sh then ran a bare ``wait``."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMON = ROOT / "scripts" / "lib" / "common.sh"
SHELL_SCRIPTS = sorted(
    [*ROOT.glob("scripts/**/*.sh"), *ROOT.glob("docker/**/*.sh"), ROOT / ".ci" / "run"],
)


def run_bash(script: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout, check=True)


def test_a_daemon_started_by_start_daemon_does_not_hold_up_a_bare_wait(tmp_path):
    """`wait` returns at once while the daemon (here a 60 s sleep) is still running, in its own session."""
    pid_file = tmp_path / "daemon.pid"
    script = f"""
        source {COMMON}
        start_daemon {tmp_path}/daemon.log sh -c 'echo $$ > {pid_file}; exec sleep 60'
        t0=$(date +%s%N); wait; echo "waited_ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
    """
    waited = run_bash(script).stdout
    for _ in range(50):  # the daemon writes its pid once it has started
        if pid_file.exists() and pid_file.read_text().strip():
            break
        subprocess.run(["sleep", "0.1"], check=True)
    assert pid_file.exists(), (tmp_path / "daemon.log").read_text() if (tmp_path / "daemon.log").exists() else waited
    pid = int(pid_file.read_text())
    try:
        assert int(re.search(r"waited_ms=(\d+)", waited).group(1)) < 5000
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        state, session = stat[0], int(stat[3])
        assert state != "Z"
        assert session == pid, "the daemon leads its own session, out of reach of a stage's timeout"
    finally:
        subprocess.run(["kill", str(pid)], check=False)


def test_the_same_launch_as_a_plain_background_job_would_hang_a_bare_wait(tmp_path):
    """The failure the helper prevents, shown for real: `wait` blocks until the job ends."""
    script = f"source {COMMON}; nohup sleep 3 >/dev/null 2>&1 & t0=$SECONDS; wait; echo $((SECONDS - t0))"
    assert int(run_bash(script).stdout) >= 2


def test_no_script_waits_for_every_child():
    """A bare `wait` also waits for any server the script (or a library it sourced) started."""
    bare_wait = re.compile(r"(^|[;&|({]\s*|\bthen\s+|\bdo\s+)wait\s*(;|$|\|\||&&|#)")
    offenders = []
    for path in SHELL_SCRIPTS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split(" #", 1)[0].strip()
            if not code.startswith("#") and bare_wait.search(code):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert SHELL_SCRIPTS and not offenders, offenders


def test_no_script_backgrounds_dockerd_as_its_own_job():
    """dockerd is started through start_daemon only."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in SHELL_SCRIPTS
        if re.search(r"^\s*[^#\n]*\bdockerd\b[^\n]*&\s*$", path.read_text(), re.MULTILINE)
    ]
    assert not offenders, offenders


def test_every_ci_stage_is_bounded():
    """Each stage of .ci/run runs under `bounded`, so a hang fails by name before CI's 90 minutes."""
    stages = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if re.match(r"\s*(bounded \d+ )?scripts/", line)
    ]
    assert len(stages) >= 4 and any("scripts/lab.sh test" in s for s in stages)
    assert [s for s in stages if not s.startswith("bounded ")] == []
