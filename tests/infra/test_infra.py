"""The AWS infrastructure code without AWS: the role's settings agree with the inventory, the
host firewall and the stack's host names; every resource is tagged; the user data is the
account and volume the first-deploy checklist asks for; the data-volume script formats a blank
disk once and keeps data; the local AWS answers the way the collection needs.

The playbook itself runs against moto's local AWS in scripts/infra-test.sh (the ``infra`` stage).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.programs import find_tool

from testkit import REPO_ROOT
from testkit.skip import skip_or_fail

ANSIBLE = REPO_ROOT / "ansible"
ROLE = ANSIBLE / "roles" / "infra"
AWS_INVENTORY = ANSIBLE / "inventories" / "aws"
PRODUCTION_VARS = ANSIBLE / "inventories" / "production" / "group_vars" / "all" / "vars.yml"
# Modules that create a resource, and so must tag it.
CREATING_MODULES = {
    "amazon.aws.ec2_vol",
    "amazon.aws.ec2_instance",
    "amazon.aws.ec2_eip",
    "amazon.aws.ec2_security_group",
    "amazon.aws.ec2_key",
}


def load(path: Path):
    """Parse one YAML file."""
    return yaml.safe_load(path.read_text())


def role_tasks() -> list[tuple[str, dict]]:
    """Every task of the infra role as (file name, task)."""
    return [(path.name, task) for path in sorted((ROLE / "tasks").glob("*.yml")) for task in load(path)]


def module_of(task: dict) -> str | None:
    """The fully qualified module a task calls."""
    return next((key for key in task if key.startswith(("amazon.aws.", "ansible.builtin."))), None)


def test_the_inventory_reads_the_region_infra_yml_writes_to():
    inventory = load(AWS_INVENTORY / "aws_ec2.yml")
    assert inventory["regions"] == [load(ROLE / "defaults" / "main.yml")["infra_region"]]


def test_the_inventory_selects_the_tags_infra_yml_sets():
    inventory = load(AWS_INVENTORY / "aws_ec2.yml")
    settings = load(AWS_INVENTORY / "group_vars" / "all" / "vars.yml")
    assert inventory["filters"]["tag:Project"] == settings["infra_project"]
    assert inventory["filters"]["tag:Environment"] == settings["infra_environment"]
    assert "terminated" not in inventory["filters"]["instance-state-name"]


def test_the_first_manager_is_the_first_child_of_swarm_managers():
    groups = load(AWS_INVENTORY / "groups.yml")["all"]["children"]
    assert list(groups["swarm_managers"]["children"]) == ["aws_first_manager", "aws_other_managers"]
    assert list(groups["swarm_workers"]["children"]) == ["aws_workers"]
    assert set(load(AWS_INVENTORY / "aws_ec2.yml")["groups"]) == {
        "aws_first_manager",
        "aws_other_managers",
        "aws_workers",
    }


def test_the_aws_settings_keep_in_step_with_production():
    """The shared settings (domain, users, alerting, secrets) are production's, value for value."""
    production = load(PRODUCTION_VARS)
    aws = load(AWS_INVENTORY / "group_vars" / "all" / "vars.yml")
    assert {key: aws.get(key) for key in production} == production


def test_the_cloud_firewall_opens_the_ports_the_host_firewall_opens():
    infra = load(ROLE / "defaults" / "main.yml")
    base = load(ANSIBLE / "roles" / "base" / "defaults" / "main.yml")
    assert infra["infra_public_tcp_ports"] == base["base_firewall_allowed_tcp_ports"]
    assert infra["infra_swarm_tcp_ports"] == base["base_firewall_swarm_tcp_ports"]
    assert infra["infra_swarm_udp_ports"] == base["base_firewall_swarm_udp_ports"]


