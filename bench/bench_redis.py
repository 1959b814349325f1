"""Chorus's Redis face beside redis-server 7 (Debian's), in one run on this machine: Debian's
redis-benchmark drives, at 50 clients unpipelined and with -P 16,
  - redis-server with appendonly yes, appendfsync always (the durable single node),
  - redis-server with no persistence,
  - a 3-member Chorus cluster on loopback (16 data groups, every write fsynced on a quorum
    before its reply), against its first member.
It prints one table with the ratios and, with --docs, writes it into docs/BENCHMARKS.md between
the bench-redis markers.

    python3 bench/bench_redis.py --chorusd build/rel/src/server/chorusd [--requests 100000]
"""

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from cluster import free_ports, redis_slot  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_etcd import write_docs  # noqa: E402

BEGIN, END = "<!-- bench-redis: begin -->", "<!-- bench-redis: end -->"
# redis-benchmark's tests that Chorus serves; xadd waits for streams.
TESTS = "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,mset"


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port, timeout=30, check=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = subprocess.run(["redis-cli", "-p", str(port), "SET", "bench:probe", "1"],
                           capture_output=True, text=True)
        if p.returncode == 0 and p.stdout.strip() == "OK" and (check is None or check()):
            return
        time.sleep(0.2)
    raise RuntimeError("port %d does not answer SET" % port)


class RedisServer:
    def __init__(self, binary, root, durable):
        self.port = free_ports(1)[0]
        self.dir = os.path.join(root, "redis-%s" % ("aof" if durable else "mem"))
        os.makedirs(self.dir, exist_ok=True)
        args = [binary, "--port", str(self.port), "--dir", self.dir, "--save", "",
                "--bind", "127.0.0.1", "--daemonize", "no"]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if durable else \
            ["--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pids = [self.proc.pid]
        wait_port(self.port)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


class ChorusCluster:
    def __init__(self, chorusd, root, groups):
        ports = free_ports(9)
        names = ["r1", "r2", "r3"]
        peers = {n: ports[3 * i + 1] for i, n in enumerate(names)}
        initial = ",".join("%s=http://127.0.0.1:%d" % (n, peers[n]) for n in names)
        self.port = ports[2]
        self.procs = []
        for i, n in enumerate(names):
            data = os.path.join(root, n)
            shutil.rmtree(data, ignore_errors=True)
            args = [chorusd, "--name", n, "--data-dir", data,
                    "--listen-client-urls", "http://127.0.0.1:%d" % ports[3 * i],
                    "--advertise-client-urls", "http://127.0.0.1:%d" % ports[3 * i],
                    "--listen-peer-urls", "http://127.0.0.1:%d" % peers[n],
                    "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peers[n],
                    "--initial-cluster", initial, "--initial-cluster-token", "bench-redis",
                    "--initial-groups", str(groups),
                    "--listen-redis-urls", "redis://127.0.0.1:%d" % ports[3 * i + 2],
                    "--log-level", "warn"]
            log = open(os.path.join(root, n + ".log"), "wb")
            self.procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
        self.pids = [p.pid for p in self.procs]
        # Every group answers a write through the first member.
        probes = {}
        i = 0
        while len(probes) < groups and i < 100000:
            probes.setdefault(group_of("probe:%d" % i, groups), "probe:%d" % i)
            i += 1

        def all_groups():
            for key in probes.values():
                p = subprocess.run(["redis-cli", "-p", str(self.port), "SET", key, "1"],
                                   capture_output=True, text=True)
                if p.stdout.strip() != "OK":
                    return False
            return True
        wait_port(self.port, timeout=60, check=all_groups)

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=60)


def group_of(key, groups):
    return 2 + redis_slot(key) * groups // 16384


def benchmark(port, pids, requests, pipeline, tests):
    """{test: (requests per second, p50 ms, server CPU microseconds per request)}"""
    out = {}
    for test in tests:
        cpu0 = sum(proc_cpu_seconds(p) for p in pids)
        args = ["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(requests), "-t", test,
                "-P", str(pipeline), "--csv"]
        p = subprocess.run(args, capture_output=True, text=True, timeout=1800)
        cpu = sum(proc_cpu_seconds(p) for p in pids) - cpu0
        rows = list(csv.reader(io.StringIO(p.stdout)))
        for row in rows[1:]:
            if not row or row[0] == "test":
                continue
            name = row[0].split(" ")[0].lower()
            if name.startswith("lpush") and test == "lrange_100":
                continue  # the LPUSH that fills the list for LRANGE
            rps = float(row[1])
            p50 = float(row[4]) if len(row) > 4 else 0.0
            out[test] = (rps, p50, cpu / (requests if requests else 1) * 1e6)
        if test not in out:
            out[test] = (0.0, 0.0, 0.0)
        print("  %-11s -P %-2d %10.0f req/s  p50 %6.2f ms  %6.1f us CPU/req" %
              ((test, pipeline) + out[test]), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chorusd", required=True)
    ap.add_argument("--redis-server", default="/usr/bin/redis-server")
    ap.add_argument("--requests", type=int, default=100000)
    ap.add_argument("--groups", type=int, default=16)
    ap.add_argument("--tests", default=TESTS, help="redis-benchmark's -t names, comma separated")
    ap.add_argument("--systems", default="redis-aof,redis-mem,chorus")
    ap.add_argument("--docs", default=None)
    args = ap.parse_args()
    tests = args.tests.split(",")
    systems = args.systems.split(",")
    root = tempfile.mkdtemp(prefix="chorus-bench-redis-")
    results = {}
    try:
        for system in systems:
            print("%s:" % system, flush=True)
            if system == "chorus":
                s = ChorusCluster(args.chorusd, root, args.groups)
            else:
                s = RedisServer(args.redis_server, root, system == "redis-aof")
            try:
                for pipeline in (1, 16):
                    n = args.requests * (4 if pipeline > 1 else 1)
                    results[(system, pipeline)] = benchmark(s.port, s.pids, n, pipeline, tests)
            finally:
                s.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    if systems != ["redis-aof", "redis-mem", "chorus"]:
        return  # the table compares all three
    lines = []
    for pipeline in (1, 16):
        lines.append("")
        lines.append("%s, 50 clients:" % ("unpipelined" if pipeline == 1 else "-P 16"))
        lines.append("")
        lines.append("| test | redis AOF always, req/s | redis no persistence, req/s | Chorus, "
                     "req/s (p50 ms, server CPU us/req) | Chorus / AOF | Chorus / no persistence |")
        lines.append("| --- | --- | --- | --- | --- | --- |")
        for test in tests:
            aof = results[("redis-aof", pipeline)][test][0]
            mem = results[("redis-mem", pipeline)][test][0]
            c = results[("chorus", pipeline)][test]
            lines.append("| %s | %s | %s | %s (%.2f, %.0f) | %.2f | %.2f |" % (
                test, format(int(aof), ","), format(int(mem), ","), format(int(c[0]), ","),
                c[1], c[2], c[0] / aof if aof else 0, c[0] / mem if mem else 0))
    table = "\n".join(lines)
    print(table)
    if args.docs:
        stamp = time.strftime("%Y-%m-%d %H:%M")
        section = ("Command: `make bench-redis` (`bench/bench_redis.py`), %s: redis-benchmark, "
                   "%d requests per test unpipelined and %d with -P 16; Chorus with %d data "
                   "groups, redis-benchmark against its first member.\n%s\n" % (
                       stamp, args.requests, args.requests * 4, args.groups, table))
        write_docs(args.docs, section, BEGIN, END)


if __name__ == "__main__":
    main()
