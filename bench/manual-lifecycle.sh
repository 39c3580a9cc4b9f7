#!/usr/bin/env bash
# One glidein lifecycle by hand, the way an operator's script would do it: OpenSSH with a ControlMaster to the
# worker node through the login node (ProxyCommand), issuing the SAME remote commands in the SAME order as
# LaunchGlidein's activities, with the same polling cadence (200 ms for processes, 1 s between registration
# checks; the glidein's start and stop wait on the site, in the same scripts), up to "registered", then stopped
# and torn down in reverse.
#
#   bash bench/manual-lifecycle.sh <plan>
#
# The plan is a bash file written by bench/lifecycle-overhead.ts (`--plan <glidein-id>` prints one) with the
# remote command lines built by the project's own builders and quoting (src/activities/*.ts, commandLine()).
# Prints one line per step, `step <name> <ms>`, and `total <ms>`; exits non-zero on the first failure.
#
# NAIVE=1: the naive script instead — no ControlMaster, a NEW ssh connection (through the login node, by the
# same ProxyCommand) for every command. Same commands, same order (bench/wan-lifecycle.ts's C).
#
# COUNT_LOG=<file>: also append, for each remote command, `cmd <bytes sent> <bytes received>` (the command line
# and its stdin; its stdout and stderr), and `step <name>` at each step's end (bench/login-cost.ts). The same
# commands run; their output is passed on after the command ends instead of as it comes.
set -euo pipefail
PLAN=${1:?usage: manual-lifecycle.sh <plan>}
# shellcheck source=/dev/null
source "$PLAN"

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
T0=$(now_ms)
STEP_T=$T0
step_done() {
  local t; t=$(now_ms); echo "step $1 $((t - STEP_T))"; STEP_T=$t
  if [ -n "${COUNT_LOG:-}" ]; then echo "step $1" >>"$COUNT_LOG"; fi
}
fail() { echo "FAILED: $*" >&2; exit 1; }

