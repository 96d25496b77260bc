"""scripts/release-archive.sh: a release's two images for the VM's platform, in one archive.

The script runs from a copy in a throwaway git repository, so its git checks see a tree of the
test's making. Most tests give it a fake ``docker`` that records every call, to read the exact
build arguments; one runs it with the real BuildKit CLI on stand-in Dockerfiles (``FROM scratch``)
and reads the archive it saved. The real app image is built by the same command with the real
Dockerfile (docs/deployment.md, section 6); here the build arguments are checked against the
ARGs the real Dockerfiles declare.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from testkit import REPO_ROOT
from testkit.skip import skip_or_fail

SCRIPT = REPO_ROOT / "scripts" / "release-archive.sh"
# Stand-ins for the two Dockerfiles: the same build arguments, nothing to download.
APP_DOCKERFILE = """ARG BASE=scratch
FROM ${BASE}
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.version="${VERSION}" org.opencontainers.image.revision="${REVISION}"
COPY probe /probe
"""
POSTGRES_DOCKERFILE = "ARG BASE=scratch\nFROM ${BASE}\nCOPY probe /probe\n"
# A docker that records its calls (one JSON list per line) and answers as a BuildKit CLI would.
FAKE_DOCKER = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps({{"args": args, "buildkit": os.environ.get("DOCKER_BUILDKIT")}}) + "\\n")
state = os.environ["FAKE_DOCKER_LOG"] + ".platform"
if args[0] == "build":
    open(state, "w").write(args[args.index("--platform") + 1])
elif args[:2] == ["image", "inspect"]:
    print(os.environ.get("FAKE_BUILT") or open(state).read())
elif args[0] == "save":
    open(args[args.index("--output") + 1], "w").write("an archive")
"""


