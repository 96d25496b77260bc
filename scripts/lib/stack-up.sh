#!/usr/bin/env bash
# `scripts/stack-test.sh up`: engine, inputs, images, deployment through Ansible.
# Sourced by scripts/stack-test.sh (needs lib/common.sh).
# shellcheck source=scripts/lib/deploy.sh
source "$REPO_ROOT/scripts/lib/deploy.sh"

STACK_STATE_DIR=/tmp/minitwit-stack
STACK_ENV_FILE="$STACK_STATE_DIR/env"
STACK_NAME=minitwit
STACK_DOMAIN=minitwit.test
STACK_HOSTS_MARKER="# minitwit-stack-test"
STACK_INVENTORY=ansible/inventories/ci/hosts.yml
# Firewall and sshd changes must never run against the CI machine itself.
STACK_SKIP_TAGS=firewall,sshd

# Install what is missing of Debian's docker.io and the tools the assertions use.
ensure_packages() {
  local wanted=() tool
  command -v dockerd >/dev/null || wanted+=(docker.io)
  for tool in curl openssl; do
    command -v "$tool" >/dev/null || wanted+=("$tool")
  done
  ((${#wanted[@]})) || return 0
  log "installing ${wanted[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${wanted[@]}" >/dev/null
}

# Start dockerd when it is not running (no init system on the CI machine).
ensure_engine() {
  ensure_packages
  if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (no init system here); log in /var/log/minitwit-dockerd.log"
    # Tasks must never try to pull: no registry is reachable from here.
    DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 start_daemon /var/log/minitwit-dockerd.log dockerd
    retry 60 1 docker info >/dev/null 2>&1 || die "dockerd did not come up within 60 s"
  fi
  local major
  major="$(docker version --format '{{.Client.Version}}' | cut -d. -f1)"
  ((major >= 23)) || die "docker CLI $(command -v docker) is too old for docker_stack detach=false"
}

# Remember what `down` must undo, and make the per-run inputs (outside git).
prepare_state() {
  prepare_throwaway_inputs "$STACK_STATE_DIR"
  if [[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" == inactive ]]; then
    touch "$STACK_STATE_DIR/swarm-created-here"
  fi
  add_hosts_line
}

# Resolve the stack's host names to 127.0.0.1 for clients on this machine.
add_hosts_line() {
  grep -qF "$STACK_HOSTS_MARKER" /etc/hosts && return
  printf '127.0.0.1 %s grafana.%s traefik.%s %s\n' "$STACK_DOMAIN" "$STACK_DOMAIN" "$STACK_DOMAIN" \
    "$STACK_HOSTS_MARKER" >>/etc/hosts
}

# The values drills, benchmarks and people need to use the running stack.
write_env_file() {
  cat >"$STACK_ENV_FILE" <<ENV
# Written by scripts/stack-test.sh up; removed by scripts/stack-test.sh down.
MINITWIT_STACK=$STACK_NAME
MINITWIT_DOMAIN=$STACK_DOMAIN
MINITWIT_BASE_URL=https://$STACK_DOMAIN
MINITWIT_API_URL=https://$STACK_DOMAIN/api
MINITWIT_CA_FILE=$STACK_STATE_DIR/acme-root.pem
MINITWIT_RESOLVE=$STACK_DOMAIN:443:127.0.0.1
MINITWIT_IMAGE=$MINITWIT_IMAGE
MINITWIT_IMAGE_VAR=minitwit_image
MINITWIT_INVENTORY=$STACK_INVENTORY
MINITWIT_SIMULATOR_AUTH='$(simulator_default_auth)'
MINITWIT_BACKUP_DIR=$STACK_STATE_DIR/backups
TRAEFIK_DASHBOARD_URL=https://traefik.$STACK_DOMAIN/dashboard/
TRAEFIK_DASHBOARD_USER=admin
TRAEFIK_DASHBOARD_PASSWORD=$(cat "$STACK_STATE_DIR/secrets/traefik_dashboard_password")
ENV
}

# Everything `up` does before the assertions.
stack_up() {
  ensure_engine
  prepare_state
  local t0=$SECONDS
  build_images
  log "images built in $((SECONDS - t0)) s"
  t0=$SECONDS
  run_playbook "$STACK_INVENTORY" "$STACK_STATE_DIR/logs/site-1.log" site.yml --skip-tags "$STACK_SKIP_TAGS" -e "minitwit_image=$MINITWIT_IMAGE"
  log "first site.yml run (provision + deploy + /ready check) took $((SECONDS - t0)) s"
  write_env_file
}
