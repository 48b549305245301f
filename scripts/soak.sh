#!/usr/bin/env bash
# The soak and abuse suite, longer: every tests/reliability_*.rs (against the daemon) and
# signaling/tests/reliability_*.rs, in release mode, with their counts multiplied by
# SFU_SOAK_SCALE (plain `cargo test` runs them at scale 1), inside a private network
# namespace when root (as scripts/test.sh), one test at a time so that each test's memory
# and fd figures are its own. Each test prints one `reliability: {json}` line; they are
# collected into target/reliability/latest.jsonl (and a copy named after the time and
# scale) and printed as a Markdown table (also target/reliability/latest.md), the figures
# RELIABILITY.md records.
#   scripts/soak.sh                 scale 1
#   scripts/soak.sh --scale 20      e.g. 5,000 join/leave cycles become 100,000
#   scripts/soak.sh --scale 20 reliability_ws   only the test files named so
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: scripts/soak.sh [--scale N] [reliability_NAME ...]" >&2
  exit 2
}
fail() { echo "soak: $*" >&2; exit 1; }

scale=1
only=()
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) [ $# -ge 2 ] || usage; scale=$2; shift 2 ;;
    --scale=*) scale=${1#--scale=}; shift ;;
    -h | --help) usage ;;
    reliability_*) only+=("$1"); shift ;;
    *) usage ;;
  esac
done
[[ "$scale" =~ ^[1-9][0-9]{0,5}$ ]] || fail "--scale wants a positive integer, not '$scale'"

if [ "$(id -u)" = 0 ] && [ -z "${SFU_NO_NETNS:-}" ] && [ -z "${SFU_SOAK_IN_NETNS:-}" ]; then
  # Only loopback exists in there: hermetic, and the floods stay on this machine.
  export SFU_SOAK_IN_NETNS=1
  exec unshare -n bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "${args[@]}"
fi
offline=()
[ -n "${SFU_SOAK_IN_NETNS:-}" ] && offline=(--offline) # no network in the namespace

# Test targets by package: the file name without .rs is the --test name.
declare -A pkg_dir=([sfu]=tests [sfu-signaling]=signaling/tests)
declare -A targets=()
found=0
for pkg in sfu sfu-signaling; do
  for f in "${pkg_dir[$pkg]}"/reliability_*.rs; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .rs)
    if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " == *" $name "* ]]; then continue; fi
    targets[$pkg]+=" --test $name"
    found=$((found + 1))
  done
done
[ "$found" -gt 0 ] || fail "no reliability_*.rs test files${only[*]:+ named ${only[*]}}"

dir=target/reliability
mkdir -p "$dir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
log="$dir/$stamp-scale$scale.log"
: >"$log"
echo "soak: $found test files at SFU_SOAK_SCALE=$scale, commit $(git rev-parse --short HEAD); log $log"

start_s=$SECONDS
status=0
for pkg in sfu sfu-signaling; do
  [ -n "${targets[$pkg]:-}" ] || continue
  # shellcheck disable=SC2086 # targets[$pkg] is a list of "--test NAME" words
  SFU_SOAK_SCALE=$scale cargo test --release --locked "${offline[@]}" -p "$pkg" ${targets[$pkg]} \
    -- --nocapture --test-threads=1 2>&1 | tee -a "$log" || status=1
done

# libtest may print "test NAME ... " on the same line before the test's own output.
jsonl="$dir/$stamp-scale$scale.jsonl"
grep -o 'reliability: {.*}' "$log" | sed 's/^reliability: //' >"$jsonl" || true
cp "$jsonl" "$dir/latest.jsonl"
lines=$(wc -l <"$jsonl")
[ "$lines" -ge "$found" ] || { echo "soak: only $lines reliability lines from $found test files" >&2; status=1; }

# The Markdown table: one row per line, columns in order of first appearance, case first.
node - "$dir/latest.jsonl" "$scale" "$(git rev-parse --short HEAD)" "$((SECONDS - start_s))" <<'JS' | tee "$dir/latest.md"
const fs = require('node:fs');
const [file, scale, commit, secs] = process.argv.slice(2);
const rows = [];
for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  try { rows.push(JSON.parse(line)); } catch { console.error(`soak: not JSON, left out: ${line}`); }
}
const cols = ['case'];
for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
const cell = (v) => (v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v)).replace(/\|/g, '\\|');
console.log(`\nscripts/soak.sh --scale ${scale} at ${commit}: ${rows.length} cases in ${secs} s\n`);
console.log(`| ${cols.join(' | ')} |`);
console.log(`|${cols.map(() => '---').join('|')}|`);
for (const r of rows) console.log(`| ${cols.map((c) => cell(r[c])).join(' | ')} |`);
JS
[ "$status" -eq 0 ] || fail "FAILED (log $log)"
echo "soak: passed; $dir/latest.jsonl"
