#!/usr/bin/env bash
# Starts (or stops) the Redis servers the session-store-redis tests use.
#
#   redis-services.sh start   standalone Redis on 127.0.0.1:6379 (reused if it
#                             answers) and a three-master Redis Cluster on
#                             127.0.0.1:7001-7003 (reused if healthy)
#   redis-services.sh stop    tears the cluster down; leaves 6379 alone
#   redis-services.sh status  prints what answers
#
# Idempotent, loopback only, no persistence (--save "" --appendonly no).
# Installs redis-server with apt-get when it is missing and we are root.
set -euo pipefail

HOST=127.0.0.1
STANDALONE_PORT=6379
CLUSTER_PORTS=(7001 7002 7003)
CLUSTER_DIR=${SESSION_STORE_REDIS_CLUSTER_DIR:-/tmp/session-store-redis-cluster}

log() { printf 'redis-services: %s\n' "$*" >&2; }
die() { printf 'redis-services: ERROR: %s\n' "$*" >&2; exit 1; }

answers() { # port -> 0 if a Redis answers PING
    command -v redis-cli >/dev/null 2>&1 || return 1
    [ "$(redis-cli -h "$HOST" -p "$1" --no-auth-warning ping 2>/dev/null || true)" = "PONG" ]
}

wait_answers() { # port
    local i
    for i in $(seq 1 100); do
        answers "$1" && return 0
        sleep 0.1
    done
    return 1
}

ensure_installed() {
    if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        die "redis-server is not installed and we are not root: install it (apt-get install -y redis-server) and retry"
    fi
    command -v apt-get >/dev/null 2>&1 || die "redis-server is not installed and apt-get is not available"
    log "installing redis-server with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    apt-get install -y -qq redis-server >&2 || die "apt-get install redis-server failed"
    command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after apt-get install"
}

start_standalone() {
    if answers "$STANDALONE_PORT"; then
        log "standalone Redis already answers on $HOST:$STANDALONE_PORT"
        return 0
    fi
    ensure_installed
    log "starting standalone Redis on $HOST:$STANDALONE_PORT"
    redis-server --daemonize yes --bind "$HOST" --port "$STANDALONE_PORT" \
        --save "" --appendonly no --protected-mode yes \
        --logfile "/tmp/session-store-redis-$STANDALONE_PORT.log" >/dev/null \
        || die "redis-server failed to start on port $STANDALONE_PORT (see /tmp/session-store-redis-$STANDALONE_PORT.log)"
    wait_answers "$STANDALONE_PORT" || die "Redis on $HOST:$STANDALONE_PORT does not answer (see /tmp/session-store-redis-$STANDALONE_PORT.log)"
}

cluster_healthy() {
    local p
    for p in "${CLUSTER_PORTS[@]}"; do
        answers "$p" || return 1
        redis-cli -h "$HOST" -p "$p" cluster info 2>/dev/null | tr -d '\r' | grep -qx 'cluster_state:ok' || return 1
        # exactly three masters that know each other
        [ "$(redis-cli -h "$HOST" -p "$p" cluster nodes 2>/dev/null | grep -c master)" -eq "${#CLUSTER_PORTS[@]}" ] || return 1
    done
    return 0
}

stop_cluster() {
    local p
    for p in "${CLUSTER_PORTS[@]}"; do
        if answers "$p"; then
            log "stopping cluster node $HOST:$p"
            redis-cli -h "$HOST" -p "$p" shutdown nosave >/dev/null 2>&1 || true
        fi
    done
    for p in "${CLUSTER_PORTS[@]}"; do
        local i
        for i in $(seq 1 50); do
            answers "$p" || break
            sleep 0.1
        done
        answers "$p" && die "cluster node $HOST:$p did not stop"
    done
    case "$CLUSTER_DIR" in
        /tmp/?*) rm -rf "$CLUSTER_DIR" ;;
        *) log "leaving $CLUSTER_DIR in place (not under /tmp)" ;;
    esac
}

start_cluster() {
    if cluster_healthy; then
        log "Redis Cluster already healthy on $HOST:${CLUSTER_PORTS[*]}"
        return 0
    fi
    ensure_installed
    # Anything half-started (or left from an older run) is replaced.
    stop_cluster
    local p
    for p in "${CLUSTER_PORTS[@]}"; do
        mkdir -p "$CLUSTER_DIR/$p"
        log "starting cluster node $HOST:$p"
        (cd "$CLUSTER_DIR/$p" && redis-server --daemonize yes --bind "$HOST" --port "$p" \
            --cluster-enabled yes --cluster-config-file "$CLUSTER_DIR/$p/nodes.conf" \
            --cluster-node-timeout 2000 --dir "$CLUSTER_DIR/$p" \
            --save "" --appendonly no --protected-mode yes \
            --logfile "$CLUSTER_DIR/$p/redis.log" >/dev/null) \
            || die "redis-server failed to start on port $p (see $CLUSTER_DIR/$p/redis.log)"
    done
    for p in "${CLUSTER_PORTS[@]}"; do
        wait_answers "$p" || die "cluster node $HOST:$p does not answer (see $CLUSTER_DIR/$p/redis.log)"
    done
    local nodes=()
    for p in "${CLUSTER_PORTS[@]}"; do nodes+=("$HOST:$p"); done
    log "creating the cluster"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$CLUSTER_DIR/create.log" 2>&1 \
        || { cat "$CLUSTER_DIR/create.log" >&2; die "redis-cli --cluster create failed"; }
    local i
    for i in $(seq 1 200); do
        if cluster_healthy; then
            log "Redis Cluster ready on $HOST:${CLUSTER_PORTS[*]}"
            return 0
        fi
        sleep 0.1
    done
    die "Redis Cluster did not reach cluster_state:ok within 20 s (logs in $CLUSTER_DIR)"
}

status() {
    local p
    for p in "$STANDALONE_PORT" "${CLUSTER_PORTS[@]}"; do
        if answers "$p"; then echo "$HOST:$p up"; else echo "$HOST:$p down"; fi
    done
    if cluster_healthy; then echo "cluster ok"; else echo "cluster not ok"; fi
}

case "${1:-}" in
    start) start_standalone; start_cluster ;;
    stop) command -v redis-cli >/dev/null 2>&1 && stop_cluster; log "cluster stopped" ;;
    status) status ;;
    *) die "usage: $0 start|stop|status" ;;
esac
