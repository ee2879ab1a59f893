#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine.
#
# Makes sure the servers the backend tests need are reachable on loopback
# (uses running ones, starts installed ones, installs missing ones as root),
# starts a local three-master Redis Cluster on 127.0.0.1:7001-7003 and tears
# it down afterwards, then runs `cargo test` for the whole workspace.
#
# Opt-outs (each prints a visible SKIP line in the affected tests):
#   SESSION_STORE_SKIP_REDIS=1          no standalone Redis tests
#   SESSION_STORE_SKIP_REDIS_CLUSTER=1  no Redis Cluster tests
#   SESSION_STORE_SKIP_POSTGRES=1       no PostgreSQL tests
#   SESSION_STORE_SKIP_MYSQL=1          no MySQL/MariaDB tests
#   SESSION_STORE_SKIP_BROWSER=1        no headless Chromium test (examples-app/tests/browser.rs)
# Extra arguments are passed to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${SESSION_STORE_SKIP_POSTGRES:-}" != 1 ]]; then
    store-postgres/scripts/postgres-service.sh
else
    echo "SKIP: PostgreSQL service (SESSION_STORE_SKIP_POSTGRES=1)"
fi

if [[ "${SESSION_STORE_SKIP_MYSQL:-}" != 1 ]]; then
    store-mysql/scripts/mysql-service.sh
else
    echo "SKIP: MySQL service (SESSION_STORE_SKIP_MYSQL=1)"
fi

if [[ "${SESSION_STORE_SKIP_REDIS:-}" != 1 || "${SESSION_STORE_SKIP_REDIS_CLUSTER:-}" != 1 ]]; then
    # Tear the cluster down afterwards only if this run started it.
    if ! redis-cli -h 127.0.0.1 -p 7001 cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
        trap 'store-redis/scripts/redis-services.sh stop' EXIT
    fi
    store-redis/scripts/redis-services.sh start
else
    echo "SKIP: Redis services (SESSION_STORE_SKIP_REDIS=1 and SESSION_STORE_SKIP_REDIS_CLUSTER=1)"
fi

if [[ "${SESSION_STORE_SKIP_BROWSER:-}" != 1 ]]; then
    # Headless Chromium and chromedriver for the reference app's browser test.
    if [[ ! -x /usr/bin/chromedriver || ! -x /usr/bin/chromium ]]; then
        if [[ "$(id -u)" != 0 ]]; then
            echo "chromium/chromium-driver missing: install them as root, or set SESSION_STORE_SKIP_BROWSER=1" >&2
            exit 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }
    fi
else
    echo "SKIP: browser packages (SESSION_STORE_SKIP_BROWSER=1)"
fi

cargo test --workspace "$@"

# rediss:// end to end: the CLI's `tls` feature is off by default (it adds
# rustls and ring to every build), so its one test runs here with the
# feature, against a private TLS-only redis-server it starts (~50 s more).
if [[ "${SESSION_STORE_SKIP_REDIS:-}" != 1 ]]; then
    # The test makes its throwaway CA and certificate with the openssl CLI.
    if ! command -v openssl >/dev/null; then
        if [[ "$(id -u)" != 0 ]]; then
            echo "openssl missing: install it as root, or set SESSION_STORE_SKIP_REDIS=1" >&2
            exit 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >/dev/null; }
    fi
    cargo test -p session-store-cli --features tls --test tls
else
    echo "SKIP: rediss:// test (SESSION_STORE_SKIP_REDIS=1)"
fi
