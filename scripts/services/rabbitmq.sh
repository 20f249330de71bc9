#!/usr/bin/env bash
# A real RabbitMQ broker (Debian's rabbitmq-server 3.10, with the management and federation
# plugins) on loopback for tests; several run side by side, one per party, as FATE deploys them.
#
#   rabbitmq.sh install      apt-get install rabbitmq-server if it is missing (idempotent)
#   rabbitmq.sh run <dir> <amqp-port> <mgmt-port>
#                            run one broker in the foreground on 127.0.0.1: node name
#                            fate-<amqp-port>, mnesia, logs, config, erlang cookie (HOME) under
#                            <dir>, distribution port <amqp-port>+20000, the management API on
#                            <mgmt-port>. Admin user `guest`/`guest` (loopback only). Prints
#                            "rabbitmq ready amqp=<amqp-port> mgmt=<mgmt-port>" once the
#                            management API answers. Stops on SIGTERM/SIGINT (the broker too);
#                            with RABBITMQ_SH_EXIT_ON_EOF=1 also when stdin closes, so a test
#                            process that dies takes its brokers with it.
set -euo pipefail

install() {
    if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null 2>&1; then
        return 0
    fi
    [ "$(id -u)" = 0 ] || { echo "rabbitmq.sh: please run: sudo apt-get install -y rabbitmq-server" >&2; exit 1; }
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    # The package starts a system broker on 5672 where an init system runs; tests bring their own.
    if command -v service >/dev/null 2>&1; then service rabbitmq-server stop >/dev/null 2>&1 || true; fi
}

# The broker's own scripts, not the /usr/sbin wrappers (those switch to the rabbitmq user).
bin() {
    if [ -x "/usr/lib/rabbitmq/bin/$1" ]; then echo "/usr/lib/rabbitmq/bin/$1"; else command -v "$1"; fi
}

case "${1:-}" in
install)
    install
    ;;
run)
    [ $# -eq 4 ] || { echo "usage: $0 run <dir> <amqp-port> <mgmt-port>" >&2; exit 2; }
    install
    dir="$(mkdir -p "$2" && cd "$2" && pwd)"
    amqp="$3"
    mgmt="$4"
    mkdir -p "$dir/mnesia" "$dir/log" "$dir/home"
    cat > "$dir/rabbitmq.conf" <<CONF
listeners.tcp.default = $amqp
management.tcp.port = $mgmt
management.tcp.ip = 127.0.0.1
loopback_users.guest = true
log.console = false
log.file.level = info
CONF
    echo "[rabbitmq_management,rabbitmq_federation,rabbitmq_federation_management]." > "$dir/enabled_plugins"
    # A cookie of its own per broker (the CLI tools find it through HOME).
    if [ ! -f "$dir/home/.erlang.cookie" ]; then
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/home/.erlang.cookie"
        chmod 400 "$dir/home/.erlang.cookie"
    fi
    export HOME="$dir/home"
    export RABBITMQ_NODENAME="fate-$amqp@localhost"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT="$amqp"
    export RABBITMQ_DIST_PORT="$((amqp + 20000))"
    export RABBITMQ_MNESIA_BASE="$dir/mnesia"
    export RABBITMQ_LOG_BASE="$dir/log"
    export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
    # Every broker needs epmd; the first one starts it on loopback, the others use it.
    export ERL_EPMD_ADDRESS=127.0.0.1
    "$(bin rabbitmq-server)" > "$dir/log/stdout.log" 2>&1 &
    pid=$!
    trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT INT TERM
    if [[ "${RABBITMQ_SH_EXIT_ON_EOF:-0}" == 1 ]]; then
        # (Background jobs get /dev/null as stdin unless it is redirected explicitly.)
        exec 3<&0
        (cat <&3 >/dev/null; kill "$pid" 2>/dev/null) &
    fi
    for _ in $(seq 1 600); do
        if python3 -c "import urllib.request,base64,sys; r=urllib.request.Request('http://127.0.0.1:$mgmt/api/overview', headers={'Authorization': 'Basic ' + base64.b64encode(b'guest:guest').decode()}); urllib.request.urlopen(r, timeout=1)" 2>/dev/null; then
            echo "rabbitmq ready amqp=$amqp mgmt=$mgmt"
            wait "$pid"
            exit $?
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "rabbitmq-server exited before it was ready; its output:" >&2
            tail -n 40 "$dir/log/stdout.log" >&2 || true
            wait "$pid"
            exit 1
        fi
        sleep 0.1
    done
    echo "rabbitmq on 127.0.0.1:$amqp did not answer on management port $mgmt within 60 s; its output:" >&2
    tail -n 40 "$dir/log/stdout.log" >&2 || true
    exit 1
    ;;
*)
    echo "usage: $0 install | run <dir> <amqp-port> <mgmt-port>" >&2
    exit 2
    ;;
esac
