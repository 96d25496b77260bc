# shellcheck shell=bash
# shellcheck disable=SC2034  # LAB_FIGURES and LAB_CHECKS are read by scripts/lab.sh
# The multi-node lab (scripts/lab.sh): test hosts on their own network, an inventory for them,
# the operator's real provision.yml and deploy.yml. Sourced; needs lib/common.sh.

# Distinct from scripts/provision-test.sh's lab (minitwit-lab, 10.77.0.0/24): both can run in one job.
export MINITWIT_LAB_NETWORK="${MINITWIT_LAB_NETWORK:-minitwit-lab17}"
export MINITWIT_LAB_SUBNET="${MINITWIT_LAB_SUBNET:-10.78.0.0/24}"
export MINITWIT_LAB_PREFIX="${MINITWIT_LAB_PREFIX:-minitwit-lab17-}"
# shellcheck source=scripts/lib/testhost.sh
source "$REPO_ROOT/scripts/lib/testhost.sh"
# shellcheck source=scripts/lib/deploy.sh
source "$REPO_ROOT/scripts/lib/deploy.sh"

LAB_NODES="${LAB_NODES:-1}"
LAB_STATE_DIR=/tmp/minitwit-lab17  # minitwit_ci_state_dir in the lab inventory
LAB_INVENTORY=ansible/inventories/lab/hosts.yml
LAB_DOMAIN=minitwit-lab.test
LAB_HOSTS_MARKER="# minitwit-lab17"
LAB_STACK=minitwit
LAB_ARTIFACTS="$REPO_ROOT/artifacts/lab"
# Figures and passed checks for artifacts/lab/lab.{json,md} (scripts/lab.sh writes them).
declare -A LAB_FIGURES=()
LAB_CHECKS=()
# The images the lab's stack runs: every local image of the CI override (Grafana, Loki and Alloy
# are at 0 replicas there), so a service added to stack/ci.yml reaches the nodes too.
LAB_INFRA_IMAGES="$(awk '$1 == "image:" && $2 ~ /^local\// {print $2}' "$REPO_ROOT/stack/ci.yml" | sort -u | tr '\n' ' ')"

# The off-host backup repository: a real S3 server (`rclone serve s3`, MIT licence) with a throwaway
# CA, on its own address of the lab network and on no node: what a provider's object storage is to
# the VMs. pgBackRest 2.45 checks the certificate against the host name, never an address, so
# the nodes' PostgreSQL knows the name from the inventory (pgbackrest_repo_extra_hosts).
LAB_S3_NAME="${MINITWIT_LAB_PREFIX}s3"
LAB_S3_HOST=s3.minitwit-lab.test
LAB_S3_BUCKET=minitwit-backups

# lab_node <n>: container name of node n; lab_node_address <n>: its address (.11, .12, ...).
lab_node() { printf '%snode%s\n' "$MINITWIT_LAB_PREFIX" "$1"; }
lab_node_address() { testhost_address "$((10 + $1))"; }

# lab_docker <args>: the docker CLI of the first manager (the swarm's control plane).
lab_docker() { docker exec "$(lab_node 1)" docker "$@"; }

# What cloud-init gives a fresh VM: an operator account (deploy) with our key and sudo.
lab_prepare_node() {
  local node="$1"
  docker exec -i "$node" sh -ec '
    # "*": no password, yet not locked ("!"), which sshd would refuse even with a key.
    id deploy >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --groups sudo --password "*" deploy
    install -d -m 0700 -o deploy -g deploy /home/deploy/.ssh
    cat >/home/deploy/.ssh/authorized_keys
    chown deploy:deploy /home/deploy/.ssh/authorized_keys
    echo "deploy ALL=(ALL) NOPASSWD:ALL" >/etc/sudoers.d/deploy && chmod 0440 /etc/sudoers.d/deploy
  ' <"$LAB_STATE_DIR/deploy_ed25519.pub"
  # Debian 12's docker.io CLI (20.10) has no `stack deploy --detach=false`, which deploy.yml
  # waits with; Docker's own packages (the production path) have it. Give the nodes the CLI
  # this machine uses, as CI does for itself (docs/deployment.md, "Adding nodes").
  docker cp -L /usr/local/bin/docker "$node:/usr/local/bin/docker"
}

