#!/usr/bin/env bash
# A real PostgreSQL server (Debian's postgresql 15) on loopback for tests: a private cluster with
# its own data directory, never the system's server.
#
#   postgres.sh install      apt-get install postgresql if it is missing (idempotent)
#   postgres.sh run <dir> <port>
#                            run one server in the foreground on 127.0.0.1:<port> with its data,
#                            socket and log under <dir> (initdb on first run, kept afterwards).
#                            Superuser `fate` with password `fate` (scram-sha-256 over TCP).
#                            As root the server runs as the `postgres` user (PostgreSQL refuses
#                            root), which then owns <dir>. Prints "postgres ready port=<port>"
#                            once it accepts connections. Stops on SIGTERM/SIGINT (the server
#                            too); with POSTGRES_SH_EXIT_ON_EOF=1 also when stdin closes, so a
#                            test process that dies takes its server with it.
set -euo pipefail

pg_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/postgres" ]; then echo "$d"; return 0; fi
    done
    return 1
}

install() {
    if pg_bin >/dev/null; then
        return 0
    fi
    [ "$(id -u)" = 0 ] || { echo "postgres.sh: please run: sudo apt-get install -y postgresql" >&2; exit 1; }
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    # The package may start a system cluster where an init system runs; tests bring their own.
    if command -v service >/dev/null 2>&1; then service postgresql stop >/dev/null 2>&1 || true; fi
}

case "${1:-}" in
install)
    install
    ;;
run)
    [ $# -eq 3 ] || { echo "usage: $0 run <dir> <port>" >&2; exit 2; }
    install
    bin="$(pg_bin)"
    dir="$(mkdir -p "$2" && cd "$2" && pwd)"
    port="$3"
    as=()
    if [ "$(id -u)" = 0 ]; then
        chown -R postgres: "$dir"
        as=(runuser -u postgres --)
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        printf 'fate\n' > "$dir/pwfile"
        [ ${#as[@]} -eq 0 ] || chown postgres: "$dir/pwfile"
        "${as[@]}" "$bin/initdb" -D "$dir/data" -U fate --pwfile="$dir/pwfile" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
            > "$dir/initdb.log" 2>&1 || {
            echo "initdb failed; its output:" >&2; tail -n 40 "$dir/initdb.log" >&2; exit 1; }
        rm -f "$dir/pwfile"
    fi
    "${as[@]}" "$bin/postgres" -D "$dir/data" -p "$port" -c listen_addresses=127.0.0.1 \
        -c unix_socket_directories="$dir" -c max_connections=300 -c shared_buffers=32MB \
        -c fsync=on > "$dir/server.log" 2>&1 &
    pid=$!
    # runuser stays the parent of postgres and passes SIGTERM on.
    trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT INT TERM
    if [[ "${POSTGRES_SH_EXIT_ON_EOF:-0}" == 1 ]]; then
        exec 3<&0
        (cat <&3 >/dev/null; kill "$pid" 2>/dev/null) &
    fi
    for _ in $(seq 1 600); do
        if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
            echo "postgres ready port=$port"
            wait "$pid"
            exit $?
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "postgres exited before it was ready; its log:" >&2
            tail -n 40 "$dir/server.log" >&2 || true
            wait "$pid"
            exit 1
        fi
        sleep 0.1
    done
    echo "postgres on 127.0.0.1:$port did not accept connections within 60 s; its log:" >&2
    tail -n 40 "$dir/server.log" >&2 || true
    exit 1
    ;;
*)
    echo "usage: $0 install | run <dir> <port>" >&2
    exit 2
    ;;
esac
