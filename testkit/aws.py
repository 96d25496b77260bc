"""A throwaway local AWS for checks: moto's server on loopback, answering like AWS where the
amazon.aws collection reads what moto leaves out, with a Debian 12 image in chosen regions.

    python -m testkit.aws serve PORT REGION...        # until killed; the image only in REGION...
    python -m testkit.aws seed REGION ZONE            # the hosted zone and resources not ours
    python -m testkit.aws snapshot REGION ZONE        # every resource of every kind (JSON)
    python -m testkit.aws tagged REGION PROJECT ENV   # ours, by kind (JSON)
    python -m testkit.aws nodes REGION PROJECT ENV    # ours: "name role leader public private"
    python -m testkit.aws user-data REGION NAME       # what cloud-init gets on the instance NAME
    python -m testkit.aws wait-for REGION PROJECT ENV KIND   # until one of ours of KIND exists

moto (5.2) answers four questions differently from AWS, three that the collection asks and one
that ``snapshot`` does; ``patch_moto`` gives AWS's answers, each documented there, and changes
nothing else. The image is a stand-in
for Debian's own (owner 136693071363, name debian-12-amd64-...). Every command but ``serve``
takes the credentials and the endpoint (AWS_ENDPOINT_URL) from the environment.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

DEBIAN_OWNER = "136693071363"
DEBIAN_12_IMAGE = {
    "ami_id": "ami-0de12b00c0ffee123",
    "name": "debian-12-amd64-20260101-2345",
    "description": "Debian 12 (stand-in for local checks)",
    "owner_id": DEBIAN_OWNER,
    "public": True,
    "state": "available",
    "architecture": "x86_64",
    "virtualization_type": "hvm",
    "hypervisor": "xen",
    "root_device_type": "ebs",
    "root_device_name": "/dev/xvda",
    "image_type": "machine",
    "sriov": "simple",
    "creation_date": "2026-01-01T00:00:00.000Z",
    "image_location": f"{DEBIAN_OWNER}/debian-12-amd64-20260101-2345",
}
LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


def patch_moto(image_regions: list[str]) -> None:
    """Give AWS's answers where moto's differ and amazon.aws reads them; the image in ``image_regions`` only."""
    from moto.ec2 import utils
    from moto.ec2.models.amis import AmiBackend
    from moto.ec2.models.elastic_block_store import Volume
    from moto.ec2.models.vpcs import VPCBackend

    # DescribeTags: AWS files an Elastic IP's tags under the resource type "elastic-ip", moto under
    # "vpc-elastic-ip": ec2_eip then finds no tags, adds them again and reports a change every run.
    utils.EC2_PREFIX_TO_RESOURCE["eipalloc"] = "elastic-ip"

    # DescribeVolumes: AWS always returns SnapshotId ("" for a blank volume) and MultiAttachEnabled
    # (false); moto leaves both out, and ec2_vol_info and ec2_vol index them (KeyError).
    volume_init = Volume.__init__

    def init_volume(self, *args, **kwargs):
        volume_init(self, *args, **kwargs)
        self.snapshot_id = self.snapshot_id or ""
        self.multi_attach_enabled = bool(self.multi_attach_enabled)

    Volume.__init__ = init_volume

    # DeleteVpc: AWS deletes the VPC's default network ACL with it; moto keeps it, orphaned.
    delete_vpc = VPCBackend.delete_vpc

    def delete_vpc_and_default_acl(self, vpc_id):
        vpc = delete_vpc(self, vpc_id)
        for acl_id in [acl.id for acl in self.network_acls.values() if acl.vpc_id == vpc_id and acl.default]:
            self.network_acls.pop(acl_id)
        return vpc

    VPCBackend.delete_vpc = delete_vpc_and_default_acl

    # moto loads MOTO_AMIS_PATH's images into every region; a region without the image must exist too.
    load_amis = AmiBackend._load_amis

    def load_amis_in_image_regions(self):
        if getattr(self, "region_name", None) in image_regions:
            load_amis(self)

    AmiBackend._load_amis = load_amis_in_image_regions


def prepare_moto(image_regions: list[str]) -> None:
    """Before moto is imported: the Debian 12 image instead of moto's defaults, and AWS's answers."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as images:
        json.dump([DEBIAN_12_IMAGE], images)
    # Read when moto's EC2 models are first imported (by patch_moto); it also drops moto's default images.
    os.environ["MOTO_AMIS_PATH"] = images.name
    patch_moto(image_regions)
    os.unlink(images.name)


