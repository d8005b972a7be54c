#!/usr/bin/env bash
# Exit 0 when Grafana is up and its database is reachable (/api/health says "ok").
set -euo pipefail

name=grafana

status=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null) || { echo "$name: no such container"; exit 1; }
[[ "$status" == running ]] || { echo "$name: $status"; exit 1; }

if ! body=$(curl -fsS --max-time 5 http://127.0.0.1:3000/api/health); then
  echo "$name: /api/health not answering"
  exit 1
fi
if ! grep -q '"database": *"ok"' <<<"$body"; then
  echo "$name: database not ok: $body"
  exit 1
fi

echo "$name: ok"
exit 0
