#!/usr/bin/env bash
# Prove provision.yml on fresh Debian 12 test hosts (docker/testhost/): the Molecule scenarios
# of the base, docker and swarm roles (converge, idempotence, verify from inside and outside),
# run in parallel, then a summary. Exits non-zero on any miss.
#
#   scripts/provision-test.sh              every scenario
#   scripts/provision-test.sh base docker  only these
#
# Logs: artifacts/provision-test/<scenario>.log. Needs root, dockerd, mmdebstrap; makes .venv itself if missing.
# Traffic goes only to the lab network's test hosts (MINITWIT_LAB_SUBNET, default 10.77.0.0/24).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/deploy.sh
source "$REPO_ROOT/scripts/lib/deploy.sh"  # ensure_tools, ensure_engine, and the CLI 28 first on PATH
# shellcheck source=scripts/lib/testhost.sh
source "$REPO_ROOT/scripts/lib/testhost.sh"
cd "$REPO_ROOT"

SCENARIOS=(base docker swarm)
# The small image the docker and swarm scenarios ship into nodes (ansible/molecule/shared/vars.yml).
PROBE_IMAGE=local/python:3.11-slim
LOG_DIR="$REPO_ROOT/artifacts/provision-test"
SUMMARY=()
FAILED=0
# Plain logs that the summary can parse.
export PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1

# step_result <log> <scenario> <action>: ok, FAILED or "-" (not reached), from Molecule's log.
step_result() {
  local line
  line="$(grep -aE "\[$2 > $3\] Executed: " "$1" | tail -1)" || true
  case "$line" in
    *Successful*) echo ok ;;
    *Failed*) echo FAILED ;;
    *) echo - ;;
  esac
}

# run_scenario <name>: molecule test on fresh nodes; its exit status and time go to files.
run_scenario() {
  local name="$1" t0=$SECONDS status=0
  (cd ansible && timeout --kill-after=60 1500 molecule test -s "$name") >"$LOG_DIR/$name.log" 2>&1 || status=$?
  echo "$status $((SECONDS - t0))" >"$LOG_DIR/$name.result"
}

# summarise <name>: one summary row from the scenario's log; explain a failure.
summarise() {
  local name="$1" log="$LOG_DIR/$1.log" status seconds
  # No result file: the scenario was killed (e.g. by timeout's parent) before it could write one.
  read -r status seconds <"$LOG_DIR/$name.result" 2>/dev/null || { status=1 seconds="?"; }
  SUMMARY+=("$(printf '%-10s %-9s %-12s %-7s %4ss' "$name" "$(step_result "$log" "$name" converge)" \
    "$(step_result "$log" "$name" idempotence)" "$(step_result "$log" "$name" verify)" "$seconds")")
  if ((status != 0)); then
    FAILED=1
    log "scenario $name failed (exit $status); the end of its log:"
    grep -aE -B2 -A14 '^(fatal|failed):|CRITICAL' "$log" | tail -60 >&2 || true
  fi
}

# print_summary <scenario>...: the table, then the open ports each scan found.
print_summary() {
  local scenario
  printf '\n%-10s %-9s %-12s %-7s %5s\n' scenario converge idempotence verify time
  printf '%s\n' "${SUMMARY[@]}"
  printf '\nOpen TCP ports found from outside (nmap, every port):\n'
  for scenario in "$@"; do
    grep -aho 'open-ports [^"]*' "$LOG_DIR/$scenario.log" | sed "s/^open-ports /  $scenario: /" | sort -u ||
      echo "  $scenario: no scan reached"
  done
}

main() {
  local scenarios=("$@")
  ((${#scenarios[@]})) || scenarios=("${SCENARIOS[@]}")
  ensure_tools
  command -v molecule >/dev/null || die "molecule not installed (pip install -r requirements-dev.txt)"
  mkdir -p "$LOG_DIR"
  ensure_engine
  testhost_build_image
  scanner_build_image
  # On a fresh machine, build the probe image (with the stack's images, which the lab reuses).
  docker image inspect "$PROBE_IMAGE" >/dev/null 2>&1 || scripts/build-images.sh >&2
  testhost_ensure_network
  local scenario pids=()
  # The scenarios use separate nodes and addresses; in parallel, package downloads overlap.
  for scenario in "${scenarios[@]}"; do
    log "molecule test -s $scenario (log: $LOG_DIR/$scenario.log)"
    rm -f "$LOG_DIR/$scenario.result"
    run_scenario "$scenario" &
    pids+=("$!")
  done
  # Only the scenarios: a bare `wait` would also wait for any other child of this shell.
  wait "${pids[@]}" || true
  for scenario in "${scenarios[@]}"; do
    summarise "$scenario"
  done
  print_summary "${scenarios[@]}"
  testhost_remove_network  # Molecule removed the nodes; a network still in use stays
  ((FAILED == 0)) || die "provision-test: a scenario failed (logs in $LOG_DIR)"
  log "provision-test: every scenario passed"
}

main "$@"
