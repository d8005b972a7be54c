#!/usr/bin/env bash
# hl apply of N independent cheap local nodes (image recipes whose builder is one tiny command)
# at -j 1, 2 and 8: wall time, the per-node cost beyond the work itself (the same N commands
# run back to back by a shell), and the speed-up. The scheduler's own cost, without processes,
# is `cargo run --release -p hl-engine --example scheduler`. Usage: benches/apply.sh [N]
set -euo pipefail
n=${1:-1000}
root=$(cd "$(dirname "$0")/.." && pwd)
hl=${HL_BIN:-}
if [ -z "$hl" ]; then
  (cd "$root" && cargo build --release --bin hl >&2)
  hl=$root/target/release/hl
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lab=$work/lab
mkdir -p "$lab/inventory/images"
echo "environment: bench" >"$lab/hl.yaml"
for i in $(seq -w 1 "$n"); do
  printf 'builder: command\ncommand: [sh, -c, "echo %s > out"]\noutput: out\n' "$i" >"$lab/inventory/images/n$i.yaml"
done
command -v bc >/dev/null || { apt-get install -y -qq bc >/dev/null; }
now() { date +%s.%N; }

# The floor: the same commands, one after another, in the same kind of scratch folder.
t0=$(now)
for i in $(seq -w 1 "$n"); do (cd "$work" && sh -c "echo $i > out"); done
floor=$(echo "$(now) - $t0" | bc -l)

echo "hl apply of $n independent local nodes ($(nproc) cores); floor: $n commands back to back: $(printf %.2f "$floor") s"
echo "| -j | wall | per node | beyond the work, per node | speed-up vs -j 1 |"
echo "| ---: | ---: | ---: | ---: | ---: |"
base=
for j in 1 2 8; do
  rm -rf "$lab/.hl" "$work/cache"
  t0=$(now)
  HL_CACHE_DIR=$work/cache "$hl" -C "$lab" apply --yes -j "$j" >/dev/null 2>&1
  wall=$(echo "$(now) - $t0" | bc -l)
  base=${base:-$wall}
  printf '| %s | %.2f s | %.2f ms | %.2f ms | %.2fx |\n' "$j" "$wall" \
    "$(echo "$wall * 1000 / $n" | bc -l)" \
    "$(echo "($wall - $floor / $j) * 1000 / $n" | bc -l)" \
    "$(echo "$base / $wall" | bc -l)"
done
