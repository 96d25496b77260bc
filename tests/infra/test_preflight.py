"""The preflight that protects the operator: the real ansible-playbook, before any change.

Inventories are built in tmp_path from the shipped files (production vars.yml, vault.example.yml,
hosts.yml). Hosts that would be reached over SSH use ``/bin/false`` as the ssh program, so even a
preflight that let a run through could not reach (let alone change) any machine; hosts that pass
use ``connection: local`` and only the preflight playbook, which changes nothing.
"""

import json
import os
import secrets
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml
from helpers.programs import find_tool

from testkit import REPO_ROOT
from testkit.skip import skip_or_fail

PRODUCTION = REPO_ROOT / "ansible" / "inventories" / "production"
PLAYBOOKS = REPO_ROOT / "ansible" / "playbooks"
# A real bcrypt line (htpasswd -nbB admin admin): the shape Traefik's basicAuth accepts.
GOOD_USERS = "admin:$2y$05$uTaKyu6jbS7bPzMj2Vh4yekKqhs4g2KgAhTqhG4oO6m5kJ.ZtX6Pa"
VAULT_PASSWORD = "preflight-test-vault-password"
# Alert receivers' addresses (vars.yml): not secret, but never the example ones.
GOOD_ALERT_ADDRESSES = {
    "minitwit_alertmanager_smtp_smarthost": "smtp.ops-demo.net:587",
    "minitwit_alertmanager_smtp_from": "alerts@ops-demo.net",
    "minitwit_alertmanager_smtp_username": "alerts@ops-demo.net",
    "minitwit_alertmanager_email_page_to": "oncall@ops-demo.net",
    "minitwit_alertmanager_email_ticket_to": "ops@ops-demo.net",
    # The backup repository (ansible/roles/pgbackrest): plain settings, the keys are in the vault.
    "pgbackrest_repo_s3_endpoint": "s3.eu-central-1.amazonaws.com",
    "pgbackrest_repo_s3_bucket": "ops-demo-minitwit-backups",
    "pgbackrest_repo_s3_region": "eu-central-1",
}
SECRETS = {
    "vault_minitwit_secret_key",
    "vault_minitwit_postgres_password",
    "vault_minitwit_grafana_admin_password",
    "vault_minitwit_simulator_auth",
    "vault_minitwit_traefik_dashboard_users",
    "vault_minitwit_postgres_monitor_password",
    "vault_minitwit_alertmanager_smtp_password",
    "vault_minitwit_alertmanager_chat_webhook_url",
    "vault_minitwit_alertmanager_heartbeat_url",
    "vault_pgbackrest_repo_s3_key",
    "vault_pgbackrest_repo_s3_key_secret",
    "vault_pgbackrest_cipher_pass",
}
# Tasks that change a host: none may start when the preflight refuses.
CHANGING_TASKS = ("TASK [base :", "TASK [docker :", "TASK [swarm :", "TASK [minitwit : Ensure")


def good_vault() -> dict:
    """Vault values the preflight must accept (generated the way docs/deployment.md says)."""
    return {
        "vault_minitwit_secret_key": secrets.token_urlsafe(48),
        "vault_minitwit_simulator_auth": "simulator:" + secrets.token_urlsafe(16),
        "vault_minitwit_postgres_password": secrets.token_urlsafe(24),
        "vault_minitwit_grafana_admin_password": secrets.token_urlsafe(24),
        "vault_minitwit_traefik_dashboard_users": GOOD_USERS,
        "vault_minitwit_postgres_monitor_password": secrets.token_urlsafe(24),
        "vault_minitwit_alertmanager_smtp_password": secrets.token_urlsafe(24),
        "vault_minitwit_alertmanager_chat_webhook_url": "https://chat.ops-demo.net/hooks/" + secrets.token_hex(12),
        "vault_minitwit_alertmanager_heartbeat_url": "https://heartbeat.ops-demo.net/ping/" + secrets.token_hex(12),
        "vault_pgbackrest_repo_s3_key": "AKIA" + secrets.token_hex(8).upper(),
        "vault_pgbackrest_repo_s3_key_secret": secrets.token_urlsafe(30),
        "vault_pgbackrest_cipher_pass": secrets.token_urlsafe(32),
    }


def write_yaml(path: Path, data) -> Path:
    """Write ``data`` as YAML, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def production_inventory(root: Path, vault: dict | None, vars_overrides: dict | None = None) -> Path:
    """A copy of the production inventory; its hosts' ssh program is /bin/false (nothing is reached)."""
    shutil.copy(PRODUCTION / "hosts.yml", root / "hosts.yml")
    shutil.copy(PRODUCTION / "vault.example.yml", root / "vault.example.yml")
    group_vars = root / "group_vars" / "all"
    variables = yaml.safe_load((PRODUCTION / "group_vars" / "all" / "vars.yml").read_text())
    write_yaml(group_vars / "vars.yml", {**variables, **(vars_overrides or {})})
    write_yaml(group_vars / "test-connection.yml", {"ansible_ssh_executable": "/bin/false"})
    if vault is not None:
        write_yaml(group_vars / "vault.yml", vault)
    return root / "hosts.yml"


