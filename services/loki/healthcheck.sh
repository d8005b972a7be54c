#!/usr/bin/env bash
# Exit 0 when Loki is running and /ready says so. Probed from the host: the image has no shell.
set -euo pipefail

name=loki

status=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null) || { echo "$name: no such container"; exit 1; }
[[ "$status" == running ]] || { echo "$name: $status"; exit 1; }

if ! body=$(curl -fsS --max-time 5 http://127.0.0.1:3100/ready); then
  echo "$name: /ready failed: ${body:-no answer}"
  exit 1
fi

echo "$name: $body"
exit 0
