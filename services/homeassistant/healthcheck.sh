#!/usr/bin/env bash
# Exit 0 when Home Assistant is running and its web server answers.
set -euo pipefail

name=homeassistant
port="${HA_PORT:-8123}"

status=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null) || { echo "$name: no such container"; exit 1; }
[[ "$status" == running ]] || { echo "$name: $status"; exit 1; }

health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$name")
# "starting" is normal for the first two minutes after an upgrade
[[ "$health" == healthy || "$health" == none ]] || { echo "$name: health $health"; exit 1; }

if ! curl -fsS -o /dev/null --max-time 10 "http://127.0.0.1:$port/manifest.json"; then
  echo "$name: web server not answering on :$port"
  exit 1
fi

echo "$name: ok"
exit 0