if [ "${NAIVE:-0}" = 1 ]; then
  # remote <remote command line> [stdin file]: one command on the worker node, on a connection of its own.
  remote() {
    if [ $# -gt 1 ]; then ssh "${SSH_MASTER[@]}" -o BatchMode=yes "${NODE_DEST[@]}" "$1" <"$2"
    else ssh "${SSH_MASTER[@]}" -o BatchMode=yes "${NODE_DEST[@]}" "$1" </dev/null; fi
  }
else
  # The kept connection: one ControlMaster per plan's socket, reused by later runs while it persists.
  if ! ssh -F /dev/null -S "$CONTROL" -O check "${NODE_DEST[@]}" 2>/dev/null; then
    ssh "${SSH_MASTER[@]}" -M -S "$CONTROL" -o ControlPersist=600 -N -f "${NODE_DEST[@]}"
  fi
  # remote <remote command line> [stdin file]: one command on the worker node over the master.
  remote() {
    if [ $# -gt 1 ]; then ssh -F /dev/null -S "$CONTROL" -o BatchMode=yes "${NODE_DEST[@]}" "$1" <"$2"
    else ssh -F /dev/null -S "$CONTROL" -o BatchMode=yes "${NODE_DEST[@]}" "$1" </dev/null; fi
  }
fi
if [ -n "${COUNT_LOG:-}" ]; then
  COUNT_TMP=$(mktemp -d)
  trap 'rm -rf "$COUNT_TMP"' EXIT
  # run, counting: the command's output kept aside until it ends, its size logged, then passed on; same status.
  run() {
    local rc=0 in=${2:-/dev/null} LC_ALL=C
    remote "$@" >"$COUNT_TMP/out" 2>"$COUNT_TMP/err" || rc=$?
    local sent=$((${#1} + $(stat -c %s "$in"))) received=$(($(stat -c %s "$COUNT_TMP/out") + $(stat -c %s "$COUNT_TMP/err")))
    echo "cmd $sent $received" >>"$COUNT_LOG"
    cat "$COUNT_TMP/out"
    cat "$COUNT_TMP/err" >&2
    return "$rc"
  }
else
  run() { remote "$@"; }
fi
# From INSPECT_PROCESSES' output: is the process of a pid file alive (recorded start time = actual)?
alive() { awk -v f="$1" '$1 == "proc" && $2 == f && $3 != "-" && $5 != "-" && $4 == $5 { ok = 1 } END { exit !ok }'; }
alive_ssh() { awk -v f="$1" '$1 == "proc" && $2 == f && $3 != "-" && $5 != "-" && $4 == $5 && / ssh .*-[DR]/ { ok = 1 } END { exit !ok }'; }
listening() { grep -q "^listen $SOCKS_PORT_HEX\$"; }
step_done connect

# openTunnel
out=$(run "$C_INSPECT_TUNNEL")
if printf '%s\n' "$out" | alive_ssh "$TUNNEL_PID" && printf '%s\n' "$out" | listening; then :; else
  run "$C_MKDIR" >/dev/null
  # The spawn waits on the site for the port (as openTunnel's does): `started` means it listens.
  spawned=$(run "$C_SPAWN_TUNNEL")
  case $spawned in started*) ;; waiting*) ;; *) fail "tunnel did not start" ;; esac
  for ((i = 0; ; i++)); do
    [[ $spawned == started* ]] && break
    out=$(run "$C_INSPECT_TUNNEL")
    printf '%s\n' "$out" | alive_ssh "$TUNNEL_PID" || fail "tunnel exited"
    printf '%s\n' "$out" | listening && break
    ((i < 150)) || fail "tunnel not listening"
    sleep 0.2
  done
fi
step_done openTunnel

# verifyOutbound
run "$C_WRITE_CONF" "$CONF_FILE" >/dev/null
run "$C_PROBE_OUTBOUND" 2>&1 | grep -q '\[proxychains\].*chain.*OK *$' || fail "outbound probe"
for c in "${C_PROBE_MORE[@]}"; do
  run "$c" 2>&1 | grep -qE '^status HTTP/1\.[01] [23]|\[proxychains\].*chain.*OK *$' || fail "outbound check: $c"
done
step_done verifyOutbound

# mountCvmfs: CVMFS_HTTP_PROXY set for cvmfsexec, then a lease per repository, mounted unless it is (what the
# activity does, same scripts)
run "$C_CVMFS_PROXY" >/dev/null || fail "setting CVMFS_HTTP_PROXY"
for i in "${!REPOS[@]}"; do
  run "${C_MOUNT_LEASE[$i]}" >/dev/null || fail "mount ${REPOS[$i]}"
done
step_done mountCvmfs

# startContainer
run "$C_INSTANCE_LIST" | grep -q "\"$INSTANCE\"" || {
  run "$C_INSTANCE_START" >/dev/null 2>&1 || fail "instance start"
  run "$C_INSTANCE_LIST" | grep -q "\"$INSTANCE\"" || fail "instance not listed"
}
step_done startContainer

# preloadProxychains
run "$C_WRITE_CONF" "$CONF_FILE" >/dev/null
run "$C_PROBE_PRELOAD" 2>&1 | grep -q '\[proxychains\].*chain.*OK *$' || fail "preload probe"
step_done preloadProxychains

# stageCredential: each pool credential file written into the glidein's directory on stdin (mode 600)
if ((${#CRED_FILES[@]} > 0)); then
  for i in "${!CRED_FILES[@]}"; do run "${C_WRITE_CRED[$i]}" "${CRED_FILES[$i]}" >/dev/null || fail "staging ${CRED_FILES[$i]}"; done
  step_done stageCredential
fi

# startGlidein
if ! run "$C_INSPECT_GLIDEIN" | alive "$GLIDEIN_PID"; then
  run "$C_MKDIR_CONDOR" >/dev/null
  run "$C_SPAWN_GLIDEIN" | grep -q '^started ' || fail "glidein did not start, or exited at once"
fi
step_done startGlidein

# confirmRegistration
for ((i = 0; ; i++)); do
  out=$(run "$C_CONDOR_STATUS" 2>/dev/null || true)
  printf '%s\n' "$out" | grep -v '^\[proxychains\]' | grep -q . && break
  run "$C_INSPECT_GLIDEIN" | alive "$GLIDEIN_PID" || fail "glidein exited before registering"
  ((i < 60)) || fail "not registered"
  sleep 1
done
step_done confirmRegistration

# stopGlidein (stop: SIGTERM and up to 10 s of waiting for the end, on the site, in one command)
run "$C_STOP_GLIDEIN_TERM" | grep -q '^running ' && fail "glidein survived SIGTERM"
step_done stopGlidein

# removeCredential
if ((${#CRED_FILES[@]} > 0)); then run "$C_REMOVE_CRED" >/dev/null; step_done removeCredential; fi

# stopContainer
if run "$C_INSTANCE_LIST" | grep -q "\"$INSTANCE\""; then run "$C_INSTANCE_STOP" >/dev/null 2>&1; fi
step_done stopContainer

# unmountCvmfs: give the leases back, the last holder unmounts
held=$(run "$C_LIST_LEASES")
for ((i = ${#REPOS[@]} - 1; i >= 0; i--)); do
  printf '%s\n' "$held" | grep -qxF "${REPOS[$i]}" || continue
  run "${C_MOUNT_RELEASE[$i]}" >/dev/null
done
step_done unmountCvmfs

# closeTunnel
if run "$C_INSPECT_TUNNEL" | alive_ssh "$TUNNEL_PID"; then
  # TERM and the wait for its end in one command on the site (as closeTunnel does): `running` means it survived.
  if run "$C_SIGNAL_TUNNEL_TERM" | grep -q '^running'; then fail "tunnel survived SIGTERM"; fi
fi
step_done closeTunnel
echo "total $(($(now_ms) - T0))"
