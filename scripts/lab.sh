#!/usr/bin/env bash
# The lab: test hosts (Debian 12 "VMs" as containers) on their own network, an inventory for them,
# and the operator's real provision.yml and deploy.yml. Every proof of the deployed stack runs here.
#
#   scripts/lab.sh images      build every image the lab uses (test host, scanner, the stack's)
#   scripts/lab.sh up [N]      N fresh test hosts (default 1): provision, verify the roles, deploy
#   scripts/lab.sh grow N      add nodes up to N by the "Adding nodes" inventory edit: boot them,
#                              provision, verify the new nodes' roles, deploy again
#   scripts/lab.sh check single|multi
#                              the deployed-stack checks (drills/checks.py) for one node or several
#   scripts/lab.sh bench       the short benchmark through Traefik, with the CI gates
#   scripts/lab.sh drills [--only 1,2]
#                              the failure drills against the lab (python -m drills)
#   scripts/lab.sh test        the operator's story, each stage timed: up 1, check single, bench,
#                              drills 1-5, 7, 8, grow 4 (three managers and a worker), check multi,
#                              drill 6, down (also on failure)
#   scripts/lab.sh status      the nodes and where the stack's tasks run
#   scripts/lab.sh down        remove the nodes, their volumes, the lab network and the run state
#
# Reports in artifacts/lab/ (checks-*.{json,md}, lab.{json,md}, stages.tsv) and artifacts/drills/.
# Needs root and a Debian 12 machine; installs and starts what it needs (docker.io, dockerd,
# mmdebstrap, .venv). Traffic goes only to the lab's addresses (MINITWIT_LAB_SUBNET, 10.78.0.0/24).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/lab.sh
source "$REPO_ROOT/scripts/lib/lab.sh"
cd "$REPO_ROOT"

# One lab at a time on this machine (its names, subnet and /etc/hosts line are fixed).
hold_lock MINITWIT_LAB_LOCK_HELD /tmp/minitwit-lab17.lock "$0" "$@"

# The gates of the short benchmark through Traefik (docs/performance.md, "CI gates").
BENCH_ROWS=3000
BENCH_GATES=(--fail-on starvation --starved-allowed 4)

# lab_load_env: the running lab's release and size, for a command after `up`.
lab_load_env() {
  [[ -f "$LAB_STATE_DIR/env" ]] || die "no lab is up ($LAB_STATE_DIR/env missing): run scripts/lab.sh up first"
  MINITWIT_IMAGE="$(sed -n 's/^MINITWIT_IMAGE=//p' "$LAB_STATE_DIR/env")"
  LAB_NODES="$(sed -n 's/^MINITWIT_LAB_NODES=//p' "$LAB_STATE_DIR/env")"
  export MINITWIT_IMAGE
}

lab_check() {
  [[ "${1:-}" == single || "${1:-}" == multi ]] || die "usage: $0 check single|multi"
  ensure_tools
  PYTHONPATH="$REPO_ROOT/service" .venv/bin/python -m drills.checks --env-file "$LAB_STATE_DIR/env" \
    --stage "$1" --out "$LAB_ARTIFACTS"
}

lab_bench() {
  ensure_tools
  scripts/bench.sh --url "https://$LAB_DOMAIN/api" --cacert "$LAB_STATE_DIR/acme-root.pem" \
    --resolve-to "$(lab_node_address 1)" --rows "$BENCH_ROWS" --clients 16 "${BENCH_GATES[@]}" \
    --json "$REPO_ROOT/artifacts/bench/stack.json"
}

lab_drills() {
  ensure_tools
  # Every step inside has its own bound; this is the backstop for the whole run.
  PYTHONPATH="$REPO_ROOT/service" timeout 1800 .venv/bin/python -m drills --env-file "$LAB_STATE_DIR/env" "$@"
}

# stage <name> <command>...: run one stage of `test`, print and record its time. A failing stage
# exits the script (errexit stays in force: no `||` around the command); on_exit records it.
stage() {
  STAGE_NAME="$1" STAGE_STARTED=$SECONDS
  shift
  printf '\n##### lab: %s\n' "$STAGE_NAME" >&2
  "$@"
  stage_done ok
}

# stage_done <result>: one row of stages.tsv for the stage that just ended.
stage_done() {
  [[ -n "${STAGE_NAME:-}" ]] || return 0
  printf '%s\t%s\t%s\n' "$STAGE_NAME" "$((SECONDS - STAGE_STARTED))" "$1" >>"$LAB_ARTIFACTS/stages.tsv"
  log "lab stage '$STAGE_NAME': $((SECONDS - STAGE_STARTED)) s, $1"
  STAGE_NAME=""
}

