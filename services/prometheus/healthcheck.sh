#!/usr/bin/env bash
# Exit 0 when Prometheus is healthy and ready to serve queries.
set -euo pipefail

name=prometheus

status=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null) || { echo "$name: no such container"; exit 1; }
[[ "$status" == running ]] || { echo "$name: $status"; exit 1; }

for path in /-/healthy /-/ready; do
  if ! curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:9090$path"; then
    echo "$name: $path failed"
    exit 1
  fi
done

echo "$name: ok"
exit 0
