#!/usr/bin/env bash
# Shared helpers for the stack scripts (sourced, not executed).
# Usage: source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# Repository root, whatever directory the calling script was started from.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export REPO_ROOT

# The simulator's default user:password, read from its one definition (minitwit.config).
simulator_default_auth() {
  sed -n 's/^DEFAULT_SIMULATOR_AUTH = "\(.*\)"$/\1/p' "$REPO_ROOT/service/minitwit/config.py"
}

# hold_lock <variable> <lock file> "$0" "$@": re-run the calling script under `flock` on the lock
# file (waiting up to 30 min), unless <variable>=1 says a caller already holds it.
hold_lock() {
  local held="$1" lock="$2"
  shift 2
  [[ "${!held:-}" == 1 ]] && return 0
  # -o: the lock stays with flock itself, so no process started below (dockerd!) inherits it.
  exec env "$held=1" flock -o -w 1800 "$lock" "$@"
}

# start_daemon <log file> <command>...: start a long-lived server detached: from a subshell, in
# its own session, stdin closed. It is then no job of the caller, so a bare `wait` in any script
# does not wait for it forever (CI of 294ba67 hung 85 min on dockerd that way), and a timeout
# that kills the caller's process group leaves it running for the next stage.
start_daemon() {
  local log_file="$1"
  shift
  (setsid nohup "$@" </dev/null >>"$log_file" 2>&1 &)
}

# Print a timestamped progress line on stderr.
log() {
  printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}

# Print an error and exit non-zero.
die() {
  log "ERROR: $*"
  exit 1
}

# True when MINITWIT_STRICT=1: a missing tool or skipped step must fail.
is_strict() {
  [[ "${MINITWIT_STRICT:-0}" == "1" ]]
}

# Skip with a clear message, or fail under MINITWIT_STRICT=1.
skip_or_fail() {
  if is_strict; then
    die "$* (MINITWIT_STRICT=1 turns a skip into a failure)"
  fi
  log "SKIPPED: $*"
}

# Retry "$@" every $2 seconds, at most $1 times; true as soon as it succeeds.
retry() {
  local attempts="$1" delay="$2"
  shift 2
  local i
  for ((i = 1; i <= attempts; i++)); do
    if "$@"; then
      return 0
    fi
    sleep "$delay"
  done
  return 1
}
