#!/usr/bin/env bash
# Exit 0 when Uptime Kuma is running and its web server answers.
set -euo pipefail

name=uptime-kuma

status=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null) || { echo "$name: no such container"; exit 1; }
[[ "$status" == running ]] || { echo "$name: $status"; exit 1; }

health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$name")
[[ "$health" == healthy || "$health" == none ]] || { echo "$name: health $health"; exit 1; }

if ! curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:3001/api/entry-page; then
  echo "$name: web server not answering on :3001"
  exit 1
fi

echo "$name: ok"
exit 0
