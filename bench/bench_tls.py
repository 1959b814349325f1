"""Chorus and etcd 3.4 over TLS, side by side: three members of each with https client URLs and
--client-cert-auth (certificates made here with the openssl command, as the TLS tests make
them), put and linearizable get at 256 clients from chorus-etcd-load presenting a client
certificate, the two systems alternating, twice.

    python3 bench/bench_tls.py --chorusd build/rel/src/server/chorusd \
        --load build/rel/bench/chorus-etcd-load [--etcd /usr/bin/etcd]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from cluster import ETCDCTL, free_ports  # noqa: E402
from test_tls import Pki  # noqa: E402


def run(kind, binary, load, root, pki, seconds):
    tls = ["--cert-file", pki.path("server.crt"), "--key-file", pki.path("server.key"),
           "--trusted-ca-file", pki.path("ca.crt"), "--client-cert-auth"]
    client_tls = ["--cacert", pki.path("ca.crt"), "--cert", pki.path("client.crt"),
                  "--key", pki.path("client.key")]
    ports = free_ports(6)
    members = [("%s%d" % (kind, i), ports[2 * i], ports[2 * i + 1]) for i in range(3)]
    initial = ",".join("%s=http://127.0.0.1:%d" % (n, p) for n, _, p in members)
    procs = []
    for name, client, peer in members:
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        args = [binary, "--name", name, "--data-dir", os.path.join(root, name),
                "--listen-client-urls", "https://127.0.0.1:%d" % client,
                "--advertise-client-urls", "https://127.0.0.1:%d" % client,
                "--listen-peer-urls", "http://127.0.0.1:%d" % peer,
                "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer,
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", "tls-" + kind, "--heartbeat-interval", "100",
                "--election-timeout", "1000", "--log-level", "warn"] + tls
        if kind == "etcd":
            args += ["--logger", "zap"]
        with open(os.path.join(root, name + ".log"), "ab") as log:
            procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
    env = dict(os.environ, ETCDCTL_API="3")
    endpoints = ",".join("127.0.0.1:%d" % c for _, c, _ in members)
    ctl = [ETCDCTL, "--endpoints", endpoints] + client_tls
    try:
        deadline = time.time() + 60
        while subprocess.run(ctl + ["endpoint", "health"], capture_output=True,
                             env=env).returncode != 0:
            if time.time() > deadline:
                raise RuntimeError("%s over TLS not healthy; logs in %s" % (kind, root))
            time.sleep(0.3)
        status = json.loads(subprocess.run(ctl + ["endpoint", "status", "-w", "json"],
                                           capture_output=True, text=True, env=env).stdout)
        leader = status[0]["Status"]["leader"]
        status.sort(key=lambda s: s["Status"]["header"]["member_id"] != leader)  # leader first
        pids = ",".join(str(p.pid) for p in procs)
        for scenario in ("put", "get"):
            out = subprocess.run([load, "--endpoints", ",".join(s["Endpoint"] for s in status),
                                  "--scenario", scenario, "--clients", "256", "--seconds",
                                  str(seconds), "--warmup", "1", "--server-pids", pids]
                                 + client_tls, capture_output=True, text=True, timeout=300)
            if out.returncode != 0:
                raise RuntimeError("chorus-etcd-load failed: " + out.stderr[-2000:])
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print("%-6s %-3s %8.0f ops/s  p99 %6.1f ms  %5.0f us CPU/op" %
                  (kind, scenario, r["ops_per_s"], r["p99_us"] / 1000, r["server_cpu_us_per_op"]),
                  flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chorusd", required=True)
    parser.add_argument("--load", required=True)
    parser.add_argument("--etcd", default=shutil.which("etcd") or "/usr/bin/etcd")
    parser.add_argument("--seconds", type=int, default=6)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="chorus-bench-tls-")
    try:
        pki = Pki(root)
        for kind, binary in (("etcd", args.etcd), ("chorus", args.chorusd)) * 2:
            run(kind, os.path.abspath(binary), os.path.abspath(args.load), root, pki,
                args.seconds)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
