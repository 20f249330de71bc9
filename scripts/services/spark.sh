#!/usr/bin/env bash
# A real Spark (from the pyspark wheel) with its Spark Connect server, for tests on loopback.
#
#   spark.sh install           pip install pyspark into a venv cached under $FATE_CACHE/spark
#                              (idempotent: a second run only checks the marker file)
#   spark.sh home              print SPARK_HOME (installs first if needed)
#   spark.sh run <dir> <port> [ui-port]
#                              run the Spark Connect server, --master local[2,4] (2 cores, a failed task tried up to 4 times as on a cluster), bound to 127.0.0.1,
#                              in the foreground; logs and scratch under <dir>. Prints
#                              "spark-connect ready port=<port> ui=<ui-port>" when it accepts
#                              connections. The UI port defaults to <port>+1; the JVM heap is
#                              $SPARK_DRIVER_MEMORY (default 4g: local mode runs the executors in it). With
#                              SPARK_SH_EXIT_ON_EOF=1 the server stops when stdin closes;
#                              SPARK_SH_CONF="k=v k=v" adds server configuration.
set -euo pipefail

PYSPARK_VERSION="${PYSPARK_VERSION:-4.3.0}"
CACHE="${FATE_CACHE:-$HOME/.cache/fate-rs}/spark"
VENV="$CACHE/venv-$PYSPARK_VERSION"
MARKER="$VENV/.fate-installed"

install() {
    if [[ -f "$MARKER" ]]; then
        return 0
    fi
    command -v java >/dev/null || { echo "spark.sh: java not found (Spark needs Java 17+)" >&2; exit 1; }
    mkdir -p "$CACHE"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "pyspark==$PYSPARK_VERSION"
    touch "$MARKER"
}

spark_home() {
    "$VENV/bin/python" - <<'PY'
import os, pyspark
print(os.path.dirname(pyspark.__file__))
PY
}

case "${1:-}" in
install)
    install
    ;;
home)
    install
    spark_home
    ;;
run)
    dir="${2:?usage: spark.sh run <dir> <port> [ui-port]}"
    port="${3:?usage: spark.sh run <dir> <port> [ui-port]}"
    ui="${4:-$((port + 1))}"
    install
    SPARK_HOME="$(spark_home)"
    export SPARK_HOME
    mkdir -p "$dir/work" "$dir/logs" "$dir/events"
    export SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_DIRS="$dir/work" SPARK_LOG_DIR="$dir/logs"
    export SPARK_IDENT_STRING="fate-$port" SPARK_PID_DIR="$dir"
    extra=()
    for kv in ${SPARK_SH_CONF:-}; do extra+=(--conf "$kv"); done
    # Foreground: spark-submit of the Connect server class, as start-connect-server.sh does.
    "$SPARK_HOME/bin/spark-submit" \
        --class org.apache.spark.sql.connect.service.SparkConnectServer \
        --name "fate-spark-connect-$port" \
        --master 'local[2,4]' \
        --driver-memory "${SPARK_DRIVER_MEMORY:-4g}" \
        --conf spark.connect.grpc.binding.address=127.0.0.1 \
        --conf spark.connect.grpc.binding.port="$port" \
        --conf spark.driver.host=127.0.0.1 \
        --conf spark.driver.bindAddress=127.0.0.1 \
        --conf spark.ui.port="$ui" \
        --conf spark.ui.enabled=true \
        --conf spark.port.maxRetries=0 \
        --conf spark.sql.warehouse.dir="$dir/warehouse" \
        --conf spark.sql.chunkBase64String.enabled=false \
        --conf spark.connect.grpc.maxInboundMessageSize=268435456 \
        --conf "spark.driver.extraJavaOptions=-Dderby.system.home=$dir" \
        "${extra[@]}" \
        spark-internal &
    pid=$!
    trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT INT TERM
    # SPARK_SH_EXIT_ON_EOF=1: stop the server when stdin closes, so a test process that dies
    # (or never drops its handle, as with a static) takes its server with it.
    if [[ "${SPARK_SH_EXIT_ON_EOF:-0}" == 1 ]]; then
        # (Background jobs get /dev/null as stdin unless it is redirected explicitly.)
        exec 3<&0
        (cat <&3 >/dev/null; kill "$pid" 2>/dev/null) &
    fi
    # Ready when the gRPC port accepts connections.
    for _ in $(seq 1 240); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" || true
            echo "spark.sh: the Spark Connect server exited before it was ready" >&2
            exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "spark-connect ready port=$port ui=$ui"
            break
        fi
        sleep 0.5
    done
    wait "$pid"
    ;;
*)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac
