#!/usr/bin/env bash
# The network-lab suites (e2e/lab): three Chromium participants, each in its own network
# namespace behind its own shaped or impaired link (lib/netlab.mjs). They are issue 13's
# acceptance tests for quality on real networks and take about two minutes of both cores,
# so they run on their own rather than in scripts/test.sh's e2e run:
#   e2e/run-lab.sh              every lab suite
#   e2e/run-lab.sh quality      e2e/lab/quality.test.mjs only
# Needs root (it makes network namespaces) and what e2e/run.sh needs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "e2e/run-lab.sh: needs root (network namespaces)" >&2; exit 1; }
# The daemon and the signaling process under test are release builds, as deployed: a
# debug build's SRTP and forwarding stall its worker for 100 ms and more at these rates
# (measured: "slow daemon request" warnings, retransmissions sent later than the
# subscriber's NACKs give up, the picture stalled for seconds), which measures the
# build, not the adaptation. sfu-signaling starts the sfu beside it.
cargo build --locked --offline --release -p sfu -p sfu-signaling
# The relay that makes impaired links (lib/netlab.mjs) stands in for the kernel's netem:
# a release build, so that it adds no delay of its own beside the link's while the
# browsers keep both cores busy. (Running it at a real-time priority made no measurable
# difference to the freeze figures here.)
cargo build --locked --offline --release -p sfu-impair
export SFU_SIGNALING_BIN="$PWD/target/release/sfu-signaling"
export SFU_IMPAIR_BIN="$PWD/target/release/sfu-impair"
suites=()
if [ $# -gt 0 ]; then
  for s in "$@"; do suites+=("e2e/lab/$s.test.mjs"); done
else
  suites=(e2e/lab/*.test.mjs)
fi
exec unshare -n bash -c 'ip link set lo up && exec node --test --test-concurrency=1 --test-reporter=spec "$@"' lab "${suites[@]}"