def serve(port: str, *image_regions: str) -> None:
    """Run moto's server on 127.0.0.1:``port`` until killed, the image in ``image_regions``."""
    prepare_moto(list(image_regions))
    from moto.server import main

    main(["-H", "127.0.0.1", "-p", port])


def clients(region: str):
    """EC2 and Route 53 clients for ``region``."""
    import boto3

    session = boto3.session.Session(region_name=region)
    return session.client("ec2"), session.client("route53")


def hosted_zone(route53, zone: str) -> dict | None:
    """The public hosted zone named ``zone``, if there is one."""
    name = zone.rstrip(".") + "."
    return next((z for z in route53.list_hosted_zones()["HostedZones"] if z["Name"] == name), None)


def seed(region: str, zone: str) -> None:
    """Create the hosted zone and, in ``region``, resources that are not ours and must survive:
    untagged ones, and ones of the same project in another environment."""
    ec2, route53 = clients(region)
    found = hosted_zone(route53, zone)
    zone_id = found["Id"] if found else route53.create_hosted_zone(Name=zone, CallerReference=zone)["HostedZone"]["Id"]
    records = [("www." + zone, "A", "192.0.2.80"), (zone, "TXT", '"v=spf1 -all"')]
    route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {"Name": n, "Type": t, "TTL": 300, "ResourceRecords": [{"Value": v}]},
                }
                for n, t, v in records
            ]
        },
    )
    staging = [{"Key": "Project", "Value": "minitwit"}, {"Key": "Environment", "Value": "staging"}]
    spec = lambda kind: [{"ResourceType": kind, "Tags": staging}]  # noqa: E731
    ec2.create_vpc(CidrBlock="10.99.0.0/16", TagSpecifications=spec("vpc"))
    ec2.create_key_pair(KeyName="someone-else")
    ec2.create_security_group(GroupName="someone-else", Description="not ours")
    ec2.allocate_address(Domain="vpc")
    zone_name = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    ec2.create_volume(AvailabilityZone=zone_name, Size=1, TagSpecifications=spec("volume"))
    images = ec2.describe_images(Owners=[DEBIAN_OWNER])["Images"]
    if images:
        ec2.run_instances(
            ImageId=images[0]["ImageId"],
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.micro",
            TagSpecifications=spec("instance"),
        )


def snapshot(region: str, zone: str) -> dict[str, list[str]]:
    """Every resource of every kind infra.yml makes, ours or not, in ``region`` and the hosted zone."""
    ec2, route53 = clients(region)
    live = [{"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]
    found = hosted_zone(route53, zone)
    records = route53.list_resource_record_sets(HostedZoneId=found["Id"])["ResourceRecordSets"] if found else []
    kinds = {
        "instance": [
            i["InstanceId"] for r in ec2.describe_instances(Filters=live)["Reservations"] for i in r["Instances"]
        ],
        "volume": [v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]],
        "elastic-ip": [a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]],
        "key-pair": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]],
        "security-group": [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]],
        "vpc": [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]],
        "subnet": [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]],
        "internet-gateway": [g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]],
        "route-table": [t["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"]],
        "network-acl": [a["NetworkAclId"] for a in ec2.describe_network_acls()["NetworkAcls"]],
        "network-interface": [n["NetworkInterfaceId"] for n in ec2.describe_network_interfaces()["NetworkInterfaces"]],
        "snapshot": [s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]],
        "dns-record": [
            f"{r['Name']} {r['Type']} {[v['Value'] for v in r.get('ResourceRecords', [])]}" for r in records
        ],
    }
    return {kind: sorted(ids) for kind, ids in kinds.items()}


