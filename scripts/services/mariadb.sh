#!/usr/bin/env bash
# A real MariaDB server (Debian's mariadb-server 10.11) on loopback for tests: a private
# instance with its own data directory, never the system's server.
#
#   mariadb.sh install      apt-get install mariadb-server if it is missing (idempotent)
#   mariadb.sh run <dir> <port>
#                           run one server in the foreground on 127.0.0.1:<port> with its data,
#                           socket and log under <dir> (created on first run, kept afterwards).
#                           User `fate` with password `fate` may connect from 127.0.0.1 and
#                           create databases. Prints "mariadb ready port=<port>" once it
#                           answers. Stops on SIGTERM/SIGINT (the server too); with
#                           MARIADB_SH_EXIT_ON_EOF=1 also when stdin closes, so a test process
#                           that dies takes its server with it.
set -euo pipefail

install() {
    if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then
        return 0
    fi
    [ "$(id -u)" = 0 ] || { echo "mariadb.sh: please run: sudo apt-get install -y mariadb-server" >&2; exit 1; }
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
    # The package may start a system server where an init system runs; tests bring their own.
    if command -v service >/dev/null 2>&1; then service mariadb stop >/dev/null 2>&1 || true; fi
}

bin() {
    if command -v "$1" >/dev/null 2>&1; then command -v "$1"; else echo "/usr/sbin/$1"; fi
}

case "${1:-}" in
install)
    install
    ;;
run)
    [ $# -eq 3 ] || { echo "usage: $0 run <dir> <port>" >&2; exit 2; }
    install
    dir="$(mkdir -p "$2" && cd "$2" && pwd)"
    port="$3"
    # mysqld refuses to run as root unless told to; as another user it runs as that user.
    user="$(id -un)"
    fresh=0
    if [ ! -d "$dir/data/mysql" ]; then
        fresh=1
        mysql_install_db --no-defaults --datadir="$dir/data" --user="$user" \
            --auth-root-authentication-method=socket --skip-test-db > "$dir/install.log" 2>&1 || {
            echo "mysql_install_db failed; its output:" >&2; tail -n 40 "$dir/install.log" >&2; exit 1; }
    fi
    # --no-defaults: nothing from /etc/mysql; utf8mb4 on the server, as the store's tables ask.
    "$(bin mariadbd)" --no-defaults --datadir="$dir/data" --socket="$dir/mysqld.sock" \
        --port="$port" --bind-address=127.0.0.1 --user="$user" --pid-file="$dir/mysqld.pid" \
        --skip-name-resolve --log-error="$dir/error.log" --innodb-buffer-pool-size=64M \
        --innodb-log-file-size=16M --character-set-server=utf8mb4 \
        --collation-server=utf8mb4_nopad_bin --max-connections=500 > "$dir/stdout.log" 2>&1 &
    pid=$!
    trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT INT TERM
    if [[ "${MARIADB_SH_EXIT_ON_EOF:-0}" == 1 ]]; then
        # (Background jobs get /dev/null as stdin unless it is redirected explicitly.)
        exec 3<&0
        (cat <&3 >/dev/null; kill "$pid" 2>/dev/null) &
    fi
    for _ in $(seq 1 600); do
        if mariadb-admin --no-defaults --socket="$dir/mysqld.sock" -u root ping >/dev/null 2>&1; then
            if [ "$fresh" = 1 ]; then
                mariadb --no-defaults --socket="$dir/mysqld.sock" -u root -e \
                    "CREATE USER 'fate'@'127.0.0.1' IDENTIFIED BY 'fate';
                     GRANT ALL PRIVILEGES ON *.* TO 'fate'@'127.0.0.1';"
            fi
            echo "mariadb ready port=$port"
            wait "$pid"
            exit $?
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "mariadbd exited before it was ready; its log:" >&2
            tail -n 40 "$dir/error.log" >&2 || true
            wait "$pid"
            exit 1
        fi
        sleep 0.1
    done
    echo "mariadb on 127.0.0.1:$port did not answer within 60 s; its log:" >&2
    tail -n 40 "$dir/error.log" >&2 || true
    exit 1
    ;;
*)
    echo "usage: $0 install | run <dir> <port>" >&2
    exit 2
    ;;
esac
