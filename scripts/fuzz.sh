#!/usr/bin/env bash
# Fuzzes the parsers that read peer or user input (issue #10): federation frames, FATE's route
# table, 2.x DAGs, 1.x DSL + conf, model import archives. Usage:
#
#   scripts/fuzz.sh [seconds-per-target] [target...]    (default 600 s, every target)
#
# Needs the nightly toolchain (rustup toolchain install nightly); installs cargo-fuzz if it is
# missing. Each target's corpus is fuzz/corpus/<target>: the committed seeds (valid inputs
# from examples/ and the tests) plus whatever the fuzzer finds (hash-named, ignored by git).
# Crashes are written to fuzz/artifacts/<target>/. Prints a table of target, runs, seconds and
# crashes, and exits non-zero if any target crashed.
#
# FUZZ_SANITIZER picks cargo-fuzz's sanitizer (default `none`: the workspace forbids unsafe
# code, so what is hunted is panics, which libFuzzer catches without a sanitizer, and the
# build is much faster; use `address` to check the dependencies' unsafe code too).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

seconds=${1:-600}
shift || true
all_targets=(frame_decode route_table dag_parse dsl_parse model_import)
targets=("${@:-${all_targets[@]}}")
sanitizer=${FUZZ_SANITIZER:-none}

cargo +nightly --version >/dev/null 2>&1 || {
  echo "fuzz: the nightly toolchain is missing: rustup toolchain install nightly" >&2
  exit 1
}
cargo fuzz --help >/dev/null 2>&1 || cargo install cargo-fuzz --locked

cd fuzz
cargo +nightly fuzz build --sanitizer "$sanitizer"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
rows=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  before=$(find "artifacts/$target" -type f | wc -l)
  start=$(date +%s)
  status=0
  # -timeout: an input that takes 10 s is a denial of service, reported like a crash.
  cargo +nightly fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    >"$logs/$target.log" 2>&1 || status=$?
  elapsed=$(($(date +%s) - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log" | tail -1)
  if [ -z "$runs" ]; then
    runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$logs/$target.log" | tail -1)
  fi
  crashes=$(($(find "artifacts/$target" -type f | wc -l) - before))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    crashes=1 # the fuzzer failed without writing an artifact: show its log
  fi
  if [ "$crashes" -ne 0 ]; then
    failed=1
    echo "fuzz: $target failed (exit $status); end of its log:" >&2
    tail -40 "$logs/$target.log" >&2
  fi
  rows+=("$(printf '%-14s %12s %8s %8s' "$target" "${runs:-?}" "$elapsed" "$crashes")")
done

printf '%-14s %12s %8s %8s\n' target runs seconds crashes
printf '%s\n' "${rows[@]}"
exit "$failed"
