#!/usr/bin/env bash
# Exit 0 when Caddy is running, healthy, and serves HTTPS for every public site.
set -euo pipefail

name=caddy
env_file=/opt/homelab/config/caddy/.env

status=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null) || { echo "$name: no such container"; exit 1; }
[[ "$status" == running ]] || { echo "$name: $status"; exit 1; }

health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$name")
[[ "$health" == healthy || "$health" == none ]] || { echo "$name: health $health"; exit 1; }

domain="${DOMAIN:-}"
if [[ -z "$domain" && -r "$env_file" ]]; then
  domain=$(sed -n 's/^DOMAIN=//p' "$env_file" | tail -n1)
fi
if [[ -z "$domain" ]]; then
  echo "$name: DOMAIN unknown, TLS check skipped"
  exit 0
fi

for site in "git.$domain" "status.$domain"; do
  # Resolve to this host so the check does not depend on public DNS; -f: 5xx means the
  # upstream (over the tailnet) is down.
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 \
    --resolve "$site:443:127.0.0.1" "https://$site/") || { echo "$name: TLS to $site failed"; exit 1; }
  if [[ "$code" =~ ^5 ]]; then
    echo "$name: $site answered $code"
    exit 1
  fi
done

echo "$name: ok"
exit 0