def test_ssh_is_open_only_to_the_operators_and_swarm_only_between_nodes():
    group = next(task for name, task in role_tasks() if module_of(task) == "amazon.aws.ec2_security_group")
    rules = group["amazon.aws.ec2_security_group"]["rules"]
    by_ports = {str(rule["ports"]): rule for rule in rules}
    assert set(by_ports) == {
        "[22]",
        "{{ infra_public_tcp_ports }}",
        "{{ infra_swarm_tcp_ports }}",
        "{{ infra_swarm_udp_ports }}",
    }
    assert by_ports["[22]"]["cidr_ip"] == "{{ infra_ssh_admin_cidrs }}"
    assert by_ports["{{ infra_public_tcp_ports }}"]["cidr_ip"] == "0.0.0.0/0"
    for swarm in ("{{ infra_swarm_tcp_ports }}", "{{ infra_swarm_udp_ports }}"):
        assert (
            by_ports[swarm]["group_name"]
            == "{{ infra_security_group_name }}"
            == group["amazon.aws.ec2_security_group"]["name"]
        )
        assert "cidr_ip" not in by_ports[swarm]


def test_the_dns_names_are_the_ones_traefik_serves():
    """minitwit_domain, grafana.<domain> and traefik.<domain>, or the minitwit role's overrides."""
    names = load(ROLE / "defaults" / "main.yml")["infra_dns_names"]
    minitwit = load(ANSIBLE / "roles" / "minitwit" / "defaults" / "main.yml")
    assert "minitwit_domain" in names[0]
    assert "minitwit_grafana_domain" in names[1] and "grafana." in names[1]
    assert "minitwit_traefik_dashboard_domain" in names[2] and "traefik." in names[2]
    assert minitwit["minitwit_grafana_domain"].startswith("grafana.")
    assert minitwit["minitwit_traefik_dashboard_domain"].startswith("traefik.")


def test_every_created_resource_is_tagged_with_project_and_environment():
    creating = [
        (name, task)
        for name, task in role_tasks()
        if module_of(task) in CREATING_MODULES and task[module_of(task)].get("state", "present") != "absent"
    ]
    assert len(creating) >= 5
    untagged = [
        task["name"]
        for name, task in creating
        if "infra_tags" not in str(task[module_of(task)].get("tags", ""))
        and "id" not in task[module_of(task)]  # attaching an existing volume creates nothing
        and "instance_ids" not in task[module_of(task)]  # waiting for instances creates nothing
    ]
    assert not untagged


def test_destroy_finds_what_it_removes_by_the_tags():
    destroy = [task for name, task in role_tasks() if name == "destroy.yml"]
    lookups = [task for task in destroy if module_of(task).endswith("_info")]
    assert lookups and all(task[module_of(task)]["filters"].startswith("{{ infra_tag_filters") for task in lookups)
    terminate = next(task for task in destroy if module_of(task) == "amazon.aws.ec2_instance")
    assert "infra_tag_filters" in terminate["amazon.aws.ec2_instance"]["filters"]


def render_user_data(**settings) -> str:
    """The role's user-data template rendered with Jinja2 and the three Ansible filters and lookups it
    uses (scripts/infra-test.sh reads what Ansible rendered from the instances themselves)."""
    import jinja2

    def lookup(plugin: str, path: str) -> str:
        assert plugin == "ansible.builtin.file"
        return (ROLE / "files" / path).read_text() if not path.startswith("/") else Path(path).read_text()

    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["to_json"] = json.dumps
    environment.globals["lookup"] = lookup
    template = environment.from_string((ROLE / "templates" / "user-data.yml.j2").read_text())
    return template.render(**settings)


USER_DATA_SETTINGS = {
    "infra_node_name": "minitwit-production-1",
    "infra_admin_user": "deploy",
    "infra_node_data_volume_id": "vol-0123456789abcdef0",
    "infra_data_volume_device": "/dev/sdf",
    "infra_data_disk_mount_point": "/srv/minitwit-data",
    "infra_data_filesystem_label": "minitwit-data",
    "infra_data_mount_point": "/var/lib/docker/volumes",
}
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOps0nlyAT3stKeyF0rUserDataRender1ng0000000 ops@laptop"


