#!/usr/bin/env bash
# The one test command: builds everything, then runs every test inside a private network
# namespace (only loopback exists there: hermetic, nothing can leave the machine).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --workspace --all-targets
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
scripts/check-units.sh

if [ "$(id -u)" = 0 ] && [ -z "${SFU_NO_NETNS:-}" ]; then
  exec unshare -n bash -c 'ip link set lo up && exec scripts/test-inner.sh'
else
  echo "not root (or SFU_NO_NETNS set): running tests in the current network namespace" >&2
  exec scripts/test-inner.sh
fi