# Write the inventory exactly as an operator would: the first manager initialises the swarm,
# every other host joins by being listed. Up to three managers (a quorum that survives losing
# one), then workers (see docs/deployment.md, "Adding nodes"): both ways of joining are proven.
LAB_MANAGERS_MAX=3
lab_write_inventory() {
  local i managers=$((LAB_NODES < LAB_MANAGERS_MAX ? LAB_NODES : LAB_MANAGERS_MAX))
  {
    printf -- '---\n# Written by scripts/lab.sh up: %s test hosts on %s.\n' "$LAB_NODES" "$LAB_SUBNET"
    printf 'all:\n  vars:\n    ansible_user: deploy\n'
    printf '    ansible_ssh_private_key_file: %s/deploy_ed25519\n' "$LAB_STATE_DIR"
    printf '    ansible_ssh_common_args: "-o UserKnownHostsFile=%s/known_hosts -o StrictHostKeyChecking=accept-new"\n' \
      "$LAB_STATE_DIR"
    printf '  children:\n    swarm_managers:\n      hosts:\n'
    for ((i = 1; i <= managers; i++)); do
      printf '        node%s:\n          ansible_host: %s\n' "$i" "$(lab_node_address "$i")"
    done
    if ((LAB_NODES > managers)); then
      printf '    swarm_workers:\n      hosts:\n'
      for ((i = managers + 1; i <= LAB_NODES; i++)); do
        printf '        node%s:\n          ansible_host: %s\n' "$i" "$(lab_node_address "$i")"
      done
    else
      printf '    swarm_workers:\n      hosts: {}\n'
    fi
  } >"$LAB_INVENTORY"
}

# Throwaway inputs (outside git): the operator's SSH key, and those every deployment needs.
lab_prepare_state() {
  prepare_throwaway_inputs "$LAB_STATE_DIR"
  lab_s3_prepare
  mkdir -p "$LAB_ARTIFACTS"
  chmod 0700 "$LAB_STATE_DIR"
  [[ -f "$LAB_STATE_DIR/deploy_ed25519" ]] ||
    ssh-keygen -q -t ed25519 -N "" -C minitwit-lab -f "$LAB_STATE_DIR/deploy_ed25519"
  # Users reach the site at the first manager's address (DNS would point there).
  grep -qF "$LAB_HOSTS_MARKER" /etc/hosts ||
    printf '%s %s %s\n' "$(lab_node_address 1)" "$LAB_DOMAIN" "$LAB_HOSTS_MARKER" >>/etc/hosts
}

lab_s3_address() { testhost_address 5; }

