#!/usr/bin/env bash
# Build a minimal Debian root filesystem with mmdebstrap and import it as a local image.
# Usage: docker/ci/rootfs.sh <suite> <image:tag> <comma-separated packages> [docker import --change ...]
# Why: no container registry is reachable in CI, but the Debian mirror is, so every CI base
# image starts from a Debian "minbase" tree (Essential packages + apt) plus what it needs.
set -euo pipefail

suite="$1"
image="$2"
packages="$3"
shift 3

mirror="http://deb.debian.org/debian"
# Documentation, man pages and translations are dead weight in an image.
trim=(
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
)

# With the three suites below apt installs each package at the highest version any of them has, so
# the tree holds every Debian security update published by the time it is built (its -security
# suite); scripts/build-images.sh checks that for the reused trees and the finished images.
mmdebstrap --quiet --variant=minbase --mode=root "${trim[@]}" \
    --include="$packages" --aptopt='APT::Install-Recommends "false"' \
    "$suite" - \
    "deb $mirror $suite main" \
    "deb $mirror $suite-updates main" \
    "deb http://deb.debian.org/debian-security $suite-security main" |
    docker import --change 'ENV LANG=C.UTF-8' "$@" - "$image" >/dev/null
echo "built $image"
