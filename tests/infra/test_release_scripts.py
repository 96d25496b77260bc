"""The scripts the pipeline runs: promotion by tree, next version, smoke test, ruleset apply.

They run for real against throwaway git repositories and a local HTTP server on 127.0.0.1.
GitHub's API is not reachable here, so apply-rulesets.sh talks to a small fake `gh` that
stores rulesets in a JSON file and behaves like the REST endpoints it calls.
"""

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers.programs import find_tool

from testkit import REPO_ROOT as ROOT

SCRIPTS = ROOT / "scripts"


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command with a bounded time and captured output."""
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)


def git(repo: Path, *args: str) -> str:
    """Run git in repo and return its stripped stdout; fail the test on error."""
    result = run(["git", *args], repo)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def commit_file(repo: Path, name: str, content: str, message: str) -> str:
    """Write one file, commit it, return the new commit SHA."""
    (repo / name).write_text(content)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with main and develop, develop two commits ahead."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "ci@example.org")
    git(path, "config", "user.name", "CI")
    git(path, "config", "commit.gpgsign", "false")
    commit_file(path, "pyproject.toml", '[project]\nversion = "1.2.0"\n', "start")
    git(path, "checkout", "-q", "-b", "develop")
    commit_file(path, "app.txt", "one\n", "feature one")
    commit_file(path, "app.txt", "two\n", "feature two")
    return path


# ---- find-tested-commit.sh ----------------------------------------------------------------


def find_tested(repo: Path, commit: str, ref: str = "develop") -> subprocess.CompletedProcess:
    return run(["bash", str(SCRIPTS / "find-tested-commit.sh"), commit, ref], repo)


def test_merge_commit_on_main_maps_to_the_develop_head(repo):
    tested = git(repo, "rev-parse", "develop")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge develop", "develop")
    result = find_tested(repo, "HEAD")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == tested


def test_squash_of_develop_maps_to_the_develop_head(repo):
    tested = git(repo, "rev-parse", "develop")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--squash", "develop")
    git(repo, "commit", "-q", "-m", "Squashed develop")
    assert git(repo, "rev-parse", "HEAD") != tested
    assert find_tested(repo, "HEAD").stdout.strip() == tested


def test_an_older_tested_state_is_found_too(repo):
    older = git(repo, "rev-parse", "develop~1")
    git(repo, "checkout", "-q", "-b", "hotfix", older)
    git(repo, "commit", "-q", "--allow-empty", "-m", "same tree, new SHA")
    assert find_tested(repo, "HEAD").stdout.strip() == older


def test_main_with_untested_content_is_refused(repo):
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge develop", "develop")
    commit_file(repo, "app.txt", "edited on main\n", "direct change")
    result = find_tested(repo, "HEAD")
    assert result.returncode == 1
    assert "never tested" in result.stderr


@pytest.mark.parametrize("args", [[], ["HEAD", "develop", "x"], ["no-such-commit"]])
def test_find_tested_usage_errors(repo, args):
    result = run(["bash", str(SCRIPTS / "find-tested-commit.sh"), *args], repo)
    assert result.returncode == 2


def test_unknown_tested_ref_is_a_usage_error(repo):
    assert find_tested(repo, "HEAD", "origin/nope").returncode == 2


# ---- next-version.sh ----------------------------------------------------------------------


def next_version(repo: Path, commit: str = "HEAD") -> str:
    result = run(["bash", str(SCRIPTS / "next-version.sh"), commit], repo)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_first_release_uses_the_pyproject_version(repo):
    assert next_version(repo) == "1.2.0"


def test_next_release_bumps_the_patch_after_existing_tags(repo):
    git(repo, "tag", "v1.2.0", "develop~1")
    git(repo, "tag", "v1.2.3", "develop~1")
    git(repo, "tag", "v1.1.9", "develop~1")  # another minor: ignored
    assert next_version(repo) == "1.2.4"


def test_a_minor_bump_in_pyproject_starts_at_its_patch(repo):
    git(repo, "tag", "v1.2.7", "develop~1")
    commit_file(repo, "pyproject.toml", '[project]\nversion = "1.3.0"\n', "minor bump")
    assert next_version(repo) == "1.3.0"


def test_a_released_commit_keeps_its_version(repo):
    git(repo, "tag", "v1.2.5")
    git(repo, "tag", "v1.2.9", "develop~1")
    assert next_version(repo) == "1.2.5"


def test_missing_version_fails(repo):
    commit_file(repo, "pyproject.toml", "[project]\nname = 'x'\n", "no version")
    result = run(["bash", str(SCRIPTS / "next-version.sh")], repo)
    assert result.returncode == 1


# ---- smoke-test.sh ------------------------------------------------------------------------


class FakeMiniTwit(http.server.BaseHTTPRequestHandler):
    """Answers /ready and /api/latest with the status set on the server."""

    def do_GET(self):  # http.server dispatches GET requests to this exact name
        known = self.path in ("/ready", "/api/latest")
        status = self.server.status if known else 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"latest": 0}' if status == 200 else b'{"status": "unavailable"}')

    def log_message(self, *args):
        """Keep the test output quiet."""


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1 and an ephemeral port."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeMiniTwit)
    httpd.status = 200
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def smoke(url: str) -> subprocess.CompletedProcess:
    return run(["bash", str(SCRIPTS / "smoke-test.sh"), url, "2", "0"], ROOT)


def test_smoke_test_passes_on_a_healthy_deployment(server):
    result = smoke(f"http://127.0.0.1:{server.server_port}/")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_smoke_test_fails_when_the_database_is_unavailable(server):
    server.status = 503
    result = smoke(f"http://127.0.0.1:{server.server_port}")
    assert result.returncode == 1
    assert "FAILED" in result.stderr


def test_smoke_test_needs_a_url():
    assert run(["bash", str(SCRIPTS / "smoke-test.sh"), ""], ROOT).returncode == 2


# ---- apply-rulesets.sh --------------------------------------------------------------------

FAKE_GH = r"""
import json, os, sys
state_path = os.environ["FAKE_GH_STATE"]
state = json.load(open(state_path)) if os.path.exists(state_path) else {"next": 1, "rulesets": []}
args = sys.argv[1:]
with open(os.environ["FAKE_GH_LOG"], "a") as log:
    log.write(" ".join(a for a in args if not a.startswith("/")) + "\n")
