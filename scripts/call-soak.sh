#!/usr/bin/env bash
# Long-call soak (issue 12, finding 7): N three-party Chromium calls of M minutes on a
# bridged veth topology, each browser in its own network namespace, the daemon and
# signaling in theirs. e2e/tools/call-soak.mjs detects media stopping (an inbound video's
# framesDecoded not growing for > 2 s while its publisher is still there) and captures
# the pages' and the daemon's state into the artifacts directory. Not part of
# scripts/test.sh (a full run takes 30+ minutes).
#   scripts/call-soak.sh [--calls N] [--minutes M] [--artifacts DIR]   (defaults 10, 3)
# Needs root (namespaces), Chromium and e2e/node_modules (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
calls=10 minutes=3 artifacts=e2e/artifacts/call-soak-$(date -u +%Y%m%dT%H%M%SZ)
while [ $# -gt 0 ]; do
  case $1 in
    --calls) calls=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --artifacts) artifacts=$2; shift 2 ;;
    *) echo "usage: $0 [--calls N] [--minutes M] [--artifacts DIR]" >&2; exit 64 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "call-soak: needs root for network namespaces" >&2; exit 1; }
cargo build --locked --offline -p sfu -p sfu-signaling
mkdir -p "$artifacts"

# Namespace names carry our pid so parallel runs and leftovers never collide.
tag=cs$$
srv=$tag-srv br=$tag-br
clients=("$tag-c1" "$tag-c2" "$tag-c3")
wrappers=$(mktemp -d /tmp/call-soak.XXXXXX)
cleanup() {
  for ns in "$srv" "${clients[@]}" "$br"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$wrappers"
}
trap cleanup EXIT INT TERM

ip netns add "$br"
ip -n "$br" link add br0 type bridge
ip -n "$br" link set br0 up
ip -n "$br" link set lo up
# One veth pair per namespace: NAME end inside it (eth0), the other on the bridge.
attach() { # ns addr index
  ip netns add "$1"
  ip link add "$tag-v$3" type veth peer name "$tag-p$3"
  ip link set "$tag-v$3" netns "$1"
  ip link set "$tag-p$3" netns "$br"
  ip -n "$1" link set "$tag-v$3" name eth0
  ip -n "$1" addr add "$2/24" dev eth0
  ip -n "$1" link set eth0 up
  ip -n "$1" link set lo up
  ip -n "$br" link set "$tag-p$3" master br0
  ip -n "$br" link set "$tag-p$3" up
}
attach "$srv" 10.77.0.1 0
i=1
for c in "${clients[@]}"; do
  attach "$c" "10.77.0.$((10 + i))" "$i"
  # Playwright starts the browser through this wrapper, inside the client's namespace.
  printf '#!/bin/sh\nexec ip netns exec %s /usr/lib/chromium/chromium "$@"\n' "$c" >"$wrappers/chromium-$i"
  chmod +x "$wrappers/chromium-$i"
  i=$((i + 1))
done

# Bounded in time whatever happens: the calls plus set-up slack per call.
limit=$(( calls * (minutes * 60 + 90) + 60 ))
status=0
timeout --kill-after=10 "$limit" ip netns exec "$srv" env \
  SOAK_CALLS="$calls" SOAK_MINUTES="$minutes" SOAK_ARTIFACTS="$artifacts" SOAK_SERVER_IP=10.77.0.1 \
  SOAK_CHROMIUM_WRAPPERS="$wrappers/chromium-1,$wrappers/chromium-2,$wrappers/chromium-3" \
  node e2e/tools/call-soak.mjs || status=$?
echo "call-soak: artifacts in $artifacts (exit $status)"
exit "$status"
