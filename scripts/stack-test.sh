#!/usr/bin/env bash
# Deploy the real MiniTwit stack on this machine through the real Ansible playbooks
# (CI inventory, connection: local), assert it works through 127.0.0.1, tear it down.
#
#   scripts/stack-test.sh        up, then down (down also runs when up fails)
#   scripts/stack-test.sh up     deploy + assert, leave the stack running; its host name,
#                                CA file and credentials are in /tmp/minitwit-stack/env
#   scripts/stack-test.sh down   remove the stack, volumes, secrets, configs, networks and
#                                the /etc/hosts line that `up` added
#
# Every deploy and teardown holds /tmp/minitwit-stack.lock (flock -w 1800).
# Needs root, PyPI and Debian mirrors; see docs/deployment.md, "The real deployment in CI".
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/stack-up.sh
source "$REPO_ROOT/scripts/lib/stack-up.sh"
# shellcheck source=scripts/lib/stack-assert.sh
source "$REPO_ROOT/scripts/lib/stack-assert.sh"
# shellcheck source=scripts/lib/stack-observe.sh
source "$REPO_ROOT/scripts/lib/stack-observe.sh"
# shellcheck source=scripts/lib/stack-down.sh
source "$REPO_ROOT/scripts/lib/stack-down.sh"
cd "$REPO_ROOT"

# Hold the stack lock for the whole command, so nobody deploys underneath us.
hold_lock MINITWIT_STACK_LOCK_HELD /tmp/minitwit-stack.lock "$0" "$@"

# On exit: explain a failed `up` with the services' own words; tear down if asked.
on_exit() {
  local status=$?
  if ((status != 0)) && [[ "$STACK_PHASE" == up ]]; then
    print_diagnostics || true
    log "FAILED: stack-test up, after $((SECONDS - UP_STARTED)) s"
  fi
  if [[ "$TEARDOWN" == 1 ]]; then
    stack_down || status=1
  fi
  exit "$status"
}

# up: deploy and assert (any failing step exits, and on_exit explains it).
up() {
  STACK_PHASE=up
  UP_STARTED=$SECONDS
  stack_up
  stack_assert
  STACK_PHASE=passed
  log "stack-test up: all assertions passed in $((SECONDS - UP_STARTED)) s; environment in $STACK_ENV_FILE"
}

main() {
  STACK_PHASE=start
  TEARDOWN=0
  UP_STARTED=$SECONDS
  trap on_exit EXIT
  case "${1:-all}" in
    up) up ;;
    down) stack_down ;;
    all)
      TEARDOWN=1
      up
      ;;
    *) die "usage: $0 [up|down]" ;;
  esac
}

main "$@"
