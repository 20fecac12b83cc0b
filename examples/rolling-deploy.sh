#!/usr/bin/env bash
# A rolling deploy through the runtime API, as an operator would write it for HAProxy (bash and
# socat), plus one Sluice extension, `wait-drained`, which replaces the usual polling loop on
# `show stat`'s scur column.
#
#   rolling-deploy.sh <stats-socket> <backend> "<server> <server> …" <restart-command>
#
# For each server in turn: drain it (no new sessions), wait until its sessions end (at most
# DRAIN_TIMEOUT, default 30s, then the leftovers are closed), run <restart-command> with $SERVER
# set (it stops the old version and starts the new one), wait until its health check passes again
# (at most UP_TIMEOUT seconds, default 60), and put it back in rotation.
set -euo pipefail

sock=$1 backend=$2 servers=$3 restart=$4
drain_timeout=${DRAIN_TIMEOUT:-30s}
up_timeout=${UP_TIMEOUT:-60}

api() { echo "$*" | socat -t 60 - "UNIX-CONNECT:$sock"; }
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

# Field N of a server's line in `show servers state`: 6 = operational state (2 = running),
# 12 = result of the last check (3 = passed).
server_state() {
  api "show servers state $backend" | awk -v s="$1" -v f="$2" '$4 == s { print $f }'
}

for server in $servers; do
  log "$backend/$server: drain"
  api "set server $backend/$server state drain" >/dev/null
  log "$backend/$server: $(api "wait-drained $backend/$server timeout $drain_timeout shutdown-after")"

  log "$backend/$server: restart"
  SERVER=$server bash -c "$restart"

  log "$backend/$server: waiting for its health check"
  deadline=$((SECONDS + up_timeout))
  # A check must pass after the restart: the last result passed and the server is running.
  until [ "$(server_state "$server" 6)" = 2 ] && [ "$(server_state "$server" 12)" = 3 ]; do
    if [ $SECONDS -ge $deadline ]; then
      log "$backend/$server: not healthy after ${up_timeout}s; leaving it drained and stopping the deploy"
      exit 1
    fi
    sleep 0.2
  done

  api "set server $backend/$server state ready" >/dev/null
  log "$backend/$server: ready"
done
log "deploy done"
