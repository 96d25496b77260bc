#!/usr/bin/env bash
# Print the newest commit of a tested branch whose tree is identical to <commit>'s tree.
#
#   scripts/find-tested-commit.sh <commit> [<tested ref>]     (default ref: origin/develop)
#
# deploy.yml uses it on main to promote, not rebuild: a develop→main merge (squash, rebase or
# merge commit) gets a new SHA but, because only develop may merge into main, the same tree as
# a develop commit whose image was built, deployed to development and smoke-tested. Same tree
# means byte-identical build context, so that image is the one to ship.
# Exit 1 when no commit among the last $SEARCH_DEPTH of <tested ref> matches (main holds
# something develop never had: refuse to deploy it); exit 2 on a usage error.
set -euo pipefail

SEARCH_DEPTH="${SEARCH_DEPTH:-200}"

main() {
  [[ $# -ge 1 && $# -le 2 ]] || { echo "usage: $0 <commit> [<tested ref>]" >&2; exit 2; }
  local commit=$1 ref=${2:-origin/develop} tree candidate candidate_tree
  tree=$(git rev-parse --verify --quiet "${commit}^{tree}") \
    || { echo "unknown commit: ${commit}" >&2; exit 2; }
  git rev-parse --verify --quiet "${ref}^{commit}" >/dev/null \
    || { echo "unknown ref: ${ref}" >&2; exit 2; }
  while read -r candidate candidate_tree; do
    if [[ "$candidate_tree" == "$tree" ]]; then
      echo "$candidate"
      return 0
    fi
  done < <(git log --first-parent --format='%H %T' -n "$SEARCH_DEPTH" "$ref")
  echo "no commit in the last ${SEARCH_DEPTH} of ${ref} has the tree of ${commit}:" \
    "it was never tested on ${ref}" >&2
  exit 1
}

main "$@"
