#!/usr/bin/env bash
# Installs everything the build and the tests need on a fresh Debian machine (run as root,
# as CI does). Idempotent: skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  iproute2        # ip netns / ip link for the private network namespaces tests run in
  util-linux      # unshare
  pkg-config
  systemd         # systemd-analyze verify / security for the units
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Rust dependencies are fetched here, while the network is reachable: the tests later run
# offline inside a network namespace.
cargo fetch --locked
