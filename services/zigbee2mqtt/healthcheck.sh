#!/usr/bin/env bash
# Exit 0 when zigbee2mqtt is running, healthy, and its frontend answers.
set -euo pipefail

name=zigbee2mqtt

status=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null) || { echo "$name: no such container"; exit 1; }
[[ "$status" == running ]] || { echo "$name: $status"; exit 1; }

health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$name")
[[ "$health" == healthy || "$health" == none ]] || { echo "$name: health $health"; exit 1; }

if ! curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:8080/; then
  echo "$name: frontend not answering on :8080"
  exit 1
fi

# The bridge logs this when it cannot reach the coordinator (SLZB-06U at 192.168.1.105:6638).
if docker logs --since 5m "$name" 2>&1 | grep -q "Failed to start zigbee"; then
  echo "$name: coordinator unreachable"
  exit 1
fi

echo "$name: ok"
exit 0
