#!/usr/bin/env bash
# Runs what `fate k8s render` wrote for two parties (deploy/k8s/examples/direct, mutual TLS) as
# processes, without Kubernetes: each party's cluster is a network namespace of this machine
# (10.99.0.1 and 10.99.0.2 on a veth pair, nothing leaves the machine), each "pod" a process
# with the rendered ConfigMap and Secret files bind-mounted where the manifests mount them
# (/conf, /tls, /data, in a private mount namespace), the Services `node` and `router` are names
# in the namespace's hosts file, and each router's NodePort is a socat forward. Then it runs the
# toy from 9999 to 10000 and `fate doctor` on 9999's node, and removes everything it made.
#
#   deploy/k8s/simulate.sh [path/to/fate]      (root: network and mount namespaces)
#
# Needs ip (iproute2), unshare (util-linux), socat, python3 with PyYAML. Not a Kubernetes test:
# no kubelet, no Service proxy, no image; it checks the configurations the manifests carry.
set -euo pipefail
FATE=$(readlink -f "${1:-target/debug/fate}")
EX=$(cd "$(dirname "$0")/examples/direct" && pwd)
S=$(mktemp -d /tmp/fate-k8s-sim.XXXXXX)
made_dirs=()
cleanup() {
  for pid in $(cat "$S"/*/*.pid 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  sleep 1
  for p in 9999 10000; do
    ip netns del "fate-k$p" 2>/dev/null || true
    rm -rf "/etc/netns/fate-k$p"
  done
  rmdir /etc/netns 2>/dev/null || true
  for d in "${made_dirs[@]}"; do rmdir "$d" 2>/dev/null || true; done
  rm -rf "$S"
}
trap cleanup EXIT

# The examples, with the peers' partyIp set to the namespaces' addresses and metadata in
# SQLite (no MySQL server here).
sed -e 's/192.168.10.1/10.99.0.2/' -e '/^  - mysql$/d' "$EX/party-9999.yaml" >"$S/c9999.yaml"
sed -e 's/192.168.9.1/10.99.0.1/' -e '/^externalMysql/d' "$EX/party-10000.yaml" >"$S/c10000.yaml"
for p in 9999 10000; do
  "$FATE" k8s render -f "$S/c$p.yaml" --ca-dir "$S/ca" -o "$S/out$p" >/dev/null
done
# The ConfigMaps' and Secrets' files, as the pods see them.
python3 - "$S" <<'EOF'
import os, sys, yaml
s = sys.argv[1]
for p in ["9999", "10000"]:
    for f, d in [("configmap-node.yaml", "conf-node"), ("configmap-router.yaml", "conf-router"),
                 ("secret-tls.yaml", "tls")]:
        m = yaml.safe_load(open(f"{s}/out{p}/{f}"))
        os.makedirs(f"{s}/{p}/{d}", exist_ok=True)
        for k, v in (m.get("data") or m.get("stringData")).items():
            open(f"{s}/{p}/{d}/{k}", "w").write(v)
    os.makedirs(f"{s}/{p}/data", exist_ok=True)
EOF
for d in /conf /tls /data; do
  [ -e "$d" ] || { mkdir "$d"; made_dirs+=("$d"); }
done
ip link add veth-fk9999 type veth peer name veth-fk10000
for p in 9999 10000; do
  ip netns add "fate-k$p"
  mkdir -p "/etc/netns/fate-k$p"
  printf '127.0.0.1 localhost node router\n' >"/etc/netns/fate-k$p/hosts"
done
ip link set veth-fk9999 netns fate-k9999
ip link set veth-fk10000 netns fate-k10000
ip -n fate-k9999 addr add 10.99.0.1/24 dev veth-fk9999
ip -n fate-k10000 addr add 10.99.0.2/24 dev veth-fk10000
for p in 9999 10000; do
  ip -n "fate-k$p" link set lo up
  ip -n "fate-k$p" link set "veth-fk$p" up
done
pod() { # party name conf-dir command...
  local p=$1 name=$2 conf=$3
  shift 3
  ip netns exec "fate-k$p" unshare -m sh -c "mount --bind $S/$p/$conf /conf && \
    mount --bind $S/$p/tls /tls && mount --bind $S/$p/data /data && exec $*" \
    >"$S/$p/$name.log" 2>&1 &
  echo $! >"$S/$p/$name.pid"
}
for p in 9999 10000; do
  pod "$p" router conf-router "$FATE" router --config /conf/router.yaml
  np=$([ "$p" = 9999 ] && echo 30091 || echo 30101)
  ip netns exec "fate-k$p" socat "TCP-LISTEN:$np,fork,reuseaddr" TCP:127.0.0.1:9370 \
    >"$S/$p/nodeport.log" 2>&1 &
  echo $! >"$S/$p/nodeport.pid"
done
sleep 1
for p in 9999 10000; do pod "$p" node conf-node "$FATE" node --config /conf/node.yaml --log-stderr; done
for _ in $(seq 1 60); do
  [ -f "$S/9999/data/admin-app.json" ] && [ -f "$S/10000/data/admin-app.json" ] && break
  sleep 0.5
done
sleep 1
# The readiness probe's request, unsigned.
ip netns exec fate-k9999 python3 -c "import urllib.request as u; print('probe /v2/server/fateflow: HTTP', u.urlopen('http://127.0.0.1:9380/v2/server/fateflow').status)"
app() { python3 -c "import json,sys; print(json.load(open('$S/9999/data/admin-app.json'))[sys.argv[1]])" "$1"; }
FATE_APP_ID=$(app app_id) FATE_APP_TOKEN=$(app app_token) \
  ip netns exec fate-k9999 timeout 120 "$FATE" toy --guest 9999 --host 10000 --api http://10.99.0.1:9380
ip netns exec fate-k9999 unshare -m sh -c "mount --bind $S/9999/conf-node /conf && \
  mount --bind $S/9999/tls /tls && mount --bind $S/9999/data /data && \
  exec $FATE doctor --config /conf/node.yaml"
