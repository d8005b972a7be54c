#!/usr/bin/env bash
# The whole test suite. On a fresh Debian machine it first installs what the tests drive for
# real (root: apt-get; otherwise it says what is missing), brings up the testbed of sshd hosts
# and Docker engines (scripts/testbed.sh, docs/testing.md), then runs every test of the workspace.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test plan`).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "installing: ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]} (install them, or run as root to let this script do it)" >&2
    exit 1
  fi
fi

# The real parts of hl apply's tests: sshd test hosts and Docker engines (docs/testing.md).
if [ "$(id -u)" = 0 ]; then
  scripts/testbed.sh up
else
  echo "not root: the testbed is left as it is (scripts/testbed.sh up needs root); tests that use it fail if it is down" >&2
fi

cargo test --workspace --locked "$@"
