#!/usr/bin/env bash
# Apache Traffic Server (Debian's trafficserver) on loopback as FATE's SNI proxy for Pulsar's
# star network (fate-spec §2.6): TLS connections arriving on <port> are tunnelled, without
# being terminated, to the broker that their SNI names (`sni.yaml` tunnel_route), as
# FATE's fate-exchange_deployment_with_pulsar guide sets it up.
#
#   trafficserver.sh run <dir> <port> <fqdn>=<host:port> [<fqdn>=<host:port> ...]
#       run ATS in the foreground with everything (runroot, records.config, sni.yaml,
#       ssl_multicert.config with a throwaway certificate for names it has no route for,
#       logs) under <dir>. Prints "trafficserver ready port=<port>" once it accepts TLS.
#       Stops on SIGTERM/SIGINT; with TS_SH_EXIT_ON_EOF=1 also when stdin closes.
set -euo pipefail

case "${1:-}" in
run)
    [ $# -ge 4 ] || { echo "usage: $0 run <dir> <port> <fqdn>=<host:port>..." >&2; exit 2; }
    command -v traffic_server >/dev/null || {
        echo "trafficserver.sh: traffic_server not found (apt-get install -y trafficserver)" >&2
        exit 1
    }
    dir="$(mkdir -p "$2" && cd "$2" && pwd)"
    port="$3"
    shift 3
    mkdir -p "$dir/etc" "$dir/run" "$dir/log" "$dir/cache"
    cat > "$dir/runroot.yaml" <<YAML
prefix: /usr
exec_prefix: /usr
bindir: /usr/bin
sbindir: /usr/sbin
sysconfdir: $dir/etc
datadir: $dir/cache
includedir: /usr/include
libdir: /usr/lib/trafficserver
libexecdir: /usr/lib/trafficserver/modules
localstatedir: $dir/run
runtimedir: $dir/run
logdir: $dir/log
cachedir: $dir/cache
YAML
    ports=""
    : > "$dir/etc/sni.yaml"
    echo "sni:" >> "$dir/etc/sni.yaml"
    for route in "$@"; do
        fqdn="${route%%=*}"
        target="${route#*=}"
        printf -- '- fqdn: %s\n  tunnel_route: %s\n' "$fqdn" "$target" >> "$dir/etc/sni.yaml"
        ports="$ports ${target##*:}"
    done
    # The user's id stays (#-1): tests run as whoever runs them. CONNECT (which tunnel_route
    # uses inside ATS) is allowed only to the brokers' TLS ports.
    cat > "$dir/etc/records.config" <<REC
CONFIG proxy.config.admin.user_id STRING #-1
CONFIG proxy.config.http.server_ports STRING $port:ssl
CONFIG proxy.config.http.connect_ports STRING${ports}
CONFIG proxy.config.http.cache.http INT 0
CONFIG proxy.config.ssl.server.cert.path STRING $dir/etc
CONFIG proxy.config.ssl.server.private_key.path STRING $dir/etc
CONFIG proxy.config.diags.debug.enabled INT 0
REC
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/etc/proxy.key" \
        -out "$dir/etc/proxy.crt" -subj /CN=sni-proxy-without-route -days 2 2>/dev/null
    echo 'dest_ip=* ssl_cert_name=proxy.crt ssl_key_name=proxy.key' > "$dir/etc/ssl_multicert.config"
    for f in cache.config hosting.config parent.config plugin.config remap.config socks.config \
        splitdns.config storage.config strategies.yaml volume.config; do
        : > "$dir/etc/$f"
    done
    cp /etc/trafficserver/ip_allow.yaml /etc/trafficserver/logging.yaml "$dir/etc/"
    cp -r /etc/trafficserver/body_factory "$dir/etc/" 2>/dev/null || true
    traffic_server --run-root="$dir/runroot.yaml" > "$dir/log/stdout.log" 2>&1 &
    pid=$!
    trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT INT TERM
    if [[ "${TS_SH_EXIT_ON_EOF:-0}" == 1 ]]; then
        exec 3<&0
        (cat <&3 >/dev/null; kill "$pid" 2>/dev/null) &
    fi
    for _ in $(seq 1 300); do
        if echo | timeout 2 openssl s_client -connect "127.0.0.1:$port" -servername ready.invalid \
            >/dev/null 2>&1; then
            echo "trafficserver ready port=$port"
            wait "$pid"
            exit $?
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "traffic_server exited before it was ready; its log:" >&2
            tail -n 40 "$dir/log/stdout.log" "$dir/log/diags.log" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
    echo "traffic_server on 127.0.0.1:$port did not accept TLS within 60 s" >&2
    exit 1
    ;;
*)
    echo "usage: $0 run <dir> <port> <fqdn>=<host:port>..." >&2
    exit 2
    ;;
esac
