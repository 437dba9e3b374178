#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ one after the other, each for a bounded time, starting from the
# committed seeds (fuzz/seeds/<target>/) and the corpus grown by earlier runs (fuzz/corpus/<target>/, not
# committed), and prints executions, speed, coverage and findings per target. Not run in CI.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 300 s, every target)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). One fuzzer at a time
# (one process each); crashes land in fuzz/artifacts/<target>/. Extra libFuzzer flags: FUZZ_FLAGS="-max_len=8192".
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
ALL=(hook_request webhook sieve_policy smtp_reply nta_record mta_sts csv_import)
SECONDS_PER_TARGET=300
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
    SECONDS_PER_TARGET=$1
    shift
fi
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=("${ALL[@]}")
# No sanitizer: the gateway has no unsafe code, and panics (the findings) need none; debug assertions on
# so that integer overflow panics too.
BUILD=(cargo +nightly fuzz build --sanitizer none --debug-assertions)
for t in "${TARGETS[@]}"; do
    "${BUILD[@]}" "$t" >&2
done

summary=()
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t/last-run.log"
    status=0
    # shellcheck disable=SC2086
    cargo +nightly fuzz run --sanitizer none --debug-assertions "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" ${FUZZ_FLAGS:-} >"$log" 2>&1 || status=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    # After a crash libFuzzer may print no final stats: the last status line counts then.
    [[ -n $execs ]] || execs=$(grep -oE '^#[0-9]+' <<<"$last" | tr -d '#' || true)
    cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
    ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
    crashes=$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
    [[ $status -eq 0 ]] || echo "$t: libFuzzer exited with $status, see fuzz/$log" >&2
    summary+=("$(printf '%-13s %12s %9s %7s %8s %9s' "$t" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "$crashes")")
done
printf '%-13s %12s %9s %7s %8s %9s\n' target executions exec/s cov ft findings
printf '%s\n' "${summary[@]}"
