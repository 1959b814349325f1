#!/usr/bin/env bash
# Starts a local 3-member Chorus cluster on loopback, as etcd's Procfile does: clients on
# 2379, 22379 and 32379, peers on 2380, 22380 and 32380, /health and /metrics on 2381, 22381
# and 32381, the Redis face on 6379, 26379 and 36379 (16 data groups), data under .run/. Ctrl-C stops every
# member cleanly (SIGTERM: the leader hands over first). With TLS=1 the client and peer URLs
# are https with certificates required on both, from a CA and certificates made on the spot
# under .run-tls/tls/ (the data then lives under .run-tls/).
#
#   [TLS=1] scripts/run-cluster.sh [path/to/chorusd]
set -euo pipefail
cd "$(dirname "$0")/.."
chorusd=${1:-build/rel/src/server/chorusd}
tls=${TLS:-}
[ "$tls" = 0 ] && tls=""
if [ -n "$tls" ]; then data=${RUN_DIR:-.run-tls}; else data=${RUN_DIR:-.run}; fi
mkdir -p "$data"
scheme=http
tls_flags=()
ctl_flags=()
if [ -n "$tls" ]; then
  scheme=https
  pki="$(cd "$data" && pwd)/tls"
  if [ ! -f "$pki/client.crt" ]; then
    mkdir -p "$pki"
    ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    (
      cd "$pki"
      openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 365 -subj /CN=chorus-local-ca
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >member.ext
      printf 'extendedKeyUsage=clientAuth\n' >client.ext
      for name in member client; do
        openssl req -new "${ec[@]}" -keyout "$name.key" -out "$name.csr" -subj "/CN=$name"
        openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
          -out "$name.crt" -days 365 -extfile "$name.ext"
      done
    ) >"$data/tls.log" 2>&1 || { echo "chorus: making certificates failed, see $data/tls.log" >&2; exit 1; }
  fi
  tls_flags=(--cert-file "$pki/member.crt" --key-file "$pki/member.key"
    --trusted-ca-file "$pki/ca.crt" --client-cert-auth
    --peer-cert-file "$pki/member.crt" --peer-key-file "$pki/member.key"
    --peer-trusted-ca-file "$pki/ca.crt" --peer-client-cert-auth)
  ctl_flags=(--cacert "$pki/ca.crt" --cert "$pki/client.crt" --key "$pki/client.key")
fi

names=(infra1 infra2 infra3)
client_ports=(2379 22379 32379)
peer_ports=(2380 22380 32380)
metrics_ports=(2381 22381 32381)
redis_ports=(6379 26379 36379)
cluster=""
for i in 0 1 2; do
  cluster+="${cluster:+,}${names[$i]}=$scheme://127.0.0.1:${peer_ports[$i]}"
done

for p in "${client_ports[@]}" "${peer_ports[@]}" "${metrics_ports[@]}" "${redis_ports[@]}"; do
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
    --listen-client-urls "$scheme://127.0.0.1:${client_ports[$i]}" \
    --advertise-client-urls "$scheme://127.0.0.1:${client_ports[$i]}" ${tls_flags[@]+"${tls_flags[@]}"} \
    --listen-peer-urls "$scheme://127.0.0.1:${peer_ports[$i]}" \
    --initial-advertise-peer-urls "$scheme://127.0.0.1:${peer_ports[$i]}" \
    --listen-metrics-urls "http://127.0.0.1:${metrics_ports[$i]}" \
    --listen-redis-urls "redis://127.0.0.1:${redis_ports[$i]}" --initial-groups 16 \
    --initial-cluster "$cluster" --initial-cluster-token chorus-local \
    --initial-cluster-state new >"$data/${names[$i]}.log" 2>&1 &
  pids+=($!)
done

if [ -n "$tls" ]; then
  endpoints="https://127.0.0.1:2379,https://127.0.0.1:22379,https://127.0.0.1:32379"
else
  endpoints="127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379"
fi
for _ in $(seq 1 100); do
  if ETCDCTL_API=3 etcdctl --endpoints="$endpoints" ${ctl_flags[@]+"${ctl_flags[@]}"} endpoint health >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done

cat <<MSG
Chorus: a 3-member cluster is running on loopback (logs in $data/*.log).

  client endpoints: $endpoints
  peer endpoints:   127.0.0.1:2380, 127.0.0.1:22380, 127.0.0.1:32380
  health, metrics:  http://127.0.0.1:2381/health, http://127.0.0.1:2381/metrics (and 22381, 32381)

Talk to it with etcdctl (Debian's etcd-client):

  export ETCDCTL_API=3 ETCDCTL_ENDPOINTS=$endpoints
MSG
if [ -n "$tls" ]; then
  cat <<MSG
  export ETCDCTL_CACERT=$pki/ca.crt ETCDCTL_CERT=$pki/client.crt ETCDCTL_KEY=$pki/client.key
MSG
fi
cat <<MSG
  etcdctl put greeting hello
  etcdctl get greeting -w json
  etcdctl get --prefix ''
  etcdctl endpoint status -w table
  etcdctl member list -w table

MSG
if [ -n "$tls" ]; then
  cat <<MSG
The JSON gateway, over the same TLS:

  curl -s --cacert \$ETCDCTL_CACERT --cert \$ETCDCTL_CERT --key \$ETCDCTL_KEY \\
    https://127.0.0.1:2379/v3/kv/range -X POST -d '{"key":"Z3JlZXRpbmc="}'

MSG
else
  cat <<MSG
The JSON gateway:

  curl -s http://127.0.0.1:2379/v3/kv/range -X POST -d '{"key":"Z3JlZXRpbmc="}'

MSG
fi
if [ -z "$tls" ]; then
  groups_tool="$(dirname "$chorusd")/chorus-groups"
  cat <<MSG
Data groups (Raft groups of their own beside the etcd keyspace) with chorus-groups:

  $groups_tool create
  $groups_tool put 2 greeting hello
  $groups_tool --endpoint 127.0.0.1:22379 get 2 greeting
  $groups_tool directory

MSG
fi
cat <<MSG
The Redis face (RESP on 6379, 26379 and 36379, plain text; keys spread over data groups 2 to
17, every write fsynced on a quorum before its reply) with redis-cli (Debian's redis-tools):

  redis-cli -p 6379 set greeting hello
  redis-cli -p 26379 get greeting
  redis-cli -p 36379 incr visits
  redis-cli -p 6379 set session:1 token EX 60

Ctrl-C stops the cluster.
MSG
ETCDCTL_API=3 etcdctl --endpoints="$endpoints" ${ctl_flags[@]+"${ctl_flags[@]}"} endpoint status -w table 2>&1 || true

# Waits for Ctrl-C, or for a member to exit on its own.
wait -n "${pids[@]}" || true
echo "chorus: a member exited; see $data/*.log" >&2
exit 1
