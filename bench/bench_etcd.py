"""Chorus beside etcd 3.4 on the same machine, in one run: `make bench-etcd`.

Starts a fresh 3-member etcd cluster (Debian's etcd-server, default fsync behaviour) and a fresh
3-member Chorus cluster on loopback, both with their data on the same disk, then runs every
scenario of chorus-etcd-load against each in turn (alternating which goes first), and prints one
table with both and their ratios. With --docs it writes the table into docs/BENCHMARKS.md
(between the bench-etcd markers) and with --svg a chart of the ratios.

    /usr/bin/python3 bench/bench_etcd.py --load build/rel/bench/chorus-etcd-load \\
        --chorusd build/rel/src/server/chorusd [--seconds 8] [--docs docs/BENCHMARKS.md]

Standard library only. Exits non-zero if any scenario saw an error, a missed watch event, or no
operation at all.
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from cluster import free_ports  # noqa: E402  (the integration tests' helper)

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"

# (name, what it is, chorus-etcd-load arguments)
SCENARIOS = [
    ("put-1", "put, 1 client", ["--scenario", "put", "--clients", "1"]),
    ("put-16", "put, 16 clients", ["--scenario", "put", "--clients", "16"]),
    ("put-256", "put, 256 clients", ["--scenario", "put", "--clients", "256"]),
    ("put-1024", "put, 1,024 clients", ["--scenario", "put", "--clients", "1024"]),
    ("get-256", "linearizable get, 256 clients",
     ["--scenario", "get", "--clients", "256", "--keys", "10000"]),
    ("get-serial-256", "serializable get, 256 clients",
     ["--scenario", "get-serial", "--clients", "256", "--keys", "10000"]),
    ("txn-256", "txn (compare mod_revision, put), 256 clients",
     ["--scenario", "txn", "--clients", "256"]),
    ("mix-256", "90 % get / 10 % put, 256 clients",
     ["--scenario", "mix", "--clients", "256", "--keys", "10000"]),
    ("put-64k-16", "put 64 KiB values, 16 clients",
     ["--scenario", "put", "--clients", "16", "--value-size", "65536", "--keys", "1000"]),
    ("watch-1000", "watch fan-out: 1,000 watchers, 100 puts/s",
     ["--scenario", "watch", "--watchers", "1000", "--rate", "100"]),
]
# --quick: the same scenarios, small enough for a smoke test under a sanitizer.
QUICK = {"--clients": "4", "--keys": "200", "--watchers": "20", "--rate": "20",
         "--value-size": "8192"}

# The goals of the benchmark: (scenario, metric, how the ratio Chorus / etcd must compare, bound)
GOALS = [
    ("put-256", "ops_per_s", ">=", 3.0, "put at 256 clients: throughput"),
    ("put-256", "server_cpu_us_per_op", "<=", 1 / 3, "put at 256 clients: server CPU per put"),
    ("put-256", "p99_us", "<=", 0.5, "put at 256 clients: p99 latency"),
    ("put-1", "p50_us", "<=", 1.0, "put with 1 client: p50 latency"),
    ("get-256", "ops_per_s", ">=", 4.0, "linearizable get at 256 clients: throughput"),
    ("get-serial-256", "ops_per_s", ">=", 4.0, "serializable get at 256 clients: throughput"),
    ("txn-256", "ops_per_s", ">=", 3.0, "txn at 256 clients: throughput"),
    ("watch-1000", "p99_us", "<=", 0.5, "watch fan-out: event latency p99"),
    ("@memory", "peak_rss_mib", "<=", 0.5, "peak resident memory of the 3 members"),
]


class Cluster:
    """Three members of etcd or Chorus on loopback, with the same timing settings."""

    def __init__(self, kind, binary, root, extra_args=()):
        self.kind = kind
        self.extra_args = list(extra_args)
        self.binary = binary
        self.root = os.path.join(root, kind)
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.root)
        ports = free_ports(9)
        self.members = [{"name": "%s%d" % (kind, i + 1), "client": ports[3 * i],
                         "peer": ports[3 * i + 1], "metrics": ports[3 * i + 2]}
                        for i in range(3)]
        self.procs = []

    def endpoints(self):
        return ",".join("127.0.0.1:%d" % m["client"] for m in self.members)

    def start(self):
        initial = ",".join("%s=http://127.0.0.1:%d" % (m["name"], m["peer"]) for m in self.members)
        for m in self.members:
            client = "http://127.0.0.1:%d" % m["client"]
            peer = "http://127.0.0.1:%d" % m["peer"]
            args = [self.binary, "--name", m["name"],
                    "--data-dir", os.path.join(self.root, m["name"]),
                    "--listen-client-urls", client, "--advertise-client-urls", client,
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", initial, "--initial-cluster-state", "new",
                    "--initial-cluster-token", "bench-" + self.kind,
                    "--heartbeat-interval", "100", "--election-timeout", "1000",
                    "--listen-metrics-urls", "http://127.0.0.1:%d" % m["metrics"]]
            if self.kind == "etcd":
                args += ["--logger", "zap", "--log-level", "warn"]
            else:
                args += ["--log-level", "warn"]
            args += self.extra_args
            log = open(os.path.join(self.root, m["name"] + ".log"), "ab")
            self.procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
            log.close()
        deadline = time.time() + 120
        while time.time() < deadline:
            p = subprocess.run([ETCDCTL, "--endpoints", self.endpoints(), "endpoint", "health"],
                               capture_output=True, text=True, env=dict(os.environ, ETCDCTL_API="3"))
            if p.returncode == 0:
                return
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError("%s exited while starting; logs in %s" % (self.kind, self.root))
            time.sleep(0.3)
        raise RuntimeError("%s cluster not healthy within 120 s; logs in %s" % (self.kind, self.root))

    def endpoints_leader_first(self):
        """The endpoints with the leader's first, so a scenario's connections are spread the same
        way on both systems (one client talks to the leader; many are spread round robin)."""
        p = subprocess.run([ETCDCTL, "--endpoints", self.endpoints(), "endpoint", "status",
                            "-w", "json"], capture_output=True, text=True,
                           env=dict(os.environ, ETCDCTL_API="3"))
        eps = self.endpoints().split(",")
        try:
            statuses = json.loads(p.stdout)
        except ValueError:
            return eps
        for st in statuses:
            s = st.get("Status", {})
            if s.get("leader") and s["header"].get("member_id") == s["leader"]:
                lead = st["Endpoint"]
                return [lead] + [e for e in eps if e != lead]
        return eps

    def pids(self):
        return [p.pid for p in self.procs]

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def raw_fdatasync_rate(directory, seconds=2.0):
    """4 KiB write + fdatasync in a loop on the benchmark's disk: the best a log could do."""
    path = os.path.join(directory, "raw-fdatasync")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.posix_fallocate(fd, 0, 64 << 20)
        os.fsync(fd)
        block = b"x" * 4096
        n, start = 0, time.time()
        while time.time() - start < seconds:
            os.pwrite(fd, block, (n % 16384) * 4096)
            os.fdatasync(fd)
            n += 1
        return n / (time.time() - start)
    finally:
        os.close(fd)
        os.unlink(path)


