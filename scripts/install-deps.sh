#!/usr/bin/env bash
# Installs everything the build and the tests need on a fresh Debian machine (run as root,
# as CI does). Idempotent: skips what is already there. What building and running need
# comes from scripts/install-run-deps.sh (the one list of those); this adds the tests'.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-run-deps.sh

APT_PACKAGES=(
  curl            # scripts/check-quickstart.sh: plain HTTP checks of the quick start
  iproute2        # ip netns / ip link for the private network namespaces tests run in
  util-linux      # unshare
  pkg-config
  systemd         # systemd-analyze verify / security for the units
  chromium        # end-to-end tests (e2e/), driven by playwright-core
  firefox-esr     # end-to-end tests (e2e/), driven by puppeteer-core
  fonts-dejavu-core  # readable text in the e2e screenshots
  janus           # Janus 1.1 + videoroom: the peer SFU scripts/bench.sh compares against
  python3-venv    # e2e/.venv: aiortc, the independent WHIP client of e2e/tests/whip.test.mjs
  nftables        # e2e/tests/reach.test.mjs: blocks a participant's UDP inside its namespace
  coturn          # e2e/tests/reach.test.mjs: a TURN server as a participant's only path
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

# Node.js for the end-to-end tests (playwright-core needs 20 or newer; the machine image
# ships it, Debian's own package is a fallback).
if ! command -v node >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "install-deps: Node.js $(node --version) is too old for e2e/ (20 or newer needed)" >&2
  exit 1
fi

# npm packages of the end-to-end tests (browser drivers only: no browser downloads),
# exactly as locked; skipped when node_modules already matches the lock file.
if ! cmp -s e2e/package-lock.json e2e/node_modules/.package-lock.json.src 2>/dev/null; then
  (cd e2e && npm ci --no-audit --no-fund --loglevel=error)
  cp e2e/package-lock.json e2e/node_modules/.package-lock.json.src
fi

# Python packages of the end-to-end tests (aiortc publishes with WHIP), exactly as pinned in
# e2e/requirements.txt, in a virtual environment of their own (wheels only: ~100 MB, seconds).
if ! cmp -s e2e/requirements.txt e2e/.venv/requirements.txt.src 2>/dev/null; then
  rm -rf e2e/.venv
  /usr/bin/python3 -m venv e2e/.venv
  e2e/.venv/bin/pip install --quiet --disable-pip-version-check --only-binary=:all: -r e2e/requirements.txt
  cp e2e/requirements.txt e2e/.venv/requirements.txt.src
fi

# Rust dependencies are fetched here, while the network is reachable: the tests later run
# offline inside a network namespace.
cargo fetch --locked

# Fuzzing (scripts/fuzz.sh, FUZZING.md): cargo-fuzz and the fuzz crate's dependencies. The
# fuzz crate is outside the workspace and not --locked: it follows whatever sfu depends on.
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo fetch --manifest-path fuzz/Cargo.toml
