#!/usr/bin/env bash
# Benchmarks every session-store backend against raw client baselines and
# writes the report.
#
#   scripts/bench.sh quick   a few minutes; writes docs/benchmarks.md (+ docs/benchmarks-*.svg)
#   scripts/bench.sh full    the measured run (~20 min on 2 cores); writes docs/benchmarks.md
#   scripts/bench.sh ci      smoke run for CI: every benchmark runs a few times with a tiny
#                            sample size (built with the dev profile, reusing the test
#                            build); writes target/bench-report/ci/benchmarks.md only.
#                            Fails if any benchmark fails. Speed is not judged.
#
# Servers: starts (or reuses) Redis on 127.0.0.1:6379, a Redis Cluster on
# 127.0.0.1:7001-7003 (torn down afterwards if this script started it),
# PostgreSQL on 127.0.0.1:5432 and MariaDB on 127.0.0.1:3306 with the scripts
# the backend crates provide.
#
# Environment:
#   BENCH_TARGETS   comma-separated subset of memory,sled,sled-periodic,sqlite,postgres,
#                   mysql,redis,redis-cluster (default: all)
#   BENCH_FEATURES  cargo features of session-store-benches (default: every backend);
#                   e.g. "store-sqlite,store-sled" to leave out a backend that does not build
#   BENCH_PARTS     subset of concurrency,scale,cleanup for the load bench (default: all)
#   BENCH_DOC       where quick/full write the report (default: docs/benchmarks.md)
#
# Raw results: target/bench-report/<mode>/*.jsonl; criterion: target/criterion.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

mode=${1:-quick}
case "$mode" in
    quick) limit=1200 ;;
    full) limit=3000 ;;
    ci) limit=900 ;;
    *)
        echo "usage: scripts/bench.sh quick|full|ci" >&2
        exit 2
        ;;
esac
export BENCH_MODE=$mode
out="$PWD/target/bench-report/$mode"
rm -rf "$out"
mkdir -p "$out"
export BENCH_OUT=$out

# criterion's per-benchmark plots (target/criterion) only in the full run.
if [[ "$mode" == ci ]]; then
    doc="$out/benchmarks.md"
    profile=(--profile dev)
    criterion_args=(--noplot)
elif [[ "$mode" == quick ]]; then
    doc=${BENCH_DOC:-docs/benchmarks.md}
    profile=()
    criterion_args=(--noplot)
else
    doc=${BENCH_DOC:-docs/benchmarks.md}
    profile=()
    criterion_args=()
fi
if [[ -n "${BENCH_FEATURES:-}" ]]; then
    features=(--no-default-features --features "$BENCH_FEATURES")
else
    features=()
fi

# --- servers -----------------------------------------------------------------
# Every namespace a run creates (Redis key patterns, PostgreSQL schemas, MySQL
# tables) is
# listed in $out/namespaces.txt as it is created; the run removes its own, and
# this removes whatever an interrupted run of *this* invocation left behind.
# Other runs (a concurrent CI run, say) are never touched.
cleanup_namespaces() {
    local kind name p
    [[ -f "$out/namespaces.txt" ]] || return 0
    while read -r kind name; do
        case "$kind" in
            redis)
                for p in 6379 7001 7002 7003; do
                    redis-cli -h 127.0.0.1 -p "$p" --scan --pattern "$name" 2>/dev/null |
                        xargs -r -d '\n' -n 500 redis-cli -h 127.0.0.1 -p "$p" unlink >/dev/null 2>&1 || true
                done
                ;;
            postgres)
                [[ "$name" =~ ^bench_[a-z0-9_]+$ ]] &&
                    psql -X -q -h 127.0.0.1 -U postgres -d test \
                        -c "DROP SCHEMA IF EXISTS \"$name\" CASCADE" >/dev/null 2>&1 || true
                ;;
            mysql)
                [[ "$name" =~ ^bench_[a-z0-9_]+$ ]] &&
                    mysql_sql -e "DROP TABLE IF EXISTS \`$name\`;
                        DELETE FROM session_store_meta WHERE table_name = '$name'" >/dev/null 2>&1 || true
                ;;
        esac
    done <"$out/namespaces.txt"
}
# SQL on the benchmarks' MariaDB (the client is `mariadb` or `mysql`).
mysql_sql() {
    local c=mariadb
    command -v mariadb >/dev/null 2>&1 || c=mysql
    "$c" --protocol=tcp -h 127.0.0.1 -P 3306 -u root -N -B test "$@"
}
stop_cluster=false
finish() {
    cleanup_namespaces
    if $stop_cluster; then store-redis/scripts/redis-services.sh stop; fi
}
trap finish EXIT
cluster_ok() {
    command -v redis-cli >/dev/null 2>&1 &&
        redis-cli -h 127.0.0.1 -p 7001 cluster info 2>/dev/null | tr -d '\r' | grep -qx 'cluster_state:ok'
}
cluster_ok || stop_cluster=true
store-redis/scripts/redis-services.sh start
store-postgres/scripts/postgres-service.sh
store-mysql/scripts/mysql-service.sh

