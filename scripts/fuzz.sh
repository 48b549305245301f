#!/usr/bin/env bash
# Builds the cargo-fuzz targets (fuzz/, see FUZZING.md) and runs each for SECONDS (default 30),
# one after the other, in one libFuzzer process at a time. Exits non-zero on the first crash,
# leak, timeout or out-of-memory, after printing how to reproduce it.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (no TARGET: every target in fuzz/Cargo.toml)
#
# New corpus entries go to fuzz/target/corpus/TARGET (not committed); fuzz/corpus/TARGET is
# read as seeds. Logs: fuzz/target/logs/TARGET.log. Extra libFuzzer flags: FUZZ_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-30}
shift || true

# cargo-fuzz passes nightly-only flags to rustc (-Zsanitizer=address, sanitizer coverage);
# RUSTC_BOOTSTRAP=1 makes the machine's stable toolchain accept them, so no nightly is needed.
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

# cargo-fuzz's default build: optimized, AddressSanitizer, debug assertions and overflow
# checks on (an arithmetic overflow on network input is a bug too, style.md item 8).
cargo fuzz build

mkdir -p fuzz/target/logs
for t in "${targets[@]}"; do
  work="fuzz/target/corpus/$t"
  mkdir -p "$work" "fuzz/corpus/$t"
  log="fuzz/target/logs/$t.log"
  echo "== fuzzing $t for ${secs}s (log: $log)"
  # -timeout: one input taking 10 s is a hang worth reporting.
  # shellcheck disable=SC2086
  if ! cargo fuzz run "$t" "$work" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "FAILED: $t crashed. The input is the artifact named above (fuzz/artifacts/$t/);" \
      "reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run $t fuzz/artifacts/$t/<file>" >&2
    exit 1
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true
  grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec' "$log" || true
done
echo "fuzzing passed: ${targets[*]}"
