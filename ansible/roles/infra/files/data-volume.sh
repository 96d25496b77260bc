#!/bin/bash
# Make a node's EBS data volume Docker's volume store: wait for the disk, give it a file system
# the first time only, mount it for good. cloud-init runs it at the first boot, from the user data
# infra.yml writes (templates/user-data.yml.j2); running it again changes nothing.
#
#   data-volume.sh VOLUME_ID DEVICE MOUNT_POINT LABEL
#   e.g. data-volume.sh vol-0123456789abcdef0 /dev/sdf /var/lib/docker/volumes minitwit-data
#
# A volume that already has a file system (re-attached to a new instance) keeps its data.
# Tests set DATA_VOLUME_DISK_DIR (where the disk links appear), FSTAB and DATA_VOLUME_WAIT.
set -euo pipefail

volume_id=$1 device=$2 mount_point=$3 label=$4
disk_dir=${DATA_VOLUME_DISK_DIR:-/dev/disk/by-id}
fstab=${FSTAB:-/etc/fstab}
wait_seconds=${DATA_VOLUME_WAIT:-600}

# Nitro instances (t3, m5, ...) show EBS volumes as NVMe disks whose serial is the volume id
# without its dash; Xen instances keep the requested name, /dev/sdf appearing as /dev/xvdf.
candidates=("$disk_dir/nvme-Amazon_Elastic_Block_Store_${volume_id/-/}" "$device" "/dev/xvd${device#/dev/sd}")

# infra.yml attaches the volume once the instance runs: it may appear after this script starts.
find_disk() {
  local path
  for path in "${candidates[@]}"; do
    if [ -b "$path" ]; then
      readlink -f "$path"
      return 0
    fi
  done
  return 1
}
deadline=$((SECONDS + wait_seconds))
until disk=$(find_disk); do
  if ((SECONDS >= deadline)); then
    echo "data-volume: $volume_id did not appear within ${wait_seconds}s (looked for ${candidates[*]})" >&2
    exit 1
  fi
  sleep 2
done

# blkid exits 2 when it finds no file system signature: only then is the disk blank.
status=0
blkid "$disk" >/dev/null || status=$?
if [ "$status" -eq 2 ]; then
  mkfs.ext4 -q -L "$label" "$disk"
elif [ "$status" -ne 0 ]; then
  echo "data-volume: blkid $disk failed ($status)" >&2
  exit 1
fi

mkdir -p "$mount_point"
# nofail: a missing volume must not stop the node from booting (Docker then writes to the root
# disk, which the operator sees with findmnt).
if ! grep -q "^LABEL=$label " "$fstab"; then
  echo "LABEL=$label $mount_point ext4 defaults,nofail,x-systemd.device-timeout=30s 0 2" >>"$fstab"
fi
if ! mountpoint -q "$mount_point"; then
  mount --target "$mount_point" --fstab "$fstab"
fi
echo "data-volume: $volume_id ($disk) mounted at $mount_point"
