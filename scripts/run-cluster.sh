#!/usr/bin/env bash
# Starts a local 3-member Chorus cluster on loopback, as etcd's Procfile does: clients on
# 2379, 22379 and 32379, peers on 2380, 22380 and 32380, /health and /metrics on 2381, 22381
# and 32381, data under .run/. Ctrl-C stops every
# member cleanly (SIGTERM: the leader hands over first).
#
#   scripts/run-cluster.sh [path/to/chorusd]
set -euo pipefail
cd "$(dirname "$0")/.."
chorusd=${1:-build/rel/src/server/chorusd}
data=${RUN_DIR:-.run}
mkdir -p "$data"

names=(infra1 infra2 infra3)
client_ports=(2379 22379 32379)
peer_ports=(2380 22380 32380)
metrics_ports=(2381 22381 32381)
cluster=""
for i in 0 1 2; do
  cluster+="${cluster:+,}${names[$i]}=http://127.0.0.1:${peer_ports[$i]}"
done

for p in "${client_ports[@]}" "${peer_ports[@]}" "${metrics_ports[@]}"; do
  if (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then
    echo "chorus: port $p is in use (another cluster running?); stop it first" >&2
    exit 1
  fi
done

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "chorus: stopping the cluster"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
  echo "chorus: stopped; data kept in $data/ (rm -rf $data to start afresh)"
  exit 0
}
trap stop INT TERM EXIT

for i in 0 1 2; do
  "$chorusd" --name "${names[$i]}" --data-dir "$data/${names[$i]}" \
    --listen-client-urls "http://127.0.0.1:${client_ports[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${client_ports[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${peer_ports[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${peer_ports[$i]}" \
    --listen-metrics-urls "http://127.0.0.1:${metrics_ports[$i]}" \
    --initial-cluster "$cluster" --initial-cluster-token chorus-local \
    --initial-cluster-state new >"$data/${names[$i]}.log" 2>&1 &
  pids+=($!)
done

endpoints="127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379"
for _ in $(seq 1 100); do
  if ETCDCTL_API=3 etcdctl --endpoints="$endpoints" endpoint health >/dev/null 2>&1; then break; fi
  sleep 0.1
done

cat <<MSG
Chorus: a 3-member cluster is running on loopback (logs in $data/*.log).

  client endpoints: $endpoints
  peer endpoints:   127.0.0.1:2380, 127.0.0.1:22380, 127.0.0.1:32380
  health, metrics:  http://127.0.0.1:2381/health, http://127.0.0.1:2381/metrics (and 22381, 32381)

Talk to it with etcdctl (Debian's etcd-client):

  export ETCDCTL_API=3 ETCDCTL_ENDPOINTS=$endpoints
  etcdctl put greeting hello
  etcdctl get greeting -w json
  etcdctl get --prefix ''
  etcdctl endpoint status -w table
  etcdctl member list -w table

Ctrl-C stops the cluster.
MSG
ETCDCTL_API=3 etcdctl --endpoints="$endpoints" endpoint status -w table 2>&1 || true

# Waits for Ctrl-C, or for a member to exit on its own.
wait -n "${pids[@]}" || true
echo "chorus: a member exited; see $data/*.log" >&2
exit 1
