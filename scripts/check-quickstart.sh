#!/usr/bin/env bash
# The README's quick start, as a newcomer runs it: clones this checkout fresh (into
# target/quickstart-clone), runs that clone's `scripts/run.sh --listen 127.0.0.1:0`, waits for the URL it
# prints, checks `/` and `/healthz` over plain HTTP, then opens the home page in Chromium,
# enters a room and sees the page join with its camera going out (e2e/tools/quickstart.mjs).
# Finally stops the server with SIGTERM and expects a clean exit with nothing left behind.
# scripts/test.sh runs it inside its network namespace (scripts/test-inner.sh); CI runs on a
# fresh clone of main, so this proves the quick start of what is merged.
#   scripts/check-quickstart.sh         the committed HEAD (uncommitted changes are not in it)
#   scripts/check-quickstart.sh REV     another commit, e.g. to show an old quick start failing
#   SFU_QUICKSTART_TIMEOUT=SECONDS      deadline for build + start (default 1800)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
start_s=$SECONDS

fail() { echo "check-quickstart: FAILED: $*" >&2; exit 1; }

[ -x /usr/lib/chromium/chromium ] || fail "Chromium is missing (scripts/install-deps.sh installs it)"
[ -d e2e/node_modules/playwright-core ] || fail "npm packages are missing (scripts/install-deps.sh installs them)"
command -v curl >/dev/null 2>&1 || fail "curl is missing (scripts/install-deps.sh installs it)"

rev=${1:-HEAD}
commit=$(git rev-parse --verify --quiet "$rev^{commit}") || fail "no commit $rev"
if [ "$rev" = HEAD ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "check-quickstart: note: uncommitted changes are not checked (the clone has HEAD only)" >&2
fi

work=$(mktemp -d /tmp/sfu-quickstart.XXXXXX)
pgid=
# True once every process holding run.sh's stdout (fd 3 reads it) has exited: cargo while
# building, sfu-signaling after. False at the deadline ($1 seconds).
stdout_closed() {
  local end=$((SECONDS + $1)) rc
  while [ "$SECONDS" -lt "$end" ]; do
    rc=0
    read -r -t "$((end - SECONDS))" -u 3 _ || rc=$?
    [ "$rc" -eq 0 ] && continue
    [ "$rc" -gt 128 ] && return 1
    return 0
  done
  return 1
}
# Stops everything run.sh started: it runs in its own session and process group, so one
# signal reaches cargo and the compilers, or sfu-signaling and the sfu it started.
stop_group() {
  [ -n "$pgid" ] || return 0
  kill -TERM -- "-$pgid" 2>/dev/null || true
  stdout_closed 5 || true
  kill -KILL -- "-$pgid" 2>/dev/null || true
  wait "$pgid" 2>/dev/null || true
  pgid=
}
cleanup() {
  stop_group
  rm -rf "$work" "${clone:-}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The clone lives at a fixed path under target/ (removed first, so it is still fresh): its
# crates' build outputs then replace the previous run's instead of piling up beside them.
clone="$target_dir/quickstart-clone"
rm -rf "$clone"
git clone --quiet --no-checkout "$repo" "$clone"
git -C "$clone" checkout --quiet --detach "$commit"
echo "check-quickstart: fresh clone of $(git log -1 --format='%h %s' "$commit")"

# The clone builds into this checkout's target dir: the dependencies compiled there are
# reused (a cold release build of them costs minutes of CI), while the clone's own crates
# build from the clone's sources (their paths differ, so cargo keeps them apart). The clone's
# binaries replace target/release/sfu and sfu-signaling; that is the same commit in CI, and
# the next `cargo build --release` here links this checkout's own build back.
mkfifo "$work/stdout"
(cd "$clone" && CARGO_TARGET_DIR="$target_dir" exec setsid scripts/run.sh --listen 127.0.0.1:0) \
  >"$work/stdout" 2>"$work/run.log" &
pgid=$!
exec 3<"$work/stdout"

# run.sh prints nothing on stdout until sfu-signaling serves: "sfu-signaling ready: open URL".
deadline=$((SECONDS + ${SFU_QUICKSTART_TIMEOUT:-1800}))
url=
while [ -z "$url" ]; do
  left=$((deadline - SECONDS))
  if [ "$left" -le 0 ]; then
    tail -n 50 "$work/run.log" >&2
    fail "scripts/run.sh printed no URL within ${SFU_QUICKSTART_TIMEOUT:-1800} s"
  fi
  if ! read -r -t "$left" -u 3 line; then
    [ "$((deadline - SECONDS))" -le 0 ] && continue
    tail -n 50 "$work/run.log" >&2
    fail "scripts/run.sh exited before printing a URL (its stderr above)"
  fi
  url=$(grep -o 'open http://[^ ]*' <<<"$line" | sed 's:^open ::; s:/$::') || true
done
echo "check-quickstart: scripts/run.sh serves $url after $((SECONDS - start_s)) s"

home=$(curl -fsS --max-time 10 "$url/") || fail "GET / failed"
grep -q '<title>Video chat</title>' <<<"$home" || fail "GET / is not the home page: ${home:0:200}"
health=$(curl -fsS --max-time 10 "$url/healthz") || fail "GET /healthz failed"
[ "$health" = ok ] || fail "GET /healthz answered '$health'"

timeout --kill-after=5 180 node e2e/tools/quickstart.mjs "$url" || fail "the browser did not join a room"

# SIGTERM to sfu-signaling alone, as `systemctl stop` would: it must stop its daemon and
# exit 0 (README: within 2 s; 10 s here for a loaded CI machine).
kill -0 "$pgid" 2>/dev/null || fail "sfu-signaling is not running any more"
kill -TERM "$pgid" # run.sh exec's sfu-signaling: it is the group's leader
stdout_closed 10 || fail "sfu-signaling still runs 10 s after SIGTERM"
code=0
wait "$pgid" || code=$?
[ "$code" -eq 0 ] || { tail -n 50 "$work/run.log" >&2; fail "sfu-signaling exited with $code after SIGTERM"; }
for _ in $(seq 50); do
  pgrep -g "$pgid" >/dev/null || break
  sleep 0.1
done
if pgrep -g "$pgid" >/dev/null; then
  fail "left running after sfu-signaling exited: $(ps -o pid=,stat=,comm= -g "$pgid" | tr '\n' ' ')"
fi
pgid=
echo "check-quickstart: passed in $((SECONDS - start_s)) s"
