#!/usr/bin/env bash
# Exit 0 when ollama is running, answers its API, and can see the GPU.
set -euo pipefail

name=ollama

status=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null) || { echo "$name: no such container"; exit 1; }
[[ "$status" == running ]] || { echo "$name: $status"; exit 1; }

if ! version=$(curl -fsS --max-time 5 http://127.0.0.1:11434/api/version); then
  echo "$name: API not answering on :11434"
  exit 1
fi

# Falling back to CPU is a silent 20x slowdown; treat it as unhealthy.
if docker logs --since 24h "$name" 2>&1 | grep -q "no compatible GPUs were discovered"; then
  echo "$name: running without GPU"
  exit 1
fi

echo "$name: ok $version"
exit 0
