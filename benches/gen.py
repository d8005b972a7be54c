#!/usr/bin/env python3
"""Synthetic homelabs for benchmarking hl, in the layout of docs/layout.md.

    benches/gen.py generate --size small|large [--seed N] OUT   # writes the homelab to OUT
    benches/gen.py edit OUT service|manifest|talos              # one real edit, for "after one change"
    benches/gen.py sizes                                        # what each size holds

The tree is a function of (size, seed) only: generating twice gives byte-identical files (no
clock, no hash-randomised iteration; every random choice comes from a Random seeded from the
seed and the section's name). OUT must not exist yet, or be empty, and must lie outside any
Git work tree holding this script: generated trees never go into the project's repo.

What a size holds (docs/benchmarks.md has the table):
  - docker hosts, each with `services` compose services placed on it: a few common ones
    (node exporter, log shipper, watchdog ...) on every host, with per-host overrides, and
    the rest owned by that host, each a folder with docker-compose.yml, service.yaml,
    README.md, env.example, healthcheck.sh and one or two bind-mounted config files;
    some docker hosts are VMs (machine.yaml) on the hypervisors;
  - a Talos cluster of VMs on the hypervisors: talconfig.yaml, global/role/node patches;
  - image recipes (L1) that the VMs boot from;
  - a Flux tree: flux-system, platform Kustomizations, and apps grouped in folders, one Flux
    Kustomization (ks.yaml, with dependsOn) per app, each app a kustomization.yaml and
    `manifests` manifests of a few KB in total (Deployment, Service, Ingress, a SOPS Secret ...).

`edit` changes one value that changes the rendered artifact (never a comment), deterministically
and differently each time it is run (it increments a number), so a benchmark can run it before
every timed `hl plan` and each run sees a fresh change and an action-cache miss:
  service   `cache_size_mb` in the bind-mounted config file of one host-owned service
  manifest  `replicas` of one app's deployment.yaml
  talos     `vm.max_map_count` in one Talos node's patch
It prints the path it edited.
"""

import argparse
import hashlib
import os
import random
import re
import subprocess
import sys
import time

SIZES = {
    # hosts: docker hosts; services: compose services placed per docker host; manifests: app
    # manifest files in the Flux tree; the rest "in proportion".
    "small": dict(hosts=10, services=10, manifests=200, hypervisors=1, talos=3, talos_cp=1, images=2),
    "large": dict(hosts=100, services=50, manifests=20000, hypervisors=10, talos=30, talos_cp=3, images=5),
}

# ---------------------------------------------------------------------------------------------
# deterministic randomness and text


def rng_for(seed, name):
    """A Random for one section: adding a section never shifts the choices of another."""
    return random.Random(hashlib.sha256(f"hl-bench/{seed}/{name}".encode()).digest())


WORDS = (
    "the service keeps its state under the data folder and is restarted by docker when the "
    "healthcheck fails three times in a row backups run nightly from the host and are copied "
    "to the nas over the tailnet configuration lives in this folder and is mounted read only "
    "so an edit here is an input of the plan secrets never sit in the repo they are read from "
    "the env file on the host which is created by hand from env.example metrics are scraped "
    "by prometheus on the monitoring host and logs are shipped to loki by the log shipper "
    "upgrades are done by bumping the image tag in the compose file and running hl apply "
    "which rolls the release forward and keeps the previous one for a rollback"
).split()


def prose(rng, sentences):
    out = []
    for _ in range(sentences):
        n = rng.randint(9, 22)
        words = [rng.choice(WORDS) for _ in range(n)]
        out.append(" ".join(words).capitalize() + ".")
    # wrap at ~96 columns like the sample's docs
    lines, cur = [], ""
    for w in " ".join(out).split():
        if len(cur) + len(w) + 1 > 96:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    if cur:
        lines.append(cur)
    return "\n".join(lines)


def comment(text):
    return "".join(f"# {line}\n" for line in text.split("\n"))


def b64(rng, n):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return "".join(rng.choice(alphabet) for _ in range(n))


def hexs(rng, n):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def sops_value(rng, n):
    return (
        f"ENC[AES256_GCM,data:{b64(rng, n)}=,iv:{b64(rng, 43)}=,"
        f"tag:{b64(rng, 22)}==,type:str]"
    )


def sops_block(rng, regex=True):
    age = "\n".join("            " + b64(rng, 64) for _ in range(5))
    return (
        "sops:\n"
        "    kms: []\n    gcp_kms: []\n    azure_kv: []\n    hc_vault: []\n"
        "    age:\n"
        "        - recipient: age1xzyqvu7st4u0zzmguf6nhcj7f7zqeggpgss662q4zx9glsxhmlgqtfncjw\n"
        "          enc: |\n"
        "            -----BEGIN AGE ENCRYPTED FILE-----\n"
        f"{age}\n"
        "            -----END AGE ENCRYPTED FILE-----\n"
        f"    lastmodified: \"2024-11-{rng.randint(10, 28)}T{rng.randint(10, 23)}:{rng.randint(10, 59)}:{rng.randint(10, 59)}Z\"\n"
        f"    mac: {sops_value(rng, 86)}\n"
        "    pgp: []\n"
        + ("    encrypted_regex: ^(data|stringData)$\n" if regex else "")
        + "    version: 3.9.1\n"
    )


# ---------------------------------------------------------------------------------------------
# the catalog of compose services: (name, image, port, config format)

CATALOG = [
    ("mosquitto", "eclipse-mosquitto:2.0.20", 1883, "conf"),
    ("zigbee2mqtt", "koenkk/zigbee2mqtt:1.41.0", 8080, "yaml"),
    ("grafana", "grafana/grafana:11.3.1", 3000, "ini"),
    ("prometheus", "prom/prometheus:v2.55.1", 9090, "yaml"),
    ("loki", "grafana/loki:3.2.1", 3100, "yaml"),
    ("jellyfin", "jellyfin/jellyfin:10.10.3", 8096, "xml"),
    ("nextcloud", "nextcloud:30.0.2-apache", 80, "php"),
    ("vaultwarden", "vaultwarden/server:1.32.5", 80, "env"),
    ("paperless", "ghcr.io/paperless-ngx/paperless-ngx:2.13.5", 8000, "env"),
    ("immich", "ghcr.io/immich-app/immich-server:v1.121.0", 2283, "yaml"),
    ("uptime-kuma", "louislam/uptime-kuma:1.23.15", 3001, "json"),
    ("forgejo", "codeberg.org/forgejo/forgejo:9.0.2", 3000, "ini"),
    ("postgres", "postgres:16.6-bookworm", 5432, "conf"),
    ("redis", "redis:7.4.1-alpine", 6379, "conf"),
    ("caddy", "caddy:2.8.4-alpine", 443, "caddy"),
    ("traefik", "traefik:v3.2.1", 443, "yaml"),
    ("adguard", "adguard/adguardhome:v0.107.55", 53, "yaml"),
    ("unifi", "lscr.io/linuxserver/unifi-network-application:8.6.9", 8443, "properties"),
    ("syncthing", "syncthing/syncthing:1.28.1", 8384, "xml"),
    ("minio", "minio/minio:RELEASE.2024-11-07T00-52-20Z", 9000, "env"),
    ("influxdb", "influxdb:2.7.10-alpine", 8086, "toml"),
    ("telegraf", "telegraf:1.32.3-alpine", 8125, "toml"),
    ("node-red", "nodered/node-red:4.0.5", 1880, "json"),
    ("esphome", "ghcr.io/esphome/esphome:2024.11.1", 6052, "yaml"),
    ("frigate", "ghcr.io/blakeblackshear/frigate:0.14.1", 5000, "yaml"),
    ("audiobookshelf", "ghcr.io/advplyr/audiobookshelf:2.17.2", 80, "json"),
    ("navidrome", "deluan/navidrome:0.53.3", 4533, "toml"),
    ("gitea-runner", "gitea/act_runner:0.2.11", 8088, "yaml"),
    ("restic-rest", "restic/rest-server:0.13.0", 8000, "conf"),
    ("wireguard", "lscr.io/linuxserver/wireguard:1.0.20210914", 51820, "conf"),
    ("ntfy", "binwiednick/ntfy:v2.11.0", 80, "yaml"),
    ("homepage", "ghcr.io/gethomepage/homepage:v0.9.13", 3000, "yaml"),
]
GPU_SERVICE = ("ollama", "ollama/ollama:0.4.7", 11434, "env")
# Services placed on every docker host (the first `common` of them), with per-host overrides.
COMMON = [
    ("stability-agent", "python:3.12.7-slim-bookworm", 9400, "py"),
    ("node-exporter", "prom/node-exporter:v1.8.2", 9100, "yaml"),
    ("promtail", "grafana/promtail:3.2.1", 9080, "yaml"),
    ("cadvisor", "gcr.io/cadvisor/cadvisor:v0.49.1", 8080, "conf"),
    ("autoheal", "willfarrell/autoheal:1.2.0", 0, "env"),
    ("watchtower", "containrrr/watchtower:1.7.1", 8080, "env"),
]
EXT = {"conf": "conf", "yaml": "yaml", "ini": "ini", "xml": "xml", "php": "php", "env": "env",
       "json": "json", "caddy": "Caddyfile", "properties": "properties", "toml": "toml", "py": "py"}


