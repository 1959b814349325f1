#!/usr/bin/env bash
# Installs the Debian packages Chorus needs to build and test, only those that are missing.
# Uses sudo when not root. Safe to run repeatedly.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  librocksdb-dev libjemalloc-dev
  clang clang-format libclang-rt-14-dev
  libgrpc++-dev libabsl-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libssl-dev
  libasio-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  etcd-client curl python3 openssl
  iproute2 iptables faketime python3-grpcio python3-protobuf python3-etcd3
  redis-tools python3-redis
)

# `--bench` adds what the benchmarks compare against: etcd 3.4 (Debian's etcd-server) for
# `make bench-etcd`, redis-server 7 for `make bench-redis`.
bench_packages=(etcd-server redis-server)
if [ "${1:-}" = "--bench" ]; then
  packages=("${bench_packages[@]}")
fi
# `--redis-suite`: tclsh, which runs Redis's own tests (`make test-redis-suite`).
if [ "${1:-}" = "--redis-suite" ]; then
  packages=(tcl)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
fi

echo "chorus: installing missing packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if [ "${1:-}" = "--bench" ] && [ ! -e /usr/sbin/policy-rc.d ]; then
  # etcd-server's package starts a system etcd on port 2379 where it can. The benchmark starts
  # its own on free ports, and a system one would hold `make run`'s port: no services started.
  printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${sudo_cmd[@]}" chmod +x /usr/sbin/policy-rc.d
  trap '"${sudo_cmd[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
