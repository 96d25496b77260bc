"""Figures and objectives: per-drill request summary (latencies by bench/stats.py), pass/fail checks.

Everything here is pure (lists in, dicts out) so the report maths is unit-tested.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from dataclasses import dataclass

from bench.stats import latency_summary
from drills.load import Record


def summarise(records: list[Record], start: float = 0.0, end: float = math.inf) -> dict:
    """Count failures and latency percentiles of requests started in [start, end]."""
    window = [r for r in records if start <= r.started <= end]
    failed = [r for r in window if not r.ok]
    latency = latency_summary([r.latency for r in window])
    return {
        "requests": len(window),
        "failed": len(failed),
        "failed_reads": sum(1 for r in failed if not r.write),
        "failed_writes": sum(1 for r in failed if r.write),
        "writes_sent": sum(1 for r in window if r.write),
        "statuses": _status_counts(window),
        # None when no request started in the window: an objective on it then fails (drills/stats.at_most).
        **{key: latency.get(key) for key in ("p50_ms", "p99_ms", "max_ms")},
        "failure_examples": [_describe(r) for r in failed[:10]],
        "failure_timeline": failure_timeline(failed),
    }


def failure_timeline(failed: list[Record], bucket: float = 5.0) -> dict[str, dict[str, int]]:
    """Failed requests per ``bucket`` seconds of load time and per status, to see when things broke."""
    timeline: dict[str, dict[str, int]] = {}
    for record in failed:
        start = int(record.started // bucket * bucket)
        key = str(record.status) if record.status is not None else "transport-error"
        slot = timeline.setdefault(f"{start}-{start + int(bucket)}s", {})
        slot[key] = slot.get(key, 0) + 1
    return timeline


def _status_counts(records: list[Record]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        key = str(record.status) if record.status is not None else "transport-error"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _describe(record: Record) -> str:
    what = record.error or f"HTTP {record.status} {record.body[:120]!r}"
    return f"t={record.started:.1f}s {record.op}: {what}"


def outage_answers(records: list[Record]) -> dict:
    """Classify failed answers seen during a database outage.

    A *clear* answer is a 503 whose body says what happened (JSON ``error_msg`` on
    the API or a page on the UI) and carries no traceback.  Anything else that
    failed (500, 502, transport error, timeout) is *unclear*.
    """
    failed = [r for r in records if not r.ok]
    clear = [r for r in failed if r.status == 503 and _is_clear(r.body)]
    unclear = [r for r in failed if r not in clear]
    return {
        "failed": len(failed),
        "clear_503": len(clear),
        "unclear": len(unclear),
        "unclear_examples": [_describe(r) for r in unclear[:10]],
        "clear_example": clear[0].body[:200] if clear else None,
    }


def _is_clear(body: str) -> bool:
    lowered = body.lower()
    return "traceback" not in lowered and ("unavailable" in lowered or "error_msg" in lowered)


@dataclass(frozen=True)
class Objective:
    """One pass/fail check: what was required, what was measured."""

    name: str
    required: str
    measured: object
    passed: bool

    def as_dict(self) -> dict:
        """Plain dict for JSON."""
        return asdict(self)


def at_most(name: str, measured: float | None, bound: float, unit: str = "") -> Objective:
    """Objective ``measured <= bound``; an unmeasured value (None) fails."""
    passed = measured is not None and measured <= bound
    return Objective(name, f"<= {bound}{unit}", measured, passed)


def is_true(name: str, measured: bool, required: str) -> Objective:
    """Objective that a condition holds."""
    return Objective(name, required, measured, bool(measured))


def all_passed(objectives: list[Objective]) -> bool:
    """True when every objective passed (and there is at least one)."""
    return bool(objectives) and all(o.passed for o in objectives)


def rounded(value: float | None) -> float | None:
    """A duration in seconds to one decimal, None (a bound not reached) kept as None."""
    return None if value is None else round(value, 1)
