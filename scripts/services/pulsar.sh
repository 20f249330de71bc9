#!/usr/bin/env bash
# A real Apache Pulsar broker on loopback for tests: Pulsar standalone (broker + one bookie +
# RocksDB metadata store in one JVM), from Maven Central's org.apache.pulsar:pulsar-broker and
# its dependencies, started through org.apache.pulsar.PulsarStandaloneStarter on Java 17.
# The jars are cached under ${FATE_CACHE:-$HOME/.cache/fate-rs}/pulsar, so reruns and CI reuse them.
#
#   pulsar.sh install    fetch the jars (idempotent; needs mvn and java)
#   pulsar.sh run <dir> <broker-port> <web-port>
#                        install, then run one standalone broker in the foreground on 127.0.0.1:
#                        the binary protocol on <broker-port>, the admin REST on <web-port>,
#                        metadata, bookie journal/ledgers, config and logs under <dir>; the
#                        bookie on a free port the broker picks. Cluster name
#                        `standalone`, no functions worker, no stream storage, no auth (loopback
#                        only). Prints "pulsar ready broker=<broker-port> web=<web-port>" once
#                        /admin/v2/clusters lists the cluster. Stops on SIGTERM/SIGINT (the JVM too); with
#                        PULSAR_SH_EXIT_ON_EOF=1 also when stdin closes, so a test process that
#                        dies takes its broker with it.
#                        Optional environment:
#                          PULSAR_SH_CLUSTER   the local cluster's name (default `standalone`;
#                                              replication names each party's broker after it)
#                          PULSAR_SH_CONF      a file of further standalone.conf lines, appended
#                                              (they win): TLS ports and files, advertisedListeners
#                          PULSAR_SH_HOSTS     a hosts file for the JVM's name lookups
#                                              (jdk.net.hosts.file), so site names such as
#                                              9999.fate.org resolve on loopback without
#                                              touching /etc/hosts
set -euo pipefail

PULSAR_VERSION=4.2.4
CACHE="${FATE_CACHE:-$HOME/.cache/fate-rs}/pulsar"
JARS="$CACHE/jars-$PULSAR_VERSION"

install() {
    [ -f "$JARS/.complete" ] && return 0
    command -v mvn >/dev/null || { echo "pulsar.sh: mvn not found (apt-get install -y maven)" >&2; exit 1; }
    command -v java >/dev/null || { echo "pulsar.sh: java not found (Pulsar needs Java 17+)" >&2; exit 1; }
    mkdir -p "$CACHE"
    local work
    work="$(mktemp -d "$CACHE/pom.XXXXXX")"
    # Pulsar's parent pom as a BOM: without it Maven's nearest-wins picks mismatched
    # transitive versions (log4j-core 2.18 beside log4j-slf4j2-impl 2.25, zookeeper 3.9.3
    # beside its jute 3.9.5) that the broker was not built against.
    cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>fate-rs</groupId>
  <artifactId>pulsar-standalone</artifactId>
  <version>1</version>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>org.apache.pulsar</groupId>
        <artifactId>pulsar</artifactId>
        <version>$PULSAR_VERSION</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>org.apache.pulsar</groupId>
      <artifactId>pulsar-broker</artifactId>
      <version>$PULSAR_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
    rm -rf "$JARS.tmp"
    mvn -q -B -f "$work/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$JARS.tmp" >&2
    rm -rf "$work" "$JARS"
    mv "$JARS.tmp" "$JARS"
    # The local repository (270 MB, Maven's plugins included) is not needed once the jars are copied.
    rm -rf "$CACHE/m2"
    touch "$JARS/.complete"
}

case "${1:-}" in
install)
    install
    ;;
