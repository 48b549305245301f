#!/usr/bin/env bash
# Checks the systemd units: `systemd-analyze verify` against a scratch root holding the
# built binaries where the units expect them, and `systemd-analyze security --offline`,
# failing if the daemon's exposure exceeds 2.5.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${PROFILE:-debug}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
# Copies, not symlinks: with --root, absolute link targets resolve inside the root.
cp "target/$profile/sfu" "$root/usr/local/bin/sfu"
cp "target/$profile/sfu-signaling" "$root/usr/local/bin/sfu-signaling"
cp systemd/*.service "$root/etc/systemd/system/"
# verify resolves the units' dependencies (sysinit.target, ...) inside the root.
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
systemd-analyze verify --root="$root" sfu.service sfu-signaling.service
echo "systemd-analyze verify: ok"

for unit in sfu sfu-signaling; do
  score=$(systemd-analyze security --offline=true "systemd/$unit.service" 2>/dev/null \
    | sed -n "s/.*Overall exposure level for $unit.service: \([0-9.]*\).*/\1/p")
  echo "exposure $unit.service: $score"
  if [ "$unit" = sfu ] && ! awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.5) }'; then
    echo "sfu.service exposure $score exceeds 2.5" >&2
    exit 1
  fi
done
