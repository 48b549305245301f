#!/usr/bin/env bash
# The one benchmark command (see BENCHMARKS.md). Builds in release, creates two private
# network namespaces joined by a veth pair (targets on 10.99.0.1 in sfub-srv, pinned to
# core 1; the load generator on 10.99.0.2 in sfub-gen, pinned to core 0), runs every
# scenario against our SFU, the floor forwarder and Janus (mediasoup when named), and writes benches/results/*.json,
# benches/results/plot.svg and the table in BENCHMARKS.md.
#
#   scripts/bench.sh            the full run (< 15 minutes on 2 cores)
#   scripts/bench.sh --smoke    the CI smoke run (~1 minute): tiny scenarios, results under
#                               target/bench-smoke/, fails unless every JSON is complete
#   scripts/bench.sh --scenarios capacity,fanout-1-915 --targets sfu,floor
#                               some scenarios and targets only; results under
#                               target/bench-partial/<time>/ (or $BENCH_OUT), with their table
#   scripts/bench.sh --scenarios simulcast-1-600,layers-1-600,capacity-simulcast --targets sfu
#                               the simulcast consumer against its single-layer baseline
#                               (the layered scenarios run against our SFU only)
#   scripts/bench.sh trial --target sfu --subscribers 900 --measure 20 [--video simulcast]
#                               one scenario against one target, result JSON on stdout
#                               (for profiling: see BENCHMARKS.md)
#
# BENCH_BIN_DIR=DIR takes the daemon from DIR instead of target/release (e.g. a wrapper
# script named `sfu` that runs it under heaptrack: see BENCHMARKS.md "Memory").
#
# Needs root (network namespaces), Janus (`apt-get install janus`, see
# scripts/install-deps.sh) and, for the mediasoup target, scripts/install-mediasoup.sh
# (run from here). Extra arguments go to `sfu-loadgen bench`
# (e.g. --targets sfu,floor).
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
PARTIAL=0
CMD=bench
if [ "${1:-}" = trial ]; then CMD=trial; shift; fi
ARGS=()
for a in "$@"; do
  if [ "$a" = "--smoke" ]; then SMOKE=1; else ARGS+=("$a"); fi
  case "$a" in --scenarios|--scenarios=*) PARTIAL=1 ;; esac
done

if [ "$(id -u)" != 0 ]; then
  echo "bench.sh needs root for its network namespaces" >&2
  exit 1
fi

cargo build --release -p sfu -p sfu-benches

# mediasoup, the third baseline, runs when named (`--targets sfu,mediasoup`, `trial --target
# mediasoup`): built once into a cache by scripts/install-mediasoup.sh (~9 CPU-minutes).
# The smoke run only uses a cached build and says when it skips mediasoup. Not in the
# default targets yet: with the worker built here, video consumers stay silent (BENCHMARKS.md).
if [ "$SMOKE" = 0 ]; then
  case " ${ARGS[*]} " in *mediasoup*) scripts/install-mediasoup.sh ;; esac
fi

SRV=sfub-srv
GEN=sfub-gen
cleanup() {
  ip netns del "$SRV" 2>/dev/null || true
  ip netns del "$GEN" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip netns add "$SRV"
ip netns add "$GEN"
# The veth pair is created inside the server namespace with its peer placed directly in
# the generator's: no interface of the main namespace is touched.
ip -n "$SRV" link add sfub0 type veth peer name sfub1 netns "$GEN"
ip -n "$SRV" addr add 10.99.0.1/24 dev sfub0
ip -n "$GEN" addr add 10.99.0.2/24 dev sfub1
for ns in "$SRV" "$GEN"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" link set sfub0 up
ip -n "$GEN" link set sfub1 up
# veth delivers a packet in the softirq of the CPU that sent it. Receive packet steering
# on the server end moves the targets' receive work (the generator's sends) to the target
# core, as a NIC would. The other direction stays on the target core: steering a target's
# fan-out bursts (tens of thousands of datagrams) to the generator's core overflows that
# core's backlog (net.core.netdev_max_backlog, a machine-wide setting we leave alone) and
# loses packets. So each target's core also pays the kernel's delivery into the
# generator's sockets: the same for our SFU, the floor and Janus.
ip netns exec "$SRV" sh -c 'echo 2 > /sys/class/net/sfub0/queues/rx-0/rps_cpus' ||
  echo "warning: could not set RPS on sfub0" >&2

if [ "$CMD" = trial ]; then
  OUT=
  EXTRA=()
elif [ "$SMOKE" = 1 ]; then
  OUT=target/bench-smoke/results
  EXTRA=(--smoke)
elif [ "$PARTIAL" = 1 ]; then
  # Some scenarios only (a before/after comparison): results of their own, BENCHMARKS.md's
  # full table untouched.
  OUT=${BENCH_OUT:-target/bench-partial/$(date +%Y%m%d-%H%M%S)}
  EXTRA=()
else
  OUT=benches/results
  EXTRA=(--benchmarks-md BENCHMARKS.md)
fi
[ -z "$OUT" ] || { mkdir -p "$OUT"; EXTRA+=(--out "$OUT"); }
# Thousands of sessions need one UDP socket each: raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The generator and the targets it starts (which inherit it) run under SCHED_RR priority 1:
# on a machine shared with other work (builds, fuzzers, browser tests), a target waiting for
# its core behind an unrelated process shows that wait as forwarding latency and loss; nice
# alone did not prevent it here. The kernel's RT throttling (95 % per second by default)
# still leaves the other work some of each core. BENCH_RT=0 runs at nice -10 instead.
if [ "${BENCH_RT:-1}" = 1 ]; then
  PRIO=(chrt -r 1)
else
  PRIO=(nice -n -10)
fi
"${PRIO[@]}" ip netns exec "$GEN" taskset -c 0 target/release/sfu-loadgen "$CMD" \
  --netns "$SRV" --server-ip 10.99.0.1 --gen-ip 10.99.0.2 --iface sfub0 \
  --server-cpu 1 --gen-cpu 0 --bin-dir "${BENCH_BIN_DIR:-target/release}" --work-dir "$(mktemp -d /tmp/sfu-bench.XXXXXX)" \
  "${EXTRA[@]}" "${ARGS[@]}"
