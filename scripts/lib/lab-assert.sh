# shellcheck shell=bash
# shellcheck disable=SC2034  # LAB_FIGURES and LAB_CHECKS are read by scripts/lab.sh
# `scripts/lab.sh test`: what must hold once the stack runs across the lab's nodes. Sourced after
# lib/lab.sh. Traffic goes only to the lab nodes' addresses; everything else is `docker exec`.

# lab_ok <message>: record and print a passed check.
lab_ok() {
  LAB_CHECKS+=("$*")
  log "OK $*"
}

# curl over HTTPS to the first manager's address, trusting only the ACME server's root.
lab_curl() {
  curl -sS --max-time 10 --cacert "$LAB_STATE_DIR/acme-root.pem" \
    --resolve "$LAB_DOMAIN:443:$(lab_node_address 1)" "$@"
}

# Every node is Ready (and a manager: the control plane survives losing one of three).
assert_nodes_ready() {
  local ready
  ready="$(lab_docker node ls --format '{{.Status}} {{.ManagerStatus}}' | grep -c '^Ready ' || true)"
  ((ready == LAB_NODES)) || die "$ready of $LAB_NODES nodes Ready: $(lab_docker node ls)"
  LAB_FIGURES["nodes_ready"]=$ready
  lab_ok "$ready of $LAB_NODES nodes Ready"
}

# app_task_nodes: "<container id> <node hostname>" per running app task.
app_task_nodes() {
  local tasks
  tasks="$(lab_docker service ps -q --filter desired-state=running "${LAB_STACK}_app")"
  # shellcheck disable=SC2086  # a list of task ids
  lab_docker inspect --format '{{.Status.ContainerStatus.ContainerID}} {{.NodeID}}' $tasks |
    while read -r container node; do
      printf '%s %s\n' "${container:0:12}" "$(lab_docker node inspect --format '{{.Description.Hostname}}' "$node")"
    done
}

# The stack's pinned services run where they must: PostgreSQL, Traefik and Prometheus on the
# labelled node, app replicas on at least two nodes (one node: on it).
assert_placement() {
  local service node nodes want=$((LAB_NODES > 1 ? 2 : 1))
  for service in postgres traefik prometheus; do
    node="$(lab_docker service ps --filter desired-state=running --format '{{.Node}}' "${LAB_STACK}_$service")"
    [[ "$node" == node1 ]] || die "$service runs on '$node', expected the labelled node node1"
  done
  nodes="$(app_task_nodes | awk '{print $2}' | sort -u | grep -c .)"
  ((nodes >= want)) || die "app replicas on $nodes node(s), expected at least $want: $(app_task_nodes)"
  LAB_FIGURES["app_nodes"]=$nodes
  lab_ok "postgres, traefik, prometheus on node1; app replicas on $nodes nodes ($(app_task_nodes | awk '{print $2}' | xargs))"
}

# Requests through Traefik on node1's 443 reach every replica, those on other nodes included.
assert_routes_across_nodes() {
  local i served=() map distinct remote=0
  for ((i = 1; i <= 30; i++)); do
    served+=("$(lab_curl -o /dev/null -D - "https://$LAB_DOMAIN/api/latest" |
      sed -n 's/^[Xx]-[Ss]erved-[Bb]y: *\([^[:space:]]*\).*/\1/p')")
  done
  map="$(app_task_nodes)"
  distinct="$(printf '%s\n' "${served[@]}" | sort -u | grep -c .)"
  ((distinct == 3)) || die "30 requests reached $distinct replica(s), expected 3: ${served[*]}"
  for i in $(printf '%s\n' "${served[@]}" | sort -u); do
    grep -q "^$i node1\$" <<<"$map" || remote=$((remote + 1))
  done
  ((LAB_NODES == 1 || remote >= 1)) || die "no request reached a replica on another node: $map"
  LAB_FIGURES["replicas_reached"]=$distinct
  LAB_FIGURES["replicas_reached_on_other_nodes"]=$remote
  lab_ok "30 requests via node1:443 reached $distinct replicas, $remote of them on other nodes"
}