def git(repo: Path, *args: str) -> str:
    """Run git in repo; return its stripped stdout."""
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed checkout with the script and stand-in Dockerfiles, tagged v1.4.0 one commit back."""
    path = tmp_path / "repo"
    (path / "scripts").mkdir(parents=True)
    (path / "docker" / "postgres").mkdir(parents=True)
    shutil.copy(SCRIPT, path / "scripts")
    (path / "Dockerfile").write_text(APP_DOCKERFILE)
    (path / "docker" / "postgres" / "Dockerfile").write_text(POSTGRES_DOCKERFILE)
    for context in (path, path / "docker" / "postgres"):
        (context / "probe").write_text("a stand-in for the release\n")
    (path / ".gitignore").write_text("artifacts/\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "-c", "user.email=ci@example.org", "-c", "user.name=CI", "commit", "-q", "--allow-empty", "-m", "v1")
    git(path, "tag", "v1.4.0")
    git(path, "add", ".")
    git(path, "-c", "user.email=ci@example.org", "-c", "user.name=CI", "commit", "-q", "-m", "release")
    return path


@pytest.fixture
def fake_docker(tmp_path: Path) -> Path:
    """The path of the recording docker; its calls go to <path>.log."""
    path = tmp_path / "docker"
    path.write_text(FAKE_DOCKER)
    path.chmod(0o755)
    return path


def release(repo: Path, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run the script of repo with the environment's extra variables."""
    return subprocess.run(
        [str(repo / "scripts" / "release-archive.sh"), *args],
        cwd=cwd or repo,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def calls(fake: Path) -> list[dict]:
    """The fake docker's calls, in order."""
    log = Path(f"{fake}.log")
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run_with_fake(repo: Path, fake: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run the script with the fake docker; return the result and the docker calls."""
    env = {"DOCKER": str(fake), "FAKE_DOCKER_LOG": f"{fake}.log", "CA_FILE": "", **env}
    result = release(repo, *args, **env)
    return result, calls(fake)


def test_default_release_builds_both_images_for_amd64_with_the_version(repo, fake_docker):
    """The pipeline's tags, linux/amd64, VERSION from git describe and REVISION the commit, with
    BuildKit; one archive of both in artifacts/, and the deploy command with its absolute path."""
    commit = git(repo, "rev-parse", "HEAD")
    version = git(repo, "describe", "--tags", "--always")
    assert version.startswith("v1.4.0-1-g")
    result, docker = run_with_fake(repo, fake_docker)
    assert result.returncode == 0, result.stderr
    app, postgres = f"minitwit:sha-{commit}", f"minitwit-postgres:sha-{commit}"
    labels = ["--label", f"org.opencontainers.image.version={version}"]
    labels += ["--label", f"org.opencontainers.image.revision={commit}"]
    build = ["build", "--quiet", "--platform", "linux/amd64", "--tag"]
    archive = f"{repo}/artifacts/release/minitwit-{commit[:12]}-amd64.tar"
    assert [call["args"] for call in docker] == [
        [*build, app, *labels, "--build-arg", f"VERSION={version}", "--build-arg", f"REVISION={commit}", "."],
        ["image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", app],
        [*build, postgres, *labels, "docker/postgres"],
        ["image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", postgres],
        ["save", "--output", archive, app, postgres],
    ]
    assert [call["buildkit"] for call in docker if call["args"][0] == "build"] == ["1", "1"]
    assert (
        f"cd {repo} && ansible-playbook ansible/playbooks/deploy.yml -i ansible/inventories/production/hosts.yml "
        f"-e minitwit_image={app} -e minitwit_image_archive={archive}"
    ) in result.stdout


def test_options_platform_name_output_bases_and_ca(repo, fake_docker, tmp_path):
    """arm64, a registry-style name, an output and an inventory relative to where it is run from,
    the base images overridden (CI) and the CA bundle passed to pip as a BuildKit secret."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ca = tmp_path / "ca.pem"
    ca.write_text("a CA\n")
    env = {"DOCKER": str(fake_docker), "FAKE_DOCKER_LOG": f"{fake_docker}.log", "CA_FILE": str(ca)}
    env |= {"APP_BASE": "local/python:3.11-slim", "POSTGRES_BASE": "local/rootfs-postgres:15-pgbackrest"}
    args = ["--platform", "linux/arm64", "--name", "ghcr.io/someone/minitwit-ops", "--output", "out/rel.tar"]
    result = release(repo, *args, "--inventory", "inv/hosts.yml", cwd=elsewhere, **env)
    assert result.returncode == 0, result.stderr
    app_build, _, postgres_build, _, save = (call["args"] for call in calls(fake_docker))
    commit = git(repo, "rev-parse", "HEAD")
    assert app_build[:5] == ["build", "--quiet", "--platform", "linux/arm64", "--tag"]
    assert app_build[5] == f"ghcr.io/someone/minitwit-ops:sha-{commit}"
    assert app_build[-5:] == ["--build-arg", "BASE=local/python:3.11-slim", "--secret", f"id=ca,src={ca}", "."]
    assert postgres_build[5] == f"ghcr.io/someone/minitwit-ops-postgres:sha-{commit}"
    assert postgres_build[-3:] == ["--build-arg", "BASE=local/rootfs-postgres:15-pgbackrest", "docker/postgres"]
    assert save[:2] == ["save", "--output"] and save[2] == f"{elsewhere}/out/rel.tar"
    assert f"-i {elsewhere}/inv/hosts.yml -e minitwit_image=ghcr.io/someone/minitwit-ops:sha-{commit}" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["--platform", "linux/s390x"], 1, "--platform must be linux/amd64 or linux/arm64"),
        (["--platform"], 2, "usage: "),
        (["--output", ""], 2, "usage: "),
        (["--name", "Minitwit"], 1, "--name must be an image name in lower case without a tag or digest"),
        (["--name", "ghcr.io/someone/minitwit:1.0"], 1, "--name must be an image name"),
        (["--push"], 2, "unknown argument: --push"),
    ],
)
def test_bad_arguments_are_refused_before_any_build(repo, fake_docker, args, code, said):
    """A wrong platform, name or option stops the script before docker is called."""
    result, docker = run_with_fake(repo, fake_docker, *args)
    assert (result.returncode, docker) == (code, [])
    assert said in result.stderr


