# shellcheck shell=bash
# What a real deployment through the operator's playbooks needs (scripts/lab.sh, and the
# engine and tools for scripts/provision-test.sh): the tools on PATH, the engine, the images,
# the throwaway inputs and the playbook runs. Sourced; needs lib/common.sh.

# The Docker CLI first on PATH must be a recent one (docker_stack uses --detach=false).
export PATH="$REPO_ROOT/.venv/bin:/usr/local/bin:$PATH"
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1
# shellcheck source=scripts/lib/venv.sh
source "$REPO_ROOT/scripts/lib/venv.sh"
# shellcheck source=scripts/lib/engine.sh
source "$REPO_ROOT/scripts/lib/engine.sh"

# The playbooks' tools (ansible-playbook, molecule) live in .venv: make it on a fresh clone, as
# scripts/test.sh does (a no-op once requirements-dev.txt is installed).
ensure_tools() {
  (cd "$REPO_ROOT" && ensure_venv requirements-dev.txt) || die "could not install requirements-dev.txt into .venv"
}

# Build every image locally (scripts/build-images.sh); sets MINITWIT_IMAGE.
build_images() {
  local output
  ensure_tools
  output="$(scripts/build-images.sh)" || die "scripts/build-images.sh failed"
  printf '%s\n' "$output" >&2
  MINITWIT_IMAGE="$(printf '%s\n' "$output" | sed -n 's/^MINITWIT_IMAGE=//p' | tail -1)"
  [[ -n "$MINITWIT_IMAGE" ]] || die "scripts/build-images.sh printed no MINITWIT_IMAGE"
  export MINITWIT_IMAGE
}

# prepare_throwaway_inputs <state dir>: the run's logs/ and secrets/ (outside git), Pebble's TLS
# material, and the Traefik dashboard's password with its htpasswd line.
prepare_throwaway_inputs() {
  local dir="$1" password
  mkdir -p "$dir/secrets" "$dir/logs"
  chmod 0700 "$dir/secrets"
  [[ -f "$dir/pebble/ca.pem" ]] || docker/ci/pebble/make-certs.sh "$dir/pebble" >/dev/null
  if [[ ! -f "$dir/secrets/traefik_dashboard_users" ]]; then
    password="$(openssl rand -hex 16)"
    printf '%s\n' "$password" >"$dir/secrets/traefik_dashboard_password"
    printf 'admin:%s\n' "$(openssl passwd -apr1 "$password")" >"$dir/secrets/traefik_dashboard_users"
  fi
}

# run_playbook <inventory> <log file> <playbook> [args]: the real playbook, its output in the log;
# the recap, and the failed tasks if any, on stderr.
run_playbook() {
  local inventory="$1" logfile="$2" playbook="$3" status=0
  shift 3
  log "ansible-playbook $playbook $* (log: $logfile)"
  # A backstop only: the lab's first provision of three nodes is the slowest run, about 10 min.
  timeout 1500 ansible-playbook -i "$inventory" "ansible/playbooks/$playbook" "$@" >"$logfile" 2>&1 || status=$?
  sed -n '/PLAY RECAP/,$p' "$logfile" >&2
  if ((status != 0)); then
    grep -E -A12 '^(fatal|failed):' "$logfile" | tail -60 >&2 || true
  fi
  return "$status"
}
