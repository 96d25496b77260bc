#!/usr/bin/env bash
# `scripts/stack-test.sh up`: Prometheus, idempotence and diagnostics checks, and the
# list of assertions. Sourced by scripts/stack-test.sh (after lib/stack-assert.sh).

# prom_value <PromQL>: the first sample's value of an instant query ("" when none), asked
# from inside the Prometheus container (Prometheus publishes nothing).
prom_value() {
  local container
  container="$(stack_container prometheus)"
  [[ -n "$container" ]] || die "no running prometheus container"
  docker exec "$container" promtool query -o json instant http://127.0.0.1:9090 "$1" |
    python3 -c 'import json, sys; r = json.load(sys.stdin); print(r[0]["value"][1] if r else "")'
}

# wait_prom <seconds> <PromQL> <minimum>: poll until the value reaches the minimum; echo it.
wait_prom() {
  local deadline=$((SECONDS + $1)) query="$2" minimum="$3" v=""
  while ((SECONDS < deadline)); do
    v="$(prom_value "$query")"
    if [[ -n "$v" ]] && ((${v%.*} >= minimum)); then
      echo "$v"
      return 0
    fi
    sleep 5
  done
  echo "$v"
  return 1
}

# Prometheus scrapes 3 app replicas and Traefik, and the business counters move with traffic.
assert_prometheus() {
  local n before after
  n="$(wait_prom 90 'count(up{job="minitwit"} == 1)' 3)" ||
    die "Prometheus sees ${n:-0} healthy app targets, expected 3"
  n="$(wait_prom 60 'count(up{job="traefik"} == 1)' 1)" ||
    die "Prometheus sees ${n:-0} healthy traefik targets, expected 1"
  log "OK Prometheus: 3 app targets and traefik up"
  before="$(prom_value 'sum(minitwit_messages_posted_total)')"
  before="${before:-0}"
  post_through_api
  after="$(wait_prom 90 'sum(minitwit_messages_posted_total)' $((${before%.*} + 3)))" ||
    die "minitwit_messages_posted_total did not grow by 3 (before $before, now ${after:-none})"
  # The registration may have landed on a replica that Prometheus has not scraped since: wait too.
  n="$(wait_prom 60 'sum(minitwit_users_registered_total{source="api"})' 1)" ||
    die "minitwit_users_registered_total{source=\"api\"} is still ${n:-0}"
  log "OK business counters moved: messages posted $before -> $after, API registrations $n"
}

# Prometheus scrapes every exporter task: node (one per node), postgres (logged in: pg_up 1)
# and Alertmanager, and has Alertmanager as its notification target.
assert_exporters() {
  local job n
  for job in node postgres alertmanager; do
    n="$(wait_prom 120 "count(up{job=\"$job\"} == 1)" 1)" ||
      die "Prometheus sees ${n:-0} healthy $job targets, expected at least 1"
  done
  n="$(wait_prom 60 'max(pg_up{job="postgres"})' 1)" ||
    die "postgres-exporter cannot log in to PostgreSQL (pg_up ${n:-absent}): is the monitoring role there?"
  n="$(wait_prom 60 'prometheus_notifications_alertmanagers_discovered' 1)" ||
    die "Prometheus discovered ${n:-0} Alertmanagers, expected 1"
  log "OK Prometheus: node, postgres (pg_up 1) and alertmanager targets up; 1 Alertmanager discovered"
}

# sink_notifications: the JSON lines the CI alert sink printed (one per notification).
sink_notifications() {
  local container
  container="$(stack_container alert-sink)"
  [[ -n "$container" ]] || die "no running alert-sink container"
  timeout 20 docker logs "$container" 2>/dev/null | grep '^{' || true
}

# The Watchdog reaches the heartbeat receiver (the sink) within WATCHDOG_BOUND_S of
# Alertmanager's start: Prometheus evaluates it every 15 s and resends firing alerts every
# minute, Alertmanager's heartbeat route waits 0 s. Bound: a resend plus two evaluations.
WATCHDOG_BOUND_S=${WATCHDOG_BOUND_S:-120}
assert_watchdog_delivered() {
  local started deadline arrived=""
  started="$(docker inspect --format '{{.State.StartedAt}}' "$(stack_container alertmanager)")"
  started="$(date -d "$started" +%s.%N)"
  deadline=$((SECONDS + WATCHDOG_BOUND_S))
  while ((SECONDS < deadline)); do
    arrived="$(sink_notifications | python3 -c '
import json, sys
found = [json.loads(line) for line in sys.stdin]
at = [n["at"] for n in found if n["alertname"] == "Watchdog" and n["via"] == "heartbeat"]
print(min(at) if at else "")')"
    [[ -n "$arrived" ]] && break
    sleep 5
  done
  [[ -n "$arrived" ]] || die "no Watchdog notification at the sink within $WATCHDOG_BOUND_S s"
  local after
  after="$(python3 -c "print(round($arrived - $started, 1))")"
  python3 -c "import sys; sys.exit($after > $WATCHDOG_BOUND_S)" ||
    die "Watchdog reached the sink $after s after Alertmanager started (bound $WATCHDOG_BOUND_S s)"
  log "OK Watchdog notification at the heartbeat sink $after s after Alertmanager started (bound $WATCHDOG_BOUND_S s)"
}

# A second run of the whole site.yml (provision + deploy) changes nothing.
assert_idempotent() {
  run_playbook "$STACK_INVENTORY" "$STACK_STATE_DIR/logs/site-2.log" site.yml --skip-tags "$STACK_SKIP_TAGS" -e "minitwit_image=$MINITWIT_IMAGE"
  local recap
  recap="$(grep -E '^ci-node +:' "$STACK_STATE_DIR/logs/site-2.log")"
  [[ "$recap" =~ changed=0\  && "$recap" =~ failed=0\  ]] || {
    grep -E -B2 '^changed:' "$STACK_STATE_DIR/logs/site-2.log" >&2 || true
    die "second site.yml run is not idempotent: $recap"
  }
  log "OK second site.yml run: $recap"
}

# Print `docker service ps` and logs of the services that explain a failure.
print_diagnostics() {
  local service replicas failing=()
  while read -r service replicas; do
    [[ "${replicas%%/*}" == "${replicas##*/}" ]] || failing+=("$service")
  done < <(docker service ls --filter "label=com.docker.stack.namespace=$STACK_NAME" \
    --format '{{.Name}} {{.Replicas}}' 2>/dev/null)
  ((${#failing[@]})) || failing=("${STACK_NAME}_traefik" "${STACK_NAME}_app")
  for service in "${failing[@]}"; do
    log "---- docker service ps --no-trunc $service"
    timeout 30 docker service ps --no-trunc "$service" >&2 || true
    log "---- docker service logs --tail 60 $service"
    # Bounded: `docker service logs` can hang on tasks whose containers are gone.
    timeout 30 docker service logs --no-task-ids --tail 60 "$service" >&2 || true
  done
}

# Every assertion of `up`, cheapest first.
stack_assert() {
  local t0=$SECONDS
  assert_certificate
  assert_redirect
  assert_only_traefik_publishes
  assert_replicas_serve
  assert_dashboard_auth
  assert_body_limits
  assert_prometheus
  assert_exporters
  assert_watchdog_delivered
  run_project_suites
  assert_idempotent
  log "assertions took $((SECONDS - t0)) s"
}
