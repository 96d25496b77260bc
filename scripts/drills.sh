#!/usr/bin/env bash
# Run the five reliability drills (docs/reliability.md) against the stack that
# `scripts/stack-test.sh up` left running; report in artifacts/drills/.
# Exits non-zero when any objective is missed.
#
# Holds /tmp/minitwit-stack.lock for the whole run so nobody redeploys underneath
# (drills 1 and 4 deploy); a caller that already holds it sets
# MINITWIT_STACK_LOCK_HELD=1. Options are passed to `python -m drills`
# (e.g. --only 1,2).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"
hold_lock MINITWIT_STACK_LOCK_HELD /tmp/minitwit-stack.lock "$0" "$@"

skip() {
  if [[ "${MINITWIT_STRICT:-}" == 1 ]]; then
    echo "MINITWIT_STRICT=1: $1" >&2
    exit 1
  fi
  echo "SKIPPED: $1"
  exit 0
}

# The venv has ansible-playbook; docker_stack needs the recent Docker CLI in /usr/local/bin first.
export PATH="$PWD/.venv/bin:/usr/local/bin:$PATH" ANSIBLE_NOCOLOR=1
# drills/ takes the simulator's credentials from the service (minitwit.config).
export PYTHONPATH="$PWD/service${PYTHONPATH:+:$PYTHONPATH}"
env_file="${MINITWIT_STACK_ENV:-/tmp/minitwit-stack/env}"
[[ -f "$env_file" ]] || skip "drills: no running stack ($env_file missing); run scripts/stack-test.sh up first"
for tool in docker ansible-playbook python; do
  command -v "$tool" >/dev/null || skip "drills: $tool not installed"
done

# Every step inside has its own bound; this is the backstop for the whole run.
timeout 1800 python -m drills --env-file "$env_file" "$@"
