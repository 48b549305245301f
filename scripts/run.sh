#!/usr/bin/env bash
# One command to start everything on localhost: install what is missing, build in release
# mode, start the signaling process (which starts the media daemon) and print the URL.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  scripts/install-deps.sh
fi
cargo build --release --locked --bin sfu --bin sfu-signaling
exec target/release/sfu-signaling "$@"
