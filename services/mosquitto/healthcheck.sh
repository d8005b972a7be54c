#!/usr/bin/env bash
# Exit 0 when mosquitto is running, healthy, and accepting TCP connections on the client port.
set -euo pipefail

name=mosquitto
port="${MQTT_PORT:-1883}"

status=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null) || { echo "$name: no such container"; exit 1; }
[[ "$status" == running ]] || { echo "$name: $status"; exit 1; }

health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$name")
[[ "$health" == healthy || "$health" == none ]] || { echo "$name: health $health"; exit 1; }

if ! timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
  echo "$name: port $port not accepting connections"
  exit 1
fi

echo "$name: ok"
exit 0