def test_uncommitted_changes_are_refused_unless_forced(repo, fake_docker):
    """A release is a commit; --force builds the tree anyway, marked dirty in version and tag."""
    (repo / "probe").write_text("changed\n")
    (repo / "notes.txt").write_text("untracked, and inside the build context\n")
    result, docker = run_with_fake(repo, fake_docker)
    assert (result.returncode, docker) == (1, [])
    assert "the working tree has uncommitted changes (git status); commit them, or pass --force" in result.stderr
    result, docker = run_with_fake(repo, fake_docker, "--force")
    assert result.returncode == 0, result.stderr
    commit = git(repo, "rev-parse", "HEAD")
    app_build = docker[0]["args"]
    assert re.fullmatch(rf"minitwit:sha-{commit}-dirty-\d{{8}}T\d{{6}}Z", app_build[5])
    assert f"VERSION={git(repo, 'describe', '--tags', '--always')}-dirty" in app_build


def test_an_image_built_for_another_platform_is_refused(repo, fake_docker):
    """An image that comes out for another platform than asked is caught before anything is saved."""
    result, docker = run_with_fake(repo, fake_docker, FAKE_BUILT="linux/arm64")
    assert result.returncode == 1
    assert f"minitwit:sha-{git(repo, 'rev-parse', 'HEAD')} was built for linux/arm64, not linux/amd64" in result.stderr
    assert [call["args"][0] for call in docker] == ["build", "image"]


def test_the_build_arguments_are_those_the_real_dockerfiles_declare(repo, fake_docker):
    """Every --build-arg the script passes is an ARG of the Dockerfile it builds."""
    _, docker = run_with_fake(repo, fake_docker, APP_BASE="base", POSTGRES_BASE="base")
    for call, dockerfile in zip(
        (c["args"] for c in docker if c["args"][0] == "build"),
        (REPO_ROOT / "Dockerfile", REPO_ROOT / "docker" / "postgres" / "Dockerfile"),
        strict=True,
    ):
        declared = set(re.findall(r"^ARG (\w+)", dockerfile.read_text(), flags=re.MULTILINE))
        passed = {value.split("=")[0] for flag, value in zip(call, call[1:], strict=False) if flag == "--build-arg"}
        assert passed and passed <= declared, (dockerfile, passed, declared)


def test_a_real_build_saves_both_images_for_the_platform(repo, tmp_path):
    """With the real BuildKit CLI: the archive holds both tags, built for arm64, labelled with the
    version and the commit."""
    if not os.access("/usr/bin/docker", os.X_OK):
        skip_or_fail("/usr/bin/docker (a CLI that builds with BuildKit) is not installed")
    name = f"local/release-test-{os.getpid()}"
    commit = git(repo, "rev-parse", "HEAD")
    args = ["--platform", "linux/arm64", "--name", name, "--output", str(tmp_path / "release.tar")]
    result = release(repo, *args, DOCKER="/usr/bin/docker", CA_FILE="")
    try:
        assert result.returncode == 0, result.stderr
        with tarfile.open(tmp_path / "release.tar") as tar:
            manifest = json.load(tar.extractfile("manifest.json"))
            configs = [json.load(tar.extractfile(image["Config"])) for image in manifest]
    finally:
        for image in (name, f"{name}-postgres"):
            subprocess.run(
                ["/usr/bin/docker", "image", "rm", f"{image}:sha-{commit}"], capture_output=True, check=False
            )
    assert sorted(tag for image in manifest for tag in image["RepoTags"]) == [
        f"{name}-postgres:sha-{commit}",
        f"{name}:sha-{commit}",
    ]
    assert [config["architecture"] for config in configs] == ["arm64", "arm64"]
    for config in configs:
        assert config["config"]["Labels"]["org.opencontainers.image.revision"] == commit
        assert config["config"]["Labels"]["org.opencontainers.image.version"].startswith("v1.4.0-1-g")
