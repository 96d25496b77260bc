#!/usr/bin/env bash
# `scripts/stack-test.sh down`: remove everything `up` created; leave the machine as it was.
# Sourced by scripts/stack-test.sh (needs lib/common.sh and lib/stack-up.sh).
# Kept on purpose: the dockerd that other jobs share, and the built images (a cache).

# True while anything of the stack is still there.
stack_leftovers() {
  local label="label=com.docker.stack.namespace=$STACK_NAME"
  [[ -n "$(docker service ls -q --filter "$label")$(docker ps -aq --filter "$label")" ]] ||
    [[ -n "$(docker network ls -q --filter "$label")" ]]
}

# Remove the stack and wait (at most 180 s) until its tasks and networks are gone.
remove_stack() {
  docker stack rm "$STACK_NAME" >/dev/null 2>&1 || true
  local i
  for ((i = 0; i < 90; i++)); do
    stack_leftovers || return 0
    sleep 2
  done
  log "WARNING: stack $STACK_NAME still has tasks or networks after 180 s"
}

# Remove volumes, secrets and configs of the stack (stack rm keeps volumes and external secrets).
remove_objects() {
  local kind filter
  for kind in volume secret config; do
    for filter in "label=com.docker.stack.namespace=$STACK_NAME" "label=com.minitwit.stack=$STACK_NAME"; do
      [[ "$kind" == volume && "$filter" == *com.minitwit.stack* ]] && continue
      docker "$kind" ls -q --filter "$filter" | xargs -r docker "$kind" rm >/dev/null ||
        log "WARNING: could not remove every $kind ($filter)"
    done
  done
}

# Drop the /etc/hosts line `up` added (rewritten in place: /etc/hosts may be a bind mount).
remove_hosts_line() {
  grep -qF "$STACK_HOSTS_MARKER" /etc/hosts || return 0
  local kept
  kept="$(grep -vF "$STACK_HOSTS_MARKER" /etc/hosts)"
  printf '%s\n' "$kept" >/etc/hosts
}

# Leave the swarm only if `up` created it and nothing else runs in it.
leave_swarm_if_ours() {
  [[ -f "$STACK_STATE_DIR/swarm-created-here" ]] || return 0
  if [[ -z "$(docker service ls -q)" ]]; then
    docker swarm leave --force >/dev/null
  else
    log "NOTE: other services run in the swarm; leaving it active"
  fi
}

stack_down() {
  local t0=$SECONDS
  log "tearing down stack $STACK_NAME"
  # A dead engine leaves the swarm's state on disk, and the next start would bring the old stack
  # back (holding ports 80/443): start it, so the teardown is real.
  if ! docker info >/dev/null 2>&1 && command -v dockerd >/dev/null && [[ -d /var/lib/docker/swarm ]]; then
    ensure_engine
  fi
  if docker info >/dev/null 2>&1; then
    remove_stack
    remove_objects
    leave_swarm_if_ours
  fi
  remove_hosts_line
  rm -rf "$STACK_STATE_DIR"
  log "teardown done in $((SECONDS - t0)) s"
}
