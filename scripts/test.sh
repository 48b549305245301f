#!/usr/bin/env bash
# The one test command: builds everything, lints (Rust and the web client's JavaScript), runs
# the web client's unit tests, checks the systemd units, runs every
# test inside a private network namespace (only loopback exists there: hermetic, nothing
# can leave the machine) together with the quick start from a fresh clone
# (scripts/check-quickstart.sh), then the fuzz smoke run (30 s per target) and the benchmark
# smoke run (which makes its own namespaces).
#   SFU_SKIP_FUZZ=1 / SFU_SKIP_BENCH=1 skip the last two (for quick local runs),
#   SFU_SKIP_QUICKSTART=1 the quick start.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --workspace --all-targets
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
scripts/check-units.sh
# The web client: unit tests of its modules and eslint (no browser; seconds).
e2e/check-web.sh

if [ "$(id -u)" = 0 ] && [ -z "${SFU_NO_NETNS:-}" ]; then
  unshare -n bash -c 'ip link set lo up && exec scripts/test-inner.sh'
else
  echo "not root (or SFU_NO_NETNS set): running tests in the current network namespace" >&2
  scripts/test-inner.sh
fi

if [ -z "${SFU_SKIP_FUZZ:-}" ]; then
  scripts/fuzz.sh 30
fi
if [ -z "${SFU_SKIP_BENCH:-}" ]; then
  if [ "$(id -u)" = 0 ]; then
    scripts/bench.sh --smoke
  else
    echo "not root: skipping the benchmark smoke run (it needs network namespaces)" >&2
  fi
fi
echo "scripts/test.sh: all tests passed"
