"""Static consistency of ansible/ with the stack it deploys (no deployment needed).

The real deployment is the lab (scripts/lab.sh test); these checks catch drift between the role's
variables, the inventories, the vault examples and stack/*.yml before it gets that far.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers.programs import find_tool

from testkit import REPO_ROOT as ROOT

ANSIBLE = ROOT / "ansible"
STACK = ROOT / "stack"
ROLE_DEFAULTS = ANSIBLE / "roles" / "minitwit" / "defaults" / "main.yml"
PLAYBOOKS = sorted((ANSIBLE / "playbooks").glob("*.yml"))


def load(path: Path):
    """Parse one YAML file."""
    return yaml.safe_load(path.read_text())


def role_defaults() -> dict:
    """The minitwit role's defaults."""
    return load(ROLE_DEFAULTS)


def required_stack_inputs(*files: Path) -> set[str]:
    """Variables the compose files demand with ``${NAME:?...}`` or use bare (``${NAME}``)."""
    names = set()
    for path in files:
        names |= set(re.findall(r"\$\{([A-Z0-9_]+)(?::\?|\})", path.read_text()))
    return names


def test_every_external_stack_secret_is_created_by_the_role():
    stack = load(STACK / "minitwit.yml")
    wanted = {
        re.search(r"\$\{([A-Z0-9_]+)", spec["name"]).group(1)
        for spec in stack["secrets"].values()
        if spec.get("external")
    }
    created = {secret["env"] for secret in role_defaults()["minitwit_secrets"]}
    # pgBackRest's configuration is the pgbackrest role's secret (made and named in repository.yml).
    repository = load(ANSIBLE / "roles" / "pgbackrest" / "tasks" / "repository.yml")
    created |= {
        env for task in repository for env in task.get("ansible.builtin.set_fact", {}).get("pgbackrest_stack_env", {})
    }
    assert wanted == created


def test_every_required_stack_input_is_provided():
    defaults = role_defaults()
    config_versions = set(re.findall(r"^echo \"([A-Z_]+)=", (STACK / "config-versions.sh").read_text(), re.M))
    ci_extra = load(ANSIBLE / "inventories" / "lab" / "group_vars" / "all" / "vars.yml")["minitwit_stack_extra_env"]
    provided = set(defaults["minitwit_stack_base_env"]) | config_versions | set(ci_extra)
    provided |= {secret["env"] for secret in defaults["minitwit_secrets"]}
    missing = required_stack_inputs(STACK / "minitwit.yml", STACK / "ci.yml") - provided
    assert not missing


def test_the_stateful_node_label_matches_the_postgres_placement():
    labels = load(ANSIBLE / "roles" / "swarm" / "defaults" / "main.yml")["swarm_stateful_node_labels"]
    constraints = load(STACK / "minitwit.yml")["services"]["postgres"]["deploy"]["placement"]["constraints"]
    assert any(f"node.labels.{key} == {value}" in constraints for key, value in labels.items())


@pytest.mark.parametrize("env", ["production", "development"])
def test_every_vault_variable_used_is_in_the_example_vault(env):
    used = set(
        re.findall(
            r"\b(vault_[a-z0-9_]+)", (ANSIBLE / "inventories" / env / "group_vars" / "all" / "vars.yml").read_text()
        )
    )
    example = load(ANSIBLE / "inventories" / env / "vault.example.yml")
    assert used <= set(example)
    assert all("CHANGE-ME" in value or value == "" for value in example.values())


@pytest.mark.parametrize("env", ["production", "development"])
def test_no_real_vault_file_is_committed(env):
    vault = ANSIBLE / "inventories" / env / "group_vars" / "all" / "vault.yml"
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", str(vault)], cwd=ROOT, capture_output=True, check=False
    )
    if tracked.returncode == 0:
        assert vault.read_text().startswith("$ANSIBLE_VAULT;"), "vault.yml committed unencrypted"


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=[p.name for p in PLAYBOOKS])
def test_playbook_passes_syntax_check(playbook):
    binary = find_tool("ansible-playbook")
    result = subprocess.run(
        [binary, "--syntax-check", "-i", "ansible/inventories/production/hosts.yml", str(playbook)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "ANSIBLE_HOME": "/tmp/minitwit-ansible-home"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


IMAGE_DOCS = [
    "README.md",
    "docs/*.md",
    "stack/README.md",
    "ansible/**/*.md",
    "ansible/**/*.yml",
    ".github/workflows/*.yml",
]


def test_one_image_name_scheme_everywhere():
    """README, docs, playbooks and workflows name the image as the pipeline pushes it:
    ghcr.io/<owner>/<repo> (the repository, lower-cased), tagged sha-<commit> or a release X.Y.Z."""
    repository = {"<owner>/<repo>", "OWNER/REPO", "owner/repo", "${GITHUB_REPOSITORY,,}"}
    # PostgreSQL with pgBackRest is pushed beside it, as <repository>-postgres with the same tag.
    repository |= {f"{name}-postgres" for name in repository}
    found = []
    for pattern in IMAGE_DOCS:
        for path in ROOT.glob(pattern):
            for name, tag in re.findall(
                r"ghcr\.io/([^\s:`\"'<]*(?:<[a-z]+>[^\s:`\"'<]*)*)(?::(\S+))?", path.read_text()
            ):
                found.append((path.relative_to(ROOT), name, tag))
    assert len(found) > 10
    wrong = [(str(path), name, tag) for path, name, tag in found if name not in repository]
    wrong += [(str(path), name, tag) for path, name, tag in found if tag and not tag.startswith(("sha-", "$"))]
    assert not wrong


def test_documented_playbook_commands_name_real_files():
    """Every ansible-playbook command in README, docs and ansible/README names a playbook and an inventory that exist."""
    commands = []
    for path in [ROOT / "README.md", ANSIBLE / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text().replace("\\\n", " ")
        commands += re.findall(r"ansible-playbook (ansible/playbooks/[^\s`]+) -i (ansible/inventories/[^\s`]+)", text)
    assert len(commands) >= 8
    for playbook, inventory in commands:
        assert (ROOT / playbook).is_file(), playbook
        if "<env>" not in inventory:
            # A file, or a directory of inventory sources (ansible/inventories/aws).
            assert (ROOT / inventory).exists(), inventory


def test_restore_recovers_with_the_stacks_postgresql_settings():
    """restore.yml's own PostgreSQL replays the WAL: it must run with the stack's settings (a lower
    max_connections than the primary's aborts recovery) and archive the same way."""
    command = load(STACK / "minitwit.yml")["services"]["postgres"]["command"]
    args = load(ANSIBLE / "roles" / "pgbackrest" / "defaults" / "main.yml")["pgbackrest_postgres_args"]
    stanza = load(ANSIBLE / "roles" / "pgbackrest" / "defaults" / "main.yml")["pgbackrest_stanza"]
    assert command[0] == "postgres"
    assert [a.replace("{{ pgbackrest_stanza }}", stanza) for a in args] == command[1:]