def config_text(rng, base, fmt, lines):
    """A config file of `lines` settings, every fourth with a comment above it; always holds
    `cache_size_mb` (or `CACHE_SIZE_MB`), which `edit` bumps."""
    keys = ["listen_address", "log_level", "max_connections", "timeout_s", "data_dir", "retention_days",
            "workers", "metrics_port", "tls_enabled", "upstream", "buffer_kb", "queue_depth",
            "compression", "auth_mode", "trusted_proxies", "rate_limit", "idle_timeout_s"]
    fixed = {
        "listen_address": lambda: "0.0.0.0", "log_level": lambda: rng.choice(["info", "warn", "debug"]),
        "data_dir": lambda: f"/data/{base}", "tls_enabled": lambda: rng.choice(["true", "false"]),
        "upstream": lambda: f"http://{rng.choice(CATALOG)[0]}.internal:{rng.randint(1024, 65000)}",
        "compression": lambda: rng.choice(["gzip", "zstd", "none"]),
        "auth_mode": lambda: rng.choice(["basic", "oidc", "none"]),
        "trusted_proxies": lambda: "10.0.0.0/8,100.64.0.0/10",
    }
    cache = rng.randint(64, 1024)
    pairs = []
    for i in range(lines):
        k = keys[i % len(keys)]
        v = fixed.get(k, lambda: str(rng.randint(1, 5000)))()
        note = prose(rng, 1).split("\n")[0] if i % 4 == 0 else None
        pairs.append((k if i < len(keys) else f"{k}_{i // len(keys)}", v, note))
    head = prose(rng, 3)
    tag = base.replace("-", "")

    def lines_of(fmt_line, mark):
        out = []
        for k, v, note in pairs:
            if note and mark:
                out.append(f"{mark} {note}")
            out.append(fmt_line(k, v))
        return "\n".join(out)

    if fmt == "yaml":
        body = lines_of(lambda k, v: f"{k}: {v}", "#")
        return comment(head) + f"{base}:\n  cache_size_mb: {cache}\n" + \
            "\n".join("  " + line for line in body.split("\n")) + "\n"
    if fmt == "json":
        inner = ",\n".join(f'  "{k}": "{v}"' for k, v, _ in pairs)
        return "{\n" + f'  "cache_size_mb": {cache},\n' + inner + "\n}\n"
    if fmt == "xml":
        inner = "\n".join(("  <!-- " + n + " -->\n" if n else "") + f"  <{k}>{v}</{k}>" for k, v, n in pairs)
        return f'<?xml version="1.0" encoding="utf-8"?>\n<!-- {head} -->\n<{tag}>\n' \
               f"  <cache_size_mb>{cache}</cache_size_mb>\n{inner}\n</{tag}>\n"
    if fmt == "php":
        inner = lines_of(lambda k, v: f"  '{k}' => '{v}',", "  //")
        return f"<?php\n/* {head} */\n$CONFIG = array (\n  'cache_size_mb' => {cache},\n{inner}\n);\n"
    if fmt == "caddy":
        inner = lines_of(lambda k, v: f"\t# {k} {v}", "\t#")
        return comment(head) + f"{{\n\tcache_size_mb {cache}\n}}\n\n{base}.home.arpa {{\n\treverse_proxy {base}:80\n{inner}\n}}\n"
    if fmt == "py":
        inner = lines_of(lambda k, v: f"{k.upper()} = {v!r}", "#")
        return f'"""{head}"""\n\nCACHE_SIZE_MB = {cache}\n{inner}\n'
    sep = {"ini": " = ", "toml": " = ", "properties": "=", "env": "=", "conf": " "}[fmt]
    cache_key = "CACHE_SIZE_MB" if fmt == "env" else "cache_size_mb"
    section = "[server]\n" if fmt in ("ini", "toml") else ""
    q = '"' if fmt == "toml" else ""
    inner = lines_of(lambda k, v: f"{k.upper() if fmt == 'env' else k}{sep}{q}{v}{q}", "#")
    return comment(head) + f"{section}{cache_key}{sep}{cache}\n{inner}\n"


# ---------------------------------------------------------------------------------------------
# the model: hosts and services


