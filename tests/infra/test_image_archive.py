"""Deploying without a registry: deploy.yml's image archive, run for real on this machine's engine.

The release's two images are tiny (``FROM scratch``, one file) and built here with BuildKit for
amd64 and arm64, so the archives are a few kilobytes. deploy.yml runs against the local manager of
``test_preflight`` with ``--tags images``: the preflight, the Docker CLI check and the play that
copies and loads the archive, nothing of the stack. The archive lands in ``tmp_path``, not in
/var/lib/minitwit; the images are removed from the engine afterwards.
"""

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from test_preflight import assert_refused_before_any_change
from test_preflight import docker_cli
from test_preflight import good_local_inventory
from test_preflight import run_playbook

from testkit.skip import skip_or_fail

APP = f"local/archive-test-{os.getpid()}"
POSTGRES = f"{APP}-postgres"
AMD64 = "sha-0123456789abcdef0123456789abcdef01234567"
ARM64 = "sha-arm64"


def docker(*args: str, cwd: Path | None = None) -> str:
    """Run the Debian docker.io CLI (BuildKit without the buildx plugin); return its stdout."""
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    result = subprocess.run(
        ["/usr/bin/docker", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The release's app and PostgreSQL images, tagged AMD64 for amd64 and ARM64 for arm64."""
    docker_cli("/usr/bin/docker")
    docker_cli("/usr/local/bin/docker")
    if os.geteuid() != 0:
        skip_or_fail("the archive play writes root-owned files: run as root (as CI does)")
    context = tmp_path_factory.mktemp("image")
    (context / "Dockerfile").write_text("FROM scratch\nCOPY probe /probe\n")
    (context / "probe").write_text("a stand-in for the release\n")
    for tag, platform in ((AMD64, "linux/amd64"), (ARM64, "linux/arm64")):
        for name in (APP, POSTGRES):
            docker("build", "--quiet", "--platform", platform, "--tag", f"{name}:{tag}", ".", cwd=context)
    yield
    docker("image", "rm", "--force", *(f"{name}:{tag}" for name in (APP, POSTGRES) for tag in (AMD64, ARM64)))


def save(path: Path, *refs: str) -> Path:
    """docker save the images into an archive, as scripts/release-archive.sh does."""
    docker("save", "--output", str(path), *refs)
    return path


def save_manifest(path: Path, repo_tags: list[str]) -> Path:
    """A tar holding only the manifest.json of an archive with these tags (what the preflight reads)."""
    manifest = path.with_suffix(".json")
    manifest.write_text(json.dumps([{"RepoTags": repo_tags}]))
    with tarfile.open(path, "w") as tar:
        tar.add(manifest, arcname="manifest.json")
    return path


def deploy_images(tmp_path: Path, archive: str, tag: str = AMD64, cwd: Path | None = None, image: str = ""):
    """deploy.yml's checks and its image play only, the archive copied into tmp_path/node."""
    args = ["--tags", "images", "-e", "minitwit_docker_cli=/usr/local/bin/docker"]
    args += ["-e", f"minitwit_image={image or f'{APP}:{tag}'}", "-e", f"minitwit_image_archive={archive}"]
    args += ["-e", f"minitwit_image_archive_dir={tmp_path}/node"]
    return run_playbook("deploy.yml", good_local_inventory(tmp_path), *args, cwd=cwd or tmp_path)


def task_result(output: str, task: str) -> str:
    """What the run printed for one task of the role, up to the next task."""
    return output.split(f"TASK [minitwit : {task}]", 1)[1].split("TASK [", 1)[0]


def in_engine(ref: str) -> bool:
    """Whether this machine's engine holds the image."""
    result = subprocess.run(["/usr/bin/docker", "image", "inspect", ref], capture_output=True, timeout=30, check=False)
    return result.returncode == 0


def test_a_relative_archive_is_read_where_ansible_playbook_runs_and_loaded(images, tmp_path):
    """From a directory other than the repository root, `minitwit_image_archive=release.tar` is that
    directory's file: copied to the node, loaded; a second run changes nothing."""
    operator = tmp_path / "operator"
    operator.mkdir()
    save(operator / "release.tar", f"{APP}:{AMD64}", f"{POSTGRES}:{AMD64}")
    docker("image", "rm", f"{APP}:{AMD64}", f"{POSTGRES}:{AMD64}")  # the node has neither yet
    code, output = deploy_images(tmp_path, "release.tar", cwd=operator)
    assert code == 0, output
    assert (tmp_path / "node" / "release.tar").read_bytes() == (operator / "release.tar").read_bytes()
    assert "changed: [node-1]" in task_result(output, "Ensure the archive's images are loaded into the node's engine.")
    assert in_engine(f"{APP}:{AMD64}") and in_engine(f"{POSTGRES}:{AMD64}")
    code, output = deploy_images(tmp_path, "release.tar", cwd=operator)
    assert code == 0 and "changed=0" in output, output


def test_a_missing_archive_is_named_with_where_it_was_looked_for(tmp_path):
    """A relative path that is not there: the preflight names the file it looked for, before any change."""
    code, output = deploy_images(tmp_path, "release.tar")
    assert_refused_before_any_change(code, output)
    assert (
        f"minitwit_image_archive release.tar is not a file on this machine (looked for {tmp_path}/release.tar, "
        "relative to the directory ansible-playbook runs in): pass the archive scripts/release-archive.sh printed"
    ) in output


def test_an_archive_without_the_postgres_image_is_refused_naming_it(images, tmp_path):
    """The stack runs two images from the archive: one lacking PostgreSQL is refused before any copy."""
    archive = save(tmp_path / "app-only.tar", f"{APP}:{AMD64}")
    code, output = deploy_images(tmp_path, str(archive))
    assert_refused_before_any_change(code, output)
    assert f"{archive} lacks {POSTGRES}:{AMD64}, which the stack runs (it holds {APP}:{AMD64})" in output
    assert "make it with scripts/release-archive.sh, which saves both images of the release" in output
    assert not (tmp_path / "node").exists()


def test_a_file_that_is_no_image_archive_is_refused(tmp_path):
    """Any tar (or any file) without docker save's manifest.json is named as such."""
    archive = tmp_path / "release.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(__file__, arcname="notes.py")
    code, output = deploy_images(tmp_path, str(archive))
    assert_refused_before_any_change(code, output)
    assert f"{archive} is not a docker save archive (it has no manifest.json)" in output


def test_images_built_for_another_architecture_are_refused_before_the_stack(images, tmp_path):
    """arm64 images on an amd64 node: loaded, then refused by name and architecture, with the fix."""
    node_arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True)
    if node_arch.stdout.strip() != "amd64":
        skip_or_fail("the refusal is shown with arm64 images on an amd64 machine")
    archive = save(tmp_path / "arm64.tar", f"{APP}:{ARM64}", f"{POSTGRES}:{ARM64}")
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert sorted(tag for image in manifest for tag in image["RepoTags"]) == [f"{POSTGRES}:{ARM64}", f"{APP}:{ARM64}"]
    code, output = deploy_images(tmp_path, str(archive), tag=ARM64)
    assert code != 0, output
    for ref in (f"{APP}:{ARM64}", f"{POSTGRES}:{ARM64}"):
        assert (
            f"REFUSED: the stack was not touched. {ref} is built for arm64, but node-1 runs amd64: "
            "rebuild the archive for it, scripts/release-archive.sh --platform linux/amd64"
        ) in output


def test_a_digest_is_refused_with_an_archive(tmp_path):
    """Loaded images have no registry digest: with an archive the release is named by its tag."""
    archive = save_manifest(tmp_path / "release.tar", [])
    digest = f"{APP}@sha256:{'0' * 64}"
    code, output = deploy_images(tmp_path, str(archive), image=digest)
    assert_refused_before_any_change(code, output)
    assert f"{digest} is a digest, but the images of an archive are found by tag" in output
