"""bench/signin.py's figures: which checked guesses the database recorded, the most in any window, the
summary and its text, and the assertions by design (pure functions of a run's answers and records)."""

from bench.stats import latency_summary


def failures(record: dict[int, list]) -> list[int]:
    """The times (ms) of the places that were failures: seen twice, or still there at the end."""
    return [ms for ms, polls, at_end in record.values() if polls >= 2 or at_end]


def most_in_any_window(times_ms: list[int], window_ms: int) -> int:
    """The most of ``times_ms`` in any window (t - window_ms, t], the throttle's own rule."""
    ordered, most, first = sorted(times_ms), 0, 0
    for last, t in enumerate(ordered):
        while ordered[first] <= t - window_ms:
            first += 1
        most = max(most, last - first + 1)
    return most


def summarise(raw: dict, baseline: list, settings: dict) -> dict:
    """The figures of a run from its answers (``bench.signin.Answer``), counts and records."""
    answers, window_ms = raw["answers"], settings["window_s"] * 1000
    guesses = answers["guesses"]
    checked = [a for a in guesses if a.status == 200]
    failures_ms = failures(raw["record"])
    usual = answers["usual_browser"]
    all_answers = [a for role, group in answers.items() if role != "after" for a in group]
    answered_checked = sum(1 for a in all_answers if a.status in (200, 302))
    return {
        "settings": settings,
        "guesses": {
            "sent": len(guesses),
            "checked": len(checked),
            "refused_429": sum(a.status == 429 for a in guesses),
            "other": sum(a.status not in (200, 429) for a in guesses),
        },
        "checked_in_any_window": most_in_any_window(failures_ms, window_ms),
        "checked_per_minute_overall": round(len(checked) / settings["seconds"] * 60, 1),
        "failures_recorded": len(failures_ms),
        "server_checks": int(raw["checks"]),
        "answers_that_were_checks": answered_checked,
        "usual_browser": {
            "statuses": [a.status for a in usual],
            "latency": latency_summary([a.latency for a in usual]),
        },
        "new_browser": {"statuses": [a.status for a in answers["new_browser"]]},
        "others_before": latency_summary([a.latency for a in baseline]),
        "others_during": latency_summary([a.latency for a in answers["others"]]),
        "others_after": latency_summary([a.latency for a in answers["after"]]),
        "others_failed": sum(a.status != 302 for a in answers["others"] + answers["after"] + baseline),
        "refusal_latency": latency_summary([a.latency for a in guesses if a.status == 429]),
        "server_cpu_s": raw["cpu_s"],  # gunicorn's and PostgreSQL's during the attack: little skewed by other load
    }


def verdicts(result: dict, limit: int) -> list[str]:
    """What failed among the assertions by design (empty when all hold)."""
    failed: list[str] = []
    if result["checked_in_any_window"] > limit:
        failed.append(f"{result['checked_in_any_window']} wrong guesses checked in one window (limit {limit})")
    if result["failures_recorded"] != result["guesses"]["checked"]:
        failed.append("the database recorded another number of checked guesses than the attackers saw")
    if any(status != 302 for status in result["usual_browser"]["statuses"]):
        failed.append(f"the owner's usual browser was not let in at once: {result['usual_browser']['statuses']}")
    if result["server_checks"] != result["answers_that_were_checks"]:
        failed.append(f"{result['server_checks']} passwords checked, {result['answers_that_were_checks']} answered")
    if result["others_failed"] or result["guesses"]["other"]:
        failed.append("a sign-in answered neither as checked nor as refused")
    return failed


def report(result: dict) -> str:
    """The figures as text."""
    g, u, s = result["guesses"], result["usual_browser"], result["settings"]
    refusal = result["refusal_latency"]
    lines = [
        f"{g['sent']} wrong guesses in {s['seconds']:g} s from {s['addresses']} addresses:"
        f" {g['checked']} checked, {g['refused_429']} refused (429), {g['other']} other",
        f"checked in any {s['window_s']} s window: {result['checked_in_any_window']}"
        f" (limit {s['limit']}); overall {result['checked_per_minute_overall']} per minute",
        f"passwords the server checked during the attack: {result['server_checks']}"
        f" (answers that were checks: {result['answers_that_were_checks']})",
        f"owner at her usual browser: {u['statuses']}, latency p50 {u['latency'].get('p50_ms')} ms,"
        f" max {u['latency'].get('max_ms')} ms",
        f"owner at a new browser, every {s['new_browser_every_s']:g} s: {result['new_browser']['statuses']}",
        "other accounts' sign-ins (p50 / p90 / max ms, count): "
        + "; ".join(f"{when} {latency_text(result['others_' + when])}" for when in ("before", "during", "after")),
        f"a refusal (429): {latency_text(refusal)}",
        "server CPU during the attack: "
        + ", ".join(f"{name} {seconds} s" for name, seconds in result["server_cpu_s"].items())
        + f" in {s['seconds']:g} s",
        f"machine: {result['machine']}; load average {'/'.join(f'{x:.1f}' for x in result['loadavg'])}",
    ]
    return "\n".join(lines)


def latency_text(summary: dict) -> str:
    """p50 / p90 / max in ms and the count."""
    return f"{summary.get('p50_ms')} / {summary.get('p90_ms')} / {summary.get('max_ms')} ({summary['count']})"