# prom_value <PromQL>: asked from inside Prometheus's container on node1 (it publishes nothing).
lab_prom_value() {
  local container
  container="$(docker exec "$(lab_node 1)" docker ps -q --filter "label=com.docker.swarm.service.name=${LAB_STACK}_prometheus")"
  [[ -n "$container" ]] || return 1
  docker exec "$(lab_node 1)" docker exec "$container" promtool query -o json instant http://127.0.0.1:9090 "$1" |
    python3 -c 'import json, sys; r = json.load(sys.stdin); print(r[0]["value"][1] if r else "")'
}

# Prometheus on node1 scrapes all 3 replicas across the overlay.
assert_prometheus_targets() {
  local deadline=$((SECONDS + 120)) n=""
  while ((SECONDS < deadline)); do
    n="$(lab_prom_value 'count(up{job="minitwit"} == 1)' || true)"
    [[ "${n:-0}" == 3 ]] && break
    sleep 5
  done
  [[ "${n:-0}" == 3 ]] || die "Prometheus sees ${n:-0} healthy app targets, expected 3"
  LAB_FIGURES["prometheus_app_targets_up"]=$n
  lab_ok "Prometheus has all $n app targets up across the overlay"
}

# lab_recap_unchanged <log>: every host's recap says changed=0 failed=0.
lab_recap_unchanged() {
  local recap
  recap="$(sed -n '/PLAY RECAP/,$p' "$LAB_STATE_DIR/logs/$1.log" | grep -E ' : ok=')"
  if grep -vE 'changed=0 .*failed=0 ' <<<"$recap" | grep -q .; then
    grep -E -B2 '^changed:' "$LAB_STATE_DIR/logs/$1.log" >&2 || true
    die "second $1 run is not idempotent: $recap"
  fi
}

# A second provision.yml and deploy.yml change nothing on any node.
assert_idempotent() {
  local args
  run_playbook "$LAB_INVENTORY" "$LAB_STATE_DIR/logs/provision-2.log" provision.yml
  lab_recap_unchanged provision-2
  mapfile -t args < <(lab_deploy_args)
  run_playbook "$LAB_INVENTORY" "$LAB_STATE_DIR/logs/deploy-2.log" deploy.yml "${args[@]}"
  lab_recap_unchanged deploy-2
  lab_ok "second provision.yml and deploy.yml: changed=0 on every node"
}

# Outside-in, with the whole stack running: nmap scans every TCP port of each node from another
# address on the lab network (only the lab nodes' addresses). Node 1, which runs Traefik, shows
# exactly 22, 80 and 443; the others only 22. So Prometheus, Grafana, Loki, Alloy, Alertmanager,
# the exporters, PostgreSQL, Traefik's dashboard and metrics and the app's metrics port are not
# reachable, and neither are Swarm's ports from outside the swarm.
assert_scanned_from_outside() {
  local n address open expected
  scanner_build_image
  for ((n = 1; n <= LAB_NODES; n++)); do
    address="$(lab_node_address "$n")"
    expected=22
    ((n == 1)) && expected=22,80,443
    open="$(docker run --rm --network "$MINITWIT_LAB_NETWORK" "$SCANNER_IMAGE" \
      nmap -Pn -n -sS -p- -T4 --max-retries 1 --min-rate 2000 -oG - "$address" |
      grep -oE '[0-9]+/open/tcp' | cut -d/ -f1 | sort -n | paste -sd, -)"
    log "open TCP ports of $(lab_node "$n") ($address), scanned from the lab network: ${open:-none}"
    [[ "$open" == "$expected" ]] ||
      die "$(lab_node "$n") ($address) has open TCP ports ${open:-none}; expected exactly $expected"
    LAB_FIGURES["open_tcp_ports_node$n"]="${open// /}"
  done
  lab_ok "nmap from the lab network: node 1 (Traefik) has exactly 22, 80, 443 open, the others only 22"
}

lab_assert() {
  assert_nodes_ready
  assert_placement
  assert_routes_across_nodes
  assert_prometheus_targets
  assert_scanned_from_outside
  assert_idempotent
}