def test_the_user_data_creates_the_checklists_account_and_mounts_the_data_volume(tmp_path):
    key = tmp_path / "id_ed25519.pub"
    key.write_text(PUBLIC_KEY + "\n")
    text = render_user_data(infra_ssh_public_key_path=str(key), **USER_DATA_SETTINGS)
    assert text.startswith("#cloud-config\n")
    config = yaml.safe_load(text)
    [user] = config["users"]
    assert user["name"] == "deploy" and user["ssh_authorized_keys"] == [PUBLIC_KEY]
    assert user["sudo"] == "ALL=(ALL) NOPASSWD:ALL" and user["lock_passwd"] is True
    assert config["ssh_pwauth"] is False and config["disable_root"] is True
    [script] = config["write_files"]
    assert script["content"] == (ROLE / "files" / "data-volume.sh").read_text()
    assert config["runcmd"] == [
        [
            script["path"],
            "vol-0123456789abcdef0",
            "/dev/sdf",
            "/srv/minitwit-data",
            "minitwit-data",
            "/var/lib/docker/volumes",
        ]
    ]


SCRIPT = ROLE / "files" / "data-volume.sh"
VOLUME_ID = "vol-0123456789abcdef0"
# A device name no test machine has, so the script can only ever find the loop disk below.
ABSENT_DEVICE = "/dev/sdzz9"


