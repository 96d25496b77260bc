#!/usr/bin/env bash
# Print the semantic version (X.Y.Z, no "v") to release <commit> as.
#
#   scripts/next-version.sh [<commit>]      (default HEAD; run inside the repository)
#
# Rules, so a release is reproducible and a re-run never makes a second one:
#   1. <commit> already carries a vX.Y.Z tag → that version (idempotent re-run).
#   2. Otherwise X.Y come from pyproject.toml's `version` (bump them there for a minor or
#      major release); Z is pyproject's patch, or one more than the highest existing vX.Y.*
#      tag, whichever is larger.
# Needs the tags fetched (actions/checkout with fetch-depth: 0).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

# Print the version of [project] in pyproject.toml at <commit>.
project_version() {
  git show "$1:pyproject.toml" \
    | sed -n 's/^version[[:space:]]*=[[:space:]]*"\([0-9]*\.[0-9]*\.[0-9]*\)".*/\1/p' | head -n 1
}

main() {
  [[ $# -le 1 ]] || { echo "usage: $0 [<commit>]" >&2; exit 2; }
  local commit=${1:-HEAD} existing base major minor patch highest
  existing=$(git tag --points-at "$commit" --list 'v[0-9]*.[0-9]*.[0-9]*' | sort -V | tail -n 1)
  if [[ -n "$existing" ]]; then
    echo "${existing#v}"
    return
  fi
  base=$(project_version "$commit")
  [[ -n "$base" ]] || { echo "no X.Y.Z version in pyproject.toml at ${commit}" >&2; exit 1; }
  IFS=. read -r major minor patch <<<"$base"
  highest=$(git tag --list "v${major}.${minor}.*" | sed -n "s/^v${major}\.${minor}\.\([0-9]*\)$/\1/p" \
    | sort -n | tail -n 1)
  if [[ -n "$highest" ]] && ((highest >= patch)); then
    patch=$((highest + 1))
  fi
  echo "${major}.${minor}.${patch}"
}

main "$@"
