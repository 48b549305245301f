#!/usr/bin/env bash
# Runs inside the test namespace (see scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --offline --workspace
# End-to-end tests with real Chromium and Firefox (signaling + daemon + web client).
e2e/run.sh
