#!/usr/bin/env bash
# Runs the suite's self-test (tests/mutants.rs) N times (default 30) and
# prints, for every mutant test, in how many runs it passed, that is in how
# many runs every check named for that mutant caught it. A check named after
# a clause must catch its mutant in every run: anything below N/N is a bug.
#
#   conformance/scripts/mutants-30.sh [N]
set -euo pipefail
runs="${1:-30}"
cd "$(dirname "$0")/../.."
cargo test -p session-store-conformance --test mutants --no-run >/dev/null 2>&1
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
for i in $(seq 1 "$runs"); do
    cargo test -p session-store-conformance --test mutants -- --test-threads=2 2>/dev/null \
        | grep -E '^test .* \.\.\. (ok|FAILED)$' >>"$out" || true
done
echo "runs: $runs"
awk '{ name=$2; total[name]++; if ($NF == "ok") ok[name]++ }
     END { for (n in total) printf "%-50s %d/%d\n", n, ok[n], total[n] }' "$out" | sort
