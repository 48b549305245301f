#!/usr/bin/env bash
# End-to-end tests with real browsers: builds sfu and sfu-signaling (debug), starts
# sfu-signaling (which starts sfu) on a free loopback port, runs every suite in
# e2e/tests against it, and fails loudly. (resilience.test.mjs kills and restarts
# processes, so it runs a daemon and a signaling process of its own.) Run it inside a
# private network namespace (scripts/test.sh does): browsers must not gather the
# machine's real addresses.
#   e2e/run.sh                 all suites
#   e2e/run.sh chromium        e2e/tests/chromium.test.mjs only
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

fail() { echo "e2e: $*" >&2; exit 1; }

[ -x /usr/lib/chromium/chromium ] || fail "Chromium is missing (scripts/install-deps.sh installs it)"
[ -x /usr/bin/firefox-esr ] || fail "Firefox ESR is missing (scripts/install-deps.sh installs it)"
[ -x e2e/.venv/bin/python ] || fail "e2e/.venv is missing (scripts/install-deps.sh makes it: aiortc for the WHIP tests)"
[ -d e2e/node_modules/playwright-core ] && [ -d e2e/node_modules/puppeteer-core ] \
  || fail "npm packages are missing: run (cd e2e && npm ci) (scripts/install-deps.sh does)"
if ip -o link show 2>/dev/null | grep -qv ': lo:'; then
  echo "e2e: warning: interfaces other than lo exist; prefer running inside 'unshare -n' (scripts/test.sh)" >&2
fi

cargo build --locked --offline -p sfu -p sfu-signaling

work=$(mktemp -d /tmp/sfu-e2e.XXXXXX)
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

mkfifo "$work/stdout"
# The suites scrape /metrics with this token (e2e/lib/server.mjs).
export SFU_SIGNALING_METRICS_TOKEN=${SFU_SIGNALING_METRICS_TOKEN:-e2e-metrics-token}
SFU_SIGNALING_LOG=${SFU_SIGNALING_LOG:-warn} target/debug/sfu-signaling \
  --listen 127.0.0.1:0 --workers 2 >"$work/stdout" 2>"$work/server.log" &
server_pid=$!
exec 3<"$work/stdout"
# The server prints one line when it serves: "sfu-signaling ready: open http://...".
if ! read -r -t 60 -u 3 line; then
  cat "$work/server.log" >&2
  fail "sfu-signaling did not print its URL within 60 s"
fi
url=$(grep -o 'http://[^ ]*' <<<"$line" | sed 's:/$::') || fail "no URL in: $line"
echo "e2e: sfu-signaling at $url (pid $server_pid)"

suites=()
if [ $# -gt 0 ]; then
  for s in "$@"; do suites+=("e2e/tests/$s.test.mjs"); done
else
  suites=(e2e/tests/*.test.mjs)
fi

mkdir -p e2e/artifacts
status=0
SFU_E2E_URL=$url node --test --test-concurrency=1 --test-reporter=spec "${suites[@]}" || status=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
  status=1
  echo "e2e: sfu-signaling died during the tests" >&2
fi
if [ "$status" -ne 0 ]; then
  echo "e2e: FAILED; server log follows" >&2
  tail -n 200 "$work/server.log" >&2
  exit "$status"
fi
echo "e2e: passed (screenshot in $repo/e2e/artifacts/)"
