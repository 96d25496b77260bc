#!/usr/bin/env bash
# Build, start and remove test hosts (systemd + sshd + dockerd "VMs" on the lab network).
#   scripts/testhost.sh build                   build the image unless it exists
#   scripts/testhost.sh start <name> <address>  boot a fresh node at that lab address (or last octet)
#   scripts/testhost.sh remove <name>...        remove nodes and their Docker volumes
#   scripts/testhost.sh remove-network          remove the lab network (once empty)
# Needs root, a running dockerd, mmdebstrap. See docker/testhost/README.md.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/testhost.sh
source "$REPO_ROOT/scripts/lib/testhost.sh"
cd "$REPO_ROOT"

case "${1:-}" in
  build) testhost_build_image ;;
  start) testhost_start "${2:?name}" "${3:?address}" ;;
  remove)
    shift
    for name in "$@"; do testhost_remove "$name"; done
    ;;
  remove-network) testhost_remove_network ;;
  *) die "usage: $0 build | start <name> <address> | remove <name>... | remove-network" ;;
esac
