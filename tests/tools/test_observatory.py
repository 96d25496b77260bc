"""The observatory runner's verdict (testkit/observatory.py): A+ and every test passed, or a failure that says why.

The scan itself, against a real edge, is tests/infra/test_traefik_headers.py.
"""

import pytest

from testkit import observatory


def result(grade: str = "A+", score: int = 135, **failed: str) -> dict:
    """A scanner answer with two tests, those named in ``failed`` failing with the given result."""
    tests = {
        "content-security-policy": {"pass": True, "result": "csp-implemented-with-no-unsafe-default-src-none"},
        "strict-transport-security": {"pass": True, "result": "hsts-implemented-max-age-at-least-six-months"},
    }
    for name, outcome in failed.items():
        tests[name.replace("_", "-")] = {"pass": False, "result": outcome}
    for test in tests.values():
        test["scoreModifier"] = 0 if test["pass"] else -20
    summary = {"grade": grade, "score": score, "testsPassed": 2 - len(failed), "testsQuantity": 2, "statusCode": 200}
    return {"scan": summary, "tests": tests}


def test_an_a_plus_with_every_test_passed_is_good():
    assert observatory.problems(result()) == []


def test_a_lower_grade_a_failed_test_and_a_low_score_are_each_named():
    answer = result("B", 75, content_security_policy="csp-not-implemented")
    assert observatory.problems(answer, min_score=135) == [
        "grade B, not A+",
        "score 75 below 135",
        "test content-security-policy failed: csp-not-implemented",
    ]


def test_a_score_above_the_a_plus_line_still_fails_a_higher_minimum():
    assert observatory.problems(result(score=130), min_score=135) == ["score 130 below 135"]


def test_the_report_shows_every_test_and_the_best_result_it_missed():
    text = observatory.report(result("B", 75, content_security_policy="csp-not-implemented"))
    assert text.splitlines()[0].startswith("MDN HTTP Observatory 1.4.8: grade B, score 75, 1/2 tests passed")
    assert "FAIL   -20  content-security-policy         csp-not-implemented  (best: csp-implemented-with" in text
    assert "pass    +0  strict-transport-security" in text


@pytest.mark.parametrize(
    "target, host",
    [("https://minitwit.example.org/", "minitwit.example.org"), ("minitwit-lab.test", "minitwit-lab.test")],
)
def test_a_url_or_a_bare_name_names_the_host(target, host):
    assert observatory.host_of(target) == host


@pytest.mark.parametrize("target", ["https://a.test:8443/", "https://a.test/public", "https://a.test/?x=1"])
def test_what_the_scanner_cannot_scan_is_refused(target):
    """It scans / on the standard ports: anything else would silently grade another URL."""
    with pytest.raises(ValueError, match="standard ports only"):
        observatory.host_of(target)


def test_resolve_takes_host_colon_address():
    args = observatory.parse_args(["a.test", "--resolve", "a.test:10.78.0.11", "--resolve", "b.test:::1"])
    assert args.resolve == ["a.test:10.78.0.11", "b.test:::1"]
    with pytest.raises(SystemExit):
        observatory.parse_args(["a.test", "--resolve", "10.78.0.11"])


def test_the_cache_is_outside_the_repository(monkeypatch, tmp_path):
    monkeypatch.setenv("MINITWIT_CACHE_DIR", str(tmp_path))
    assert observatory.cache_dir() == tmp_path / f"mdn-http-observatory-{observatory.VERSION}"
