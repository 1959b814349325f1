"""Smoke test of the etcd benchmark: chorus-etcd-load and bench/bench_etcd.py run every scenario,
briefly and with small loads, against a real 3-member Chorus cluster, and every answer is checked.
The figures themselves are not judged here (benchmarks are commands, not timed tests).

    python3 bench/test_bench_etcd.py --load build/rel/bench/chorus-etcd-load \\
        --chorusd build/rel/src/server/chorusd
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_etcd  # noqa: E402

LOAD = CHORUSD = None


class LoadGeneratorArguments(unittest.TestCase):
    def run_load(self, *args):
        return subprocess.run([LOAD] + list(args), capture_output=True, text=True, timeout=30)

    def test_bad_arguments_are_refused_with_usage(self):
        for args in (["--scenario", "put"],  # no endpoints
                     ["--endpoints", "127.0.0.1:1", "--scenario", "nope"],
                     ["--endpoints", "127.0.0.1:1", "--scenario", "put", "--clients", "0"],
                     ["--endpoints", "127.0.0.1:1", "--scenario", "put", "--bogus", "1"]):
            p = self.run_load(*args)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn("usage: chorus-etcd-load", p.stderr)


class EveryScenarioAgainstChorus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="chorus-bench-smoke-")
        cls.docs = os.path.join(cls.tmp, "BENCHMARKS.md")
        with open(cls.docs, "w") as f:
            f.write("# Benchmarks\n\nkept\n\n%s\nold\n%s\n\nafter\n" % (bench_etcd.BEGIN,
                                                                    bench_etcd.END))
        out = os.path.join(cls.tmp, "results.json")
        cls.proc = subprocess.run(
            [sys.executable, os.path.join(HERE, "bench_etcd.py"), "--load", LOAD,
             "--chorusd", CHORUSD, "--systems", "chorus", "--quick", "--seconds", "2",
             "--warmup", "0.5", "--dir", os.path.join(cls.tmp, "data"), "--docs", cls.docs,
             "--json", out],
            capture_output=True, text=True, timeout=500)
        cls.results = {}
        if os.path.exists(out):
            with open(out) as f:
                cls.results = json.load(f)["results"]["chorus"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_the_run_succeeds(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stdout + self.proc.stderr)

    def test_every_scenario_completed_operations_without_errors(self):
        for name, _, _ in bench_etcd.SCENARIOS:
            r = self.results.get(name)
            self.assertIsNotNone(r, name)
            self.assertEqual(r["errors"], 0, (name, r))
            self.assertGreater(bench_etcd.throughput(r), 0, name)
            self.assertGreater(r["p50_us"], 0, name)
            self.assertLessEqual(r["p50_us"], r["p99_us"], name)
            self.assertLessEqual(r["p99_us"], r["max_us"], name)
            self.assertGreater(r["server_cpu_s"], 0, name)
            self.assertGreater(r["server_peak_rss_mib"], 0, name)

    def test_operations_are_of_the_scenarios_kind(self):
        self.assertEqual(self.results["put-16"]["reads"], 0)
        self.assertEqual(self.results["get-256"]["writes"], 0)
        mix = self.results["mix-256"]
        self.assertGreater(mix["reads"], mix["writes"])

    def test_every_txn_compare_held(self):
        # Each client compares its own key's mod_revision with the one its last write made.
        r = self.results["txn-256"]
        self.assertGreater(r["writes"], 0)
        self.assertEqual(r["compare_failed"], 0, r)

    def test_every_watcher_saw_every_put(self):
        r = self.results["watch-1000"]
        self.assertEqual(r["missed"], 0, r)
        self.assertEqual(r["broken_streams"], 0, r)
        self.assertGreater(r["puts"], 0)
        self.assertEqual(r["events"], r["puts"] * r["watchers"], r)

    def test_the_section_replaces_only_its_own_block(self):
        with open(self.docs) as f:
            text = f.read()
        self.assertIn("kept", text)
        self.assertIn("after", text)
        self.assertNotIn("\nold\n", text)
        self.assertIn("| put, 256 clients |", text)
        self.assertEqual(text.count(bench_etcd.BEGIN), 1)


class Goals(unittest.TestCase):
    def test_ratios_are_chorus_over_etcd_and_judged_by_their_bounds(self):
        def r(ops, cpu, p50, p99):
            return {"ops_per_s": ops, "server_cpu_us_per_op": cpu, "p50_us": p50, "p99_us": p99}
        results = {
            "etcd": {"put-256": r(1000, 300, 5000, 20000), "put-1": r(300, 900, 3000, 9000),
                     "@memory": 600.0},
            "chorus": {"put-256": r(3500, 90, 2000, 9000), "put-1": r(250, 800, 3500, 8000),
                       "@memory": 400.0},
        }
        rows = bench_etcd.goal_rows(results).splitlines()
        self.assertIn("| put at 256 clients: throughput >= 3.00 | 3.50 | yes |", rows)
        self.assertIn("| put at 256 clients: server CPU per put <= 0.33 | 0.30 | yes |", rows)
        self.assertIn("| put at 256 clients: p99 latency <= 0.50 | 0.45 | yes |", rows)
        self.assertIn("| put with 1 client: p50 latency <= 1.00 | 1.17 | no |", rows)
        self.assertIn("| peak resident memory of the 3 members <= 0.50 | 0.67 | no |", rows)
        # Scenarios not run are left out, not reported as met.
        self.assertFalse(any("txn" in row for row in rows))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--load", required=True)
    p.add_argument("--chorusd", required=True)
    args, rest = p.parse_known_args()
    LOAD, CHORUSD = os.path.abspath(args.load), os.path.abspath(args.chorusd)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
