#!/usr/bin/env bash
# Runs inside the test namespace (see scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --offline --workspace
# End-to-end tests with real Chromium and Firefox (signaling + daemon + web client).
e2e/run.sh
# The README's quick start from a fresh clone of HEAD: its scripts/run.sh builds, serves,
# and a browser joins a room (SFU_SKIP_QUICKSTART=1 skips it for a quick local run).
if [ -z "${SFU_SKIP_QUICKSTART:-}" ]; then
  scripts/check-quickstart.sh
fi
