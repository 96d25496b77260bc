"""Render benchmark results as readable text; write a result as JSON (bench/ and drills/ reports)."""

import json
from pathlib import Path

COLUMNS = ("count", "p50_ms", "p90_ms", "p99_ms", "max_ms")


def latency_table(rows: dict[str, dict]) -> list[str]:
    """A fixed-width table: one line per label with count, percentiles, max and errors."""
    header = f"  {'':<10}" + "".join(f"{c:>10}" for c in COLUMNS) + f"{'errors':>8}"
    lines = [header]
    for label, stats in rows.items():
        cells = "".join(f"{stats.get(c, '-'):>10}" for c in COLUMNS)
        lines.append(f"  {label:<10}{cells}{stats.get('errors', '-'):>8}")
    return lines


def run_text(run: dict) -> list[str]:
    """Text block for one replay run and its no-op twin."""
    replay, noop = run["replay"], run["noop"]
    lines = [
        f"== {run['mode']} ({run['clients']} client(s), engine {run['engine']}"
        + (f", window {run['window']} rows" if run.get("window") else "")
        + ") ==",
        f"  replay: {replay['requests']} requests in {replay['wall_s']} s = {replay['throughput_rps']} req/s,"
        f" {replay['errors']} errors {replay['errors_by_kind'] or ''}".rstrip(),
        f"  final /latest: {run['final_latest']} (expected {run['expected_latest']})",
        *latency_table({"overall": replay["latency"] | {"errors": replay["errors"]}, **replay["by_command"]}),
        f"  no-op {run['noop_path']}: {noop['requests']} requests = {noop['throughput_rps']} req/s,"
        f" p99 {noop['latency'].get('p99_ms')} ms, {noop['errors']} errors",
        f"  app / no-op throughput: {run['app_vs_noop']:.0%}",
        f"  CPU us/request: replay {_cpu(replay)}; no-op {_cpu(noop)}",
        *burst_text(replay.get("during_registers")),
    ]
    if floor := replay.get("hash_floor"):
        lines += floor_text(floor)
    return lines


def burst_text(burst: dict | None) -> list[str]:
    """The other requests' latency while registers were in flight (bench/stats.py)."""
    if not burst or not burst.get("count"):
        return []
    return [
        f"  while registering ({burst['seconds']} s with a register in flight): {burst['count']} other requests,"
        f" p99 {burst['p99_ms']} ms, max {burst['max_ms']} ms, {burst['timeouts']} timeouts"
    ]


def floor_text(floor: dict) -> list[str]:
    """What the password hash alone costs this replay (bench/floor.py)."""
    share = f", {floor['registers_share_of_cpu']:.0%} of {floor['cores']} cores over the replay"
    lines = [
        f"  password hash: {floor['method']} costs {floor['hash_cpu_ms']} ms CPU per hash here;"
        f" {floor['registers']} registers = {floor['registers_cpu_s']} CPU-s"
        + (share if floor["registers_share_of_cpu"] is not None else ""),
        f"    registers in flight: up to {floor['max_registers_in_flight']} at once; {floor['cores']} cores finish"
        f" at most {floor['hashes_within_timeout']} hashes within the {floor['timeout_s']} s timeout",
    ]
    if ceiling := floor.get("ceiling_rps"):
        lines.append(
            f"    ceiling if every request cost only the no-op's CPU, plus the hashes: {ceiling} req/s,"
            f" {floor['ceiling_vs_noop']:.0%} of what the no-op's CPU cost allows"
        )
    return lines


def render(result: dict) -> str:
    """The whole report as text."""
    meta = result["meta"]
    lines = [
        f"MiniTwit replay of {meta['rows']} scenario rows against {meta['url']}",
        f"  machine: {meta['machine']}",
        f"  load average (1/5/15 min) before {_load(meta['loadavg_before'])}, after {_load(meta['loadavg_after'])}",
    ]
    for run in result["runs"]:
        lines += ["", *run_text(run)]
    for name, engine in result.get("engines", {}).items():
        lines.append(
            f"engine {name}: {engine['throughput_rps']} req/s on the no-op,"
            f" {engine['generator_cpu_us_per_request']} us CPU/request"
        )
    return "\n".join(lines)


def _cpu(summary: dict) -> str:
    """CPU cost per request by process tree, and the throughput that CPU alone would allow."""
    parts = ", ".join(f"{name} {us}" for name, us in summary["cpu_us_per_request"].items())
    capacity = summary.get("cpu_bound_capacity_rps")
    return parts + (f" (CPU-bound capacity {capacity} req/s)" if capacity else "")


def _load(loadavg) -> str:
    """A load-average triple as text: other work on the machine skews every figure, so we show it."""
    return "/".join(f"{x:.1f}" for x in loadavg)


def write_json(result: dict, path: Path) -> None:
    """Write the result as indented UTF-8 JSON, creating the directory (anything else JSON lacks as text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    path.write_text(text + "\n", encoding="utf-8")
