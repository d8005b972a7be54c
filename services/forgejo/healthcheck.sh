#!/usr/bin/env bash
# Exit 0 when Forgejo is running and /api/healthz reports "pass".
set -euo pipefail

name=forgejo

status=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null) || { echo "$name: no such container"; exit 1; }
[[ "$status" == running ]] || { echo "$name: $status"; exit 1; }

if ! body=$(curl -fsS --max-time 5 http://127.0.0.1:3000/api/healthz); then
  echo "$name: /api/healthz not answering"
  exit 1
fi
if ! grep -q '"status": *"pass"' <<<"$body"; then
  echo "$name: unhealthy: $body"
  exit 1
fi

echo "$name: ok"
exit 0
