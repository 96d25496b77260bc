"""Write the drill report: ``report.json`` (everything) and ``report.md`` (summary)."""

from __future__ import annotations

from pathlib import Path

from bench.report import write_json

COLUMNS = (
    "Drill",
    "Result",
    "Requests",
    "Failed (reads/writes)",
    "Writes accepted",
    "Verified",
    "Lost",
    "p50 ms",
    "p99 ms",
    "Recovery",
    "Duration s",
)


def recovery_of(drill: dict) -> str:
    """The drill's time-to-recover figure, as text ("n/a" for drills without one)."""
    figures = drill["figures"]
    for key, label in (
        ("recovery_s", "3 healthy"),
        ("ready_after_db_back_s", "/ready"),
        ("settled_s", "rolled back"),
        ("deploy_seconds", "deploy"),
        ("restore_s", "restore"),
    ):
        if figures.get(key) is not None:
            return f"{figures[key]} s ({label})"
    return "n/a"


def row(drill: dict) -> list[str]:
    """One Markdown table row for a drill."""
    figures = drill["figures"]
    load, writes = figures.get("all", {}), figures.get("writes", {})
    reads, writes_ = load.get("failed_reads", "?"), load.get("failed_writes", "?")
    failed = f"{load.get('failed', '?')} ({reads}/{writes_})"
    return [
        f"{drill['number']}. {drill['name']}",
        "PASS" if drill["passed"] else "**FAIL**",
        str(load.get("requests", "?")),
        failed,
        str(writes.get("accepted", "?")),
        str(writes.get("verified", "?")),
        str(writes.get("lost", "?")),
        str(load.get("p50_ms", "?")),
        str(load.get("p99_ms", "?")),
        recovery_of(drill),
        str(drill["seconds"]),
    ]


def markdown(report: dict) -> str:
    """Render the whole report as Markdown."""
    lines = [
        f"# Drill report ({report['started']})",
        "",
        f"Overall: **{'PASS' if report['passed'] else 'FAIL'}**, "
        f"wall clock {report['seconds']} s, "
        f"load {report['load']['rate']} req/s "
        f"from {report['load']['workers']} workers, "
        f"client timeout {report['load']['timeout_s']} s.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row(d)) + " |" for d in report["drills"]]
    for drill in report["drills"]:
        lines += ["", f"## {drill['number']}. {drill['name']}", ""]
        lines += [
            f"- {'✅' if o['passed'] else '❌'} {o['name']}: measured `{o['measured']}`, required `{o['required']}`"
            for o in drill["objectives"]
        ]
        fired = drill["figures"].get("alerts")
        if fired is not None:
            lines += ["", "Notifications at the alert sink, from the fault: " + ("; ".join(fired) or "none")]
        examples = drill["figures"].get("all", {}).get("failure_examples", [])
        if examples:
            lines += ["", "Failed requests (first 10):", ""] + [f"- `{e}`" for e in examples]
    return "\n".join(lines) + "\n"


def write(report: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write both files into ``out_dir`` and return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    write_json(report, json_path)
    md_path.write_text(markdown(report), encoding="utf-8")
    return json_path, md_path
