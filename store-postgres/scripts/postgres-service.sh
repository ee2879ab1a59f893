#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 with a database
# `test` that user `postgres` can use without a password (trust on loopback),
# for the session-store-postgres tests.
#
# Idempotent: an answering server is used as it is; an installed but stopped
# Debian cluster is started; without PostgreSQL, and as root, the Debian
# package is installed first. Loopback only: it never makes the server listen
# elsewhere. Fails loudly, with the reason, when any step is impossible.
set -euo pipefail

HOST=127.0.0.1
PORT=5432
DB="test"
USER_NAME=postgres

say() { echo "postgres-service: $*"; }
die() {
    echo "postgres-service: ERROR: $*" >&2
    echo "postgres-service: the PostgreSQL tests need a server on $HOST:$PORT with database '$DB' for user '$USER_NAME' (trust auth); set SESSION_STORE_SKIP_POSTGRES=1 to skip them instead." >&2
    exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

ready() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$HOST" -p "$PORT"; }

# -w: never prompt for a password (CI has no terminal); fail instead.
psql_admin() { PGCONNECT_TIMEOUT=10 psql -X -q -w -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U "$USER_NAME" "$@"; }

# The newest Debian cluster version installed (/etc/postgresql/<version>/main).
cluster_version() {
    local v
    # Version directories are plain numbers, so ls is safe here.
    # shellcheck disable=SC2012
    v=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$v" ] && [ -d "/etc/postgresql/$v/main" ]; then echo "$v"; fi
}

install_postgres() {
    is_root || die "PostgreSQL is not installed and this script is not root, so it cannot 'apt-get install postgresql'."
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is not available."
    say "installing PostgreSQL (apt-get install postgresql)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update || die "apt-get update failed"
    apt-get install -y postgresql || die "apt-get install -y postgresql failed"
}

# Lets user postgres log in over loopback TCP without a password. Only
# loopback addresses are touched; rules are added before the defaults.
ensure_loopback_trust() {
    local version=$1
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    [ -f "$hba" ] || die "$hba not found"
    if grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
        return 1
    fi
    is_root || die "user '$USER_NAME' cannot log in on $HOST without a password, and only root can change $hba"
    say "allowing trust authentication on loopback in $hba"
    local tmp
    tmp=$(mktemp)
    {
        echo "# added by session-store postgres-service.sh: tests log in over loopback without a password"
        echo "host all all 127.0.0.1/32 trust"
        echo "host all all ::1/128 trust"
        cat "$hba"
    } >"$tmp"
    cat "$tmp" >"$hba"
    rm -f "$tmp"
    return 0
}

start_cluster() {
    local version=$1
    say "starting PostgreSQL $version cluster 'main'"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
        ready ||
        die "pg_ctlcluster $version main start failed (see /var/log/postgresql/postgresql-$version-main.log)"
}

wait_ready() {
    for _ in $(seq 1 60); do
        if ready; then return 0; fi
        sleep 0.5
    done
    die "PostgreSQL did not answer on $HOST:$PORT within 30 s"
}

if ready; then
    say "PostgreSQL already answers on $HOST:$PORT"
else
    version=$(cluster_version)
    if [ -z "$version" ] && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        install_postgres
        version=$(cluster_version)
    fi
    if [ -z "$version" ]; then
        # Server packages present but no cluster (for example it was dropped).
        # shellcheck disable=SC2012
        bin_version=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
        if [ -z "$bin_version" ] || ! command -v pg_createcluster >/dev/null 2>&1; then
            die "no PostgreSQL cluster under /etc/postgresql and no way to create one"
        fi
        is_root || die "no PostgreSQL cluster under /etc/postgresql, and only root can create one"
        say "creating PostgreSQL $bin_version cluster 'main'"
        pg_createcluster "$bin_version" main || die "pg_createcluster $bin_version main failed"
        version=$(cluster_version)
        [ -n "$version" ] || die "no cluster under /etc/postgresql after pg_createcluster"
    fi
    command -v pg_ctlcluster >/dev/null 2>&1 || die "pg_ctlcluster not found (package postgresql-common)"
    port=$(sed -nE 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*([0-9]+).*/\1/p' "/etc/postgresql/$version/main/postgresql.conf" | head -n 1)
    [ "${port:-5432}" = "$PORT" ] || die "the installed cluster $version/main is configured for port $port, not $PORT"
    ensure_loopback_trust "$version" || true
    start_cluster "$version"
    wait_ready
    say "PostgreSQL $version answers on $HOST:$PORT"
fi

command -v psql >/dev/null 2>&1 || die "psql not found"

# Trust auth for user postgres over loopback.
if ! psql_admin -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
    version=$(cluster_version)
    [ -n "$version" ] || die "user '$USER_NAME' cannot log in on $HOST:$PORT without a password, and this server is not a Debian cluster this script can configure"
    ensure_loopback_trust "$version" || true
    # Reload even if the rule was already there: a server started by the
    # package's post-install step may not have read it yet.
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload || die "reloading the cluster configuration failed"
    sleep 1
    psql_admin -d postgres -tAc 'SELECT 1' >/dev/null ||
        die "user '$USER_NAME' cannot log in on $HOST:$PORT without a password (check pg_hba.conf)"
fi

# Database `test`.
exists=$(psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")
if [ "$exists" != "1" ]; then
    say "creating database '$DB'"
    psql_admin -d postgres -c "CREATE DATABASE \"$DB\"" ||
        [ "$(psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" = "1" ] ||
        die "could not create database '$DB'"
fi
psql_admin -d "$DB" -tAc 'SELECT 1' >/dev/null || die "cannot connect to database '$DB' as '$USER_NAME'"

max=$(psql_admin -d "$DB" -tAc 'SHOW max_connections')
say "ready: postgres://$USER_NAME@$HOST:$PORT/$DB (max_connections=$max)"
