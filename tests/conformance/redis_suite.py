"""Redis's own test suite as the Redis face's conformance measure.

Runs Redis 7.0's TCL tests (fetched by scripts/fetch-redis-suite.sh from Debian's source package)
in external-server mode against one member of a fresh 3-member Chorus cluster, unit by unit, and
prints `N passed, N failed`. Tests that need DEBUG, replication, persistence or maxmemory are left
out by their tags, as Redis's own external mode does; the same flags on redis-server 7.0.15 pass
the REFERENCE counts below (measure again with --reference). A test that a unit never reached
(the unit stopped on an error outside any test) counts as failed.

  /usr/bin/python3 tests/conformance/redis_suite.py --chorusd build/rel/src/server/chorusd \
      --suite build/redis-suite/redis-7.0.15 [--units type/string,...] [--report FILE]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from cluster import Cluster, free_ports  # noqa: E402

# Tests each unit passes on redis-server 7.0.15 (Debian 12's) with the flags of run_unit, on this
# kind of machine: 1,081 in all.
REFERENCE = {
    "type/string": 75, "type/incr": 23, "type/hash": 72, "type/list": 219, "type/set": 95,
    "type/zset": 308, "type/stream": 63, "type/stream-cgroups": 48, "expire": 58,
    "keyspace": 42, "multi": 32, "pubsub": 29, "scan": 17,
}
UNITS = list(REFERENCE)
SKIPPED_TAGS = ["needs:debug", "needs:repl", "needs:save", "needs:config-maxmemory"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_unit(suite, port, unit, timeout):
    """Runs one unit; returns (passed names, failed [(name, detail)], stopped reason or None)."""
    cmd = ["tclsh", "tests/test_helper.tcl", "--host", "127.0.0.1", "--port", str(port),
           "--singledb", "--ignore-encoding", "--ignore-digest", "--durable",
           "--timeout", str(timeout), "--single", "unit/" + unit]
    for tag in SKIPPED_TAGS:
        cmd += ["--tags", "-" + tag]
    try:
        p = subprocess.run(cmd, cwd=suite, capture_output=True, text=True, timeout=timeout + 60,
                           errors="replace")
        out = ANSI.sub("", p.stdout + p.stderr)
    except subprocess.TimeoutExpired as e:
        out = ANSI.sub("", (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes)
                       else (e.stdout or ""))
        out += "\n[exception]: the unit ran past %d s\n" % (timeout + 60)
    passed, failed, stopped = [], [], None
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("[ok]: "):
            passed.append(re.sub(r" \(\d+ ms\)$", "", line[6:]))
        elif line.startswith("[err]: "):
            detail = lines[i + 1].strip() if i + 1 < len(lines) else ""
            failed.append((line[7:], detail))
        elif line.startswith("[exception]: ") and stopped is None:
            stopped = line[13:].strip()
            for follow in lines[i + 1:i + 8]:
                if follow.strip().startswith('"') or "invoked from" in follow:
                    break
                stopped += " | " + follow.strip()
    if stopped is None and not re.search(r"\[\d+/\d+ done\]: unit/" + re.escape(unit) + r"\b", out):
        stopped = "the unit did not finish: " + (lines[-1] if lines else "no output")
    return passed, failed, stopped, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chorusd", help="chorusd binary (omit with --reference)")
    ap.add_argument("--suite", required=True, help="unpacked redis source tree (has tests/)")
    ap.add_argument("--units", default=",".join(UNITS))
    ap.add_argument("--groups", type=int, default=4, help="data groups the keys spread over")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per unit")
    ap.add_argument("--report", help="write every failed test and its first line here")
    ap.add_argument("--logs", help="keep each unit's raw output in this folder")
    ap.add_argument("--reference", action="store_true",
                    help="run against Debian's redis-server 7 instead, to measure REFERENCE")
    ap.add_argument("--min-passed", type=float, default=0.0,
                    help="exit 1 when fewer than this fraction of the reference tests pass")
    args = ap.parse_args()
    if shutil.which("tclsh") is None:
        sys.exit("redis_suite: tclsh is missing (Debian's tcl package)")
    units = [u for u in args.units.split(",") if u]
    for u in units:
        if u not in REFERENCE:
            sys.exit("redis_suite: unknown unit %s (known: %s)" % (u, ", ".join(UNITS)))

    cluster, server, tmp = None, None, None
    if args.reference:
        tmp = tempfile.mkdtemp(prefix="redis-suite-ref-")
        port = free_ports(1)[0]
        server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                                   "--appendonly", "no", "--dir", tmp],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    else:
        if not args.chorusd:
            sys.exit("redis_suite: --chorusd is required")
        port_of = dict(zip(["m1", "m2", "m3"], free_ports(3)))
        cluster = Cluster(args.chorusd, member_args=lambda m: [
            "--initial-groups", str(args.groups),
            "--listen-redis-urls", "redis://127.0.0.1:%d" % port_of[m.name]])
        cluster.start()
        port = port_of["m1"]
        wait_ready(port)

    total_passed, total_failed, report = 0, 0, []
    try:
        for unit in units:
            started = time.time()
            passed, failed, stopped, out = run_unit(args.suite, port, unit, args.timeout)
            if args.logs:
                os.makedirs(args.logs, exist_ok=True)
                with open(os.path.join(args.logs, unit.replace("/", "-") + ".log"), "w") as f:
                    f.write(out)
            reference = REFERENCE[unit]
            not_reached = max(0, reference - len(passed) - len(failed)) if not args.reference else 0
            n_failed = len(failed) + not_reached
            n_passed = min(len(passed), reference) if not args.reference else len(passed)
            total_passed += n_passed
            total_failed += n_failed
            note = ""
            if stopped:
                note = "; stopped: " + stopped[:200]
            print("unit/%-22s %4d passed, %4d failed (%d not reached) in %.0f s%s" % (
                unit, n_passed, n_failed, not_reached, time.time() - started, note), flush=True)
            for name, detail in failed:
                report.append("unit/%s: %s\n    %s" % (unit, name, detail[:300]))
            if stopped:
                report.append("unit/%s: stopped, %d tests not reached: %s" % (
                    unit, not_reached, stopped[:600]))
    finally:
        if cluster is not None:
            cluster.close()
        if server is not None:
            server.terminate()
            server.wait()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    if args.report:
        with open(args.report, "w") as f:
            f.write("\n".join(report) + "\n")
    print("%d passed, %d failed" % (total_passed, total_failed))
    reference_total = sum(REFERENCE[u] for u in units)
    if not args.reference and total_passed < args.min_passed * reference_total:
        print("redis_suite: %d of %d is below the required %.0f %%" % (
            total_passed, reference_total, 100 * args.min_passed))
        sys.exit(1)


def wait_ready(port, timeout=60):
    """Until a write goes through on every data group: SETs of keys spread over all slots."""
    import redis
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
    deadline = time.time() + timeout
    keys = ["suite-probe-%d" % i for i in range(64)]
    while True:
        try:
            for k in keys:
                client.set(k, "1")
            for k in keys:
                client.delete(k)
            return
        except redis.exceptions.RedisError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)


if __name__ == "__main__":
    main()
