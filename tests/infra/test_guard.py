"""The develop-only guard: scripts/check-pr-source.sh and how guard.yml calls it."""

import subprocess

import pytest
import yaml

from testkit import REPO_ROOT as ROOT

SCRIPT = ROOT / "scripts" / "check-pr-source.sh"
GUARD = ROOT / ".github" / "workflows" / "guard.yml"
REPO = "minitwit-ops/minitwit"


def run_guard(*args: str) -> subprocess.CompletedProcess:
    """Run the guard script with the given arguments and capture its output."""
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_develop_of_this_repository_is_accepted():
    result = run_guard("develop", REPO, REPO)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_repository_names_compare_case_insensitively():
    assert run_guard("develop", "MiniTwit-Ops/MiniTwit", REPO).returncode == 0


@pytest.mark.parametrize(
    "head_ref",
    [
        "feature/login",
        "main",
        "Develop",
        "develop2",
        "refs/heads/develop",
        "release/develop",
        "",
    ],
)
def test_any_other_head_branch_is_rejected(head_ref):
    result = run_guard(head_ref, REPO, REPO)
    assert result.returncode == 1
    assert "REJECTED" in result.stderr


@pytest.mark.parametrize("head_repo", ["attacker/minitwit", "minitwit-ops/minitwit-fork", ""])
def test_develop_of_a_fork_or_deleted_fork_is_rejected(head_repo):
    result = run_guard("develop", head_repo, REPO)
    assert result.returncode == 1
    assert "not" in result.stderr


@pytest.mark.parametrize("args", [(), ("develop",), ("develop", REPO), ("develop", REPO, REPO, "x")])
def test_wrong_argument_count_is_a_usage_error(args):
    result = run_guard(*args)
    assert result.returncode == 2
    assert "usage" in result.stderr


def test_empty_base_repository_is_a_usage_error():
    assert run_guard("develop", REPO, "").returncode == 2


@pytest.fixture(scope="module")
def guard_workflow() -> dict:
    """guard.yml parsed (PyYAML reads the `on:` key as True)."""
    return yaml.safe_load(GUARD.read_text())


def test_guard_runs_on_every_pull_request_change_into_main(guard_workflow):
    trigger = guard_workflow[True]["pull_request_target"]
    assert trigger["branches"] == ["main"]
    # `edited` catches a base-branch change from develop to main after opening.
    assert set(trigger["types"]) == {"opened", "reopened", "synchronize", "edited"}
    assert "paths" not in trigger and "paths-ignore" not in trigger


def test_guard_job_always_reports(guard_workflow):
    # A skipped job reports success, so a job-level `if:` would let anything through.
    [job] = guard_workflow["jobs"].values()
    assert "if" not in job
    assert all("if" not in step for step in job["steps"])
    assert all(not step.get("continue-on-error") for step in job["steps"])


def test_guard_passes_pr_data_through_env_not_inline(guard_workflow):
    [job] = guard_workflow["jobs"].values()
    [step] = [s for s in job["steps"] if "check-pr-source.sh" in s.get("run", "")]
    assert "${{" not in step["run"], "no expression interpolation inside run:"
    assert step["env"] == {
        "HEAD_REF": "${{ github.event.pull_request.head.ref }}",
        "HEAD_REPO": "${{ github.event.pull_request.head.repo.full_name }}",
        "BASE_REPO": "${{ github.repository }}",
    }
    assert step["run"].split() == [
        "scripts/check-pr-source.sh",
        '"$HEAD_REF"',
        '"$HEAD_REPO"',
        '"$BASE_REPO"',
    ]


def test_guard_never_checks_out_pull_request_code(guard_workflow):
    # pull_request_target runs the base branch's files: a PR cannot rewrite its guard.
    [job] = guard_workflow["jobs"].values()
    for step in job["steps"]:
        ref = step.get("with", {}).get("ref", "")
        assert "head" not in ref and "pull_request" not in ref
    assert guard_workflow["permissions"] == {"contents": "read"}
    assert "permissions" not in job
