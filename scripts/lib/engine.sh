# shellcheck shell=bash
# The Docker engine every script that builds images or boots test hosts needs: Debian's docker.io
# installed if missing, dockerd started if not running (CI machines have no init system), and the
# recent Docker CLI (/usr/local/bin/docker, 23+) first on PATH. Sourced; needs lib/common.sh.
# Each script a developer may run by itself calls ensure_engine, so none needs another run first.

export PATH="/usr/local/bin:$PATH"

# Install what is missing of Debian's docker.io and the tools the scripts use.
ensure_packages() {
  local wanted=() tool
  command -v dockerd >/dev/null || wanted+=(docker.io)
  for tool in curl openssl mmdebstrap; do
    command -v "$tool" >/dev/null || wanted+=("$tool")
  done
  ((${#wanted[@]})) || return 0
  log "installing ${wanted[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
}

# Start dockerd when it is not running; refuse a Docker CLI too old for `stack deploy --detach=false`.
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