class Lab:
    def __init__(self, size, seed):
        p = dict(SIZES[size])
        self.size, self.seed, self.p = size, seed, p
        self.common = COMMON[: max(1, p["services"] // 10)]
        self.files = {}  # path -> text, written at the end in path order
        r = rng_for(seed, "hosts")
        self.sites = ["home", "lab", "cabin", "cloud"][: max(1, min(4, p["hosts"] // 5))]
        self.hypervisors = [f"PVE-{i + 1:02d}" for i in range(p["hypervisors"])]
        self.docker = [f"DOCKER-{i + 1:03d}" for i in range(p["hosts"])]
        self.talos_hosts = [f"KUBE-CP-{i + 1}" for i in range(p["talos_cp"])] + \
            [f"KUBE-W-{i + 1:02d}" for i in range(p["talos"] - p["talos_cp"])]
        self.images = ["debian-12", "talos-1.8", "ubuntu-24.04", "alpine-3.20", "rocky-9"][: p["images"]]
        # a docker host is a VM on a hypervisor 40% of the time; every 10th has a GPU (bare metal)
        self.vm_of = {}
        self.gpu = set()
        vmid = 200
        for i, h in enumerate(self.docker):
            if i % 10 == 9:
                self.gpu.add(h)
            elif r.random() < 0.4:
                vmid += 1
                self.vm_of[h] = (self.hypervisors[i % len(self.hypervisors)], vmid)
        for i, h in enumerate(self.talos_hosts):
            vmid += 1
            self.vm_of[h] = (self.hypervisors[i % len(self.hypervisors)], vmid)
        self.site_of = {h: self.sites[i % len(self.sites)] for i, h in enumerate(self.docker)}
        for h in self.hypervisors + self.talos_hosts:
            self.site_of[h] = self.sites[0]
        # services: per docker host, `unique` owned ones then the common ones
        unique = p["services"] - len(self.common)
        self.placed = {}  # host -> [(svc, exposure)]
        self.owned = []   # (svc, host, catalog entry, deps)
        for hi, h in enumerate(self.docker):
            names = []
            for j in range(unique):
                entry = GPU_SERVICE if (h in self.gpu and j == 0) else CATALOG[(hi * 7 + j * 5) % len(CATALOG)]
                svc = f"{entry[0]}-{hi + 1:03d}-{j + 1:02d}"
                deps = []
                if j > 0 and r.random() < 0.3:
                    deps.append(names[-1])
                if hi > 0 and j == 1 and r.random() < 0.5:
                    deps.append(self.owned[(hi - 1) * unique][0])  # a service of the previous host
                names.append(svc)
                self.owned.append((svc, h, entry, deps))
            exp = ["internal", "lan", "tailnet", "public"]
            self.placed[h] = [(s, exp[(k * 3 + hi) % 4]) for k, s in enumerate(names)] + \
                [(c[0], "internal") for c in self.common]

    def put(self, path, text):
        assert path not in self.files, path
        self.files[path] = text

    # ---- inventory --------------------------------------------------------------------------
    def inventory(self):
        r = rng_for(self.seed, "inventory")
        out = [
            f"# Synthetic homelab for benchmarking hl (benches/gen.py, size {self.size}, seed {self.seed}).",
            "# Same layout as the sample homelab; see docs/layout.md.",
            "environment: bench",
            "",
            "layout:",
            "  hosts: hosts",
            "  services: services",
            "  images: inventory/images",
            "  talos: cluster/talos",
            "  kubernetes: cluster/kubernetes",
            "  kubernetes_mode: auto",
            "  stacks: null",
            "",
            "sites:",
        ]
        for s in self.sites:
            out.append(f'  {s}: {{ description: "{prose(r, 1)[:70]}" }}')
        out += ["", "nodes:"]
        roles = ["compute", "monitoring", "ingress", "edge", "compute", "compute", "control"]
        for i, h in enumerate(self.docker):
            role = "gpu" if h in self.gpu else ("vm" if h in self.vm_of else roles[i % len(roles)])
            tags = ["docker", self.site_of[h]] + (["gpu"] if h in self.gpu else [])
            out += [
                f"  {h}:",
                f"    role: {role}",
                f"    site: {self.site_of[h]}",
                f"    address: {h.lower()}.tail0.ts.net",
                "    ssh: { user: ops, port: 22 }",
                f"    tags: [{', '.join(tags)}]",
                f"    offline_first: {'true' if self.site_of[h] == 'cabin' else 'false'}",
                "    runtime_root: /opt/homelab",
            ]
        for h in self.hypervisors:
            out += [f"  {h}:", "    role: hypervisor", f"    site: {self.site_of[h]}",
                    f"    address: {h.lower()}.tail0.ts.net", "    ssh: { user: root, port: 22 }",
                    "    tags: [proxmox, hypervisor]", "    offline_first: false", "    runtime_root: /opt/homelab"]
        for i, h in enumerate(self.talos_hosts):
            cp = h.startswith("KUBE-CP")
            out += [f"  {h}:", "    role: vm", f"    site: {self.site_of[h]}", f"    address: 10.20.{i // 200}.{11 + i % 200}",
                    f"    tags: [talos, kubernetes, {'controlplane' if cp else 'worker'}]",
                    "    offline_first: false", "    runtime_root: /opt/homelab"]
        self.put("inventory/topology.yaml", "\n".join(out) + "\n")

        for img in self.images:
            if img == "talos-1.8":
                sid = hexs(r, 64)
                self.put(f"inventory/images/{img}.yaml", (
                    "# Talos Linux disk image for the Kubernetes VMs, from the Image Factory.\n"
                    "builder: command\n"
                    "schematic:\n  customization:\n    systemExtensions:\n      officialExtensions:\n"
                    "        - siderolabs/qemu-guest-agent\n"
                    f"schematic_id: {sid}\n"
                    "tools: [sh, curl, xz]\n"
                    "command:\n  - sh\n  - -euc\n  - >-\n"
                    f"    curl -fsSL https://factory.talos.dev/image/{sid}/v1.8.3/nocloud-amd64.raw.xz\n"
                    "    | xz -d > build/talos-1.8.3-nocloud-amd64.raw\n"
                    "output: build/talos-1.8.3-nocloud-amd64.raw\nformat: raw\nsize_gb: 64\n"))
            else:
                packer = img == "rocky-9"
                files = [f"{img}/user-data.yaml"] + ([f"{img}/{img}.pkr.hcl"] if packer else [])
                self.put(f"inventory/images/{img}.yaml", (
                    f"# {img} cloud image, customised with cloud-init, boot disk of the Docker VMs.\n"
                    f"builder: {'packer' if packer else 'qemu-img'}\n"
                    "base:\n"
                    f"  url: https://images.example.org/{img}/{img}-genericcloud-amd64.qcow2\n"
                    f"  sha512: {hexs(r, 128)}\n"
                    "format: qcow2\nsize_gb: 32\nfiles:\n" + "".join(f"  - {f}\n" for f in files)))
                pkgs = ["qemu-guest-agent", "ca-certificates", "curl", "gnupg", "jq", "prometheus-node-exporter",
                        "unattended-upgrades", "rsync", "htop", "tmux"]
                self.put(f"inventory/images/{img}/user-data.yaml", (
                    "#cloud-config\n# " + prose(r, 3).replace("\n", "\n# ") + "\n"
                    "hostname: debian\nmanage_etc_hosts: true\ntimezone: Europe/London\n\n"
                    "users:\n  - name: ops\n    groups: [sudo, docker]\n    shell: /bin/bash\n"
                    "    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n    lock_passwd: true\n    ssh_authorized_keys:\n"
                    f"      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5{b64(r, 48)} ops@control\n\n"
                    "package_update: true\npackages:\n" + "".join(f"  - {p}\n" for p in pkgs) +
                    "\nruncmd:\n  - systemctl enable --now qemu-guest-agent\n"
                    "  - install -d -o ops -g ops -m 0750 /opt/homelab /opt/homelab/data /opt/homelab/config\n"))
                if packer:
                    self.put(f"inventory/images/{img}/{img}.pkr.hcl", (
                        'source "qemu" "base" {\n  iso_url = "https://images.example.org/rocky-9.iso"\n'
                        f'  iso_checksum = "sha256:{hexs(r, 64)}"\n  disk_size = "32G"\n  format = "qcow2"\n}}\n\n'
                        'build {\n  sources = ["source.qemu.base"]\n}\n'))

    # ---- hosts ------------------------------------------------------------------------------
    def hosts(self):
        r = rng_for(self.seed, "hosts-files")
        images = [i for i in self.images if i != "talos-1.8"]
        for h in self.docker + self.hypervisors + self.talos_hosts:
            vm = self.vm_of.get(h)
            hyp = h in self.hypervisors
            talos = h in self.talos_hosts
            cores = 20 if hyp else r.choice([2, 4, 4, 8, 8, 16])
            gpu = ("gpu:\n  vendor: nvidia\n  model: GeForce RTX 3090   # 24 GB VRAM\n" if h in self.gpu else "gpu: null\n")
            self.put(f"hosts/{h}/capabilities.yaml", (
                f"# {'Proxmox VE hypervisor' if hyp else 'Talos VM' if talos else 'Docker host'} {h}.\n"
                f"arch: amd64\ncpu_cores: {cores}\nmemory_gb: {cores * 4}\n{gpu}"
                f"docker: {'false' if hyp or talos else 'true'}\n"
                "storage:\n"
                f"  - {{ mount: /, type: {'virtio' if vm else 'nvme'}, size_gb: {r.choice([32, 64, 128, 500])} }}\n"
                + ("  - { mount: local-zfs, type: nvme, size_gb: 2000 }\n" if hyp else "")))
            if vm:
                hv, vmid = vm
                image = "talos-1.8" if talos else images[vmid % len(images)]
                self.put(f"hosts/{h}/machine.yaml", (
                    f"# {h} is a VM on {hv}. Changing the image, hypervisor or vmid replaces it.\n"
                    f"hypervisor: {hv}\nprovider: proxmox\nvmid: {vmid}\ncores: {cores}\n"
                    f"memory_mb: {cores * 4096}\ndisks:\n  - image: {image}\n    size_gb: {64 if talos else 32}\n"
                    f"network: {{ bridge: vmbr0, vlan: {20 if talos else 10} }}\n"))
            if h in self.placed:
                lines = [f"# Compose services desired on {h}."]
                lines.append("services:")
                for svc, exp in self.placed[h]:
                    lines.append(f"  - name: {svc}\n    exposure: {exp}" if exp != "internal" else f"  - {svc}")
                self.put(f"hosts/{h}/services.yaml", "\n".join(lines) + "\n")
                # per-host overrides: every common service but the first, and 10% of owned ones
                for c in self.common:
                    self.put(f"hosts/{h}/runtime/{c[0]}/docker-compose.override.yml", (
                        f"# {h} only.\nservices:\n  {c[0]}:\n    environment:\n      NODE_NAME: {h}\n"
                        f"      SITE: {self.site_of[h]}\n      CHECK_INTERVAL_S: \"{r.choice([30, 60, 120])}\"\n"))
                for svc, exp in self.placed[h][: -len(self.common)]:
                    if r.random() < 0.1:
                        self.put(f"hosts/{h}/runtime/{svc}/docker-compose.override.yml", (
                            f"# {h} only: more room for {svc}.\nservices:\n  {svc}:\n"
                            f"    environment:\n      TUNING_PROFILE: {r.choice(['small', 'large'])}\n"
                            "    deploy:\n      resources:\n        limits:\n"
                            f"          memory: {r.choice([512, 1024, 2048])}m\n"))

    # ---- services ---------------------------------------------------------------------------
    def service(self, r, svc, owner, entry, deps, common):
        base, image, port, fmt = entry
        ext = EXT[fmt]
        d = f"services/{svc}"
        cfg = f"config/{base}.{ext}" if ext != "Caddyfile" else "config/Caddyfile"
        extra = r.random() < 0.5 and not common
        tmpl = r.random() < 0.2 and not common
        self.put(f"{d}/{cfg}", config_text(r, base, fmt, r.randint(80, 260)))
        if extra:
            self.put(f"{d}/config/extra.yaml", config_text(r, base, "yaml", r.randint(40, 120)))
        if tmpl:
            for k in range(2):
                self.put(f"{d}/templates/page-{k}.html.tmpl",
                         f"<!-- {svc} template {k} -->\n<html><body>\n<p>{prose(r, 14)}</p>\n</body></html>\n")
        env_vars = ["TZ", f"{base.upper().replace('-', '_')}_PORT", "LOG_LEVEL", "PUID", "PGID"]
        secret_var = f"{base.upper().replace('-', '_')}_PASSWORD"
        target = f"/etc/{base}/{cfg.split('/')[-1]}"
        vols = [f"      - ./{cfg}:{target}:ro"]
        if extra:
            vols.append(f"      - ./config/extra.yaml:/etc/{base}/extra.yaml:ro")
        if tmpl:
            vols.append(f"      - ./templates:/usr/share/{base}/templates:ro")
        vols += [f"      - /opt/homelab/data/{svc}:/data", f"      - /opt/homelab/logs/{svc}:/var/log/{base}"]
        ports = f'    ports:\n      - "{port}:{port}"\n' if port else ""
        labels = "".join(f'      traefik.http.routers.{svc}.{k}: "{v}"\n' for k, v in [
            ("rule", f"Host(`{svc}.home.arpa`)"), ("entrypoints", "websecure"), ("tls.certresolver", "le")])
        compose = (
            comment(f"{svc}: {prose(r, 1)}") +
            "x-logging: &default-logging\n  driver: json-file\n  options:\n    max-size: \"10m\"\n    max-file: \"3\"\n\n"
            f"services:\n  {svc}:\n    image: {image}\n    container_name: {svc}\n    restart: unless-stopped\n"
            "    environment:\n      TZ: ${TZ:-Europe/London}\n"
            f"      {env_vars[1]}: ${{{env_vars[1]}:-{port}}}\n      LOG_LEVEL: ${{LOG_LEVEL:-info}}\n"
            "      PUID: ${PUID:-1000}\n      PGID: ${PGID:-1000}\n"
            f"      {secret_var}: ${{{secret_var}}}\n"
            f"{ports}    volumes:\n" + "\n".join(vols) + "\n"
            f"    labels:\n      traefik.enable: \"true\"\n{labels}"
            "    healthcheck:\n"
            f"      test: [\"CMD\", \"wget\", \"-q\", \"--spider\", \"http://127.0.0.1:{port or 8080}/\"]\n"
            "      interval: 30s\n      timeout: 5s\n      retries: 3\n      start_period: 20s\n"
            "    deploy:\n      resources:\n        limits:\n"
            f"          memory: {r.choice([128, 256, 512, 1024])}m\n"
            "    logging: *default-logging\n")
        self.put(f"{d}/docker-compose.yml", compose)
        gpu = "true" if entry is GPU_SERVICE else "false"
        dep = "[" + ", ".join(deps) + "]"
        self.put(f"{d}/service.yaml", (
            f"name: {svc}\n"
            + ("# Placed on every Docker host (hosts/*/services.yaml).\n" if common else "")
            + f"owner_node: {owner}\nexposure: internal\ndependencies: {dep}\n"
            "healthcheck: { script: healthcheck.sh, timeout_s: 10 }\nrestart_policy: unless-stopped\n"
            f"persistence:\n  paths:\n    - /opt/homelab/data/{svc}\n"
            f"runtime:\n  env_vars: [{', '.join(env_vars + [secret_var])}]\nrequires: {{ gpu: {gpu} }}\n"))
        self.put(f"{d}/README.md", (
            f"# {svc}\n\n{prose(r, 6)}\n\n- Port: `{port}`.\n- Config: `{cfg}`, mounted read-only.\n"
            f"- Data: `/opt/homelab/data/{svc}`.\n\n## Operations\n\n{prose(r, r.randint(8, 16))}\n\n"
            f"## Backup and restore\n\n{prose(r, r.randint(4, 10))}\n"))
        self.put(f"{d}/env.example", (
            f"# Copy to /opt/homelab/config/{svc}/.env on the host and adjust.\nTZ=Europe/London\n"
            f"{env_vars[1]}={port}\nLOG_LEVEL=info\nPUID=1000\nPGID=1000\n"
            f"# set on the host only, never committed\n{secret_var}=\n"))
        self.put(f"{d}/healthcheck.sh", (
            "#!/usr/bin/env bash\n"
            f"# Exit 0 when {svc} is running, healthy and answering on port {port}.\n"
            "set -euo pipefail\n\n"
            f"name={svc}\nport=\"${{{env_vars[1]}:-{port}}}\"\n\n"
            "status=$(docker inspect -f '{{.State.Status}}' \"$name\" 2>/dev/null) || { echo \"$name: no such container\"; exit 1; }\n"
            "[[ \"$status\" == running ]] || { echo \"$name: $status\"; exit 1; }\n\n"
            "health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' \"$name\")\n"
            "[[ \"$health\" == healthy || \"$health\" == none ]] || { echo \"$name: health $health\"; exit 1; }\n\n"
            "if ! timeout 3 bash -c \"exec 3<>/dev/tcp/127.0.0.1/$port\" 2>/dev/null; then\n"
            "  echo \"$name: port $port not accepting connections\"\n  exit 1\nfi\n\necho \"$name: ok\"\n"))

    def services(self):
        r = rng_for(self.seed, "services")
        for c in self.common:
            self.service(r, c[0], self.docker[0], c, [], True)
        for svc, host, entry, deps in self.owned:
            self.service(r, svc, host, entry, deps, False)

    # ---- talos ------------------------------------------------------------------------------
    def talos(self):
        r = rng_for(self.seed, "talos")
        t = "cluster/talos"
        sid = hexs(r, 64)
        out = [
            "# yaml-language-server: $schema=https://raw.githubusercontent.com/budimanjojo/talhelper/master/pkg/config/schemas/talconfig.json",
            "clusterName: bench", "talosVersion: v1.8.3", "kubernetesVersion: v1.31.2",
            "endpoint: https://10.20.0.10:6443", "domain: cluster.local", "",
            "additionalApiServerCertSans: &sans", "  - 10.20.0.10", "  - k8s.home.arpa", "  - 127.0.0.1",
            "additionalMachineCertSans: *sans", "",
            'clusterPodNets: ["10.42.0.0/16"]', 'clusterSvcNets: ["10.43.0.0/16"]', "cniConfig:", "  name: flannel", "",
            f"talosImageURL: factory.talos.dev/installer/{sid}", "",
            "patches:",
        ]
        globals_ = ["machine-time", "machine-network", "machine-kubelet", "machine-sysctls"]
        out += [f'  - "@./patches/global/{g}.yaml"' for g in globals_]
        out += ["", "controlPlane:", "  patches:", '    - "@./patches/controller/cluster.yaml"',
                '    - "@./patches/controller/machine-features.yaml"', "", "worker:", "  patches:",
                '    - "@./patches/worker/node-labels.yaml"', "", "nodes:"]
        for i, h in enumerate(self.talos_hosts):
            hn = h.lower()
            ip = f"10.20.{i // 200}.{11 + i % 200}"
            cp = h.startswith("KUBE-CP")
            out += [f"  - hostname: {hn}", f"    ipAddress: {ip}", f"    controlPlane: {'true' if cp else 'false'}",
                    "    installDisk: /dev/sda", "    networkInterfaces:", "      - deviceSelector:",
                    "          driver: virtio_net", "        dhcp: false", f'        addresses: ["{ip}/24"]',
                    "        routes:", "          - network: 0.0.0.0/0", "            gateway: 10.20.0.1",
                    "        mtu: 1500"]
            if cp:
                out += ["        vip:", "          ip: 10.20.0.10"]
            out += ["    patches:", f'      - "@./patches/nodes/{hn}.yaml"']
            self.put(f"{t}/patches/nodes/{hn}.yaml", (
                f"# {hn} only.\nmachine:\n  install:\n    disk: /dev/sda\n    wipe: false\n"
                f"  nodeLabels:\n    homelab.example/workload: {r.choice(['apps', 'media', 'data', 'batch'])}\n"
                f"    topology.kubernetes.io/zone: {self.vm_of[h][0].lower()}\n"
                "  kubelet:\n    extraConfig:\n      systemReserved:\n"
                f"        cpu: {r.choice([250, 500, 1000])}m\n        memory: {r.choice([512, 1024])}Mi\n"
                f"  sysctls:\n    vm.max_map_count: \"{262144 + r.randint(0, 1000)}\"\n"))
        self.put(f"{t}/talconfig.yaml", "\n".join(out) + "\n")
        self.put(f"{t}/patches/global/machine-time.yaml",
                 "# NTP for every node.\nmachine:\n  time:\n    disabled: false\n    servers:\n      - time.cloudflare.com\n")
        self.put(f"{t}/patches/global/machine-network.yaml",
                 "# DNS for every node.\nmachine:\n  network:\n    nameservers:\n      - 10.10.0.1\n      - 1.1.1.1\n")
        self.put(f"{t}/patches/global/machine-kubelet.yaml", (
            "# Kubelet settings for every node.\nmachine:\n  kubelet:\n    extraArgs:\n"
            "      feature-gates: GracefulNodeShutdown=true\n    extraConfig:\n      serializeImagePulls: false\n"
            "      maxPods: 150\n      shutdownGracePeriod: 30s\n    nodeIP:\n      validSubnets:\n        - 10.20.0.0/16\n"))
        self.put(f"{t}/patches/global/machine-sysctls.yaml", (
            "# Kernel tuning for every node.\nmachine:\n  sysctls:\n    fs.inotify.max_user_watches: \"1048576\"\n"
            "    fs.inotify.max_user_instances: \"8192\"\n    net.core.rmem_max: \"7500000\"\n"))
        self.put(f"{t}/patches/controller/cluster.yaml", (
            "# Cluster-wide settings, control planes only.\ncluster:\n  allowSchedulingOnControlPlanes: false\n"
            "  controllerManager:\n    extraArgs:\n      bind-address: 0.0.0.0\n  scheduler:\n    extraArgs:\n"
            "      bind-address: 0.0.0.0\n  etcd:\n    extraArgs:\n      listen-metrics-urls: http://0.0.0.0:2381\n"
            "    advertisedSubnets:\n      - 10.20.0.0/16\n"))
        self.put(f"{t}/patches/controller/machine-features.yaml", (
            "machine:\n  features:\n    kubernetesTalosAPIAccess:\n      enabled: true\n"
            "      allowedRoles: [\"os:reader\"]\n      allowedKubernetesNamespaces: [kube-system]\n"))
        self.put(f"{t}/patches/worker/node-labels.yaml",
                 "# Labels on every worker.\nmachine:\n  nodeLabels:\n    node-role.kubernetes.io/worker: \"\"\n")
        secrets = "cluster:\n    id: {}\n    secret: {}\nsecrets:\n    bootstraptoken: {}\n".format(
            sops_value(r, 44), sops_value(r, 44), sops_value(r, 30))
        secrets += "certs:\n" + "".join(f"    {k}:\n        crt: {sops_value(r, 900)}\n        key: {sops_value(r, 300)}\n"
                                        for k in ["etcd", "k8s", "k8saggregator", "os"])
        self.put(f"{t}/talsecret.sops.yaml", secrets + sops_block(r, regex=False))
        self.put("cluster/.sops.yaml", (
            "creation_rules:\n  - path_regex: talos/.*\\.sops\\.ya?ml\n"
            "    age: age1xzyqvu7st4u0zzmguf6nhcj7f7zqeggpgss662q4zx9glsxhmlgqtfncjw\n"
            "  - path_regex: kubernetes/.*\\.sops\\.ya?ml\n    encrypted_regex: ^(data|stringData)$\n"
            "    age: age1xzyqvu7st4u0zzmguf6nhcj7f7zqeggpgss662q4zx9glsxhmlgqtfncjw\n"))

    # ---- kubernetes -------------------------------------------------------------------------
    def ks(self, name, path, deps, r, substitute=True):
        dep = "".join(f"    - name: {d}\n" for d in deps)
        return (
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n"
            f"  name: {name}\n  namespace: flux-system\nspec:\n  commonMetadata:\n    labels:\n"
            f"      app.kubernetes.io/name: {name}\n"
            + (f"  dependsOn:\n{dep}" if deps else "")
            + f"  path: ./{path}\n  prune: true\n  wait: {r.choice(['true', 'false'])}\n  interval: 30m\n"
            "  retryInterval: 1m\n  timeout: 5m\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n"
            "  decryption:\n    provider: sops\n    secretRef:\n      name: sops-age\n"
            + ("  postBuild:\n    substituteFrom:\n      - kind: ConfigMap\n        name: cluster-settings\n"
               "      - kind: Secret\n        name: cluster-secrets\n" if substitute else ""))

    def kustomization(self, resources, namespace=None, comment=None):
        return ((f"# {comment}\n" if comment else "")
                + "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                + (f"namespace: {namespace}\n" if namespace else "")
                + "resources:\n" + "".join(f"  - {x}\n" for x in resources))

    def manifest(self, r, kind, app, ns, image):
        """One manifest file: a comment header as home-ops repos have, then the objects."""
        return comment(prose(r, r.randint(6, 22))) + self.objects(r, kind, app, ns, image)

    def objects(self, r, kind, app, ns, image):
        port = r.choice([80, 3000, 8080, 8096, 9000])
        lbl = f"    app.kubernetes.io/name: {app}\n    app.kubernetes.io/instance: {app}\n"
        meta = f"metadata:\n  name: {app}\n  namespace: {ns}\n  labels:\n{lbl}"
        if kind == "namespace":
            return f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n" \
                   "    pod-security.kubernetes.io/enforce: baseline\n"
        if kind == "deployment":
            env = "".join(f"            - name: {k}\n              value: \"{v}\"\n" for k, v in [
                ("TZ", "${TIMEZONE}"), ("LOG_LEVEL", r.choice(["info", "debug"])), ("PUBLIC_URL", f"https://{app}.${{SECRET_DOMAIN}}"),
                ("WORKERS", str(r.randint(1, 8))), ("CACHE_TTL", str(r.randint(60, 3600))), ("FEATURE_FLAGS", ",".join(r.sample(WORDS, 4)))]
                + [(f"{r.choice(WORDS).upper()}_{i}", str(r.randint(1, 99999))) for i in range(r.randint(6, 20))])
            return (
                comment(prose(r, 2)) +
                f"apiVersion: apps/v1\nkind: Deployment\n{meta}spec:\n  replicas: {r.randint(1, 3)}\n"
                "  revisionHistoryLimit: 3\n  strategy:\n    type: RollingUpdate\n"
                f"  selector:\n    matchLabels:\n      app.kubernetes.io/name: {app}\n"
                f"  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: {app}\n"
                "      annotations:\n        reloader.stakater.com/auto: \"true\"\n"
                "    spec:\n      securityContext:\n        runAsNonRoot: true\n        runAsUser: 1000\n"
                "        fsGroup: 1000\n        fsGroupChangePolicy: OnRootMismatch\n"
                f"      containers:\n        - name: {app}\n          image: {image}\n"
                f"          ports:\n            - name: http\n              containerPort: {port}\n"
                f"          env:\n{env}"
                f"          envFrom:\n            - secretRef:\n                name: {app}-secret\n"
                "          readinessProbe:\n            httpGet:\n              path: /healthz\n              port: http\n"
                "            periodSeconds: 15\n          livenessProbe:\n            httpGet:\n              path: /healthz\n"
                "              port: http\n            initialDelaySeconds: 30\n            periodSeconds: 30\n"
                "          securityContext:\n            allowPrivilegeEscalation: false\n"
                "            readOnlyRootFilesystem: true\n            capabilities:\n              drop: [ALL]\n"
                f"          resources:\n            requests:\n              cpu: {r.choice([10, 50, 100])}m\n"
                f"              memory: {r.choice([64, 128, 256])}Mi\n            limits:\n"
                f"              memory: {r.choice([256, 512, 1024])}Mi\n"
                "          volumeMounts:\n            - name: data\n              mountPath: /data\n"
                "            - name: tmp\n              mountPath: /tmp\n"
                "        - name: exporter\n          image: quay.io/prometheus/statsd-exporter:v0.28.0\n"
                "          args: [\"--statsd.mapping-config=/config/mapping.yaml\"]\n"
                "          ports:\n            - name: metrics\n              containerPort: 9102\n"
                "          resources:\n            requests:\n              cpu: 5m\n              memory: 16Mi\n"
                "            limits:\n              memory: 64Mi\n"
                f"      volumes:\n        - name: data\n          persistentVolumeClaim:\n            claimName: {app}-data\n"
                "        - name: tmp\n          emptyDir: {}\n")
        if kind == "service":
            return (f"apiVersion: v1\nkind: Service\n{meta}spec:\n  type: ClusterIP\n  selector:\n"
                    f"    app.kubernetes.io/name: {app}\n  ports:\n    - name: http\n      port: {port}\n      targetPort: http\n")
        if kind == "ingress":
            return (f"apiVersion: networking.k8s.io/v1\nkind: Ingress\n{meta}"
                    "  annotations:\n    cert-manager.io/cluster-issuer: letsencrypt-production\n"
                    "    nginx.ingress.kubernetes.io/proxy-body-size: 100m\n"
                    f"spec:\n  ingressClassName: nginx\n  tls:\n    - hosts:\n        - {app}.${{SECRET_DOMAIN}}\n"
                    f"      secretName: {app}-tls\n  rules:\n    - host: {app}.${{SECRET_DOMAIN}}\n      http:\n"
                    "        paths:\n          - path: /\n            pathType: Prefix\n            backend:\n"
                    f"              service:\n                name: {app}\n                port:\n                  name: http\n")
        if kind == "configmap":
            data = "".join(f"  {k}: \"{v}\"\n" for k, v in [(f"setting_{i}", r.choice(WORDS) + str(r.randint(1, 999)))
                                                           for i in range(r.randint(10, 30))])
            return (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {app}-config\n  namespace: {ns}\n"
                    f"data:\n{data}  app.conf: |\n"
                    + "".join(f"    {line}\n" for line in config_text(r, app, "conf", r.randint(60, 240)).splitlines()))
        if kind == "pvc":
            return (f"apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {app}-data\n  namespace: {ns}\n"
                    f"spec:\n  accessModes: [\"ReadWriteOnce\"]\n  storageClassName: nfs\n  resources:\n"
                    f"    requests:\n      storage: {r.choice([1, 5, 10, 50])}Gi\n")
        if kind == "secret":
            data = "".join(f"    {k}: {sops_value(r, r.randint(20, 90))}\n"
                           for k in [f"{app.upper().replace('-', '_')}_{s}" for s in
                                     ["SECRET_KEY", "ADMIN_PASSWORD", "DB_URL", "SMTP_PASSWORD", "OIDC_CLIENT_SECRET",
                                      "S3_ACCESS_KEY", "S3_SECRET_KEY"][: r.randint(3, 7)]])
            return (f"apiVersion: v1\nkind: Secret\nmetadata:\n    name: {app}-secret\n    namespace: {ns}\n"
                    f"type: Opaque\nstringData:\n{data}" + sops_block(r))
        if kind == "networkpolicy":
            return (f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n{meta}spec:\n  podSelector:\n"
                    f"    matchLabels:\n      app.kubernetes.io/name: {app}\n  policyTypes: [Ingress, Egress]\n"
                    "  ingress:\n    - from:\n        - namespaceSelector:\n            matchLabels:\n"
                    "              kubernetes.io/metadata.name: ingress-nginx\n"
                    f"      ports:\n        - port: {port}\n  egress:\n    - to:\n        - namespaceSelector: {{}}\n")
        if kind == "servicemonitor":
            return (f"apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\n{meta}spec:\n  selector:\n"
                    f"    matchLabels:\n      app.kubernetes.io/name: {app}\n  endpoints:\n    - port: http\n"
                    "      path: /metrics\n      interval: 1m\n      scrapeTimeout: 10s\n")
        if kind == "rbac":
            return (f"---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {app}\n  namespace: {ns}\n"
                    f"---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {app}\n  namespace: {ns}\n"
                    "rules:\n  - apiGroups: [\"\"]\n    resources: [configmaps, secrets]\n    verbs: [get, list, watch]\n"
                    f"---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {app}\n"
                    f"  namespace: {ns}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: {app}\n"
                    f"subjects:\n  - kind: ServiceAccount\n    name: {app}\n    namespace: {ns}\n")
        if kind == "pdb":
            return (f"apiVersion: policy/v1\nkind: PodDisruptionBudget\n{meta}spec:\n  maxUnavailable: 1\n"
                    f"  selector:\n    matchLabels:\n      app.kubernetes.io/name: {app}\n")
        if kind == "cronjob":
            return (f"apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {app}-backup\n  namespace: {ns}\n"
                    f"spec:\n  schedule: \"{r.randint(0, 59)} {r.randint(0, 5)} * * *\"\n  concurrencyPolicy: Forbid\n"
                    "  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n"
                    "          containers:\n            - name: backup\n              image: docker.io/restic/restic:0.17.3\n"
                    f"              args: [\"backup\", \"/data\", \"--tag\", \"{app}\"]\n"
                    f"              envFrom:\n                - secretRef:\n                    name: {app}-secret\n")
        if kind == "hpa":
            return (f"apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n{meta}spec:\n  scaleTargetRef:\n"
                    f"    apiVersion: apps/v1\n    kind: Deployment\n    name: {app}\n  minReplicas: 1\n"
                    f"  maxReplicas: {r.randint(3, 10)}\n  metrics:\n    - type: Resource\n      resource:\n"
                    "        name: cpu\n        target:\n          type: Utilization\n          averageUtilization: 80\n")
        if kind == "helmrelease":
            vals = "".join(f"      {k}_{i}: {r.randint(1, 100)}\n" for i, k in enumerate(r.choice(WORDS) for _ in range(r.randint(30, 90))))
            return (f"apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: {app}-cache\n"
                    f"  namespace: {ns}\nspec:\n  interval: 30m\n  chart:\n    spec:\n      chart: redis\n"
                    "      version: 20.3.0\n      sourceRef:\n        kind: HelmRepository\n        name: bitnami\n"
                    "        namespace: flux-system\n  install:\n    remediation:\n      retries: 3\n"
                    "  upgrade:\n    cleanupOnFail: true\n    remediation:\n      strategy: rollback\n      retries: 3\n"
                    "  values:\n    architecture: standalone\n    auth:\n      existingSecret: "
                    f"{app}-secret\n    master:\n      persistence:\n        size: 1Gi\n    tuning:\n{vals}")
        raise ValueError(kind)

    def kubernetes(self):
        r = rng_for(self.seed, "kubernetes")
        k = "cluster/kubernetes"
        # flux/
        self.put(f"{k}/flux/kustomization.yaml", self.kustomization(["./flux-system", "./vars"],
                                                                      comment="Entry point Flux reconciles."))
        self.put(f"{k}/flux/flux-system/kustomization.yaml", self.kustomization(["./gotk-sync.yaml", "./cluster.yaml"]))
        self.put(f"{k}/flux/flux-system/gotk-sync.yaml", (
            "---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: flux-system\n"
            "  namespace: flux-system\nspec:\n  interval: 1m0s\n  url: ssh://git@git.home.arpa:2222/ops/homelab.git\n"
            "  ref:\n    branch: main\n  secretRef:\n    name: flux-system\n"
            "---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: flux-system\n"
            "  namespace: flux-system\nspec:\n  interval: 10m0s\n  path: ./cluster/kubernetes/flux\n  prune: true\n"
            "  sourceRef:\n    kind: GitRepository\n    name: flux-system\n  decryption:\n    provider: sops\n"
            "    secretRef:\n      name: sops-age\n"))
        cluster = self.ks("cluster-platform", f"{k}/platform", [], r, substitute=False)
        cluster += "---\n" + self.ks("cluster-apps", f"{k}/apps", ["cluster-platform"], r, substitute=False)
        self.put(f"{k}/flux/flux-system/cluster.yaml", "---\n" + cluster)
        self.put(f"{k}/flux/vars/kustomization.yaml",
                 self.kustomization(["./cluster-settings.yaml", "./cluster-secrets.sops.yaml"]))
        self.put(f"{k}/flux/vars/cluster-settings.yaml", (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cluster-settings\n  namespace: flux-system\n"
            "data:\n  TIMEZONE: Europe/London\n  NFS_SERVER: 10.10.0.5\n  NFS_PATH: /volume1/kubernetes\n"))
        self.put(f"{k}/flux/vars/cluster-secrets.sops.yaml", (
            "apiVersion: v1\nkind: Secret\nmetadata:\n    name: cluster-secrets\n    namespace: flux-system\n"
            f"type: Opaque\nstringData:\n    SECRET_DOMAIN: {sops_value(r, 16)}\n" + sops_block(r)))
        # platform/
        platform = [("ingress-nginx", []), ("nfs-provisioner", []), ("cert-manager", []),
                    ("cert-manager-issuers", ["cert-manager"]), ("kube-prometheus-stack", ["nfs-provisioner"])]
        self.put(f"{k}/platform/kustomization.yaml", self.kustomization([f"./{n}/ks.yaml" for n, _ in platform]))
        for name, deps in platform:
            self.put(f"{k}/platform/{name}/ks.yaml", self.ks(name, f"{k}/platform/{name}/app", deps, r))
            self.put(f"{k}/platform/{name}/app/kustomization.yaml",
                     self.kustomization(["./namespace.yaml", "./helmrepository.yaml", "./helmrelease.yaml"]))
            self.put(f"{k}/platform/{name}/app/namespace.yaml", self.manifest(r, "namespace", name, name, ""))
            self.put(f"{k}/platform/{name}/app/helmrepository.yaml", (
                f"apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: {name}\n"
                f"  namespace: flux-system\nspec:\n  interval: 2h\n  url: https://charts.example.org/{name}\n"))
            self.put(f"{k}/platform/{name}/app/helmrelease.yaml", self.manifest(r, "helmrelease", name, name, ""))
        # apps/<group>/<app>/{ks.yaml, app/...}
        total = self.p["manifests"]
        n_apps = max(1, total // 8)
        counts = [r.randint(5, 11) for _ in range(n_apps)]
        i = 0
        while sum(counts) != total:  # settle on exactly `total` manifest files
            d = 1 if sum(counts) < total else -1
            if 5 <= counts[i % n_apps] + d <= 11:
                counts[i % n_apps] += d
            i += 1
        groups = max(1, round(n_apps ** 0.5))
        optional = ["ingress", "pvc", "secret", "configmap", "networkpolicy", "servicemonitor", "rbac",
                    "pdb", "cronjob", "hpa", "helmrelease"]
        platform_names = [n for n, _ in platform]
        group_apps = {}
        for a in range(n_apps):
            g = f"group-{a % groups + 1:02d}"
            entry = CATALOG[a % len(CATALOG)]
            app = f"{entry[0]}-{a + 1:04d}"
            group_apps.setdefault(g, []).append(app)
            deps = r.sample(["ingress-nginx", "cert-manager-issuers", "nfs-provisioner"], r.randint(1, 3))
            deps = [d for d in platform_names if d in deps]
            if len(group_apps[g]) > 1 and r.random() < 0.2:
                deps.append(group_apps[g][-2])
            adir = f"{k}/apps/{g}/{app}"
            self.put(f"{adir}/ks.yaml", self.ks(app, f"{adir}/app", deps, r))
            kinds = ["namespace", "deployment", "service"]
            opts = list(optional)
            r.shuffle(opts)
            kinds += opts[: counts[a] - 3]
            files = [f"./{kd}.sops.yaml" if kd == "secret" else f"./{kd}.yaml" for kd in kinds]
            self.put(f"{adir}/app/kustomization.yaml", self.kustomization(files))
            for kd, f in zip(kinds, files):
                self.put(f"{adir}/app/{f[2:]}", self.manifest(r, kd, app, app, entry[1]))
        groups_sorted = sorted(group_apps)
        self.put(f"{k}/apps/kustomization.yaml", self.kustomization([f"./{g}" for g in groups_sorted],
                                                                      comment="One folder per group of apps."))
        for g in groups_sorted:
            self.put(f"{k}/apps/{g}/kustomization.yaml",
                     self.kustomization([f"./{a}/ks.yaml" for a in group_apps[g]]))

    def build(self):
        self.inventory()
        self.hosts()
        self.services()
        self.talos()
        self.kubernetes()
        return self.files


# ---------------------------------------------------------------------------------------------
# commands


def inside_git_worktree_of_this_script(out):
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        top = subprocess.run(["git", "-C", here, "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    out = os.path.realpath(out)
    top = os.path.realpath(top)
    return top if out == top or out.startswith(top + os.sep) else None


def cmd_generate(a):
    out = a.out
    repo = inside_git_worktree_of_this_script(out)
    if repo:
        sys.exit(f"gen.py: refusing to write into {out}: it is inside the git work tree {repo}; use a temp dir")
    if os.path.exists(out) and os.listdir(out):
        sys.exit(f"gen.py: {out} is not empty")
    files = Lab(a.size, a.seed).build()
    nbytes = 0
    made = set()
    for path in sorted(files):
        full = os.path.join(out, path)
        d = os.path.dirname(full)
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
        data = files[path].encode()
        nbytes += len(data)
        with open(full, "wb") as f:
            f.write(data)
        if path.endswith(".sh"):
            os.chmod(full, 0o755)
    print(f"{out}: size {a.size}, seed {a.seed}: {len(files)} files, {nbytes} bytes")


def middle(items):
    return items[len(items) // 2]


def edit_target(root, kind):
    if kind == "service":
        hosts = sorted(h for h in os.listdir(os.path.join(root, "hosts"))
                       if os.path.isfile(os.path.join(root, "hosts", h, "services.yaml")))
        text = open(os.path.join(root, "hosts", middle(hosts), "services.yaml")).read()
        svc = re.search(r"^  - (?:name: )?([a-z0-9-]+)$", text, re.M).group(1)  # host-owned ones come first
        cfg = os.path.join(root, "services", svc, "config")
        name = sorted(f for f in os.listdir(cfg) if f != "extra.yaml")[0]
        return os.path.join(cfg, name), r"(cache_size_mb\W+|CACHE_SIZE_MB\W+)(\d+)"
    if kind == "manifest":
        apps = os.path.join(root, "cluster/kubernetes/apps")
        g = middle(sorted(d for d in os.listdir(apps) if os.path.isdir(os.path.join(apps, d))))
        a = middle(sorted(d for d in os.listdir(os.path.join(apps, g)) if os.path.isdir(os.path.join(apps, g, d))))
        return os.path.join(apps, g, a, "app", "deployment.yaml"), r"(\n  replicas: )(\d+)"
    if kind == "talos":
        d = os.path.join(root, "cluster/talos/patches/nodes")
        return os.path.join(d, middle(sorted(os.listdir(d)))), r"(vm\.max_map_count: \")(\d+)"
    raise SystemExit(f"gen.py: unknown edit kind {kind}")


def cmd_edit(a):
    path, pattern = edit_target(a.root, a.kind)
    text = open(path).read()
    new, n = re.subn(pattern, lambda m: m.group(1) + str(int(m.group(2)) + 1), text, count=1)
    if n != 1:
        sys.exit(f"gen.py: {path}: nothing to edit (pattern {pattern})")
    with open(path, "w") as f:
        f.write(new)
    settle(path)
    print(os.path.relpath(path, a.root))


def settle(path):
    """Waits until the clock file systems stamp with (Linux: the coarse real-time clock) is past
    the file's mtime, as it is for an edit made seconds before a plan: hl does not trust a file
    changed in the tick its run started in (a racy file), and a timed run right after the edit
    would measure that instead."""
    mtime = os.stat(path).st_mtime_ns
    coarse = getattr(time, "CLOCK_REALTIME_COARSE", 5 if sys.platform.startswith("linux") else None)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        now = time.clock_gettime_ns(coarse) if coarse is not None else time.time_ns() - 20_000_000
        if now > mtime:
            return
        time.sleep(0.001)


def cmd_sizes(_a):
    for name, p in SIZES.items():
        print(name, " ".join(f"{k}={v}" for k, v in p.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="write a synthetic homelab to OUT")
    g.add_argument("--size", choices=sorted(SIZES), required=True)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("out")
    g.set_defaults(fn=cmd_generate)
    e = sub.add_parser("edit", help="make one real edit in a generated homelab; prints the file")
    e.add_argument("root")
    e.add_argument("kind", choices=["service", "manifest", "talos"])
    e.set_defaults(fn=cmd_edit)
    s = sub.add_parser("sizes", help="print the sizes")
    s.set_defaults(fn=cmd_sizes)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