def tag_filters(project: str, environment: str) -> list[dict]:
    """EC2 filters for resources tagged with ``project`` and ``environment``."""
    return [{"Name": "tag:Project", "Values": [project]}, {"Name": "tag:Environment", "Values": [environment]}]


def live_instances(ec2, project: str, environment: str) -> list[dict]:
    """Our instances that are not terminated (EC2 lists terminated ones for a while)."""
    states = [{"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]
    reservations = ec2.describe_instances(Filters=tag_filters(project, environment) + states)["Reservations"]
    return [instance for reservation in reservations for instance in reservation["Instances"]]


def tagged(region: str, project: str, environment: str) -> dict[str, list[str]]:
    """Our EC2 resources in ``region``, i.e. carrying both tags, by kind (terminated instances left out)."""
    ec2, _ = clients(region)

    def with_tag(key: str, value: str) -> dict[str, str]:
        filters = [{"Name": "key", "Values": [key]}, {"Name": "value", "Values": [value]}]
        return {tag["ResourceId"]: tag["ResourceType"] for tag in ec2.describe_tags(Filters=filters)["Tags"]}

    in_environment = with_tag("Environment", environment)
    live = {instance["InstanceId"] for instance in live_instances(ec2, project, environment)}
    found: dict[str, list[str]] = {}
    for resource_id, kind in with_tag("Project", project).items():
        if resource_id in in_environment and (kind != "instance" or resource_id in live):
            found.setdefault(kind, []).append(resource_id)
    return {kind: sorted(ids) for kind, ids in found.items()}


def nodes(region: str, project: str, environment: str) -> list[str]:
    """Our live instances as "name role leader public-ip private-ip" lines, sorted by name."""
    ec2, _ = clients(region)
    lines = []
    for instance in live_instances(ec2, project, environment):
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        fields = [
            tags.get("Name"),
            tags.get("SwarmRole"),
            tags.get("SwarmLeader"),
            instance.get("PublicIpAddress"),
            instance.get("PrivateIpAddress"),
        ]
        lines.append(" ".join(str(f) for f in fields))
    return sorted(lines)


def user_data(region: str, name: str) -> str:
    """The user data of the live instance whose Name tag is ``name``, as cloud-init receives it."""
    import base64

    ec2, _ = clients(region)
    states = [{"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}, {"Name": "tag:Name", "Values": [name]}]
    [instance] = [i for r in ec2.describe_instances(Filters=states)["Reservations"] for i in r["Instances"]]
    answer = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
    return base64.b64decode(answer["UserData"]["Value"]).decode()


def wait_for(region: str, project: str, environment: str, kind: str, timeout_s: float = 60) -> None:
    """Return as soon as one of our resources of ``kind`` exists; exit 1 after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if tagged(region, project, environment).get(kind):
            return
        time.sleep(0.2)
    sys.exit(f"no {kind} tagged {project}/{environment} appeared in {region} within {timeout_s}s")


def main(argv: list[str]) -> None:
    """Dispatch the command line (see the module's docstring)."""
    command, args = argv[0], argv[1:]
    if command == "serve":
        serve(*args)
    elif command == "seed":
        seed(*args)
    elif command == "snapshot":
        print(json.dumps(snapshot(*args), indent=1, sort_keys=True))
    elif command == "tagged":
        print(json.dumps(tagged(*args), sort_keys=True))
    elif command == "nodes":
        print("\n".join(nodes(*args)))
    elif command == "user-data":
        print(user_data(*args), end="")
    elif command == "wait-for":
        wait_for(*args)
    else:
        sys.exit(f"unknown command {command!r}: see {__file__}")


if __name__ == "__main__":
    main(sys.argv[1:])
