"""scripts/check-image-updates.sh: an image with a published Debian security update not applied fails.

The package database is real: this Debian machine's own dpkg status (every package installed here,
at the version installed), in a root filesystem made in tmp_path, and once as a real image made
from that tree by `docker import`. The security suite is made up: a Packages index, given with
``--packages``, that lists installed packages at a higher, the same or a lower version. The build
(scripts/build-images.sh) runs the same script against the real suite, fetched with apt.
"""

import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from testkit import REPO_ROOT
from testkit.skip import skip_or_fail

CHECK = REPO_ROOT / "scripts" / "check-image-updates.sh"
HOST_STATUS = Path("/var/lib/dpkg/status")


def installed_version(package: str) -> str:
    """The version of ``package`` installed on this machine (and so in the test root)."""
    return subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True, check=True
    ).stdout


def run_check(*args: str | Path) -> subprocess.CompletedProcess:
    """Run the check; its verdicts are on stdout (ok) and stderr (FAILED)."""
    return subprocess.run([CHECK, *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def security_index(path: Path, *packages: tuple[str, str, str]) -> str:
    """Write a made-up bookworm-security Packages index; return the --packages argument for it."""
    path.write_text(
        "".join(f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\n\n" for name, version, arch in packages)
    )
    return f"bookworm={path}"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    """A root filesystem holding this machine's real dpkg database, labelled Debian 12 (bookworm)."""
    if not HOST_STATUS.is_file() or not shutil.which("dpkg"):
        skip_or_fail("this test reads a real dpkg database: it needs a Debian machine")
    root = tmp_path / "rootfs"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "usr/lib").mkdir(parents=True)
    shutil.copy(HOST_STATUS, root / "var/lib/dpkg/status")
    (root / "usr/lib/os-release").write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n'
    )
    return root


def test_a_newer_version_in_the_security_suite_fails_and_names_the_package(rootfs, tmp_path):
    """One architecture-specific and one `all` package behind the suite: both are named, old -> new."""
    dpkg, keyring = installed_version("dpkg"), installed_version("debian-archive-keyring")
    index = security_index(
        tmp_path / "Packages",
        ("dpkg", f"{dpkg}+deb12u1", "amd64"),
        ("dpkg", "0.1", "amd64"),
        ("debian-archive-keyring", f"{keyring}+deb12u1", "all"),
    )
    result = run_check("--packages", index, rootfs)
    assert result.returncode == 1
    assert f"FAILED: {rootfs}: 2 pending update(s) from bookworm-security:" in result.stderr
    assert f"dpkg {dpkg} -> {dpkg}+deb12u1" in result.stderr
    assert f"debian-archive-keyring {keyring} -> {keyring}+deb12u1" in result.stderr


def test_the_same_or_an_older_version_in_the_suite_passes(rootfs, tmp_path):
    """Installed at the suite's version, or newer (a point release after the security upload): nothing pending."""
    index = security_index(
        tmp_path / "Packages",
        ("dpkg", installed_version("dpkg"), "amd64"),
        ("debian-archive-keyring", "2017.5", "all"),
        ("minitwit-not-installed-anywhere", "99", "amd64"),
    )
    result = run_check("--packages", index, rootfs)
    assert result.returncode == 0, result.stderr
    assert "nothing pending from bookworm-security" in result.stdout
    assert "2 of them in the suite" in result.stdout


def test_a_removed_package_is_not_pending(rootfs, tmp_path):
    """A package whose files are gone (only its configuration left) is no upgrade: apt would not install it."""
    status = rootfs / "var/lib/dpkg/status"
    stanzas = status.read_text().split("\n\n")
    at = next(i for i, stanza in enumerate(stanzas) if stanza.startswith("Package: dpkg\n"))
    stanzas[at] = stanzas[at].replace("Status: install ok installed", "Status: deinstall ok config-files")
    status.write_text("\n\n".join(stanzas))
    index = security_index(tmp_path / "Packages", ("dpkg", f"{installed_version('dpkg')}+deb12u1", "amd64"))
    assert run_check("--packages", index, rootfs).returncode == 0


def test_an_image_without_a_package_database_is_reported_not_failed(tmp_path):
    """FROM scratch (local/traefik): nothing apt could upgrade, and no index is needed to say so."""
    (tmp_path / "scratch").mkdir()
    result = run_check(tmp_path / "scratch")
    assert result.returncode == 0
    assert "no dpkg database" in result.stdout


def test_a_release_without_a_codename_fails(rootfs, tmp_path):
    """Without VERSION_CODENAME (testing, unstable) there is no security suite to compare with: not a pass."""
    (rootfs / "usr/lib/os-release").write_text('PRETTY_NAME="Debian GNU/Linux trixie/sid"\n')
    result = run_check("--packages", security_index(tmp_path / "Packages"), rootfs)
    assert result.returncode == 1
    assert "no VERSION_CODENAME" in result.stderr


def test_a_real_image_is_read_without_being_started(rootfs, tmp_path):
    """`docker import` of the same tree: the status is copied out of a created container; one failing image fails the run."""
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "info"], capture_output=True, check=False).returncode != 0:
        skip_or_fail("docker with a running daemon is needed")
    archive, image = tmp_path / "rootfs.tar", f"local/check-image-updates-test:{uuid.uuid4().hex[:12]}"
    with tarfile.open(archive, "w") as tar:
        tar.add(rootfs, arcname=".")
    subprocess.run([docker, "import", archive, image], capture_output=True, check=True)
    try:
        dpkg = installed_version("dpkg")
        index = security_index(tmp_path / "Packages", ("dpkg", f"{dpkg}+deb12u1", "amd64"))
        result = run_check("--packages", index, image, rootfs / "usr")
        assert result.returncode == 1
        assert f"FAILED: {image}: 1 pending update(s)" in result.stderr
        assert f"dpkg {dpkg} -> {dpkg}+deb12u1" in result.stderr
        assert f"no dpkg database: {rootfs / 'usr'}" in result.stdout
        assert "1 of 2 image(s) have pending security updates" in result.stderr
    finally:
        subprocess.run([docker, "rmi", image], capture_output=True, check=False)
