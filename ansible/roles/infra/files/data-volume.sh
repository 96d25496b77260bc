#!/bin/bash
# Make a node's EBS data volume Docker's volume store: wait for the disk, give it a file system
# the first time only, mount it for good, and bind its docker-volumes directory onto Docker's
# volumes directory. cloud-init runs it at the first boot, from the user data infra.yml writes
# (templates/user-data.yml.j2); running it again changes nothing.
#
#   data-volume.sh VOLUME_ID DEVICE DISK_MOUNT_POINT LABEL VOLUMES_DIR
#   e.g. data-volume.sh vol-0123456789abcdef0 /dev/sdf /srv/minitwit-data minitwit-data /var/lib/docker/volumes
#
# A volume that already has a file system (re-attached to a new instance) keeps its data. The
# disk's root is not Docker's volumes directory itself: Docker would take its lost+found for a
# volume (and log, every few seconds, that it cannot size it).
# Tests set DATA_VOLUME_DISK_DIR (where the disk links appear), FSTAB and DATA_VOLUME_WAIT.
set -euo pipefail

volume_id=$1 device=$2 disk_mount=$3 label=$4 volumes_dir=$5
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

# blkid exits 2 when it finds no signature at all: only then is the disk blank.
status=0
blkid "$disk" >/dev/null || status=$?
if [ "$status" -eq 2 ]; then
  mkfs.ext4 -q -L "$label" "$disk"
elif [ "$status" -ne 0 ]; then
  echo "data-volume: blkid $disk failed ($status)" >&2
  exit 1
fi

# mount_for_good <fstab line>: add the line once, then mount its target unless it is mounted.
# nofail: a missing volume must not stop the node from booting (Docker then writes to the root
# disk, which findmnt shows).
mount_for_good() {
  local line="$1" target
  target=$(awk '{print $2}' <<<"$line")
  mkdir -p "$target"
  grep -qxF "$line" "$fstab" || echo "$line" >>"$fstab"
  mountpoint -q "$target" || mount --target "$target" --fstab "$fstab"
}
mount_for_good "LABEL=$label $disk_mount ext4 defaults,nofail,x-systemd.device-timeout=30s 0 2"
mkdir -p "$disk_mount/docker-volumes"
mount_for_good "$disk_mount/docker-volumes $volumes_dir none bind,nofail,x-systemd.requires-mounts-for=$disk_mount 0 0"
echo "data-volume: $volume_id ($disk) mounted at $disk_mount, its docker-volumes at $volumes_dir"
