#!/usr/bin/env bash
# Exit 0 when stability-agent is running and wrote a heartbeat in the last three rounds.
set -euo pipefail

name=stability-agent
heartbeat=/opt/homelab/state/agents/stability-agent.heartbeat
max_age="${STALE_AFTER_S:-180}"

status=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null) || { echo "$name: no such container"; exit 1; }
[[ "$status" == running ]] || { echo "$name: $status"; exit 1; }

if [[ ! -f "$heartbeat" ]]; then
  echo "$name: no heartbeat at $heartbeat"
  exit 1
fi

age=$(( $(date +%s) - $(stat -c %Y "$heartbeat") ))
if (( age > max_age )); then
  echo "$name: heartbeat ${age}s old (limit ${max_age}s)"
  exit 1
fi

echo "$name: ok (heartbeat ${age}s ago)"
exit 0
