"""CPU seconds used by process trees, from /proc: a cost per request that other load on the machine
barely changes, unlike throughput. (Linux only; elsewhere the probe reports nothing.)"""

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, own + reaped children's CPU seconds) of one process, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command name: state ppid ... utime(12) stime(13) cutime(14) cstime(15), 0-based here.
    return int(fields[1]), sum(int(x) for x in fields[11:15]) / TICKS


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of ``root`` and all its descendants (gunicorn workers, PostgreSQL backends)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))):
            stats[int(entry.name)] = stat
    total, frontier = 0.0, [root]
    while frontier:
        pid = frontier.pop()
        if pid in stats:
            total += stats[pid][1]
            frontier += [child for child, (ppid, _) in stats.items() if ppid == pid]
    return total


class CpuProbe:
    """Reads the CPU seconds of named process trees, e.g. {"app": gunicorn pid, "postgres": postmaster pid}."""

    def __init__(self, roots: dict[str, int]):
        self.roots = roots

    def read(self) -> dict[str, float]:
        """Current CPU seconds per tree."""
        return {name: tree_cpu_seconds(pid) for name, pid in self.roots.items()}

    @staticmethod
    def per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
        """CPU microseconds per request of each tree between two reads."""
        return {name: round((after[name] - before[name]) / requests * 1e6, 1) for name in before}
