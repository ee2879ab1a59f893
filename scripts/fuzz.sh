#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ (or the ones named) for SECONDS each
# (default 60) and prints one line per target: executions and findings.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Only a stable toolchain is
# installed here; cargo-fuzz passes nightly-only flags (-Zsanitizer=address),
# which stable rustc accepts with RUSTC_BOOTSTRAP=1 (set below unless already
# set). The committed seeds in fuzz/corpus/<target> are read, never written:
# new inputs go to a scratch directory; a crash leaves its input in
# fuzz/artifacts/<target>/ and fails the script. The same seeds run as
# ordinary tests on stable (`fuzz_corpus` tests in session-store-core,
# store-sled, store-redis, session-store-axum and
# session-store-tower-sessions).
#
# Targets: token, client_meta, frame, forward, persistent (core); sled_record; redis_record,
# redis_member, redis_script_reply; cookie_header and csrf_form (the axum
# layer's Cookie-header parser, form/CSRF-field decoding and signed
# double-submit tokens); tower_json (the tower-sessions adapter's decoder
# of stored session JSON, against serde_json, and its encoder).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
shift || true
export RUSTC_BOOTSTRAP=${RUSTC_BOOTSTRAP:-1}
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build -O >/dev/null
status=0
for t in "${targets[@]}"; do
    work=$(mktemp -d)
    log="$work/log"
    if cargo fuzz run -O "$t" "$work" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
        outcome="no crash"
    else
        outcome="FAILED (see fuzz/artifacts/$t and $log)"
        status=1
    fi
    execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+.*(DONE|INITED)' "$log" | tail -1 | grep -o 'cov: [0-9]*' || true)
    echo "$t: ${execs:-?} executions in ${secs}s, ${cov:-cov: ?}, $(find "$work" -maxdepth 1 -type f ! -name log | wc -l) new inputs, $outcome"
    [ "$outcome" = "no crash" ] && rm -rf "$work"
done
exit $status
