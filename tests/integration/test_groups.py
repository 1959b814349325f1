"""Data groups' lifecycle on real chorusd processes, through the chorus-groups command: the
directory lists the initial groups, groups are created (placed by the cluster or on a chosen
member) and deleted from any member, a member killed with SIGKILL comes back with the same
directory and its replicas' data, and a group moves from one member to another. Standard library only."""

import argparse
import json
import subprocess
import sys
import time
import unittest

from cluster import Cluster

ARGS = None


class GroupsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(ARGS.chorusd, member_args=lambda m: ["--initial-groups", "2"])
        cls.c.start_or_keep()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def groups(self, member, *args, check=True):
        p = subprocess.run([ARGS.groups, "--endpoint", member.endpoint] + list(args),
                           capture_output=True, text=True, timeout=30)
        if check and p.returncode != 0:
            raise AssertionError("chorus-groups %s failed (%d): %s%s\n%s" % (
                " ".join(args), p.returncode, p.stdout, p.stderr, self.c.logs()))
        return p

    def directory(self, member):
        out = self.groups(member, "directory").stdout
        return {d["group"]: d["replicas"] for d in map(json.loads, out.splitlines())}

    def eventually(self, fn, timeout=20):
        deadline = time.time() + timeout
        while True:
            try:
                return fn()
            except AssertionError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def member_ids(self):
        out = self.c.ctl_json("member", "list")
        return {m["name"]: "%x" % m["ID"] for m in out["members"]}

    def test_lifecycle(self):
        m1, m2, m3 = self.c.members
        ids = self.member_ids()

        def initial():
            for m in self.c.members:
                d = self.directory(m)
                self.assertEqual(sorted(d), [2, 3], d)
                self.assertEqual(len(d[2]), 3)
        self.eventually(initial)

        made = json.loads(self.groups(m2, "create").stdout)
        self.assertEqual(made["group"], 4)
        self.assertEqual(sorted(made["replicas"]), sorted(ids.values()))
        # Answered once the asking member's replica is up: usable there at once (the group's
        # first election may still be under way, hence the retries).
        self.eventually(lambda: self.groups(m2, "put", "4", "k", "v4"))
        for m in self.c.members:
            got = self.eventually(lambda: json.loads(self.groups(m, "get", "4", "k").stdout))
            self.assertEqual(got, {"found": True, "value": "v4"})

        # On member m3 alone, with a chosen id.
        made = json.loads(self.groups(m1, "create", "--id", "20", "--replicas", ids["m3"]).stdout)
        self.assertEqual(made, {"group": 20, "replicas": [ids["m3"]]})
        self.eventually(lambda: self.groups(m3, "put", "20", "k", "only on m3"))
        p = self.groups(m1, "get", "20", "k", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no replica of group 20 on this member", p.stderr)

        # Refusals: an id in use, a member not in the cluster, bad usage.
        p = self.groups(m1, "create", "--id", "20", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("group 20 exists", p.stderr)
        p = self.groups(m1, "create", "--replicas", "abc", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not a voting member", p.stderr)
        self.assertEqual(self.groups(m1, "create", "--replicas", "zz", check=False).returncode, 2)
        self.assertEqual(self.groups(m1, "delete", "x", check=False).returncode, 2)

        deleted = json.loads(self.groups(m3, "delete", "4").stdout)
        self.assertEqual(deleted["group"], 4)
        for m in self.c.members:
            self.eventually(lambda: self.assertNotIn(4, self.directory(m)))
            p = self.eventually(lambda: self.assertFailsWith(m, ["put", "4", "k", "v"],
                                                              "no replica of group 4"))
        p = self.groups(m1, "delete", "4", check=False)
        self.assertIn("no group 4", p.stderr)
        p = self.groups(m1, "create", "--id", "4", check=False)
        self.assertIn("ids are not reused", p.stderr)

        # SIGKILL and back: the directory, the replicas and their data are as they were.
        before = self.directory(m3)
        m3.kill()
        m3.start()
        self.c.wait_leader()
        self.eventually(lambda: self.assertEqual(self.directory(m3), before))
        got = self.eventually(lambda: json.loads(self.groups(m3, "get", "20", "k").stdout))
        self.assertEqual(got, {"found": True, "value": "only on m3"})
        listed = self.groups(m3, "list").stdout.splitlines()
        self.assertEqual(sorted(json.loads(x)["group"] for x in listed), [2, 3, 20])

        # Group 20 moves from m3 to m1: m1 joins (caught up by a snapshot of the group, as a
        # learner, then promoted), m3 leaves and drops its replica.
        moved = json.loads(self.groups(m2, "add-replica", "20", ids["m1"]).stdout)
        self.assertEqual(moved["replicas"], [ids["m3"], ids["m1"]])

        def promoted():
            for line in self.groups(m1, "list").stdout.splitlines():
                g = json.loads(line)
                if g["group"] == 20:
                    self.assertEqual(sorted(g["voters"]), sorted([ids["m1"], ids["m3"]]))
                    return
            raise AssertionError("m1 hosts no replica of group 20 yet")
        self.eventually(promoted)
        got = self.eventually(lambda: json.loads(self.groups(m1, "get", "20", "k").stdout))
        self.assertEqual(got, {"found": True, "value": "only on m3"})
        self.groups(m2, "remove-replica", "20", ids["m3"])
        self.eventually(lambda: self.assertFailsWith(m3, ["get", "20", "k"],
                                                      "no replica of group 20"))
        self.eventually(lambda: self.groups(m1, "put", "20", "k", "moved"))
        got = json.loads(self.groups(m1, "get", "20", "k").stdout)
        self.assertEqual(got, {"found": True, "value": "moved"})
        self.assertIn("does not return", self.assertFailsWith(
            m1, ["add-replica", "20", ids["m3"]], "left group 20").stderr)

    def assertFailsWith(self, member, args, text):
        p = self.groups(member, *args, check=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn(text, p.stderr)
        return p


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--chorusd", required=True)
    parser.add_argument("--groups", required=True, help="the chorus-groups command")
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
