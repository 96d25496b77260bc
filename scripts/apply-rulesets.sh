#!/usr/bin/env bash
# Apply the branch rulesets in .github/rulesets/*.json to a GitHub repository, idempotently:
# a ruleset that exists (same name, defined on the repository) is updated with PUT, a missing
# one is created with POST. Running it twice changes nothing the second time.
#
#   scripts/apply-rulesets.sh [owner/repo]     (default: the repository of the current checkout)
#   DRY_RUN=1 scripts/apply-rulesets.sh ...    print the calls instead of making them
#
# Needs gh (authenticated as a repository admin: `gh auth login`) and jq.
# Ref: https://docs.github.com/rest/repos/rules
set -euo pipefail
cd "$(dirname "$0")/.."

RULESETS_DIR="${RULESETS_DIR:-.github/rulesets}"

# Print the id of the repository-level ruleset named $2 in repo $1, or nothing.
existing_id() {
  gh api "repos/$1/rulesets" --paginate \
    | jq -r --arg name "$2" '.[] | select(.name == $name and .source_type == "Repository") | .id' \
    | head -n 1
}

# Run a gh api call, or only print it under DRY_RUN=1.
call() {
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    echo "DRY_RUN: gh api $*"
  else
    gh api "$@" >/dev/null
  fi
}

# Create or update one ruleset from its JSON file.
apply_one() {
  local repo=$1 file=$2 name id
  name=$(jq -er .name "$file")
  id=$(existing_id "$repo" "$name")
  if [[ -n "$id" ]]; then
    call --method PUT "repos/${repo}/rulesets/${id}" --input "$file"
    echo "updated ruleset '${name}' (id ${id}) on ${repo}"
  else
    call --method POST "repos/${repo}/rulesets" --input "$file"
    echo "created ruleset '${name}' on ${repo}"
  fi
}

main() {
  command -v gh >/dev/null || { echo "gh (GitHub CLI) is required" >&2; exit 1; }
  command -v jq >/dev/null || { echo "jq is required" >&2; exit 1; }
  local repo=${1:-} file
  [[ -n "$repo" ]] || repo=$(gh repo view --json nameWithOwner --jq .nameWithOwner)
  shopt -s nullglob
  local files=("${RULESETS_DIR}"/*.json)
  ((${#files[@]})) || { echo "no rulesets in ${RULESETS_DIR}" >&2; exit 1; }
  for file in "${files[@]}"; do
    apply_one "$repo" "$file"
  done
}

main "$@"