def local_inventory(root: Path, **host_vars) -> Path:
    """One swarm manager reached with connection local, as root without sudo (like the ci inventory)."""
    node = {
        "ansible_connection": "local",
        "ansible_become": False,
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        **host_vars,
    }
    return write_yaml(
        root / "hosts.yml",
        {"all": {"children": {"swarm_managers": {"hosts": {"node-1": node}}, "swarm_workers": {"hosts": {}}}}},
    )


def encrypt(path: Path, password_file: Path):
    """Encrypt a vault file in place, as the operator does."""
    subprocess.run(
        [find_tool("ansible-vault"), "encrypt", "--vault-password-file", str(password_file), str(path)],
        check=True,
        capture_output=True,
    )


def run_playbook(playbook: str, inventory: Path, *args: str, vault_password: Path | None = None, cwd: Path = REPO_ROOT):
    """Run a real playbook (from the repository root unless ``cwd``); return (exit code, output)."""
    env = {**os.environ, "ANSIBLE_HOME": "/tmp/minitwit-ansible-home", "ANSIBLE_NOCOLOR": "1"}
    # Elsewhere than the root, the operator names the settings (roles_path is relative to the file).
    env["ANSIBLE_CONFIG"] = str(REPO_ROOT / "ansible.cfg")
    env.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)
    if vault_password:
        env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(vault_password)
    result = subprocess.run(
        [find_tool("ansible-playbook"), "-i", str(inventory), str(PLAYBOOKS / playbook), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=env,
    )
    return result.returncode, " ".join((result.stdout + result.stderr).split())


def assert_refused_before_any_change(code: int, output: str, said: str = "nothing was changed"):
    """The run failed in the preflight, reached no host and started no changing task."""
    assert code != 0, output
    assert f"PREFLIGHT REFUSED: {said}" in output
    assert "unreachable=0" in output and "changed=0" in output
    assert not [task for task in CHANGING_TASKS if task in output]


@pytest.mark.parametrize("playbook", ["provision.yml", "deploy.yml", "site.yml"])
def test_the_shipped_placeholders_are_refused_before_any_change(tmp_path, playbook):
    """The operator who copies vault.example.yml and keeps the example inventory is stopped."""
    example_vault = yaml.safe_load((PRODUCTION / "vault.example.yml").read_text())
    inventory = production_inventory(tmp_path, example_vault)
    code, output = run_playbook(playbook, inventory)
    assert_refused_before_any_change(code, output)
    vault_file = f"{tmp_path}/group_vars/all/vault.yml"
    for name in SECRETS:
        assert f"still holds the CHANGE-ME placeholder of vault.example.yml: set {name} in {vault_file}" in output
    vars_file = f"{tmp_path}/group_vars/all/vars.yml"
    assert f"minitwit_domain is an example (minitwit.example.org), not yours: set it in {vars_file}" in output
    assert f"minitwit_acme_email is an example (ops@example.org), not yours: set it in {vars_file}" in output
    page_to = "minitwit_alertmanager_email_page_to is an example (oncall@example.org), not yours"
    assert f"{page_to}: set it in {vars_file}" in output
    smarthost = "minitwit_alertmanager_smtp_smarthost is an example (smtp.example.org:587), not yours"
    assert f"{smarthost}: set it in {vars_file}" in output
    assert (
        "ansible_host of minitwit-prod-1 is a documentation placeholder (203.0.113.10): "
        f"put the address of your VM in {tmp_path}/hosts.yml"
    ) in output
    assert f"{vault_file} is not encrypted: run ansible-vault encrypt {vault_file}" in output
    assert f"Change the vault with: ansible-vault edit {vault_file}" in output
    assert ("minitwit_image is not an immutable tag or digest" in output) == (playbook != "provision.yml")


def test_a_missing_vault_says_how_to_create_it(tmp_path):
    """No vault.yml yet: every secret is named, and so is the command sequence that creates the file."""
    inventory = production_inventory(tmp_path, vault=None, vars_overrides={"minitwit_domain": "twit.ops-demo.net"})
    code, output = run_playbook("provision.yml", inventory)
    assert_refused_before_any_change(code, output)
    for name in SECRETS:
        assert f"is not set: set {name} in {tmp_path}/group_vars/all/vault.yml" in output
    assert (
        f"{tmp_path}/group_vars/all/vault.yml does not exist yet: copy {tmp_path}/vault.example.yml there, "
        "replace every CHANGE-ME, then ansible-vault encrypt"
    ) in output
    assert "minitwit_domain is" not in output


def test_weak_malformed_and_locking_out_settings_are_each_named(tmp_path):
    """Short, predictable, malformed and plain-text secrets, and SSH logins provision.yml would lock out."""
    vault = {
        **good_vault(),
        "vault_minitwit_secret_key": "x" * 10 + secrets.token_hex(5),  # 20 characters
        "vault_minitwit_postgres_password": "a" * 40,
        "vault_minitwit_grafana_admin_password": "",
        "vault_minitwit_simulator_auth": "simulator",
        "vault_minitwit_traefik_dashboard_users": "admin:secret",
        "vault_minitwit_registry_username": "someone",
    }
    overrides = {
        "minitwit_domain": "twit.ops-demo.net",
        "minitwit_acme_email": "ops",
        "minitwit_grafana_domain": "grafana.example.com",
    }
    inventory = production_inventory(tmp_path, vault, overrides)
    hosts = {
        "minitwit-prod-1": {"ansible_host": "198.18.0.10", "ansible_user": "root"},
        "minitwit-prod-2": {"ansible_host": "198.18.0.11", "base_ssh_allow_users": ["admin"]},
    }
    write_yaml(inventory, {"all": {"children": {"swarm_managers": {"hosts": hosts}, "swarm_workers": {"hosts": {}}}}})
    code, output = run_playbook("provision.yml", inventory)
    assert_refused_before_any_change(code, output)
    for problem in [
        "minitwit_secret_key is too short (20 characters; at least 32, random): set vault_minitwit_secret_key",
        "minitwit_postgres_password is too predictable (1 different characters)",
        "minitwit_grafana_admin_password is not set: set vault_minitwit_grafana_admin_password",
        "minitwit_simulator_auth is not user:password",
        "minitwit_traefik_dashboard_users is not one user:hash line per user with a bcrypt or MD5 hash",
        "minitwit_registry_password is not set: set vault_minitwit_registry_password",
        "minitwit_acme_email is not an e-mail address (ops)",
        "minitwit_grafana_domain is an example (grafana.example.com)",
        "ansible_user is root, but provision.yml turns off root login over SSH",
        "ansible_user deploy is not in base_ssh_allow_users admin: provision.yml would lock Ansible out",
    ]:
        assert problem in output
    for name in (
        "vault_minitwit_secret_key",
        "vault_minitwit_postgres_password",
        "vault_minitwit_traefik_dashboard_users",
    ):
        assert vault[name] not in output  # secret values are never printed
    assert "minitwit_domain is" not in output and "ansible_host of" not in output


def test_good_settings_pass(tmp_path):
    """Real-looking values in an encrypted vault pass, the image included (deploy.yml's check)."""
    inventory = local_inventory(tmp_path)
    variables = yaml.safe_load((PRODUCTION / "group_vars" / "all" / "vars.yml").read_text())
    variables |= {"minitwit_domain": "twit.ops-demo.net", "minitwit_acme_email": "ops@ops-demo.net"}
    variables |= GOOD_ALERT_ADDRESSES
    write_yaml(tmp_path / "group_vars" / "all" / "vars.yml", variables)
    vault = write_yaml(tmp_path / "group_vars" / "all" / "vault.yml", good_vault())
    password = tmp_path / "vault-password"
    password.write_text(VAULT_PASSWORD)
    encrypt(vault, password)
    image = "-e minitwit_image=ghcr.io/someone/minitwit-ops:sha-0123456789abcdef0123456789abcdef01234567"
    code, output = run_playbook(
        "preflight.yml", inventory, "-e", "minitwit_preflight_image=true", *image.split(" ", 1), vault_password=password
    )
    assert code == 0, output
    assert "failed=0" in output and "PREFLIGHT REFUSED" not in output


def test_the_lab_inventory_passes(tmp_path):
    """scripts/lab.sh deploys with the lab inventory's generated secrets: they must pass preflight.

    The hosts file sits beside the lab's group_vars (as the one scripts/lab.sh writes), under a
    name of its own, so a running lab is not disturbed."""
    state = tmp_path / "lab-state"
    (state / "secrets").mkdir(parents=True)
    (state / "secrets" / "traefik_dashboard_users").write_text(GOOD_USERS + "\n")
    # The keys scripts/lab.sh makes for its S3 server.
    (state / "s3").mkdir()
    (state / "s3" / "access_key").write_text(secrets.token_hex(12) + "\n")
    (state / "s3" / "secret_key").write_text(secrets.token_hex(24) + "\n")
    inventory = REPO_ROOT / "ansible" / "inventories" / "lab" / f"preflight-test-{os.getpid()}.yml"
    inventory.write_text(
        "all:\n  children:\n    swarm_managers:\n      hosts:\n        node1:\n"
        "          ansible_connection: local\n          ansible_become: false\n"
        '          ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
    )
    try:
        args = ["-e", f"minitwit_ci_state_dir={state}", "-e", "minitwit_preflight_image=true"]
        code, output = run_playbook("preflight.yml", inventory, *args, "-e", "minitwit_image=local/minitwit:lab")
    finally:
        inventory.unlink()
    assert code == 0, output


def test_sudo_that_wants_a_password_is_explained(tmp_path):
    """become needs passwordless sudo or -K: a sudo asking for a password stops the run with both ways out."""
    fake_sudo = tmp_path / "sudo"
    fake_sudo.write_text('#!/bin/sh\necho "sudo: a password is required" >&2\nexit 1\n')
    fake_sudo.chmod(0o755)
    inventory = local_inventory(
        tmp_path,
        ansible_become=True,
        ansible_become_exe=str(fake_sudo),
        # Becoming the user Ansible already is skips sudo altogether: ask for another one.
        ansible_become_user="nobody",
        ansible_user="deploy",
        minitwit_domain="twit.ops-demo.net",
        minitwit_acme_email="ops@ops-demo.net",
        **GOOD_ALERT_ADDRESSES,
        **{name.removeprefix("vault_"): value for name, value in good_vault().items()},
    )
    code, output = run_playbook("preflight.yml", inventory)
    assert code != 0, output
    assert "deploy cannot become root on node-1" in output
    assert '"deploy ALL=(ALL) NOPASSWD:ALL" in a file under /etc/sudoers.d/' in output
    assert "run ansible-playbook with -K (--ask-become-pass)" in output
    assert "sudo: a password is required" in output


def docker_cli(path: str) -> str:
    """A real Docker CLI of this machine: Debian's docker.io (20.10) or Docker's own (28)."""
    if not os.access(path, os.X_OK):
        skip_or_fail(f"{path} not installed")
    return path


def good_local_inventory(root: Path) -> Path:
    """The local manager with every setting good, as in the sudo test."""
    return local_inventory(
        root,
        minitwit_domain="twit.ops-demo.net",
        minitwit_acme_email="ops@ops-demo.net",
        **GOOD_ALERT_ADDRESSES,
        **{name.removeprefix("vault_"): value for name, value in good_vault().items()},
    )


def test_a_docker_cli_that_cannot_wait_for_the_rollout_is_refused_before_the_stack_is_touched(tmp_path):
    """deploy.yml on Debian 12's own docker.io (20.10, no `stack deploy --detach`): refused on the
    manager, before the image archive is loaded or anything else changes."""
    cli = docker_cli("/usr/bin/docker")
    args = ["-e", f"minitwit_docker_cli={cli}", "-e", "minitwit_image=local/minitwit:ci"]
    # An archive the preflight accepts (its manifest names both images): copied if the check let it by.
    archive = tmp_path / "images.tar"
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps([{"RepoTags": ["local/minitwit:ci", "local/minitwit-postgres:ci"]}]))
    with tarfile.open(archive, "w") as tar:
        tar.add(manifest, arcname="manifest.json")
    args += ["-e", f"minitwit_image_archive={archive}"]
    code, output = run_playbook("deploy.yml", good_local_inventory(tmp_path), *args)
    assert_refused_before_any_change(code, output, said="the stack was not touched")
    assert f"`{cli} stack deploy` on node-1 has no --detach." in output
    assert "install Docker's packages (docker_install_source: docker, the default)" in output


def test_a_missing_docker_cli_is_named(tmp_path):
    """No CLI at that path: the same refusal, with why."""
    args = ["-e", "minitwit_docker_cli=/nonexistent/docker", "-e", "minitwit_image=local/minitwit:ci"]
    code, output = run_playbook("deploy.yml", good_local_inventory(tmp_path), *args)
    assert_refused_before_any_change(code, output, said="the stack was not touched")
    assert "`/nonexistent/docker stack deploy` on node-1 has no --detach (" in output


def test_a_docker_cli_with_detach_passes(tmp_path):
    """Docker's own CLI (28) passes; only the checks run (--tags preflight), nothing is deployed."""
    cli = docker_cli("/usr/local/bin/docker")
    args = ["--tags", "preflight", "-e", f"minitwit_docker_cli={cli}", "-e", "minitwit_image=local/minitwit:ci"]
    code, output = run_playbook("deploy.yml", good_local_inventory(tmp_path), *args)
    assert code == 0, output
    assert "Refuse a Docker CLI that cannot wait for the rollout" in output
    assert "failed=0" in output and "PREFLIGHT REFUSED" not in output
