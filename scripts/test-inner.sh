#!/usr/bin/env bash
# Runs inside the test namespace (see scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --offline --workspace