def core_ceiling(bench_raft):
    """Entries per second the Raft core alone commits in batches of 64 (make bench)."""
    if not bench_raft or not os.path.exists(bench_raft):
        return None
    p = subprocess.run([bench_raft, "--benchmark_filter=BM_CommitSmallEntries/64$",
                        "--benchmark_min_time=0.3", "--benchmark_format=json"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return None
    runs = json.loads(p.stdout)["benchmarks"]
    return runs[0].get("entries_per_s") if runs else None


def run_scenario(args, cluster, extra):
    cmd = [args.load, "--endpoints", ",".join(cluster.endpoints_leader_first()),
           "--seconds", str(args.seconds),
           "--warmup", str(args.warmup), "--server-pids", ",".join(map(str, cluster.pids()))]
    cmd += extra
    p = subprocess.run(cmd, capture_output=True, text=True,
                       timeout=args.seconds + args.warmup + 300)
    try:
        result = json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError("chorus-etcd-load failed (%d) on %s: %s %s" % (
            p.returncode, cluster.kind, p.stdout, p.stderr))
    result["exit_code"] = p.returncode
    return result


def with_quick(extra):
    out = list(extra)
    for i in range(0, len(out) - 1):
        if out[i] in QUICK:
            out[i + 1] = QUICK[out[i]]
    if "--clients" not in out and out[1] != "watch":
        out += ["--clients", QUICK["--clients"]]
    return out


def throughput(r):
    return r.get("ops_per_s", r.get("events_per_s", 0.0))


def cpu_per_op(r):
    return r.get("server_cpu_us_per_op", 0.0)


def ms(us):
    return "%.1f" % (us / 1000.0) if us >= 100 else "%.2f" % (us / 1000.0)


def ratio(a, b):
    return a / b if b else float("inf")


def problems_of(name, kind, r):
    out = []
    if r.get("exit_code"):
        out.append("exit code %d" % r["exit_code"])
    if r.get("errors"):
        out.append("%d errors (first: %s)" % (r["errors"], r.get("first_error", "")))
    if r.get("missed"):
        out.append("%d watch events missed" % r["missed"])
    if r.get("broken_streams"):
        out.append("%d watch streams broken" % r["broken_streams"])
    if throughput(r) <= 0:
        out.append("no operation completed")
    return ["%s on %s: %s" % (name, kind, p) for p in out]


def table(results, systems, labels):
    """Markdown: one row per scenario, both systems and the ratios Chorus / etcd."""
    both = len(systems) == 2
    head = ["scenario"]
    for s in systems:
        head += ["%s ops/s" % s, "%s p50 / p99 / p99.9 ms" % s, "%s CPU us/op" % s]
    if both:
        head += ["throughput x", "p99 x", "CPU/op x"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, label in labels:
        row = [label]
        rs = [results[s].get(name) for s in systems]
        if any(r is None for r in rs):
            continue
        for r in rs:
            row += ["{:,.0f}".format(throughput(r)),
                    "%s / %s / %s" % (ms(r["p50_us"]), ms(r["p99_us"]), ms(r["p999_us"])),
                    "%.0f" % cpu_per_op(r)]
        if both:
            e, c = rs
            row += ["%.2f" % ratio(throughput(c), throughput(e)),
                    "%.2f" % ratio(c["p99_us"], e["p99_us"]),
                    "%.2f" % ratio(cpu_per_op(c), cpu_per_op(e))]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def goal_rows(results):
    rows = ["| goal (Chorus / etcd) | measured | met |", "| --- | --- | --- |"]
    for name, metric, op, bound, what in GOALS:
        if name == "@memory":
            e, c = results["etcd"].get("@memory"), results["chorus"].get("@memory")
            if e is None or c is None:
                continue
            value = ratio(c, e)
        else:
            e, c = results["etcd"].get(name), results["chorus"].get(name)
            if e is None or c is None:
                continue
            if metric == "ops_per_s":
                value = ratio(throughput(c), throughput(e))
            else:
                value = ratio(c.get(metric, 0.0), e.get(metric, 0.0))
        met = value >= bound if op == ">=" else value <= bound
        rows.append("| %s %s %.2f | %.2f | %s |" % (what, op, bound, value, "yes" if met else "no"))
    return "\n".join(rows)


def svg_chart(results, labels, path):
    """Horizontal bars: Chorus's throughput over etcd's per scenario, lines at 1x and 3x."""
    rows = [(label, ratio(throughput(results["chorus"][n]), throughput(results["etcd"][n])))
            for n, label in labels if n in results["chorus"] and n in results["etcd"]]
    if not rows:
        return
    width, left, bar_h, gap, top = 760, 330, 18, 8, 40
    scale_max = max(4.0, max(v for _, v in rows) * 1.1)
    px = (width - left - 30) / scale_max
    height = top + len(rows) * (bar_h + gap) + 40
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="22" font-size="14">Chorus throughput / etcd 3.4 throughput '
           '(same machine, same run)</text>']
    for i, (label, v) in enumerate(rows):
        y = top + i * (bar_h + gap)
        color = "#2b8a3e" if v >= 1 else "#c92a2a"
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (left - 8, y + 13, label))
        out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>' % (
            left, y, v * px, bar_h, color))
        out.append('<text x="%.1f" y="%d">%.2fx</text>' % (left + v * px + 4, y + 13, v))
    bottom = top + len(rows) * (bar_h + gap)
    for mark, name in ((1.0, "1x"), (3.0, "3x goal")):
        x = left + mark * px
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#555" stroke-dasharray="4,3"/>'
                   % (x, top - 6, x, bottom))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (x, bottom + 16, name))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