# lab_s3_prepare: the S3 server's CA, certificate and keys, and an empty bucket (outside git).
lab_s3_prepare() {
  local dir="$LAB_STATE_DIR/s3"
  mkdir -p "$dir/data/$LAB_S3_BUCKET"
  chmod 0700 "$dir"
  [[ -f "$dir/ca.pem" ]] || (
    cd "$dir" || exit 1
    openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=MiniTwit lab S3 CA" \
      -keyout ca-key.pem -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$LAB_S3_HOST" -keyout key.pem -out cert.csr 2>/dev/null
    openssl x509 -req -in cert.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 7 -out cert.pem \
      -extfile <(printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$LAB_S3_HOST") 2>/dev/null
    rm -f cert.csr ca.srl ca-key.pem
  )
  # rclone refuses short access keys; pgBackRest's repository keys are these two.
  [[ -f "$dir/access_key" ]] || openssl rand -hex 12 >"$dir/access_key"
  [[ -f "$dir/secret_key" ]] || openssl rand -hex 24 >"$dir/secret_key"
}

# lab_s3_start: the S3 server, serving $LAB_STATE_DIR/s3/data over HTTPS on :443 (the keys come
# from files: on no command line and not in the container's configuration).
lab_s3_start() {
  docker rm --force "$LAB_S3_NAME" >/dev/null 2>&1 || true
  testhost_ensure_network
  docker run --detach --name "$LAB_S3_NAME" --hostname s3 --network "$LAB_NETWORK" --ip "$(lab_s3_address)" \
    --label minitwit.lab=true --volume "$REPO_ROOT/.venv/bin/rclone:/usr/local/bin/rclone:ro" \
    --volume "$LAB_STATE_DIR/s3:/s3" local/python:3.11-slim sh -c \
    'RCLONE_AUTH_KEY="\"$(cat /s3/access_key),$(cat /s3/secret_key)\"" exec rclone serve s3 /s3/data --addr :443 \
       --cert /s3/cert.pem --key /s3/key.pem --log-level NOTICE' >/dev/null
  retry 30 1 lab_s3_answers || die "the lab's S3 server did not answer within 30 s: $(docker logs --tail 20 "$LAB_S3_NAME" 2>&1)"
}

# lab_s3_answers: it serves TLS with its certificate and refuses an unsigned request (4xx).
lab_s3_answers() {
  [[ "$(curl --silent --output /dev/null --write-out '%{http_code}' --max-time 3 --cacert "$LAB_STATE_DIR/s3/ca.pem" \
    --resolve "$LAB_S3_HOST:443:$(lab_s3_address)" "https://$LAB_S3_HOST/$LAB_S3_BUCKET/")" == 4?? ]]
}

# Build the images, and save those the stack runs into one archive for deploy.yml.
lab_build_images() {
  build_images
  LAB_ARCHIVE="$LAB_STATE_DIR/images.tar"
  # shellcheck disable=SC2086  # a list of image names
  docker save --output "$LAB_ARCHIVE" "$MINITWIT_IMAGE" $LAB_INFRA_IMAGES
  log "image archive: $(du -h "$LAB_ARCHIVE" | cut -f1) ($MINITWIT_IMAGE $LAB_INFRA_IMAGES)"
  # Each image's size (layers shared between images count in each) and the archive's, in MB.
  local image
  for image in "$MINITWIT_IMAGE" $LAB_INFRA_IMAGES; do
    LAB_FIGURES["image_mb ${image%%:*}"]=$(($(docker image inspect --format '{{.Size}}' "$image") / 1000000))
  done
  LAB_FIGURES["image_archive_mb"]=$(($(stat -c %s "$LAB_ARCHIVE") / 1000000))
}

# The deploy arguments: the release and, with no registry, the archive deploy.yml loads on every node.
lab_deploy_args() {
  printf '%s\n' -e "minitwit_image=$MINITWIT_IMAGE" -e "minitwit_image_archive=$LAB_STATE_DIR/images.tar"
}

# lab_nodes_in_inventory: how many nodes the current inventory lists (0 before the first `up`).
lab_nodes_in_inventory() {
  [[ -f "$LAB_INVENTORY" ]] || { echo 0; return; }
  grep -cE '^        node[0-9]+:$' "$LAB_INVENTORY"
}

# lab_start_nodes <first> <last>: boot test hosts first..last as fresh VMs with the operator's account.
lab_start_nodes() {
  local i t0=$SECONDS
  for ((i = $1; i <= $2; i++)); do
    testhost_start "$(lab_node "$i")" "$(lab_node_address "$i")"
    lab_prepare_node "$(lab_node "$i")"
  done
  log "test hosts $1..$2 booted in $((SECONDS - t0)) s"
}

# lab_verify_roles [hosts]: the roles' contract (Molecule's verify tasks) on freshly provisioned
# nodes, before the stack runs there: sshd, UFW, upgrades, chrony, fail2ban, the engine, published
# ports against the firewall, the swarm and its ports, and an nmap scan of each node.
lab_verify_roles() {
  local hosts="${1:-all}" t0=$SECONDS
  run_playbook "$LAB_INVENTORY" "$LAB_STATE_DIR/logs/verify-$hosts.log" ../molecule/shared/verify-lab.yml \
    -e "verify_hosts=$hosts" -e "key_file=$LAB_STATE_DIR/deploy_ed25519" -e "known_hosts=$LAB_STATE_DIR/known_hosts" \
    -e "testhost_container_prefix=$MINITWIT_LAB_PREFIX" -e "lab_network=$MINITWIT_LAB_NETWORK"
  LAB_FIGURES["verify_roles_${hosts//:/_}_s"]=$((SECONDS - t0))
}

# lab_provision_and_deploy <label>: the operator's two commands on the inventory as it stands,
# with the roles verified on <hosts> between them.
lab_provision_and_deploy() {
  local label="$1" hosts="$2" args t0=$SECONDS
  run_playbook "$LAB_INVENTORY" "$LAB_STATE_DIR/logs/provision-$label.log" provision.yml
  LAB_FIGURES["provision_${label}_s"]=$((SECONDS - t0))
  lab_verify_roles "$hosts"
  t0=$SECONDS
  mapfile -t args < <(lab_deploy_args)
  run_playbook "$LAB_INVENTORY" "$LAB_STATE_DIR/logs/deploy-$label.log" deploy.yml "${args[@]}"
  LAB_FIGURES["deploy_${label}_s"]=$((SECONDS - t0))
  lab_write_env
}

# lab_up: LAB_NODES fresh test hosts (default 1: the single-node swarm the README promises),
# provisioned, verified and deployed to.
lab_up() {
  local t0=$SECONDS
  lab_prepare_state
  ensure_engine
  testhost_build_image
  scanner_build_image
  lab_build_images
  LAB_FIGURES["images_s"]=$((SECONDS - t0))
  lab_s3_start
  lab_start_nodes 1 "$LAB_NODES"
  # The throwaway CAs the first manager's stack trusts: Pebble's, and the S3 server's.
  docker exec "$(lab_node 1)" mkdir -p /opt/minitwit-pebble
  docker cp "$LAB_STATE_DIR/pebble/." "$(lab_node 1):/opt/minitwit-pebble/"
  docker cp "$LAB_STATE_DIR/s3/ca.pem" "$(lab_node 1):/opt/minitwit-pebble/s3-ca.pem"
  lab_write_inventory
  lab_provision_and_deploy "${LAB_NODES}nodes" all
}

# lab_grow <n>: add nodes to the running lab up to n, as docs/deployment.md's "Adding nodes"
# says: boot them, list them in the inventory, run provision.yml and deploy.yml again.
lab_grow() {
  local have
  have="$(lab_nodes_in_inventory)"
  ((have >= 1)) || die "no lab to grow: run scripts/lab.sh up first"
  (($1 > have)) || die "the lab already has $have nodes"
  LAB_NODES="$1"
  lab_start_nodes "$((have + 1))" "$LAB_NODES"
  lab_write_inventory
  local new
  new="$(seq -f 'node%g' "$((have + 1))" "$LAB_NODES" | paste -sd:)"
  lab_provision_and_deploy "${LAB_NODES}nodes" "$new"
}

# The values the checks, the benchmark and the drills need to use the lab's stack
# (drills/__main__.py and drills/checks.py read them).
lab_write_env() {
  cat >"$LAB_STATE_DIR/env" <<ENV
# Written by scripts/lab.sh; removed by scripts/lab.sh down.
MINITWIT_STACK=$LAB_STACK
MINITWIT_DOMAIN=$LAB_DOMAIN
MINITWIT_ADDRESS=$(lab_node_address 1)
MINITWIT_API_URL=https://$LAB_DOMAIN/api
MINITWIT_CA_FILE=$LAB_STATE_DIR/acme-root.pem
MINITWIT_IMAGE=$MINITWIT_IMAGE
MINITWIT_INVENTORY=$LAB_INVENTORY
MINITWIT_DEPLOY_ARGS="$(lab_deploy_args | paste -sd' ')"
MINITWIT_LAB_NODES=$LAB_NODES
MINITWIT_LAB_MANAGER=$(lab_node 1)
MINITWIT_LAB_NODE_PREFIX=${MINITWIT_LAB_PREFIX}node
MINITWIT_LAB_NETWORK=$MINITWIT_LAB_NETWORK
MINITWIT_SCANNER_IMAGE=$SCANNER_IMAGE
MINITWIT_STATE_DIR=$LAB_STATE_DIR
MINITWIT_DOCKER="docker exec $(lab_node 1) docker"
MINITWIT_LAB_S3_CONTAINER=$LAB_S3_NAME
MINITWIT_LAB_S3_DATA=$LAB_STATE_DIR/s3/data
ENV
}

# Remove every node, the lab network, the hosts line and the run state.
lab_down() {
  local name
  for name in $(docker ps -a --format '{{.Names}}' --filter "name=^${MINITWIT_LAB_PREFIX}node"); do
    testhost_remove "$name"
  done
  docker rm --force "$LAB_S3_NAME" >/dev/null 2>&1 || true
  testhost_remove_network
  sed -i "/$LAB_HOSTS_MARKER\$/d" /etc/hosts
  rm -rf "${LAB_STATE_DIR:?}" "${REPO_ROOT:?}/$LAB_INVENTORY"
  log "lab removed"
}

# Nodes and where the stack's tasks run, as the first manager sees them.
lab_status() {
  docker ps --filter "name=^${MINITWIT_LAB_PREFIX}node" --format '{{.Names}}\t{{.Status}}'
  lab_docker node ls 2>/dev/null || log "no swarm answers on $(lab_node 1)"
  lab_docker stack ps "$LAB_STACK" --filter desired-state=running \
    --format '{{.Name}}\t{{.Node}}\t{{.CurrentState}}' 2>/dev/null || true
}