# --- the machine -------------------------------------------------------------
{
    echo "date (UTC): $(date -u '+%Y-%m-%d %H:%M')"
    echo "mode: $mode"
    echo "nproc: $(nproc)"
    echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
    echo "kernel: $(uname -sr)"
    echo "OS: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
    echo "filesystem of target/: $(df -T target 2>/dev/null | awk 'NR==2 {print $2}')"
    echo "Redis: $(redis-cli -h 127.0.0.1 -p 6379 info server 2>/dev/null | tr -d '\r' | awk -F: '/^redis_version/ {print $2}') (standalone, no persistence); cluster: $(redis-cli -h 127.0.0.1 -p 7001 info server 2>/dev/null | tr -d '\r' | awk -F: '/^redis_version/ {print $2}') (3 masters)"
    echo "PostgreSQL: $(psql -X -tA -h 127.0.0.1 -U postgres -d test -c 'SHOW server_version' 2>/dev/null) (fsync $(psql -X -tA -h 127.0.0.1 -U postgres -d test -c 'SHOW fsync' 2>/dev/null), synchronous_commit $(psql -X -tA -h 127.0.0.1 -U postgres -d test -c 'SHOW synchronous_commit' 2>/dev/null))"
    echo "MariaDB: $(mysql_sql -e 'SELECT VERSION()' 2>/dev/null) (innodb_flush_log_at_trx_commit $(mysql_sql -e 'SELECT @@innodb_flush_log_at_trx_commit' 2>/dev/null))"
    echo "rustc: $(rustc --version)"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/machine.txt"

# --- the benchmarks ----------------------------------------------------------
start=$(date +%s)
run() { timeout --signal=INT "$limit" "$@"; }
failed=0
run cargo bench -p session-store-benches "${profile[@]}" "${features[@]}" --bench ops -- "${criterion_args[@]}" \
    | grep -v '^Benchmarking ' || { echo "bench.sh: the ops benchmarks failed" >&2; failed=1; }
if [[ "$mode" == ci && $failed -ne 0 ]]; then exit 1; fi
run cargo bench -p session-store-benches "${profile[@]}" "${features[@]}" --bench load \
    || { echo "bench.sh: the load benchmarks failed" >&2; failed=1; }
if [[ "$mode" == ci && $failed -ne 0 ]]; then exit 1; fi
run cargo bench -p session-store-benches "${profile[@]}" "${features[@]}" --bench requests \
    || { echo "bench.sh: the request benchmarks failed" >&2; failed=1; }
if [[ "$mode" == ci && $failed -ne 0 ]]; then exit 1; fi
run cargo bench -p session-store-benches "${profile[@]}" "${features[@]}" --bench http \
    || { echo "bench.sh: the HTTP benchmarks failed" >&2; failed=1; }
if [[ "$mode" == ci && $failed -ne 0 ]]; then exit 1; fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
echo "benchmark time: $(( $(date +%s) - start )) s (builds included)" >>"$out/machine.txt"

# --- the report --------------------------------------------------------------
mkdir -p "$(dirname "$doc")"
cargo run -q -p session-store-benches "${profile[@]}" "${features[@]}" --bin bench-report -- \
    "$out" "$doc" benches/notes.md
echo "bench.sh: $mode run done; report: $doc; raw results: $out; criterion: target/criterion"
if [[ $failed -ne 0 ]]; then
    echo "bench.sh: some benchmarks failed; the report lists what is missing" >&2
    exit 1
fi
