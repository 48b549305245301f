#!/usr/bin/env bash
# One command to start everything on localhost: install what building and running need
# (scripts/install-run-deps.sh; nothing for the tests), build in release mode, start the
# signaling process (which starts the media daemon) and print the URL. Arguments go to
# sfu-signaling (README, "Signaling configuration").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-run-deps.sh
# -p, not --bin: at the workspace root `--bin` only searches the root package (sfu), so
# `--bin sfu-signaling` would not be found. Without network cargo still builds from its
# local registry cache when Cargo.lock is satisfied by it (as after scripts/install-deps.sh).
cargo build --release --locked -p sfu -p sfu-signaling
exec "${CARGO_TARGET_DIR:-target}/release/sfu-signaling" "$@"