def run_data_volume_script(disk_dir: Path, root: Path, label: str, wait: int = 5):
    """The user data's script, told to look for the NVMe link in ``disk_dir`` and to mount under ``root``."""
    env = {
        **os.environ,
        "DATA_VOLUME_DISK_DIR": str(disk_dir),
        "FSTAB": str(root / "fstab"),
        "DATA_VOLUME_WAIT": str(wait),
    }
    return subprocess.run(
        ["bash", str(SCRIPT), VOLUME_ID, ABSENT_DEVICE, str(root / "disk"), label, str(root / "volumes")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def is_mountpoint(path: Path) -> bool:
    """Whether something is mounted at ``path``."""
    return subprocess.run(["mountpoint", "-q", str(path)], check=False).returncode == 0


@pytest.fixture
def loop_disk(tmp_path):
    """A blank 64 MiB disk (a loop device), linked where a Nitro instance shows its EBS volume."""
    if os.geteuid() != 0 or not (shutil.which("losetup") and shutil.which("mkfs.ext4") and shutil.which("blkid")):
        skip_or_fail("the data-volume check needs root, losetup, mkfs.ext4 and blkid (a real disk to format)")
    image = tmp_path / "disk.img"
    with open(image, "wb") as disk:
        disk.truncate(64 << 20)
    attached = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=False)
    if attached.returncode != 0:
        skip_or_fail(f"no loop device for the data-volume check: {attached.stderr.strip()}")
    device = attached.stdout.strip()
    disk_dir = tmp_path / "by-id"
    disk_dir.mkdir()
    (disk_dir / f"nvme-Amazon_Elastic_Block_Store_{VOLUME_ID.replace('-', '')}").symlink_to(device)
    yield disk_dir
    subprocess.run(["losetup", "--detach", device], capture_output=True, check=False)


def test_the_data_volume_is_formatted_once_and_mounted_for_good(tmp_path, loop_disk):
    disk, volumes, fstab = tmp_path / "disk", tmp_path / "volumes", tmp_path / "fstab"
    fstab.write_text("# the node's own entries\n")
    label = "mt" + os.urandom(4).hex()  # unique: mount finds the disk by its label
    try:
        first = run_data_volume_script(loop_disk, tmp_path, label)
        assert first.returncode == 0, first.stderr
        assert is_mountpoint(disk) and is_mountpoint(volumes)
        # Docker's volumes directory is the disk's docker-volumes: no lost+found Docker would list.
        assert sorted(p.name for p in disk.iterdir()) == ["docker-volumes", "lost+found"]
        assert list(volumes.iterdir()) == []
        (volumes / "pgdata").write_text("the database")
        subprocess.run(["umount", str(volumes)], check=True)
        subprocess.run(["umount", str(disk)], check=True)
        # A reboot, or the volume re-attached to a new instance: mounted again, never formatted again.
        second = run_data_volume_script(loop_disk, tmp_path, label)
        assert second.returncode == 0, second.stderr
        assert (volumes / "pgdata").read_text() == "the database"
        assert (disk / "docker-volumes" / "pgdata").exists()
        lines = fstab.read_text().splitlines()
        assert lines[0] == "# the node's own entries"
        assert lines[1:] == [
            f"LABEL={label} {disk} ext4 defaults,nofail,x-systemd.device-timeout=30s 0 2",
            f"{disk}/docker-volumes {volumes} none bind,nofail,x-systemd.requires-mounts-for={disk} 0 0",
        ]
    finally:
        subprocess.run(["umount", str(volumes)], capture_output=True, check=False)
        subprocess.run(["umount", str(disk)], capture_output=True, check=False)


def test_a_data_volume_that_never_appears_is_reported(tmp_path):
    (tmp_path / "by-id").mkdir()
    result = run_data_volume_script(tmp_path / "by-id", tmp_path, "unused", wait=1)
    assert result.returncode == 1
    assert f"{VOLUME_ID} did not appear within 1s" in result.stderr
    assert not (tmp_path / "fstab").exists()


def test_the_local_aws_answers_like_aws_where_the_collection_reads():
    """testkit.aws's changes to moto: each is an answer amazon.aws indexes or compares."""
    code = """
import json
from testkit.aws import prepare_moto, DEBIAN_OWNER
prepare_moto(["eu-west-1"])
import boto3
from moto import mock_aws
with mock_aws():
    ec2 = boto3.client("ec2", region_name="eu-west-1")
    ec2.create_volume(AvailabilityZone="eu-west-1a", Size=1)
    tags = [{"ResourceType": "elastic-ip", "Tags": [{"Key": "Project", "Value": "minitwit"}]}]
    ec2.allocate_address(Domain="vpc", TagSpecifications=tags)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    ec2.delete_vpc(VpcId=vpc)
    print(json.dumps({
        "volume": ec2.describe_volumes()["Volumes"][0],
        "address_tag_types": [t["ResourceType"] for t in ec2.describe_tags()["Tags"]],
        "acls_of_deleted_vpc": [a for a in ec2.describe_network_acls()["NetworkAcls"] if a["VpcId"] == vpc],
        "images": [i["Name"] for i in ec2.describe_images(Owners=[DEBIAN_OWNER])["Images"]],
        "images_elsewhere": boto3.client("ec2", region_name="ap-southeast-2").describe_images(Owners=[DEBIAN_OWNER])["Images"],
    }, default=str))
"""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["volume"]["SnapshotId"] == "" and seen["volume"]["MultiAttachEnabled"] is False
    assert seen["address_tag_types"] == ["elastic-ip"]
    assert seen["acls_of_deleted_vpc"] == []
    assert seen["images"] == ["debian-12-amd64-20260101-2345"] and seen["images_elsewhere"] == []


def test_provision_with_the_aws_inventory_uses_private_addresses_and_production_vault_example(tmp_path):
    """The aws inventory's settings as provision.yml sees them, with two nodes standing in for EC2's."""
    for name in ("groups.yml", "group_vars"):
        (shutil.copytree if name == "group_vars" else shutil.copy)(AWS_INVENTORY / name, tmp_path / name)
    nodes = {
        "aws_first_manager": {
            "minitwit-production-1": {"ansible_host": "198.51.100.1", "private_ip_address": "172.31.0.4"}
        },
        "aws_workers": {"minitwit-production-2": {"ansible_host": "198.51.100.2", "private_ip_address": "172.31.0.5"}},
    }
    (tmp_path / "nodes.yml").write_text(
        yaml.safe_dump({"all": {"children": {group: {"hosts": hosts} for group, hosts in nodes.items()}}})
    )
    env = {**os.environ, "ANSIBLE_HOME": "/tmp/minitwit-ansible-home", "ANSIBLE_NOCOLOR": "1"}
    env.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)
    first = subprocess.run(
        [find_tool("ansible"), "-i", str(tmp_path), "swarm_managers[0]", "-m", "ansible.builtin.debug",
         "-a", "var=base_firewall_swarm_node_addresses", "-e", "ansible_connection=local"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "minitwit-production-1 | SUCCESS" in first.stdout, first.stdout + first.stderr
    assert "- 172.31.0.4" in first.stdout and "- 172.31.0.5" in first.stdout and "198.51.100" not in first.stdout
    preflight = subprocess.run(
        [find_tool("ansible-playbook"), "-i", str(tmp_path), str(ANSIBLE / "playbooks" / "preflight.yml")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = " ".join((preflight.stdout + preflight.stderr).split())
    assert preflight.returncode != 0 and "PREFLIGHT REFUSED" in output, output
    assert "copy ansible/inventories/production/vault.example.yml there" in output
