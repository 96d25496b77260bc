"""The delivery process, read from .github/: triggers, job order, environments, image tags,
pinning, permissions, timeouts, concurrency, secrets, rulesets and Dependabot.

Each test states one rule of docs/development.md; a workflow edit that breaks the rule fails
here before it reaches GitHub.
"""

import json
import os
import re
import subprocess

import pytest
import yaml
from helpers.programs import find_tool

from testkit import REPO_ROOT as ROOT

GITHUB = ROOT / ".github"
WORKFLOWS = GITHUB / "workflows"
BRANCHES = ("develop", "main")
SHA_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s*)?uses:\s*(?P<ref>\S+)\s*(?:#\s*(?P<comment>.*))?$")
# `<cond> && '<then>' || '<else>'` on the branch name: the only expression form used to pick
# an environment.
BRANCH_CHOICE = re.compile(
    r"^\$\{\{\s*github\.ref_name == '(?P<ref>[\w-]+)' && '(?P<then>[\w-]+)'"
    r" \|\| '(?P<else>[\w-]+)'\s*\}\}$"
)
SECRET_NAME = re.compile(r"KEY|PASSWORD|TOKEN|SECRET|KNOWN_HOSTS", re.IGNORECASE)


def load(name: str) -> dict:
    """Parse one workflow file."""
    return yaml.safe_load((WORKFLOWS / name).read_text())


def triggers(workflow: dict) -> dict:
    """The `on:` mapping (PyYAML reads the bare key `on` as the boolean True)."""
    return workflow[True]


def evaluate_branch_choice(expression: str, ref_name: str) -> str:
    """Evaluate a `github.ref_name == 'x' && 'a' || 'b'` expression for one branch."""
    match = BRANCH_CHOICE.match(expression)
    assert match, f"unexpected expression form: {expression}"
    return match["then"] if ref_name == match["ref"] else match["else"]


def all_workflows() -> dict[str, dict]:
    """Every workflow, by file name."""
    return {path.name: load(path.name) for path in sorted(WORKFLOWS.glob("*.yml"))}


def all_steps():
    """(file, job id, step) for every step of every workflow and local action."""
    for name, workflow in all_workflows().items():
        for job_id, job in workflow["jobs"].items():
            for step in job.get("steps", []):
                yield name, job_id, step
    for path in sorted(GITHUB.glob("actions/*/action.yml")):
        for step in yaml.safe_load(path.read_text())["runs"]["steps"]:
            yield str(path.relative_to(GITHUB)), "-", step


@pytest.fixture(scope="module")
def ci() -> dict:
    return load("ci.yml")


@pytest.fixture(scope="module")
def deploy() -> dict:
    return load("deploy.yml")


@pytest.fixture(scope="module")
def release() -> dict:
    return load("release.yml")


# ---- triggers per branch ---------------------------------------------------------------


def test_expected_workflows_exist():
    assert set(all_workflows()) == {"ci.yml", "deploy.yml", "release.yml", "guard.yml"}


def test_ci_runs_on_every_pull_request_and_feature_push(ci):
    on = triggers(ci)
    assert "pull_request" in on and on["pull_request"] is None  # all branches, all paths
    # develop and main are tested by deploy.yml calling this workflow, before any deploy.
    assert on["push"] == {"branches-ignore": ["develop", "main"]}
    assert "workflow_call" in on


def test_deploy_runs_on_pushes_to_develop_and_main_only(deploy):
    assert triggers(deploy) == {"push": {"branches": ["develop", "main"]}}


def test_release_follows_a_completed_deploy_of_main(release):
    assert triggers(release) == {
        "workflow_run": {"workflows": ["deploy"], "types": ["completed"], "branches": ["main"]}
    }
    job = release["jobs"]["release"]
    assert "github.event.workflow_run.conclusion == 'success'" in job["if"]
    assert "github.event.workflow_run.event == 'push'" in job["if"]


def test_no_workflow_filters_paths():
    # A required check that never reports leaves the pull request waiting forever.
    for name, workflow in all_workflows().items():
        for event, spec in triggers(workflow).items():
            spec = spec or {}
            assert "paths" not in spec and "paths-ignore" not in spec, (name, event)


# ---- needs order ------------------------------------------------------------------------


def test_deploy_chain_is_ci_then_image_then_deploy(deploy):
    jobs = deploy["jobs"]
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert jobs["image"]["needs"] == "ci"
    assert jobs["deploy"]["needs"] == "image"
    assert set(jobs) == {"ci", "image", "deploy"}


def test_nothing_in_deploy_skips_the_ci_gate(deploy):
    # No job may run on failure of its needs: no always()/failure() at job level.
    for job_id, job in deploy["jobs"].items():
        condition = str(job.get("if", ""))
        assert "always()" not in condition and "failure()" not in condition, job_id


# ---- environments -----------------------------------------------------------------------


@pytest.mark.parametrize(("branch", "environment"), [("develop", "development"), ("main", "production")])
def test_each_branch_deploys_to_its_environment(deploy, branch, environment):
    job = deploy["jobs"]["deploy"]
    assert evaluate_branch_choice(job["environment"]["name"], branch) == environment
    assert evaluate_branch_choice(job["env"]["ENVIRONMENT"], branch) == environment
    run = next(s["run"] for s in job["steps"] if s.get("id") == "deploy")
    assert "ansible/inventories/$ENVIRONMENT/hosts.yml" in run
    assert job["environment"]["url"] == "${{ vars.MINITWIT_URL }}"


# ---- image: SHA tag, built once, main promotes --------------------------------------------


def steps_by_name(job: dict) -> dict[str, dict]:
    return {step.get("name", step.get("uses", "")): step for step in job["steps"]}


def test_deploy_uses_the_commit_sha_image_tag(deploy):
    image = deploy["jobs"]["image"]
    assert image["outputs"]["ref"] == "${{ steps.name.outputs.image }}:sha-${{ github.sha }}"
    job = deploy["jobs"]["deploy"]
    assert job["env"]["IMAGE_REF"] == "${{ needs.image.outputs.ref }}"
    run = next(s["run"] for s in job["steps"] if s.get("id") == "deploy")
    assert run.split()[:2] == ["ansible-playbook", "ansible/playbooks/deploy.yml"]
    assert '-e "minitwit_image=$IMAGE_REF"' in run


def test_image_name_is_ghcr_of_this_repository_lower_cased(deploy):
    step = next(s for s in deploy["jobs"]["image"]["steps"] if s.get("id") == "name")
    assert "image=ghcr.io/${GITHUB_REPOSITORY,,}" in step["run"]


def test_only_develop_builds_and_it_pushes_the_full_sha_tag(deploy):
    steps = deploy["jobs"]["image"]["steps"]
    builds = {s["with"]["context"]: s for s in steps if s.get("uses", "").startswith("docker/build-push-action@")}
    # The app, and PostgreSQL with pgBackRest (docker/postgres), each with its own layer cache.
    assert set(builds) == {".", "docker/postgres"}
    for build in builds.values():
        assert build["if"] == "github.ref_name == 'develop'"
        assert build["with"]["push"] is True
    assert builds["."]["with"]["cache-from"] == "type=gha"
    assert builds["."]["with"]["cache-to"] == "type=gha,mode=max"
    assert builds["docker/postgres"]["with"]["cache-to"] == "type=gha,mode=max,scope=postgres"
    # Tagged as deploy.yml derives it from the app's reference (minitwit_postgres_image).
    assert builds["docker/postgres"]["with"]["tags"].splitlines() == [
        "${{ steps.name.outputs.image }}-postgres:sha-${{ github.sha }}",
        "${{ steps.name.outputs.image }}-postgres:develop",
    ]
    meta = next(s for s in steps if s.get("id") == "meta")
    assert meta["if"] == "github.ref_name == 'develop'"
    assert meta["with"]["tags"].split() == ["type=sha,format=long", "type=ref,event=branch"]


def test_main_promotes_the_tested_develop_image_without_rebuilding(deploy):
    steps = deploy["jobs"]["image"]["steps"]
    main_steps = [s for s in steps if s.get("if") == "github.ref_name == 'main'"]
    runs = "\n".join(s["run"] for s in main_steps)
    assert 'scripts/find-tested-commit.sh "$GITHUB_SHA" origin/develop' in runs
    assert "--branch develop" in runs and "--status success" in runs
    assert "imagetools create" in runs and '"$IMAGE:sha-$TESTED_SHA"' in runs
    assert '--tag "$IMAGE:sha-$GITHUB_SHA"' in runs
    assert '--tag "$IMAGE-postgres:sha-$GITHUB_SHA"' in runs and '"$IMAGE-postgres:sha-$TESTED_SHA"' in runs
    assert not any("build" in s.get("uses", "") and "push" in s.get("uses", "") for s in main_steps)
    checkout = steps[0]
    assert checkout["with"]["fetch-depth"] == "${{ github.ref_name == 'main' && '0' || '1' }}"


def test_release_tags_the_deployed_image_and_never_builds(release):
    steps = release["jobs"]["release"]["steps"]
    assert not any(s.get("uses", "").startswith("docker/build-push-action@") for s in steps)
    runs = "\n".join(s.get("run", "") for s in steps)
    assert 'scripts/next-version.sh "$SHA"' in runs
    assert '"$IMAGE:sha-$SHA"' in runs
    assert 'gh release create "v$VERSION"' in runs
    assert '--target "$SHA"' in runs and "--generate-notes" in runs
    assert "$IMAGE@$DIGEST" in runs


# ---- smoke test and rollback --------------------------------------------------------------


def test_deploy_smoke_tests_and_rolls_back_on_failure(deploy):
    steps = deploy["jobs"]["deploy"]["steps"]
    ids = [s.get("id") for s in steps]
    assert ids.index("deploy") < ids.index("smoke")
    smoke = steps[ids.index("smoke")]
    assert smoke["run"].startswith('scripts/smoke-test.sh "${MINITWIT_URL:?')
    [rollback] = [s for s in steps if "rollback.yml" in s.get("run", "")]
    assert steps.index(rollback) > ids.index("smoke")
    assert rollback["if"].startswith("failure() &&")
    assert "steps.deploy.outcome == 'failure'" in rollback["if"]
    assert "steps.smoke.outcome == 'failure'" in rollback["if"]
    assert not rollback.get("continue-on-error"), "a rolled-back deploy must still fail the run"


# ---- pinning -----------------------------------------------------------------------------


def uses_lines():
    """(file, line number, ref, comment) for every `uses:` in workflows and local actions."""
    files = sorted(WORKFLOWS.glob("*.yml")) + sorted(GITHUB.glob("actions/*/action.yml"))
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = USES_LINE.match(line)
            if match:
                yield path.name, number, match["ref"], match["comment"] or ""


def test_every_third_party_action_is_pinned_to_a_sha_with_a_version_comment():
    checked = 0
    for name, number, ref, comment in uses_lines():
        if ref.startswith("./"):
            continue  # this repository's own action or reusable workflow
        assert SHA_PINNED.match(ref), f"{name}:{number}: {ref} is not pinned to a commit SHA"
        assert re.match(r"^v\d+(\.\d+)*$", comment.strip()), f"{name}:{number}: no # vX"
        checked += 1
    assert checked >= 10


def test_one_action_one_sha():
    # The same action at two SHAs means a half-done bump.
    seen: dict[str, str] = {}
    for _name, _number, ref, _comment in uses_lines():
        if ref.startswith("./"):
            continue
        action, sha = ref.split("@")
        assert seen.setdefault(action, sha) == sha, f"{action} pinned to two SHAs"


def test_checkouts_do_not_persist_credentials():
    for name, job_id, step in all_steps():
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, (name, job_id)


# ---- permissions, timeouts, concurrency ---------------------------------------------------

# The only job-level elevations, each with its reason in the workflow.
ELEVATED = {
    ("deploy.yml", "image"): {"contents": "read", "packages": "write", "actions": "read"},
    ("release.yml", "release"): {"contents": "write", "packages": "write"},
}


def test_top_level_permissions_are_read_only_contents():
    for name, workflow in all_workflows().items():
        assert workflow["permissions"] == {"contents": "read"}, name


def test_job_permissions_are_elevated_only_where_needed():
    for name, workflow in all_workflows().items():
        for job_id, job in workflow["jobs"].items():
            expected = ELEVATED.get((name, job_id))
            assert job.get("permissions") == expected, (name, job_id)


def test_every_job_has_a_timeout():
    for name, workflow in all_workflows().items():
        for job_id, job in workflow["jobs"].items():
            if "uses" in job:
                # A reusable-workflow call: its own jobs carry the timeouts.
                assert job["uses"].startswith("./.github/workflows/"), (name, job_id)
                continue
            assert 0 < job["timeout-minutes"] <= 60, (name, job_id)


def test_deploy_is_serialised_per_environment_and_never_cancelled(deploy):
    concurrency = deploy["jobs"]["deploy"]["concurrency"]
    assert concurrency["cancel-in-progress"] is False
    group = concurrency["group"]
    assert group.startswith("deploy-")
    for branch, environment in (("develop", "development"), ("main", "production")):
        assert evaluate_branch_choice(group.removeprefix("deploy-"), branch) == environment
    # The called CI may only cancel superseded pull request runs, never a deploy's tests.
    ci_concurrency = load("ci.yml")["concurrency"]
    assert ci_concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    assert "github.run_id" in ci_concurrency["group"]


def test_release_runs_one_at_a_time(release):
    assert release["concurrency"] == {"group": "release", "cancel-in-progress": False}


# ---- secrets -----------------------------------------------------------------------------


def env_blocks():
    """(where, env mapping) for every workflow-, job- and step-level env."""
    for name, workflow in all_workflows().items():
        yield name, workflow.get("env", {})
        for job_id, job in workflow["jobs"].items():
            yield f"{name}:{job_id}", job.get("env", {})
            for step in job.get("steps", []):
                yield f"{name}:{job_id}:{step.get('name')}", step.get("env", {})


def test_secret_like_values_come_only_from_the_secrets_context():
    allowed = re.compile(r"^\$\{\{ (secrets\.[A-Z_]+|github\.token) \}\}$")
    found = 0
    for where, env in env_blocks():
        for key, value in env.items():
            if SECRET_NAME.search(key):
                assert allowed.match(str(value)), f"{where}: {key}={value!r}"
                found += 1
    assert found >= 4


def test_deploy_secrets_are_the_documented_ones(deploy):
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert set(re.findall(r"secrets\.([A-Z_]+)", text)) == {
        "GITHUB_TOKEN",
        "SSH_PRIVATE_KEY",
        "SSH_KNOWN_HOSTS",
        "ANSIBLE_VAULT_PASSWORD",
    }


def test_no_expression_is_interpolated_into_a_run_script():
    # Values reach scripts through env:, never ${{ }} inside run: (script injection).
    for name, job_id, step in all_steps():
        assert "${{" not in step.get("run", ""), (name, job_id, step.get("name"))


def test_ci_uses_no_secrets_and_a_local_service_database(ci):
    assert "secrets." not in (WORKFLOWS / "ci.yml").read_text()
    for job_id in ("test", "e2e"):
        job = ci["jobs"][job_id]
        assert job["services"]["postgres"]["image"].startswith("postgres:")
        url = job["env"]["TEST_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://") and "@localhost:5432/" in url


def test_ci_is_strict(ci):
    assert ci["env"]["MINITWIT_STRICT"] == "1"


def test_ci_runs_every_stage_of_the_test_command(ci):
    # scripts/test.sh is the README's test command; CI splits its stages into parallel jobs.
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    stages = set(re.findall(r"^stage \S+ (scripts/\S+\.sh)", test_sh, re.MULTILINE))
    for loop in re.findall(r"^for check in ([\w ]+); do", test_sh, re.MULTILINE):
        stages |= {f"scripts/check-{name}.sh" for name in loop.split()}
    assert "scripts/lint.sh" in stages and "scripts/e2e.sh" in stages
    runs = [s.get("run", "") for job in ci["jobs"].values() for s in job["steps"]]
    for script in stages:
        assert any(run.startswith(script) for run in runs), f"no ci job runs {script}"
    # The pytest line lives in test.sh only: CI runs that stage by name instead of repeating it.
    assert re.search(r"^stage pytest ", test_sh, re.MULTILINE)
    assert "scripts/test.sh pytest" in [s.get("run") for s in ci["jobs"]["test"]["steps"]]
    assert not [run for run in runs if "pytest" in run and not run.startswith("scripts/")], "ci runs pytest itself"


def test_the_test_command_refuses_an_unknown_stage():
    result = subprocess.run(
        [str(ROOT / "scripts" / "test.sh"), "no-such-stage"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "unknown stage 'no-such-stage'; the stages are: lint pytest e2e" in result.stderr


def postgres_majors() -> dict[str, str]:
    """The PostgreSQL major version each place that names one uses, by place."""
    stack = (ROOT / "stack" / "minitwit.yml").read_text()
    image = (ROOT / "docker" / "postgres" / "Dockerfile").read_text()
    majors = {"stack/minitwit.yml": re.search(r"ARG BASE=postgres:(\d+)", image)[1]}
    assert "${POSTGRES_IMAGE:?" in stack  # the stack runs that image, always named by the deploy
    for job_id, job in load("ci.yml")["jobs"].items():
        if "postgres" in job.get("services", {}):
            majors[f"ci.yml {job_id}"] = re.match(r"postgres:(\d+)", job["services"]["postgres"]["image"])[1]
    for path in ("scripts/install-system-deps.sh", "scripts/build-images.sh", "docker/ci/postgres/Dockerfile"):
        for major in set(re.findall(r"postgresql[-/](\d+)", (ROOT / path).read_text())):
            majors[f"{path} ({major})"] = major
    majors["stack/ci.yml"] = re.search(r"image: local/postgres:(\d+)", (ROOT / "stack" / "ci.yml").read_text())[1]
    return majors


def test_one_postgresql_major_everywhere():
    # Tests, CI's service containers, the local stand-in image and production run one major.
    majors = postgres_majors()
    assert len(majors) >= 7, majors
    assert set(majors.values()) == {majors["stack/minitwit.yml"]}, majors


def test_ci_builds_the_image_without_pushing(ci):
    steps = ci["jobs"]["image"]["steps"]
    builds = [s for s in steps if "build-push-action" in s.get("uses", "")]
    assert [b["with"]["context"] for b in builds] == [".", "docker/postgres"]
    assert all(b["with"]["push"] is False for b in builds)


# ---- rulesets ----------------------------------------------------------------------------


def ruleset(name: str) -> dict:
    return json.loads((GITHUB / "rulesets" / f"{name}.json").read_text())


def rules_by_type(rules: dict) -> dict[str, dict]:
    return {rule["type"]: rule.get("parameters", {}) for rule in rules["rules"]}


@pytest.mark.parametrize("branch", BRANCHES)
def test_ruleset_protects_its_branch(branch):
    rules = ruleset(branch)
    assert rules["name"] == branch and rules["enforcement"] == "active"
    assert rules["conditions"]["ref_name"]["include"] == [f"refs/heads/{branch}"]
    assert rules["bypass_actors"] == []
    by_type = rules_by_type(rules)
    assert {"deletion", "non_fast_forward", "pull_request", "required_status_checks"} <= set(by_type)
    assert by_type["pull_request"]["required_approving_review_count"] >= 1


def check_names(jobs: dict) -> set[str]:
    """The status-check names GitHub reports: a job's id, or its name once per matrix value."""
    names = set()
    for job_id, job in jobs.items():
        matrix = job.get("strategy", {}).get("matrix", {})
        if not matrix:
            names.add(job.get("name", job_id))
            continue
        ((key, values),) = matrix.items()
        names |= {job["name"].replace("${{ matrix." + key + " }}", str(value)) for value in values}
    return names


def test_the_test_job_covers_both_supported_pythons(ci):
    assert ci["jobs"]["test"]["strategy"]["matrix"]["python"] == ["3.11", "3.12"]


@pytest.mark.parametrize("branch", BRANCHES)
def test_required_checks_are_the_ci_jobs_and_for_main_the_guard(ci, branch):
    checks = rules_by_type(ruleset(branch))["required_status_checks"]["required_status_checks"]
    contexts = {check["context"] for check in checks}
    expected = check_names(ci["jobs"])
    if branch == "main":
        expected |= set(load("guard.yml")["jobs"])
    assert contexts == expected
    assert all(check["integration_id"] == 15368 for check in checks)  # GitHub Actions


def test_develop_history_is_linear_and_main_takes_merge_commits_of_develop():
    develop = rules_by_type(ruleset("develop"))
    assert "required_linear_history" in develop
    assert set(develop["pull_request"]["allowed_merge_methods"]) <= {"squash", "rebase"}
    main = rules_by_type(ruleset("main"))
    # A merge commit keeps develop's tested commit as its second parent and never replays
    # develop's history (see docs/development.md, "Why main takes merge commits").
    assert main["pull_request"]["allowed_merge_methods"] == ["merge"]
    assert main["pull_request"]["require_code_owner_review"] is True
    assert main["required_status_checks"]["strict_required_status_checks_policy"] is False


# ---- Dependabot and CODEOWNERS -----------------------------------------------------------


def test_dependabot_targets_develop_grouped_for_pip_docker_and_actions():
    config = yaml.safe_load((GITHUB / "dependabot.yml").read_text())
    updates = {update["package-ecosystem"]: update for update in config["updates"]}
    assert set(updates) == {"pip", "docker", "github-actions"}
    for ecosystem, update in updates.items():
        assert update["target-branch"] == "develop", ecosystem
        assert update["groups"], ecosystem
    assert "/.github/actions/*" in updates["github-actions"]["directories"]


def test_codeowners_cover_everything_and_the_pipeline():
    lines = [
        line.split()
        for line in (GITHUB / "CODEOWNERS").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    patterns = {fields[0] for fields in lines}
    assert {"*", "/.github/", "/scripts/check-pr-source.sh"} <= patterns
    assert all(len(fields) >= 2 and fields[1].startswith("@") for fields in lines)


# ---- the real linters ---------------------------------------------------------------------


def test_actionlint_is_clean():
    find_tool("actionlint")
    result = subprocess.run(
        ["bash", "scripts/check-workflows.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: actionlint clean" in result.stdout


MY_SCRIPTS = [
    "scripts/check-pr-source.sh",
    "scripts/apply-rulesets.sh",
    "scripts/check-workflows.sh",
    "scripts/find-tested-commit.sh",
    "scripts/next-version.sh",
    "scripts/smoke-test.sh",
]


def test_pipeline_scripts_are_shellcheck_clean():
    shellcheck = find_tool("shellcheck")
    result = subprocess.run(
        [shellcheck, *MY_SCRIPTS], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout
    for script in MY_SCRIPTS:
        text = (ROOT / script).read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), script
        assert "set -euo pipefail" in text, script
        assert os.access(ROOT / script, os.X_OK), script
