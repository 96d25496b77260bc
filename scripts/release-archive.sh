#!/usr/bin/env bash
# Make a release's image archive for deploying without a registry (docs/deployment.md, section 6):
# builds the app (Dockerfile) and PostgreSQL with pgBackRest (docker/postgres) for the VM's
# platform, tags them as the pipeline does (<name>:sha-<commit>, <name>-postgres:sha-<commit>),
# `docker save`s both into one archive and prints the deploy.yml command that ships it.
#
#   scripts/release-archive.sh [--platform linux/amd64|linux/arm64] [--name NAME] [--output FILE]
#                              [--inventory FILE] [--force]
#
#   --platform   the VM's platform (default linux/amd64; an arm64 laptop still builds amd64)
#   --name       image name (default minitwit): NAME:sha-<commit> and NAME-postgres:sha-<commit>
#   --output     the archive (default artifacts/release/<name>-<commit>-<arch>.tar, git-ignored)
#   --inventory  the inventory in the printed command (default ansible/inventories/production/hosts.yml)
#   --force      build a tree with uncommitted changes: the version ends in -dirty and the tag in
#                -dirty-<time>, so every such build is a new tag (Swarm compares tags)
#
# Environment: DOCKER (default docker: a CLI whose `docker build` has --platform and --secret, i.e.
# BuildKit), APP_BASE and POSTGRES_BASE (the Dockerfiles' BASE build argument; default theirs:
# python:3.12-slim, postgres:15.20-bookworm), CA_FILE (the CA bundle pip trusts in the build,
# default /etc/ssl/certs/ca-certificates.crt when it exists; empty: pip's own).
set -euo pipefail

usage() {
  echo "usage: $0 [--platform linux/amd64|linux/arm64] [--name NAME] [--output FILE] [--inventory FILE] [--force]" >&2
  exit 2
}

die() {
  echo "release-archive: $*" >&2
  exit 1
}

# absolute <path>: a path given on the command line, relative to where the script was started.
absolute() {
  if [[ "$1" == /* ]]; then echo "$1"; else echo "$PWD/$1"; fi
}

PLATFORM=linux/amd64
NAME=minitwit
OUTPUT=""
INVENTORY=ansible/inventories/production/hosts.yml
FORCE=0
while (($#)); do
  case "$1" in
    --platform | --name | --output | --inventory)
      [[ -n "${2:-}" ]] || usage
      case "$1" in
        --platform) PLATFORM="$2" ;;
        --name) NAME="$2" ;;
        --output) OUTPUT="$(absolute "$2")" ;;
        --inventory) INVENTORY="$(absolute "$2")" ;;
      esac
      shift 2
      ;;
    --force) FORCE=1 && shift ;;
    -h | --help) usage ;;
    *) echo "release-archive: unknown argument: $1" >&2 && usage ;;
  esac
done
case "$PLATFORM" in
  linux/amd64 | linux/arm64) ARCH="${PLATFORM#linux/}" ;;
  *) die "--platform must be linux/amd64 or linux/arm64 (the VM's: dpkg --print-architecture on it), not $PLATFORM" ;;
esac
[[ "$NAME" != *[A-Z@]* && "${NAME##*/}" != *:* ]] ||
  die "--name must be an image name in lower case without a tag or digest (minitwit, ghcr.io/owner/repo), not $NAME"

cd "$(dirname "$0")/.."
ROOT="$PWD"
DOCKER="${DOCKER:-docker}"
CA_FILE="${CA_FILE-/etc/ssl/certs/ca-certificates.crt}"

# A release is a commit: refuse uncommitted changes (untracked files too: they can be built in).
COMMIT="$(git rev-parse HEAD)"
VERSION="$(git describe --tags --always)"
TAG="sha-$COMMIT"
if [[ -n "$(git status --porcelain)" ]]; then
  ((FORCE)) || die "the working tree has uncommitted changes (git status); commit them, or pass --force"
  VERSION="$VERSION-dirty"
  TAG="$TAG-dirty-$(date -u +%Y%m%dT%H%M%SZ)"
fi
APP_IMAGE="$NAME:$TAG"
POSTGRES_IMAGE="$NAME-postgres:$TAG"
OUTPUT="${OUTPUT:-$ROOT/artifacts/release/${NAME##*/}-${COMMIT:0:12}-$ARCH.tar}"

# build <image> <context> [docker build arguments]: for the platform, with the release's version.
build() {
  local image="$1" context="$2"
  shift 2
  echo "building $image for $PLATFORM (version $VERSION)"
  DOCKER_BUILDKIT=1 "$DOCKER" build --quiet --platform "$PLATFORM" --tag "$image" \
    --label "org.opencontainers.image.version=$VERSION" --label "org.opencontainers.image.revision=$COMMIT" \
    "$@" "$context" >/dev/null
  local built
  built="$("$DOCKER" image inspect --format '{{.Os}}/{{.Architecture}}' "$image")"
  [[ "$built" == "$PLATFORM" ]] || die "$image was built for $built, not $PLATFORM (does your builder support --platform?)"
}

app_args=(--build-arg "VERSION=$VERSION" --build-arg "REVISION=$COMMIT")
[[ -z "${APP_BASE:-}" ]] || app_args+=(--build-arg "BASE=$APP_BASE")
[[ -z "$CA_FILE" || ! -f "$CA_FILE" ]] || app_args+=(--secret "id=ca,src=$CA_FILE")
postgres_args=()
[[ -z "${POSTGRES_BASE:-}" ]] || postgres_args+=(--build-arg "BASE=$POSTGRES_BASE")

build "$APP_IMAGE" . "${app_args[@]}"
# ${a[@]+...}: an empty array under set -u, in macOS's bash 3.2 too.
build "$POSTGRES_IMAGE" docker/postgres ${postgres_args[@]+"${postgres_args[@]}"}
mkdir -p "$(dirname "$OUTPUT")"
"$DOCKER" save --output "$OUTPUT" "$APP_IMAGE" "$POSTGRES_IMAGE"

printf '\narchive: %s (%s MB): %s and %s for %s, version %s\n' "$OUTPUT" \
  "$(($(wc -c <"$OUTPUT") / 1000000))" "$APP_IMAGE" "$POSTGRES_IMAGE" "$PLATFORM" "$VERSION"
echo "deploy it (deploy.yml copies the archive to every node and loads it there):"
printf 'cd %q && ansible-playbook ansible/playbooks/deploy.yml -i %q -e minitwit_image=%q -e minitwit_image_archive=%q\n' \
  "$ROOT" "$INVENTORY" "$APP_IMAGE" "$OUTPUT"