run)
    [ $# -eq 4 ] || { echo "usage: $0 run <dir> <broker-port> <web-port>" >&2; exit 2; }
    install
    dir="$(mkdir -p "$2" && cd "$2" && pwd)"
    broker="$3"
    web="$4"
    mkdir -p "$dir/data" "$dir/logs"
    # Broker and bookie read the same file (PulsarStandalone loads both configurations from it).
    cat > "$dir/standalone.conf" <<CONF
clusterName=${PULSAR_SH_CLUSTER:-standalone}
bindAddress=127.0.0.1
advertisedAddress=127.0.0.1
brokerServicePort=$broker
webServicePort=$web
authenticationEnabled=false
authorizationEnabled=false
functionsWorkerEnabled=false
transactionCoordinatorEnabled=false
# FATE slices objects at 1 MiB (fate-spec §2.8); the broker's limit stays Pulsar's default.
maxMessageSize=5242880
managedLedgerDefaultEnsembleSize=1
managedLedgerDefaultWriteQuorum=1
managedLedgerDefaultAckQuorum=1
allowAutoTopicCreation=true
allowAutoTopicCreationType=non-partitioned
brokerDeleteInactiveTopicsEnabled=false
# Bookie (one, in this JVM)
allowLoopback=true
advertisedAddress=127.0.0.1
httpServerEnabled=false
# Development machines run with full disks; the bookie would turn read-only at 95 %.
diskUsageThreshold=0.99
diskUsageWarnThreshold=0.99
journalSyncData=false
dbStorage_writeCacheMaxSizeMb=32
dbStorage_readAheadCacheMaxSizeMb=32
dbStorage_rocksDB_blockCacheSize=16777216
CONF
    if [[ -n "${PULSAR_SH_CONF:-}" ]]; then
        cat "$PULSAR_SH_CONF" >> "$dir/standalone.conf"
    fi
    hosts=()
    if [[ -n "${PULSAR_SH_HOSTS:-}" ]]; then
        hosts=("-Djdk.net.hosts.file=$PULSAR_SH_HOSTS")
    fi
    cat > "$dir/log4j2.xml" <<LOG
<Configuration status="warn">
  <Appenders>
    <File name="file" fileName="$dir/logs/pulsar.log"><PatternLayout pattern="%d{ISO8601} %-5level [%t] %c{1} - %msg%n"/></File>
  </Appenders>
  <Loggers><Root level="info"><AppenderRef ref="file"/></Root></Loggers>
</Configuration>
LOG
    cd "$dir"
    java -Xms128m -Xmx512m -XX:MaxDirectMemorySize=256m -XX:+UseG1GC \
        -Djava.net.preferIPv4Stack=true "${hosts[@]}" -Dio.netty.tryReflectionSetAccessible=true \
        --add-opens java.base/java.io=ALL-UNNAMED --add-opens java.base/java.nio=ALL-UNNAMED \
        --add-opens java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/sun.net=ALL-UNNAMED \
        --add-opens java.management/sun.management=ALL-UNNAMED \
        --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
        -Dlog4j2.configurationFile="$dir/log4j2.xml" -Dpulsar.log.dir="$dir/logs" \
        -cp "$JARS/*" org.apache.pulsar.PulsarStandaloneStarter \
        --config "$dir/standalone.conf" --metadata-dir "$dir/data/metadata" \
        --bookkeeper-dir "$dir/data/bookkeeper" \
        --no-functions-worker --no-stream-storage --advertised-address 127.0.0.1 \
        > "$dir/logs/stdout.log" 2>&1 &
    pid=$!
    trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT INT TERM
    if [[ "${PULSAR_SH_EXIT_ON_EOF:-0}" == 1 ]]; then
        # (Background jobs get /dev/null as stdin unless it is redirected explicitly.)
        exec 3<&0
        (cat <&3 >/dev/null; kill "$pid" 2>/dev/null) &
    fi
    for _ in $(seq 1 1200); do
        # Standalone creates its cluster (and public/default) only after the broker is up.
        if python3 -c "import json,sys,urllib.request; sys.exit(0 if json.load(urllib.request.urlopen('http://127.0.0.1:$web/admin/v2/clusters', timeout=1)) else 1)" 2>/dev/null; then
            echo "pulsar ready broker=$broker web=$web"
            wait "$pid"
            exit $?
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "pulsar standalone exited before it was ready; its log:" >&2
            tail -n 40 "$dir/logs/stdout.log" "$dir/logs/pulsar.log" >&2 || true
            wait "$pid"
            exit 1
        fi
        sleep 0.1
    done
    echo "pulsar on 127.0.0.1:$broker did not answer on web port $web within 120 s; its log:" >&2
    tail -n 40 "$dir/logs/pulsar.log" >&2 || true
    exit 1
    ;;
*)
    echo "usage: $0 install | run <dir> <broker-port> <web-port>" >&2
    exit 2
    ;;
esac
