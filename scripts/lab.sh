#!/usr/bin/env bash
# The multi-node lab: test hosts (Debian 12 "VMs" as containers), an inventory for them, and the
# operator's real provision.yml and deploy.yml: what docs/deployment.md, "Adding nodes", describes.
#
#   scripts/lab.sh up       start LAB_NODES test hosts (default 3; 1 works), provision, deploy
#   scripts/lab.sh status   the nodes and where the stack's tasks run
#   scripts/lab.sh test     up, the multi-node assertions, the node-loss drill (drill 6), down
#                           (also on failure); report in artifacts/lab/
#   scripts/lab.sh down     remove the nodes, their volumes, the lab network and the run state
#
# Needs root, a running dockerd, mmdebstrap (scripts/install-system-deps.sh); makes .venv itself if missing.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/lab.sh
source "$REPO_ROOT/scripts/lib/lab.sh"
# shellcheck source=scripts/lib/lab-assert.sh
source "$REPO_ROOT/scripts/lib/lab-assert.sh"
cd "$REPO_ROOT"

# One lab at a time on this machine (its names, subnet and /etc/hosts line are fixed).
hold_lock MINITWIT_LAB_LOCK_HELD /tmp/minitwit-lab17.lock "$0" "$@"

# The node-loss drill, in the drills' report format (artifacts/lab/report.{json,md}).
lab_drill() {
  local status=0
  if ((LAB_NODES < 2)); then
    log "node-loss drill skipped: one node has no other node to fail over to"
    return 0
  fi
  PYTHONPATH="$REPO_ROOT/service" python -m drills --only 6 --env-file "$LAB_STATE_DIR/env" --out "$LAB_ARTIFACTS" || status=$?
  return "$status"
}

# lab.{json,md}: the lab's own checks and figures (the drill writes report.{json,md}).
lab_report() {
  local passed="$1" json="$LAB_ARTIFACTS/lab.json"
  mkdir -p "$LAB_ARTIFACTS"
  local k figures=""
  for k in "${!LAB_FIGURES[@]}"; do figures+="$k=${LAB_FIGURES[$k]}"$'\n'; done
  LAB_FIGURES_TEXT="$figures" python3 - "$json" "$passed" "$LAB_NODES" "${LAB_CHECKS[@]}" <<'PY'
import json, os, sys
path, passed, nodes, checks = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4:]
figures = dict(line.split("=", 1) for line in os.environ["LAB_FIGURES_TEXT"].splitlines() if "=" in line)
figures = {k: int(v) if v.isdigit() else v for k, v in sorted(figures.items())}
doc = {"passed": passed, "nodes": nodes, "checks": checks, "figures": figures}
open(path, "w").write(json.dumps(doc, indent=2) + "\n")
lines = [f"# Multi-node lab: {'PASS' if passed else 'FAIL'} ({nodes} nodes)", "", "## Checks", ""]
lines += [f"- {c}" for c in checks] + ["", "## Figures", "", "| Figure | Value |", "|---|---|"]
lines += [f"| {k} | {v} |" for k, v in figures.items()]
lines += ["", "The node-loss drill: report.md next to this file."]
open(path[:-4] + "md", "w").write("\n".join(lines) + "\n")
PY
  log "lab report: $json and ${json%.json}.md"
}

# On exit: the report (also of a failed run), then teardown when `test` started the lab.
on_exit() {
  local status=$?
  if [[ "$LAB_PHASE" != none ]]; then
    LAB_FIGURES[total_s]=$((SECONDS - LAB_STARTED))
    lab_report "$((status == 0))" || status=1
    ((status == 0)) || { lab_status || true; log "FAILED: lab $LAB_PHASE after $((SECONDS - LAB_STARTED)) s"; }
  fi
  if [[ "$LAB_TEARDOWN" == 1 ]]; then
    lab_down || status=1
  fi
  exit "$status"
}

main() {
  LAB_PHASE=none LAB_TEARDOWN=0 LAB_STARTED=$SECONDS
  trap on_exit EXIT
  case "${1:-}" in
    up)
      LAB_PHASE=up
      lab_down
      lab_up
      ;;
    test)
      LAB_PHASE=up LAB_TEARDOWN=1
      rm -rf "$LAB_ARTIFACTS"
      lab_down
      lab_up
      LAB_PHASE=assert
      lab_assert
      LAB_PHASE=drill
      lab_drill
      LAB_PHASE=passed
      log "lab test: all checks and the node-loss drill passed in $((SECONDS - LAB_STARTED)) s"
      ;;
    status) lab_status ;;
    down) lab_down ;;
    *) die "usage: $0 up | status | test | down" ;;
  esac
}

main "$@"
