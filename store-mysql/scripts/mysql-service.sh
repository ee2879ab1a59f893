#!/usr/bin/env bash
# Makes sure a MariaDB (or MySQL) server answers on 127.0.0.1:3306 with a
# database `test` that user `root` can use over TCP without a password, for
# the session-store-mysql tests.
#
# Idempotent: an answering server is used as it is; an installed but stopped
# MariaDB is started; without one, and as root, the Debian package
# (mariadb-server) is installed first. Loopback only: the only accounts it
# adds are root@127.0.0.1 and root@localhost, and it never makes the server
# listen elsewhere. Fails loudly, with the reason, when any step is
# impossible.
set -euo pipefail

HOST=127.0.0.1
PORT=3306
DB="test"
USER_NAME=root

say() { echo "mysql-service: $*"; }
die() {
    echo "mysql-service: ERROR: $*" >&2
    echo "mysql-service: the MySQL tests need a server on $HOST:$PORT with database '$DB' for user '$USER_NAME' without a password; set SESSION_STORE_SKIP_MYSQL=1 to skip them instead." >&2
    exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# The client programs under either name (MariaDB renamed them).
client() { if command -v mariadb >/dev/null 2>&1; then echo mariadb; else echo mysql; fi; }
admin() { if command -v mariadb-admin >/dev/null 2>&1; then echo mariadb-admin; else echo mysqladmin; fi; }
server_installed() { command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ]; }

# The server answers on the port (even if it refuses this login).
answers() {
    command -v "$(admin)" >/dev/null 2>&1 &&
        "$(admin)" --protocol=tcp -h "$HOST" -P "$PORT" -u "$USER_NAME" --connect-timeout=3 ping >/dev/null 2>&1
}

# SQL over loopback TCP as root without a password (what the tests do).
sql_tcp() { "$(client)" --protocol=tcp -h "$HOST" -P "$PORT" -u "$USER_NAME" --connect-timeout=10 -N -B "$@"; }

# SQL over the Unix socket as the OS root (Debian's root account authenticates
# by socket); only used to set up the loopback account.
sql_socket() { "$(client)" -u root -N -B "$@"; }

install_mariadb() {
    is_root || die "MariaDB is not installed and this script is not root, so it cannot 'apt-get install mariadb-server'."
    command -v apt-get >/dev/null 2>&1 || die "MariaDB is not installed and apt-get is not available."
    say "installing MariaDB (apt-get install mariadb-server)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update || die "apt-get update failed"
    apt-get install -y mariadb-server || die "apt-get install -y mariadb-server failed"
}

start_mariadb() {
    is_root || die "MariaDB is installed but not running, and only root can start it"
    if [ ! -d /var/lib/mysql/mysql ]; then
        say "initialising the data directory /var/lib/mysql"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null ||
            die "mariadb-install-db failed"
    fi
    say "starting MariaDB"
    if command -v service >/dev/null 2>&1 && service mariadb start; then
        return 0
    fi
    # No service manager (a container): start the server in the background,
    # bound to loopback whatever the configuration says.
    command -v mariadbd-safe >/dev/null 2>&1 || die "could not start MariaDB (no service manager, no mariadbd-safe)"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    nohup mariadbd-safe --bind-address="$HOST" --port="$PORT" >/dev/null 2>&1 &
}

wait_ready() {
    for _ in $(seq 1 60); do
        if answers; then return 0; fi
        sleep 0.5
    done
    die "MariaDB did not answer on $HOST:$PORT within 30 s (see /var/log/mysql/error.log)"
}

if answers; then
    say "a server already answers on $HOST:$PORT"
else
    server_installed || install_mariadb
    start_mariadb
    wait_ready
    say "MariaDB answers on $HOST:$PORT"
fi

# Passwordless root over loopback TCP.
if ! sql_tcp -e 'SELECT 1' >/dev/null 2>&1; then
    is_root || die "user '$USER_NAME' cannot log in on $HOST:$PORT without a password, and only root can add the loopback account"
    say "allowing '$USER_NAME' to log in from $HOST and localhost without a password"
    sql_socket -e "
        CREATE USER IF NOT EXISTS '$USER_NAME'@'127.0.0.1' IDENTIFIED BY '';
        GRANT ALL PRIVILEGES ON *.* TO '$USER_NAME'@'127.0.0.1' WITH GRANT OPTION;
        CREATE USER IF NOT EXISTS '$USER_NAME'@'localhost';
        ALTER USER '$USER_NAME'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
        FLUSH PRIVILEGES;" ||
        die "could not set up the loopback account through the Unix socket"
    sql_tcp -e 'SELECT 1' >/dev/null ||
        die "user '$USER_NAME' still cannot log in on $HOST:$PORT without a password"
fi

# Database `test`.
sql_tcp -e "CREATE DATABASE IF NOT EXISTS \`$DB\` CHARACTER SET utf8mb4" ||
    die "could not create database '$DB'"
sql_tcp -D "$DB" -e 'SELECT 1' >/dev/null || die "cannot use database '$DB' as '$USER_NAME'"

version=$(sql_tcp -e 'SELECT VERSION()')
max=$(sql_tcp -e 'SELECT @@max_connections')
say "ready: mysql://$USER_NAME@$HOST:$PORT/$DB ($version, max_connections=$max)"
