#!/usr/bin/env bash
# Installs what building and running sfu + sfu-signaling needs on Debian/Ubuntu, nothing
# for the tests (scripts/install-deps.sh adds those and calls this first, so this is the
# one list of the run packages). scripts/run.sh calls it as root. Idempotent: skips what
# is already there. Not root: names what is missing and leaves the system alone.
set -euo pipefail

APT_PACKAGES=(
  build-essential  # a C compiler: ring and glommio (its bundled liburing) compile C code
  git              # glommio's build script runs `git submodule update`
  ca-certificates  # cargo downloads the crates over HTTPS
)

# The Rust toolchain is not taken from Debian: its cargo is older than the workspace's
# rust-version (Cargo.toml). rustup installs a current one.
if ! command -v cargo >/dev/null 2>&1; then
  echo "install-run-deps: no cargo on PATH: install a Rust toolchain first," \
    "e.g. from https://rustup.rs (curl https://sh.rustup.rs -sSf | sh)" >&2
  exit 1
fi

if ! command -v dpkg >/dev/null 2>&1; then
  echo "install-run-deps: not a Debian system: make sure these are installed: ${APT_PACKAGES[*]}" >&2
  exit 0
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "install-run-deps: not root: not installing ${missing[*]};" \
    "the build may fail without them (apt-get install ${missing[*]})" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
