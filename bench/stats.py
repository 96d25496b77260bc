"""Latency statistics: nearest-rank percentiles and per-command summaries of a run."""

import math
from collections import Counter

from bench.engines import RunResult
from bench.engines import Sample

PERCENTILES = (50, 90, 99)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list: the smallest value with at least p% of values <= it."""
    if not sorted_values:
        raise ValueError("percentile of an empty list")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    rank = math.ceil(p / 100 * len(sorted_values))
    return sorted_values[rank - 1]


def latency_summary(latencies: list[float]) -> dict:
    """Count, p50/p90/p99 and max in milliseconds (rounded to µs)."""
    values = sorted(latencies)
    summary = {"count": len(values)}
    if values:
        summary |= {f"p{p}_ms": round(percentile(values, p) * 1000, 3) for p in PERCENTILES}
        summary["max_ms"] = round(values[-1] * 1000, 3)
    return summary


def summarize(result: RunResult) -> dict:
    """Throughput, latency overall and per label, errors by kind and the generator's CPU cost."""
    samples: list[Sample] = result.samples
    labels = sorted({s.label for s in samples})
    errors = Counter(s.error for s in samples if s.error)
    return {
        "requests": len(samples),
        "wall_s": round(result.wall_s, 3),
        "throughput_rps": round(len(samples) / result.wall_s, 1) if result.wall_s else 0.0,
        "errors": sum(errors.values()),
        "errors_by_kind": dict(sorted(errors.items())),
        "latency": latency_summary([s.latency for s in samples]),
        "by_command": {label: _label_summary(samples, label) for label in labels},
        "opening_burst": opening_burst(samples),
        "generator_cpu_us_per_request": round(result.cpu_s / len(samples) * 1e6, 1) if samples else 0.0,
    }


def _label_summary(samples: list[Sample], label: str) -> dict:
    """Latency, error count and timeouts of one label (command)."""
    mine = [s for s in samples if s.label == label]
    errors = {"errors": sum(1 for s in mine if s.error), "timeouts": sum(1 for s in mine if s.error == "ReadTimeout")}
    return latency_summary([s.latency for s in mine]) | errors


def opening_burst(samples: list[Sample], label: str = "register") -> dict:
    """The other requests sent while the opening registrations ran: from the first start to the last register's end.

    Without ``--window`` every register may start at once, so this is the scenario's burst of sign-ups;
    the p99 of the requests sent meanwhile says whether hashing starved them.
    """
    registers = [s for s in samples if s.label == label]
    if not registers:
        return {}
    start = min(s.started for s in samples)
    end = max(s.started + s.latency for s in registers)
    others = [s for s in samples if s.label != label and s.started <= end]
    timeouts = sum(1 for s in others if s.error == "ReadTimeout")
    return {"seconds": round(end - start, 3), **latency_summary([s.latency for s in others]), "timeouts": timeouts}
