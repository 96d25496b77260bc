"""Latency statistics: nearest-rank percentiles and per-command summaries of a run."""

import bisect
import math
from collections import Counter

from bench.engines import RunResult
from bench.engines import Sample

PERCENTILES = (50, 90, 99)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least p% of values <= it; None for no values.

    Nearest-rank always returns an observed value, which is what one wants for latencies (no invented
    in-between numbers). Any order will do: sorting an already sorted list is one linear pass.
    """
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[rank - 1]


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
        "during_registers": during_registers(samples),
        "generator_cpu_us_per_request": round(result.cpu_s / len(samples) * 1e6, 1) if samples else 0.0,
    }


def _label_summary(samples: list[Sample], label: str) -> dict:
    """Latency, error count and timeouts of one label (command)."""
    mine = [s for s in samples if s.label == label]
    errors = {"errors": sum(1 for s in mine if s.error), "timeouts": sum(1 for s in mine if s.error == "ReadTimeout")}
    return latency_summary([s.latency for s in mine]) | errors


def during_registers(samples: list[Sample], label: str = "register") -> dict:
    """The latency of the other requests that started while a register was in flight.

    This is the issue's opening burst (the scenario starts with registers, and 16 clients send up to
    16 at once) and every later register: whether hashing starved the cheap requests sent meanwhile.
    """
    busy = merged_intervals(sorted((s.started, s.started + s.latency) for s in samples if s.label == label))
    if not busy:
        return {}
    starts = [start for start, _ in busy]
    others = [s for s in samples if s.label != label and in_intervals(busy, starts, s.started)]
    timeouts = sum(1 for s in others if s.error == "ReadTimeout")
    seconds = round(sum(end - start for start, end in busy), 3)
    return {"seconds": seconds, **latency_summary([s.latency for s in others]), "timeouts": timeouts}


def merged_intervals(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted, overlapping (start, end) intervals merged into disjoint ones."""
    merged: list[tuple[float, float]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def in_intervals(intervals: list[tuple[float, float]], starts: list[float], moment: float) -> bool:
    """Whether ``moment`` falls in one of the disjoint, sorted ``intervals`` (``starts``: their starts)."""
    i = bisect.bisect_right(starts, moment) - 1
    return i >= 0 and moment <= intervals[i][1]
