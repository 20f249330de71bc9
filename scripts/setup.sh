#!/usr/bin/env bash
# Installs what building and testing fate-rs needs on a fresh Debian machine. Sourced by
# scripts/demo.sh and scripts/test.sh (which sets FATE_SETUP=tests for the test-only servers);
# safe to run again (it only installs what is missing).
set -euo pipefail

need_apt=()
# rug links Debian's GMP (gmp-mpfr-sys `use-system-libs`), so no m4 and no GMP build is needed.
dpkg -s libgmp-dev >/dev/null 2>&1 || need_apt+=(libgmp-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# The `pulsar` crate (fate-federation-pulsar) compiles Pulsar's protocol with protoc in its
# build script.
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
if [ "${FATE_SETUP:-}" = tests ]; then
  # Apache Traffic Server: the seeds' SNI proxy, run by the federation's star-network tests.
  command -v traffic_server >/dev/null 2>&1 || [ -x /usr/bin/traffic_server ] || need_apt+=(trafficserver)
  # ip and tc: the network-namespace tests (separate hosts, rate-limited links).
  { command -v ip && command -v tc; } >/dev/null 2>&1 || need_apt+=(iproute2)
  # RabbitMQ 3.10 with the management and federation plugins: the RabbitMQ transport's tests
  # (scripts/services/rabbitmq.sh runs one broker per party).
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need_apt+=(rabbitmq-server)
  # Pulsar standalone from Maven Central (scripts/services/pulsar.sh): Maven fetches the
  # broker's jars, Java 17 runs it (also what Spark and the HDFS minicluster need).
  command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
  # MariaDB and PostgreSQL: the metadata store's conformance suite and the node's jobs on them
  # (scripts/services/mariadb.sh, scripts/services/postgres.sh run private servers).
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server)
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
  command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jdk-headless)
  # kubectl for `kubectl kustomize` over `fate k8s render`'s output (cli::k8s; the machine
  # image has one; Debian's kubernetes-client otherwise). kubernetes-validate (PyPI) is
  # installed by that test into a venv under ~/.cache/fate-rs.
  command -v kubectl >/dev/null 2>&1 || need_apt+=(kubernetes-client)
  # systemd-analyze verify over `fate service units` (crates/fate/tests/compose.rs).
  command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
  # The board's browser test (crates/fate/tests/board): Debian's Chromium driven by
  # playwright-core from npm (no browser download), so Node.js and npm too.
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
  command -v npm >/dev/null 2>&1 || need_apt+=(npm)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need_apt[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install: sudo apt-get install -y ${need_apt[*]}" >&2
    exit 1
  fi
fi

# Debian's docker-compose (1.29): `docker-compose config -q` checks the files `fate compose
# render` writes (crates/fate/tests/compose.rs). Without recommends: no Docker engine, which
# cannot run here anyway.
if [ "${FATE_SETUP:-}" = tests ] && ! command -v docker-compose >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing docker-compose" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  else
    echo "setup: please install: sudo apt-get install -y --no-install-recommends docker-compose" >&2
    exit 1
  fi
fi

command -v cargo >/dev/null 2>&1 || { echo "setup: cargo is missing (install Rust from rustup)" >&2; exit 1; }
