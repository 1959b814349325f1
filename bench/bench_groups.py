"""Chorus's data groups in real processes: `make bench-groups`.

Three chorusd members on loopback, real fsync, data on the disk under --dir. Prints one line each:

  idle groups=10000 cpu_per_member=<% of one core> rss_per_group=<bytes>
      10,000 data groups of 3 replicas over the 3 members, measured once every group has a
      leader and has quiesced: CPU over --idle-seconds, and the resident memory beyond that of
      the same cluster with no data groups, per replica (each member hosts 10,000).
  leaders groups=10000 per_member=<a>,<b>,<c>
      how the first leaders spread over the members.
  active groups=N writes_per_s=<n> p99_ms=<x>
      puts (256-byte values, 256 clients) spread over N = 1, 8, 64 groups of a cluster of 64.

With --docs the figures go into docs/BENCHMARKS.md between the bench-groups markers. Exits
non-zero if the groups do not all elect (and quiesce) or a write fails; a goal not met is
reported but is not a failure. --quick is the smoke test's size. Standard library only.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_etcd import Cluster, write_docs  # noqa: E402

BEGIN, END = "<!-- bench-groups: begin -->", "<!-- bench-groups: end -->"
IDLE_CPU_GOAL = 5.0      # % of one core per member
IDLE_RSS_GOAL = 4096     # bytes per idle replica
ACTIVE_GOAL = 2.0        # 64 groups over 1 group


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line.startswith("chorus_groups_"):
                name, value = line.split()
                out[name] = float(value)
        return out


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_groups(cluster, groups, quiesced, timeout):
    """Until every member hosts `groups`, every group has a leader, and (if asked) all sleep."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        ms = [metrics(m["metrics"]) for m in cluster.members]
        last = ms
        hosted = all(m.get("chorus_groups_hosted", 0) == groups for m in ms)
        leading = sum(m.get("chorus_groups_leading", 0) for m in ms)
        awake = sum(m.get("chorus_groups_awake", 0) for m in ms)
        if hosted and leading == groups and (not quiesced or awake == 0):
            return ms
        time.sleep(0.5)
    raise RuntimeError("groups not ready within %d s: %s" % (timeout, last))


def settle_and_sample(cluster, seconds):
    """CPU (% of one core, mean per member) over `seconds`, and the mean resident memory."""
    pids = cluster.pids()
    before = [proc_cpu_seconds(p) for p in pids]
    t0 = time.time()
    time.sleep(seconds)
    after = [proc_cpu_seconds(p) for p in pids]
    elapsed = time.time() - t0
    cpu = sum(a - b for a, b in zip(after, before)) / elapsed / len(pids) * 100
    rss = sum(proc_rss_bytes(p) for p in pids) / len(pids)
    return cpu, rss


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chorusd", required=True)
    p.add_argument("--load", required=True, help="chorus-etcd-load")
    p.add_argument("--dir", default="build/bench-groups")
    p.add_argument("--groups", type=int, default=10000, help="idle groups")
    p.add_argument("--idle-seconds", type=float, default=20)
    p.add_argument("--seconds", type=float, default=8, help="each active run")
    p.add_argument("--active", default="1,8,64", help="group counts of the active runs")
    p.add_argument("--clients", type=int, default=256)
    p.add_argument("--docs", default=None)
    p.add_argument("--quick", action="store_true",
                   help="200 groups, 2 s samples, 1 s runs over 1 and 4 groups (a smoke test)")
    args = p.parse_args()
    if args.quick:
        args.groups, args.idle_seconds, args.seconds, args.active = 200, 2, 1, "1,4"
        args.clients = 16
    os.makedirs(args.dir, exist_ok=True)
    lines = []
    problems = []  # goals not met
    failures = []  # errors

    def report(line):
        print(line)
        sys.stdout.flush()
        lines.append(line)

    # Idle: the same cluster without data groups first, for the memory baseline.
    base = Cluster("chorus", args.chorusd, args.dir)
    try:
        base.start()
        base_cpu, base_rss = settle_and_sample(base, 5)
    finally:
        base.stop()
    idle = Cluster("chorus", args.chorusd, args.dir, ["--initial-groups", str(args.groups)])
    try:
        t0 = time.time()
        idle.start()
        ms = wait_groups(idle, args.groups, True, 300)
        ready_s = time.time() - t0
        time.sleep(2)
        cpu, rss = settle_and_sample(idle, args.idle_seconds)
    finally:
        idle.stop()
    per_replica = (rss - base_rss) / args.groups
    report("idle groups=%d cpu_per_member=%.2f%% rss_per_group=%.0f" % (args.groups, cpu, per_replica))
    leaders = [int(m["chorus_groups_leading"]) for m in ms]
    report("leaders groups=%d per_member=%s" % (args.groups, ",".join(str(x) for x in leaders)))
    print("  (all elected and quiesced %.1f s after start; without data groups a member uses %.2f%% "
          "of a core and %.1f MiB)" % (ready_s, base_cpu, base_rss / 2**20))
    if cpu >= IDLE_CPU_GOAL:
        problems.append("idle CPU %.2f%% per member, goal under %.0f%%" % (cpu, IDLE_CPU_GOAL))
    if per_replica >= IDLE_RSS_GOAL:
        problems.append("%.0f bytes per idle replica, goal under %d" % (per_replica, IDLE_RSS_GOAL))

    # Active: one cluster of max(N) groups; each run spreads puts over the first N.
    counts = [int(x) for x in args.active.split(",")]
    active = Cluster("chorus", args.chorusd, args.dir, ["--initial-groups", str(max(counts))])
    results = {}
    try:
        active.start()
        wait_groups(active, max(counts), False, 120)
        for n in counts:
            out = subprocess.run(
                [args.load, "--endpoints", active.endpoints(), "--scenario", "group-put",
                 "--groups", str(n), "--clients", str(args.clients), "--seconds", str(args.seconds),
                 "--warmup", "0.5" if args.quick else "2", "--server-pids", ",".join(str(x) for x in active.pids())],
                capture_output=True, text=True, check=True).stdout
            r = json.loads(out)
            results[n] = r
            report("active groups=%d writes_per_s=%.0f p99_ms=%.1f" % (
                n, r["ops_per_s"], r["p99_us"] / 1e3))
            if r["errors"] or r["ops"] == 0:
                failures.append("%d groups: %d errors (%s)" % (n, r["errors"], r.get("first_error")))
    finally:
        active.stop()
    if 1 in results and max(counts) in results:
        ratio = results[max(counts)]["ops_per_s"] / max(results[1]["ops_per_s"], 1)
        print("  %d groups / 1 group: x%.2f (goal x%.1f)" % (max(counts), ratio, ACTIVE_GOAL))
        if ratio < ACTIVE_GOAL:
            problems.append("%d groups give x%.2f the writes of 1, goal x%.1f" % (
                max(counts), ratio, ACTIVE_GOAL))

    if args.docs:
        now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        section = ("Command: `make bench-groups` (`bench/bench_groups.py`), %s: three chorusd "
                   "members on loopback, real fsync, %g s of idle sampling and %g s per active run "
                   "(%d clients, 256-byte values).\n\n```\n%s\n```\n" % (
                       now, args.idle_seconds, args.seconds, args.clients, "\n".join(lines)))
        write_docs(args.docs, section, BEGIN, END)
    for line in problems:
        print("bench-groups: GOAL NOT MET: " + line, file=sys.stderr)
    for line in failures:
        print("bench-groups: FAILED: " + line, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