assert args[0] == "api", args
method = args[args.index("--method") + 1] if "--method" in args else "GET"
path = next(a for a in args[1:] if a.startswith("repos/"))
if method == "GET":
    # Two pages, like --paginate prints them: an organisation ruleset of the same name too.
    org = [{"id": 999, "name": "main", "source_type": "Organization"}]
    print(json.dumps(org)); print(json.dumps(state["rulesets"]))
else:
    body = json.load(open(args[args.index("--input") + 1]))
    if method == "POST":
        body.update(id=state["next"], source_type="Repository"); state["next"] += 1
        state["rulesets"].append(body)
    else:
        rid = int(path.rsplit("/", 1)[1])
        [old] = [r for r in state["rulesets"] if r["id"] == rid]
        body.update(id=rid, source_type="Repository")
        state["rulesets"][state["rulesets"].index(old)] = body
    json.dump(state, open(state_path, "w"))
    print(json.dumps(body))
"""


@pytest.fixture
def fake_gh(tmp_path: Path) -> dict:
    """PATH and env for a fake `gh` that keeps rulesets in a JSON file (the script needs jq)."""
    find_tool("jq")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(f"#!{sys.executable}\n{FAKE_GH}")
    gh.chmod(0o755)
    env = dict(os.environ)
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
        FAKE_GH_STATE=str(tmp_path / "state.json"),
        FAKE_GH_LOG=str(tmp_path / "calls.log"),
    )
    return env


def apply_rulesets(env: dict) -> subprocess.CompletedProcess:
    return run(["bash", str(SCRIPTS / "apply-rulesets.sh"), "acme/minitwit"], ROOT, env)


def test_apply_rulesets_creates_then_updates_in_place(fake_gh):
    first = apply_rulesets(fake_gh)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created ruleset") == 2
    state = json.loads(Path(fake_gh["FAKE_GH_STATE"]).read_text())
    assert sorted(r["name"] for r in state["rulesets"]) == ["develop", "main"]

    second = apply_rulesets(fake_gh)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("updated ruleset") == 2
    after = json.loads(Path(fake_gh["FAKE_GH_STATE"]).read_text())
    # Same two rulesets with the same ids: nothing duplicated, the organisation's untouched.
    assert [(r["id"], r["name"]) for r in after["rulesets"]] == [(r["id"], r["name"]) for r in state["rulesets"]]
    local = json.loads((ROOT / ".github/rulesets/main.json").read_text())
    [main] = [r for r in after["rulesets"] if r["name"] == "main"]
    assert main["rules"] == local["rules"]
    calls = Path(fake_gh["FAKE_GH_LOG"]).read_text()
    assert "rulesets/999" not in calls


def test_apply_rulesets_dry_run_changes_nothing(fake_gh):
    env = dict(fake_gh, DRY_RUN="1")
    result = apply_rulesets(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("DRY_RUN: gh api --method POST") == 2
    assert not Path(fake_gh["FAKE_GH_STATE"]).exists()
