# shellcheck shell=bash
# Test hosts: Debian 12 "VMs" booted as containers with systemd as PID 1, sshd and their own
# dockerd, on the lab network (docker/testhost/README.md). Sourced; needs lib/common.sh.
# The only place that knows the image recipe and the node flags: Molecule's create playbook,
# scripts/provision-test.sh and the multi-node lab all come through here.

# Names are overridable so a shared machine can run several labs side by side.
TESTHOST_IMAGE="${MINITWIT_TESTHOST_IMAGE:-local/minitwit-testhost:bookworm}"
TESTHOST_ROOTFS="local/rootfs-testhost:bookworm"
# The outside-in scanner: Debian's nmap in a minbase image.
SCANNER_IMAGE="${MINITWIT_SCANNER_IMAGE:-local/minitwit-scanner:bookworm}"
LAB_NETWORK="${MINITWIT_LAB_NETWORK:-minitwit-lab}"
# Not in Docker's default address pools (172.17-31.x, 192.168.x), so no clash with bridges.
LAB_SUBNET="${MINITWIT_LAB_SUBNET:-10.77.0.0/24}"
LAB_PREFIX="${MINITWIT_LAB_PREFIX:-minitwit-lab-}"
# What a fresh cloud VM has before Ansible runs; the roles install everything else.
TESTHOST_PACKAGES="systemd,systemd-sysv,dbus,openssh-server,python3,python3-apt,sudo,iproute2,iptables,ca-certificates,procps,iputils-ping,kmod"

# testhost_build_image: build the test host image unless it exists (REBUILD_ROOTFS=1 forces it).
testhost_build_image() {
  if [[ "${REBUILD_ROOTFS:-0}" != 1 ]] && docker image inspect "$TESTHOST_IMAGE" >/dev/null 2>&1; then
    log "reusing $TESTHOST_IMAGE"
    return
  fi
  docker/ci/rootfs.sh bookworm "$TESTHOST_ROOTFS" "$TESTHOST_PACKAGES" >&2
  # Debian's CLI 20.10 builds with BuildKit natively and never pulls a local base.
  DOCKER_BUILDKIT=1 /usr/bin/docker build --quiet --tag "$TESTHOST_IMAGE" \
    --build-arg "BASE=$TESTHOST_ROOTFS" docker/testhost >/dev/null
  log "built $TESTHOST_IMAGE"
}

# scanner_build_image: build the scanner image unless it exists.
scanner_build_image() {
  if [[ "${REBUILD_ROOTFS:-0}" != 1 ]] && docker image inspect "$SCANNER_IMAGE" >/dev/null 2>&1; then
    log "reusing $SCANNER_IMAGE"
    return
  fi
  docker/ci/rootfs.sh bookworm "$SCANNER_IMAGE" nmap >&2
}

# testhost_ensure_network: the lab bridge with a fixed subnet, so nodes have known addresses.
testhost_ensure_network() {
  docker network inspect "$LAB_NETWORK" >/dev/null 2>&1 && return
  # Parallel scenarios may race to create it: losing the race is fine.
  docker network create --driver bridge --subnet "$LAB_SUBNET" \
    --label minitwit.lab=true "$LAB_NETWORK" >/dev/null 2>&1 ||
    docker network inspect "$LAB_NETWORK" >/dev/null
}

# testhost_address <last octet>: an address in the lab subnet.
testhost_address() {
  printf '%s.%s\n' "${LAB_SUBNET%.*}" "$1"
}

# testhost_start <name> <address or last octet>: boot a node (a fresh one: any old node of that name goes).
# --privileged fails here (no CAP_SYS_RESOURCE in the bounding set), so: every capability but
# SYS_RESOURCE and SYS_TIME (the clock is the CI machine's), no seccomp/AppArmor/masked paths
# (systemd, dockerd and UFW write /proc/sys: net.* is per namespace), every device, the host's
# cgroup tree for systemd, tmpfs /run, and the node's /var/lib/docker on a volume because
# overlay2 does not stack on overlayfs.
testhost_start() {
  local name="$1" address="$2"
  [[ "$address" == *.* ]] || address="$(testhost_address "$address")"
  testhost_remove "$name"
  testhost_ensure_network
  docker run --detach --name "$name" --hostname "${name#"$LAB_PREFIX"}" \
    --network "$LAB_NETWORK" --ip "$address" --label minitwit.lab=true \
    --cap-add ALL --cap-drop SYS_RESOURCE --cap-drop SYS_TIME \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --security-opt systempaths=unconfined --device-cgroup-rule 'a *:* rwm' \
    --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    --tmpfs /run --tmpfs /run/lock -v "$name-docker:/var/lib/docker" \
    "$TESTHOST_IMAGE" >/dev/null
  retry 60 1 testhost_booted "$name" || die "test host $name did not boot within 60 s"
}

# testhost_booted <name>: systemd finished booting and sshd listens.
testhost_booted() {
  local state
  state="$(docker exec "$1" systemctl is-system-running 2>/dev/null)" || true
  [[ "$state" == running || "$state" == degraded ]] && docker exec "$1" systemctl is-active --quiet ssh
}

# testhost_remove <name>: the node and its Docker volume, if they exist.
testhost_remove() {
  docker rm --force --volumes "$1" >/dev/null 2>&1 || true
  docker volume rm "$1-docker" >/dev/null 2>&1 || true
}

# testhost_remove_network: the lab network, once no node uses it.
testhost_remove_network() {
  docker network rm "$LAB_NETWORK" >/dev/null 2>&1 || true
}
