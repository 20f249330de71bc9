#!/usr/bin/env bash
# A real HDFS on loopback for tests: Hadoop's MiniDFSCluster (one NameNode + one DataNode in one
# JVM) from Maven Central's org.apache.hadoop:hadoop-client-minicluster, started by a small Java
# launcher compiled here. Everything downloaded or built is cached under
# ${FATE_CACHE:-$HOME/.cache/fate-rs}/hdfs, so reruns and CI reuse it.
#
#   hdfs.sh install           fetch the jars and compile the launcher (idempotent)
#   hdfs.sh run <dir> <port>  install, then run a cluster with its data in <dir>, NameNode RPC on
#                             127.0.0.1:<port>, in the foreground; prints "READY hdfs://..." once
#                             it accepts clients. Stops on SIGTERM/SIGINT.
set -euo pipefail

HADOOP_VERSION=3.5.0
CACHE="${FATE_CACHE:-$HOME/.cache/fate-rs}/hdfs"
JARS="$CACHE/jars-$HADOOP_VERSION"
CLASSES="$CACHE/classes"

install() {
    mkdir -p "$CACHE"
    if [ ! -f "$JARS/.complete" ]; then
        local work
        work="$(mktemp -d "$CACHE/pom.XXXXXX")"
        cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>fate-rs</groupId>
  <artifactId>hdfs-minicluster</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.hadoop</groupId>
      <artifactId>hadoop-client-minicluster</artifactId>
      <version>$HADOOP_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.hadoop</groupId>
      <artifactId>hadoop-client-runtime</artifactId>
      <version>$HADOOP_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
        rm -rf "$JARS.tmp"
        mvn -q -B -f "$work/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
            dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$JARS.tmp" >&2
        rm -rf "$work" "$JARS"
        mv "$JARS.tmp" "$JARS"
        touch "$JARS/.complete"
    fi
    if [ ! -f "$CLASSES/.complete-$HADOOP_VERSION" ]; then
        local src
        src="$(mktemp -d "$CACHE/src.XXXXXX")"
        cat >"$src/FateMiniDfs.java" <<'JAVA'
import java.io.File;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;

/** Runs a MiniDFSCluster on 127.0.0.1:<port> with its data in <dir> until killed. */
public class FateMiniDfs {
    public static void main(String[] args) throws Exception {
        File dir = new File(args[0]).getAbsoluteFile();
        int port = Integer.parseInt(args[1]);
        Configuration conf = new Configuration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, dir.getPath());
        conf.set("dfs.namenode.rpc-bind-host", "127.0.0.1");
        conf.set("dfs.datanode.address", "127.0.0.1:0");
        conf.set("dfs.datanode.http.address", "127.0.0.1:0");
        conf.set("dfs.datanode.ipc.address", "127.0.0.1:0");
        conf.set("dfs.namenode.http-address", "127.0.0.1:0");
        conf.setBoolean("dfs.permissions.enabled", false);
        conf.setInt("dfs.replication", 1);
        MiniDFSCluster cluster = new MiniDFSCluster.Builder(conf)
            .nameNodePort(port).numDataNodes(1).format(!new File(dir, "name1").exists())
            .manageNameDfsDirs(true).build();
        cluster.waitActive();
        Runtime.getRuntime().addShutdownHook(new Thread(cluster::shutdown));
        System.out.println("READY hdfs://127.0.0.1:" + cluster.getNameNodePort());
        System.out.flush();
        Thread.currentThread().join();
    }
}
JAVA
        mkdir -p "$CLASSES"
        javac -nowarn -cp "$JARS/*" -d "$CLASSES" "$src/FateMiniDfs.java" >&2
        rm -rf "$src"
        touch "$CLASSES/.complete-$HADOOP_VERSION"
    fi
}

case "${1:-}" in
install)
    install
    ;;
run)
    [ $# -eq 3 ] || { echo "usage: $0 run <dir> <port>" >&2; exit 2; }
    install
    mkdir -p "$2"
    exec java -Xmx512m -Djava.net.preferIPv4Stack=true -Dlog4j.configuration=none \
        -cp "$CLASSES:$JARS/*" FateMiniDfs "$2" "$3"
    ;;
*)
    echo "usage: $0 install | run <dir> <port>" >&2
    exit 2
    ;;
esac