# lab.{json,md}: the lab's figures (deploy and provision times, image sizes) and the stage times.
lab_report() {
  local passed="$1" k figures=""
  mkdir -p "$LAB_ARTIFACTS"
  for k in "${!LAB_FIGURES[@]}"; do figures+="$k=${LAB_FIGURES[$k]}"$'\n'; done
  LAB_FIGURES_TEXT="$figures" python3 - "$LAB_ARTIFACTS" "$passed" "$LAB_NODES" <<'PY'
import json, os, pathlib, sys
out, passed, nodes = pathlib.Path(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3])
figures = dict(line.split("=", 1) for line in os.environ["LAB_FIGURES_TEXT"].splitlines() if "=" in line)
figures = {k: int(v) if v.isdigit() else v for k, v in sorted(figures.items())}
stages = [line.split("\t") for line in (out / "stages.tsv").read_text().splitlines()] if (out / "stages.tsv").exists() else []
doc = {"passed": passed, "nodes": nodes, "figures": figures, "stages": [{"stage": s, "seconds": int(t), "result": r} for s, t, r in stages]}
(out / "lab.json").write_text(json.dumps(doc, indent=2) + "\n")
lines = [f"# Lab: {'PASS' if passed else 'FAIL'} ({nodes} nodes at the end)", "", "| Stage | Seconds | Result |", "|---|---:|---|"]
lines += [f"| {s} | {t} | {r} |" for s, t, r in stages]
lines += ["", "| Figure | Value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in figures.items()]
lines += ["", "The checks: checks-single.md and checks-multi.md; the drills: ../drills/report.md and report.md here."]
(out / "lab.md").write_text("\n".join(lines) + "\n")
PY
  log "lab report: $LAB_ARTIFACTS/lab.md"
}

# The whole story, as an operator lives it; each stage's time goes to artifacts/lab/stages.tsv.
lab_test() {
  rm -rf "$LAB_ARTIFACTS" "$REPO_ROOT/artifacts/drills"
  mkdir -p "$LAB_ARTIFACTS"
  stage "down (leftovers)" lab_down
  LAB_NODES=1
  stage "up: 1 node, provision + verify roles + deploy" lab_up
  stage "checks: single node" lab_check single
  stage "benchmark through Traefik" lab_bench
  # 7 (repository away) before 5 (disk loss): 5's restore proves 7 lost nothing; 8 restores to a moment.
  stage "drills 1-5, 7, 8" lab_drills --only 1,2,3,4,7,5,8 --out "$REPO_ROOT/artifacts/drills"
  stage "grow to 4 nodes (3 managers, 1 worker): provision + verify roles + deploy" lab_grow 4
  stage "checks: four nodes" lab_check multi
  stage "drill 6: node loss" lab_drills --only 6 --out "$LAB_ARTIFACTS"
  printf '\n' >&2
  column -t -s $'\t' "$LAB_ARTIFACTS/stages.tsv" >&2 || cat "$LAB_ARTIFACTS/stages.tsv" >&2
}

# On exit: the report (also of a failed run), then teardown when `test` started the lab.
on_exit() {
  local status=$?
  ((status == 0)) || stage_done FAILED
  if [[ "$LAB_REPORT" == 1 ]]; then
    LAB_FIGURES[total_s]=$((SECONDS - LAB_STARTED))
    lab_report "$((status == 0))" || status=1
    ((status == 0)) || { lab_status || true; log "FAILED: lab after $((SECONDS - LAB_STARTED)) s"; }
  fi
  if [[ "$LAB_TEARDOWN" == 1 ]]; then
    lab_down || status=1
  fi
  exit "$status"
}

main() {
  LAB_REPORT=0 LAB_TEARDOWN=0 LAB_STARTED=$SECONDS
  trap on_exit EXIT
  local command="${1:-}"
  shift || true
  case "$command" in
    up)
      LAB_NODES="${1:-1}" LAB_REPORT=1
      lab_down
      lab_up
      ;;
    grow)
      [[ "${1:-}" =~ ^[0-9]+$ ]] || die "usage: $0 grow N"
      lab_load_env
      LAB_REPORT=1
      lab_grow "$1"
      ;;
    images)
      ensure_engine
      testhost_build_image
      scanner_build_image
      build_images
      ;;
    check) lab_load_env && lab_check "$@" ;;
    bench) lab_load_env && lab_bench ;;
    drills) lab_load_env && lab_drills "$@" ;;
    test)
      LAB_REPORT=1 LAB_TEARDOWN=1
      lab_test
      log "lab test: every stage passed in $((SECONDS - LAB_STARTED)) s"
      ;;
    status) lab_status ;;
    down) lab_down ;;
    *) die "usage: $0 images | up [N] | grow N | check single|multi | bench | drills [args] | test | status | down" ;;
  esac
}

main "$@"
