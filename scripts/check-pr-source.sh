#!/usr/bin/env bash
# Guard for pull requests into main: only `develop` of this same repository may be merged.
#
#   scripts/check-pr-source.sh <head ref> <head repo> <base repo>
#   e.g. scripts/check-pr-source.sh develop minitwit-ops/minitwit minitwit-ops/minitwit
#
# Exit 0 when the head branch is `develop` AND the head repository is the base repository;
# exit 1 otherwise (a fork can name its branch `develop`, so the repository is checked too);
# exit 2 on a usage error. .github/workflows/guard.yml runs this as a required check.
set -euo pipefail

ALLOWED_HEAD_REF="develop"

# Print the usage line and exit 2.
usage() {
  echo "usage: $0 <head ref> <head repo owner/name> <base repo owner/name>" >&2
  exit 2
}

# Lower-case a repository name: GitHub owner/name are case-insensitive.
lower() {
  printf '%s' "$1" | tr '[:upper:]' '[:lower:]'
}

main() {
  [[ $# -eq 3 ]] || usage
  local head_ref=$1 head_repo=$2 base_repo=$3
  [[ -n "$base_repo" ]] || usage
  if [[ "$head_ref" != "$ALLOWED_HEAD_REF" ]]; then
    echo "REJECTED: head branch is '${head_ref}'; only '${ALLOWED_HEAD_REF}' may be merged into main." >&2
    exit 1
  fi
  # An empty head repo means the fork was deleted: never trust it.
  if [[ -z "$head_repo" || "$(lower "$head_repo")" != "$(lower "$base_repo")" ]]; then
    echo "REJECTED: head repository is '${head_repo:-<deleted>}', not '${base_repo}';" \
      "a fork's '${ALLOWED_HEAD_REF}' is not this repository's." >&2
    exit 1
  fi
  echo "OK: ${head_repo}:${head_ref} may be merged into main."
}

main "$@"
