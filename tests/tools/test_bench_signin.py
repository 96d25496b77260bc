"""bench/signin.py and signin_figures.py: the sign-in guessing benchmark's arithmetic, and a short real run."""

import json

import pytest
from helpers.app import test_config

from bench.signin import ATTACKERS
from bench.signin import LIMIT
from bench.signin import WINDOW
from bench.signin import main
from bench.signin import schedules
from bench.signin_figures import failures
from bench.signin_figures import most_in_any_window
from bench.signin_figures import verdicts
from testkit.skip import STRICT


def test_the_benchmark_uses_the_apps_default_numbers(tmp_path):
    """Its default limit and window are the app's, so its figures are the deployed behaviour's."""
    from minitwit import create_app

    config = create_app(test_config(f"sqlite:///{tmp_path / 'x.db'}")).config
    assert (LIMIT, WINDOW) == (config["SIGNIN_FAILURE_LIMIT"], config["SIGNIN_FAILURE_WINDOW"])


@pytest.mark.parametrize(
    "times, expected",
    [
        ([], 0),
        ([0], 1),
        ([0, 59_999], 2),
        ([0, 60_000], 1),  # the first has left the window (t - 60 s, t]
        ([0, 1, 2, 60_000, 60_001, 60_002], 3),
        ([5, 1, 3, 2, 4], 5),  # any order
    ],
)
def test_most_in_any_window_follows_the_throttles_rule(times, expected):
    assert most_in_any_window(times, 60_000) == expected


def test_failures_are_the_places_that_stayed():
    """A success's place is gone within milliseconds: seen by one poll at most, never by the last."""
    record = {1: [100, 5, False], 2: [200, 1, False], 3: [300, 1, True], 4: [400, 2, True]}
    assert sorted(failures(record)) == [100, 300, 400]


def test_the_guesses_are_spread_evenly_over_the_addresses_and_the_time():
    plan = schedules(seconds=70, guesses=1000)
    guesses = sorted(t for address in ATTACKERS for t in plan[address])
    assert len(guesses) == 1000 and guesses[0] == 0 and guesses[-1] < 70
    assert {len(plan[address]) for address in ATTACKERS} == {125}
    assert plan["usual_browser"] == [7.0, 24.5, 42.0, 59.5]
    assert plan["new_browser"] == [2.5 + 5 * n for n in range(14)]


def passing_result(**changes) -> dict:
    """A summary whose assertions all hold, with ``changes`` applied."""
    result = {
        "checked_in_any_window": 10,
        "failures_recorded": 20,
        "guesses": {"checked": 20, "other": 0},
        "usual_browser": {"statuses": [302, 302]},
        "server_checks": 50,
        "answers_that_were_checks": 50,
        "others_failed": 0,
    }
    return result | changes


@pytest.mark.parametrize(
    "changes, says",
    [
        ({}, None),
        ({"checked_in_any_window": 11}, "11 wrong guesses checked in one window"),
        ({"failures_recorded": 19}, "the database recorded another number"),
        ({"usual_browser": {"statuses": [302, 429]}}, "usual browser was not let in at once"),
        ({"server_checks": 51}, "51 passwords checked, 50 answered"),
        ({"others_failed": 1}, "neither as checked nor as refused"),
    ],
)
def test_each_assertion_by_design_fails_the_run(changes, says):
    failed = verdicts(passing_result(**changes), limit=10)
    assert failed == [] if says is None else says in " ".join(failed)


def test_a_short_attack_on_a_real_server(tmp_path, capsys):
    """The real thing, briefly: own PostgreSQL + gunicorn, 96 guesses in 5 s against 4 per 2 s window."""
    out = tmp_path / "signin.json"
    args = ["--guesses", "96", "--seconds", "5", "--limit", "4", "--window", "2", "--poll", "0.3"]
    code = main([*args, "--json", str(out)])
    printed = capsys.readouterr()
    if not out.exists() and "SKIPPED" in printed.err and not STRICT:
        pytest.skip(printed.err.strip())
    assert code == 0, printed.out + printed.err
    result = json.loads(out.read_text())
    assert result["guesses"]["sent"] == 96
    assert 4 <= result["guesses"]["checked"] <= 16  # 4 per 2 s over about 5 s
    assert result["checked_in_any_window"] <= 4
    assert result["usual_browser"]["statuses"] == [302] * 4
    assert "checked in any 2 s window" in printed.out