BEGIN, END = "<!-- bench-etcd: begin -->", "<!-- bench-etcd: end -->"


def write_docs(path, section, begin=BEGIN, end=END):
    """Replaces the text between the markers `begin` and `end` in `path` (or appends it)."""
    text = "# Benchmarks\n"
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    block = begin + "\n" + section.rstrip() + "\n" + end
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--load", required=True, help="chorus-etcd-load")
    p.add_argument("--chorusd", required=True)
    p.add_argument("--etcd", default=ETCD)
    p.add_argument("--bench-raft", default=None, help="chorus-bench-raft, for the core's ceiling")
    p.add_argument("--systems", default="etcd,chorus")
    p.add_argument("--scenarios", default="all", help="names, comma separated, or all")
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--quick", action="store_true", help="small loads (a smoke test)")
    p.add_argument("--dir", default="build/bench-etcd", help="the clusters' data (the same disk)")
    p.add_argument("--docs", default=None, help="write the section into this Markdown file")
    p.add_argument("--svg", default=None)
    p.add_argument("--json", default=None, help="write every result here")
    args = p.parse_args()

    systems = args.systems.split(",")
    for s in systems:
        if s not in ("etcd", "chorus"):
            p.error("unknown system %s" % s)
    if "etcd" in systems and not os.path.exists(args.etcd):
        print("bench-etcd: no etcd at %s (Debian's etcd-server: scripts/install-deps.sh --bench)"
              % args.etcd, file=sys.stderr)
        return 2
    chosen = [s for s in SCENARIOS if args.scenarios == "all" or s[0] in args.scenarios.split(",")]
    if not chosen:
        p.error("no scenario matches %s" % args.scenarios)
    os.makedirs(args.dir, exist_ok=True)
    fsync_rate = raw_fdatasync_rate(args.dir)
    ceiling = core_ceiling(args.bench_raft)
    print("bench-etcd: disk %s: %.0f raw 4 KiB fdatasyncs/s; %d scenario(s) of %.0f s on %s" % (
        os.path.abspath(args.dir), fsync_rate, len(chosen), args.seconds, " and ".join(systems)))
    sys.stdout.flush()

    clusters = {}
    results = {s: {} for s in systems}
    problems = []
    try:
        for s in systems:
            clusters[s] = Cluster(s, args.etcd if s == "etcd" else args.chorusd, args.dir)
            clusters[s].start()
        for i, (name, label, extra) in enumerate(chosen):
            if args.quick:
                extra = with_quick(extra)
            order = systems if i % 2 == 0 else list(reversed(systems))
            for s in order:
                r = run_scenario(args, clusters[s], extra)
                results[s][name] = r
                problems += problems_of(name, s, r)
                print("  %-15s %-6s %10.0f ops/s  p50 %8.2f ms  p99 %8.2f ms  CPU %6.0f us/op" % (
                    name, s, throughput(r), r["p50_us"] / 1e3, r["p99_us"] / 1e3, cpu_per_op(r)))
                sys.stdout.flush()
        for s in systems:
            # VmHWM: the peak since each member started, over the whole run.
            results[s]["@memory"] = max(r.get("server_peak_rss_mib", 0.0)
                                        for n, r in results[s].items() if not n.startswith("@"))
    finally:
        for c in clusters.values():
            c.stop()

    labels = [(n, l) for n, l, _ in chosen]
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    version = ""
    if "etcd" in systems and os.path.exists(args.etcd):
        version = subprocess.run([args.etcd, "--version"], capture_output=True, text=True).stdout
    version = version.splitlines()[0] if version else "etcd"
    lines = ["Command: `make bench-etcd` (`bench/bench_etcd.py`), %s, %g s per scenario after %g s"
             " of warm-up, 256-byte values unless stated; %s and Chorus, 3 members each on loopback,"
             " data on the same disk; load from `chorus-etcd-load` on the same machine.%s" % (
                 now, args.seconds, args.warmup, version.replace("etcd Version: ", "etcd "),
                 " QUICK RUN (--quick): 4 clients, 8 KiB for the large values and 20 watchers, not the"
                 " loads named below."
                 if args.quick else ""),
             "",
             "Reference lines: the disk's raw rate is %.0f 4 KiB fdatasyncs/s%s." % (
                 fsync_rate, "; the Raft core alone commits %.2f M entries/s in batches of 64 "
                 "(`chorus-bench-raft`)" % (ceiling / 1e6) if ceiling else ""),
             "",
             table(results, systems, labels)]
    if len(systems) == 2:
        lines += ["", "Peak resident memory of the three members over the whole run (VmHWM, "
                  "summed): etcd %.0f MiB, Chorus %.0f MiB." % (
                      results["etcd"]["@memory"], results["chorus"]["@memory"]),
                  "", goal_rows(results)]
    section = "\n".join(lines) + "\n"
    print()
    print(section)
    if args.docs:
        write_docs(args.docs, section + ("\n![Chorus throughput over etcd's](%s)\n" % os.path.relpath(
            args.svg, os.path.dirname(args.docs)) if args.svg else ""))
    if args.svg and len(systems) == 2:
        svg_chart(results, labels, args.svg)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"fdatasync_per_s": fsync_rate, "core_entries_per_s": ceiling,
                       "results": results}, f, indent=1)
    for line in problems:
        print("bench-etcd: PROBLEM: " + line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
