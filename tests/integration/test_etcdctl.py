"""Chorus driven by the real etcdctl (Debian's etcd-client): a 3-member cluster of chorusd
processes on loopback must answer as etcd would.

    python3 tests/integration/test_etcdctl.py --chorusd build/rel/src/server/chorusd [-v]
"""

import argparse
import os
import json
import sys
import threading
import time
import unittest

from cluster import Cluster, b64, unb64

CHORUSD = None
LINCHECK = None
SNAPSHOT_TOOL = None


class ClusterTest(unittest.TestCase):
    """One cluster for the whole class; tests use their own key prefixes."""

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(CHORUSD).start_or_keep()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def put(self, key, value, *args):
        self.c.ctl("put", key, value, *args)

    def get(self, *args):
        return self.c.ctl_json("get", *args)


class KvTest(ClusterTest):
    def test_put_then_get_returns_value_and_revisions(self):
        self.assertEqual(self.c.ctl("put", "kv/a", "1").stdout.strip(), "OK")
        r = self.get("kv/a")
        self.assertEqual(len(r["kvs"]), 1)
        kv = r["kvs"][0]
        self.assertEqual(unb64(kv["key"]), "kv/a")
        self.assertEqual(unb64(kv["value"]), "1")
        self.assertEqual(kv["version"], 1)
        self.assertEqual(kv["create_revision"], kv["mod_revision"])
        self.assertEqual(r["header"]["revision"], kv["mod_revision"])
        self.assertNotEqual(r["header"]["cluster_id"], 0)
        self.assertNotEqual(r["header"]["member_id"], 0)
        self.assertGreater(r["header"]["raft_term"], 0)
        self.put("kv/a", "2")
        kv2 = self.get("kv/a")["kvs"][0]
        self.assertEqual(kv2["version"], 2)
        self.assertEqual(kv2["create_revision"], kv["create_revision"])
        self.assertGreater(kv2["mod_revision"], kv["mod_revision"])
        # Plain output: key then value.
        self.assertEqual(self.c.ctl("get", "kv/a").stdout.split(), ["kv/a", "2"])

    def test_every_member_serves_reads_and_writes(self):
        for i, m in enumerate(self.c.members):
            self.c.ctl("put", "any/%d" % i, "v%d" % i, endpoints=m.endpoint)
        for m in self.c.members:
            r = self.c.ctl_json("get", "any/", "--prefix", endpoints=m.endpoint)
            self.assertEqual([unb64(kv["key"]) for kv in r["kvs"]], ["any/0", "any/1", "any/2"])
            # A serializable read on a follower is local, but sees the data once applied.
            deadline = time.time() + 5
            while True:
                r = self.c.ctl_json("get", "any/", "--prefix", "--consistency=s",
                                    endpoints=m.endpoint)
                if r.get("count") == 3 or time.time() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(r.get("count"), 3)

    def test_prefix_limit_and_sort(self):
        for i in range(5):
            self.put("pfx/%d" % i, str(i))
        self.put("pfy", "outside")
        r = self.get("pfx/", "--prefix")
        self.assertEqual([unb64(kv["key"]) for kv in r["kvs"]], ["pfx/%d" % i for i in range(5)])
        self.assertEqual(r["count"], 5)
        r = self.get("pfx/", "--prefix", "--limit", "2")
        self.assertEqual(len(r["kvs"]), 2)
        self.assertTrue(r["more"])
        self.assertEqual(r["count"], 5)
        r = self.get("pfx/", "--prefix", "--sort-by", "KEY", "--order", "DESCEND")
        self.assertEqual(unb64(r["kvs"][0]["key"]), "pfx/4")
        out = self.c.ctl("get", "pfx/", "--prefix", "--keys-only").stdout.split()
        self.assertEqual(out, ["pfx/%d" % i for i in range(5)])
        r = self.get("pfx/0", "pfx/3")  # a range [pfx/0, pfx/3)
        self.assertEqual(len(r["kvs"]), 3)
        r = self.get("pfx/3", "--from-key", "--limit", "3")
        self.assertEqual([unb64(kv["key"]) for kv in r["kvs"]], ["pfx/3", "pfx/4", "pfy"])

    def test_get_at_a_past_revision(self):
        self.put("rev/k", "old")
        rev = self.get("rev/k")["kvs"][0]["mod_revision"]
        self.put("rev/k", "new")
        r = self.get("rev/k", "--rev", str(rev))
        self.assertEqual(unb64(r["kvs"][0]["value"]), "old")
        self.assertEqual(unb64(self.get("rev/k")["kvs"][0]["value"]), "new")
        p = self.c.ctl("get", "rev/k", "--rev", "99999999", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("required revision is a future revision", p.stderr)

    def test_delete_by_prefix_with_prev_kv(self):
        for i in range(3):
            self.put("del/%d" % i, "x%d" % i)
        self.put("delx", "keep")
        out = self.c.ctl("del", "del/", "--prefix", "--prev-kv").stdout.split()
        self.assertEqual(out[0], "3")
        self.assertEqual(out[1:], ["del/0", "x0", "del/1", "x1", "del/2", "x2"])
        self.assertEqual(self.get("del/", "--prefix").get("count", 0), 0)
        self.assertEqual(self.get("delx")["count"], 1)
        self.assertEqual(self.c.ctl("del", "del/none").stdout.strip(), "0")

    def test_txn_success_and_failure_branches(self):
        self.put("txn/k", "v1")
        script = 'value("txn/k") = "v1"\n\nput txn/k v2\nput txn/other yes\n\nput txn/k failed\n\n'
        out = self.c.ctl("txn", stdin=script).stdout.split()
        self.assertEqual(out, ["SUCCESS", "OK", "OK"])
        self.assertEqual(unb64(self.get("txn/k")["kvs"][0]["value"]), "v2")
        out = self.c.ctl("txn", stdin=script).stdout.split()
        self.assertEqual(out, ["FAILURE", "OK"])
        self.assertEqual(unb64(self.get("txn/k")["kvs"][0]["value"]), "failed")
        script = 'mod("txn/k") > "0"\nversion("txn/none") = "0"\n\nget txn/k\n\n\n'
        out = self.c.ctl("txn", stdin=script).stdout.split()
        self.assertEqual(out, ["SUCCESS", "txn/k", "failed"])

    def test_compaction_makes_old_revisions_unreadable(self):
        self.put("cmp/k", "a")
        old = self.get("cmp/k")["kvs"][0]["mod_revision"]
        self.put("cmp/k", "b")
        rev = self.get("cmp/k")["header"]["revision"]
        self.assertIn("compacted revision %d" % rev, self.c.ctl("compaction", str(rev)).stdout)
        p = self.c.ctl("get", "cmp/k", "--rev", str(old), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("required revision has been compacted", p.stderr)
        self.assertEqual(unb64(self.get("cmp/k")["kvs"][0]["value"]), "b")

    def test_request_too_large_gets_etcds_error(self):
        # The value comes from stdin: it is too big for a command line.
        p = self.c.ctl("put", "big", stdin="x" * (1600 * 1024), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("request is too large", p.stderr)

    def test_too_many_txn_operations_gets_etcds_error(self):
        ops = "".join("put many/%d v\n" % i for i in range(129))
        p = self.c.ctl("txn", stdin="\n" + ops + "\n\n", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("too many operations in txn request", p.stderr)


class WatchTest(ClusterTest):
    def watch(self, *args):
        """Starts `etcdctl watch`; returns the process (its stdout is line-buffered text)."""
        import os
        import subprocess
        env = dict(os.environ, ETCDCTL_API="3")
        cmd = ["etcdctl", "--endpoints", self.c.endpoints(), "watch"] + list(args)
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, bufsize=1)

    def read_lines(self, proc, n, timeout=10):
        """Up to n lines of proc's output, waiting at most `timeout` seconds in all."""
        import queue
        if not hasattr(proc, "lines"):
            proc.lines = queue.Queue()

            def pump():
                for line in proc.stdout:
                    proc.lines.put(line.rstrip("\n"))

            threading.Thread(target=pump, daemon=True).start()
        lines = []
        deadline = time.time() + timeout
        while len(lines) < n:
            left = deadline - time.time()
            if left <= 0:
                break
            try:
                lines.append(proc.lines.get(timeout=left))
            except queue.Empty:
                break
        return lines

    def test_watch_prefix_with_prev_kv_sees_puts_and_deletes(self):
        self.put("w/a", "0")
        proc = self.watch("w/", "--prefix", "--prev-kv")
        try:
            time.sleep(1)  # the watch is registered
            self.put("w/a", "1")
            self.put("other", "x")
            self.c.ctl("del", "w/a")
            lines = self.read_lines(proc, 9)
        finally:
            proc.kill()
            proc.wait()
        # PUT, prev key, prev value, key, value; DELETE, prev key, prev value, key
        self.assertEqual(lines[:5], ["PUT", "w/a", "0", "w/a", "1"], lines)
        self.assertEqual(lines[5], "DELETE", lines)
        self.assertIn("w/a", lines[6:])

    def test_watch_from_a_past_revision_replays_history(self):
        self.put("hist/k", "v1")
        rev = self.get("hist/k")["kvs"][0]["mod_revision"]
        self.put("hist/k", "v2")
        self.put("hist/k", "v3")
        proc = self.watch("hist/k", "--rev", str(rev))
        try:
            lines = self.read_lines(proc, 9)
        finally:
            proc.kill()
            proc.wait()
        self.assertEqual(lines, ["PUT", "hist/k", "v1", "PUT", "hist/k", "v2", "PUT", "hist/k", "v3"])

    def test_watch_below_the_compacted_revision_is_cancelled(self):
        self.put("wc/k", "1")
        old = self.get("wc/k")["kvs"][0]["mod_revision"]
        self.put("wc/k", "2")
        rev = self.get("wc/k")["header"]["revision"]
        self.c.ctl("compaction", str(rev))
        p = self.c.ctl("watch", "wc/k", "--rev", str(old), check=False, timeout=20)
        out = p.stdout + p.stderr
        self.assertIn("required revision has been compacted", out)

    def test_watch_in_interactive_mode_with_progress(self):
        import os
        import subprocess
        env = dict(os.environ, ETCDCTL_API="3")
        cmd = ["etcdctl", "--endpoints", self.c.endpoints(), "watch", "-i"]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
        try:
            proc.stdin.write("watch iw/k\n")
            proc.stdin.flush()
            time.sleep(1)
            self.put("iw/k", "hello")
            lines = self.read_lines(proc, 3)
        finally:
            proc.kill()
            proc.wait()
        self.assertEqual(lines, ["PUT", "iw/k", "hello"])


class LeaseTest(ClusterTest):
    def lease_id(self, out):
        # "lease 694d7a8a4f4b5c11 granted with TTL(5s)"
        return out.split()[1]

    def test_grant_attach_time_to_live_and_revoke(self):
        lid = self.lease_id(self.c.ctl("lease", "grant", "60").stdout)
        self.put("lease/a", "1", "--lease", lid)
        self.put("lease/b", "2", "--lease", lid)
        ttl = self.c.ctl_json("lease", "timetolive", lid, "--keys")
        self.assertEqual(ttl["granted-ttl"], 60)
        self.assertGreater(ttl["ttl"], 0)
        self.assertEqual(sorted(unb64(k) for k in ttl["keys"]), ["lease/a", "lease/b"])
        self.assertIn(lid, self.c.ctl("lease", "list").stdout)
        self.assertIn("revoked", self.c.ctl("lease", "revoke", lid).stdout)
        self.assertEqual(self.get("lease/", "--prefix").get("count", 0), 0)
        p = self.c.ctl("lease", "revoke", lid, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("requested lease not found", p.stderr)

    def test_keys_expire_with_their_lease(self):
        lid = self.lease_id(self.c.ctl("lease", "grant", "2").stdout)
        self.put("expire/k", "v", "--lease", lid)
        self.assertEqual(self.get("expire/k")["count"], 1)
        deadline = time.time() + 15
        while self.get("expire/k").get("count", 0) != 0:
            self.assertLess(time.time(), deadline, "lease did not expire\n" + self.c.logs())
            time.sleep(0.2)
        ttl = self.c.ctl_json("lease", "timetolive", lid)
        self.assertEqual(ttl["ttl"], -1)

    def test_time_to_live_counts_down_on_followers_too(self):
        lid = self.lease_id(self.c.ctl("lease", "grant", "60").stdout)
        time.sleep(2.5)
        leader = self.c.wait_leader()
        for m in self.c.members:
            ttl = self.c.ctl_json("lease", "timetolive", lid, endpoints=m.endpoint)
            self.assertEqual(ttl["granted-ttl"], 60)
            self.assertLess(ttl["ttl"], 60, (m.name, m is leader))

    def test_keep_alive_once_renews_on_leader_and_followers(self):
        lid = self.lease_id(self.c.ctl("lease", "grant", "30").stdout)
        for m in self.c.members:
            out = self.c.ctl("lease", "keep-alive", "--once", lid, endpoints=m.endpoint).stdout
            self.assertIn("keepalived with TTL(30)", out)


class LockElectTest(ClusterTest):
    def test_lock_runs_a_command_while_holding_the_lock(self):
        out = self.c.ctl("lock", "mylock", "echo", "locked-section").stdout
        self.assertIn("locked-section", out)
        # Released afterwards: the lock's key is gone.
        self.assertEqual(self.get("mylock", "--prefix").get("count", 0), 0)

    def test_second_locker_waits_for_the_first(self):
        import os
        import subprocess
        env = dict(os.environ, ETCDCTL_API="3")
        first = subprocess.Popen(["etcdctl", "--endpoints", self.c.endpoints(), "lock", "L"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 env=env)
        try:
            held = first.stdout.readline().strip()
            self.assertTrue(held.startswith("L/"), held)
            p = self.c.ctl("lock", "L", "--ttl", "5", "echo", "second", check=False, timeout=4)
            self.fail("second locker got the lock while the first held it: %s" % p.stdout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            first.terminate()
            first.wait()
        out = self.c.ctl("lock", "L", "echo", "second").stdout
        self.assertIn("second", out)

    def test_elect_names_the_leader_to_observers(self):
        import os
        import subprocess
        env = dict(os.environ, ETCDCTL_API="3")
        # A follower's endpoint: its keep-alives must reach the leader through it.
        leader = self.c.wait_leader()
        follower = next(m for m in self.c.members if m is not leader)
        candidate = subprocess.Popen(
            ["etcdctl", "--endpoints", follower.endpoint, "elect", "el", "p1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            line = candidate.stdout.readline().strip()
            self.assertTrue(line.startswith("el/"), line)
            obs = subprocess.Popen(["etcdctl", "--endpoints", self.c.endpoints(), "elect", "-l",
                                    "el"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, env=env)
            try:
                lines = [obs.stdout.readline().strip(), obs.stdout.readline().strip()]
            finally:
                obs.kill()
                obs.wait()
            self.assertEqual(lines[1], "p1", lines)
            # The candidate's session stays alive through a follower past the session TTL.
            time.sleep(3)
            self.assertIsNone(candidate.poll())
            self.assertEqual(self.get("el/", "--prefix")["count"], 1)
        finally:
            candidate.terminate()
            candidate.wait()


class ClusterInfoTest(ClusterTest):
    def test_member_list_names_every_member(self):
        deadline = time.time() + 10
        while True:
            r = self.c.ctl_json("member", "list")
            names = sorted(m.get("name", "") for m in r["members"])
            if names == ["m1", "m2", "m3"] or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(names, ["m1", "m2", "m3"])
        for m in r["members"]:
            self.assertEqual(len(m["clientURLs"]), 1)
            self.assertEqual(len(m["peerURLs"]), 1)

    def test_endpoint_status_and_health_for_the_whole_cluster(self):
        out = self.c.ctl("endpoint", "health", "--cluster").stdout + \
            self.c.ctl("endpoint", "health", "--cluster").stderr
        self.assertEqual(out.count("is healthy"), 3, out)
        st = json.loads(self.c.ctl("endpoint", "status", "--cluster", "-w", "json").stdout)
        self.assertEqual(len(st), 3)
        leaders = {s["Status"]["leader"] for s in st}
        self.assertEqual(len(leaders), 1)
        self.assertIn(next(iter(leaders)), {s["Status"]["header"]["member_id"] for s in st})
        for s in st:
            self.assertTrue(s["Status"]["version"].startswith("3.5"))


class HttpTest(ClusterTest):
    def test_health_version_and_metrics(self):
        for m in self.c.members:
            code, body = m.http_get("/health")
            self.assertEqual(code, 200, body)
            self.assertEqual(json.loads(body)["health"], "true")
        code, body = self.c.members[0].http_get("/version")
        self.assertEqual(code, 200)
        self.assertTrue(json.loads(body)["etcdserver"].startswith("3.5"))
        self.c.ctl("put", "metrics/k", "v", endpoints=self.c.members[0].endpoint)
        code, body = self.c.members[0].http_get("/metrics")
        self.assertEqual(code, 200)
        samples = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        self.assertEqual(samples["etcd_server_has_leader"], 1)
        self.assertGreater(samples["etcd_server_proposals_committed_total"], 0)
        self.assertGreater(samples["etcd_disk_wal_fsync_duration_seconds_count"], 0)
        self.assertGreater(samples["process_resident_memory_bytes"], 0)
        self.assertTrue(any(k.startswith("grpc_server_handled_total{") and 'grpc_method="Put"' in k
                            for k in samples), [k for k in samples if "grpc" in k][:5])
        self.assertEqual(self.c.members[0].http_get("/nothing")[0], 404)

    def test_every_rpc_kind_and_peer_traffic_is_measured(self):
        m = self.c.members[0]
        self.c.ctl("put", "metrics/w", "v", endpoints=m.endpoint)
        rev = self.c.ctl_json("get", "metrics/w", endpoints=m.endpoint)["header"]["revision"]
        # A watch stream (bidi) that ends, a cluster call and a maintenance call (unary).
        import os
        import subprocess
        watch = subprocess.Popen(["etcdctl", "--endpoints", m.endpoint, "watch", "metrics/w",
                                  "--rev", str(rev)], stdout=subprocess.PIPE, text=True,
                                 env=dict(os.environ, ETCDCTL_API="3"))
        first = watch.stdout.readline()
        watch.kill()
        watch.wait()
        watch.stdout.close()
        self.assertEqual(first.strip(), "PUT")
        self.c.ctl("member", "list", endpoints=m.endpoint)
        self.c.ctl("endpoint", "status", endpoints=m.endpoint)
        time.sleep(1.5)  # a few peer round-trip probes
        samples = {}
        for line in m.http_get("/metrics")[1].splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)

        def has(prefix, *parts):
            return any(k.startswith(prefix) and all(x in k for x in parts) and samples[k] > 0
                       for k in samples)
        self.assertTrue(has("grpc_server_started_total{", 'grpc_method="Watch"',
                            'grpc_type="bidi_stream"'))
        self.assertTrue(has("grpc_server_handled_total{", 'grpc_method="MemberList"',
                            'grpc_code="OK"', 'grpc_type="unary"'))
        self.assertTrue(has("grpc_server_handled_total{", 'grpc_method="Status"',
                            'grpc_service="etcdserverpb.Maintenance"'))
        self.assertTrue(has("etcd_network_peer_round_trip_time_seconds_count{"),
                        [k for k in samples if "round_trip" in k])
        self.assertTrue(has("etcd_network_peer_sent_bytes_total{"))
        self.assertTrue(has("etcd_network_peer_received_bytes_total{"))


class PeerPortTest(ClusterTest):
    def metric(self, member, name):
        code, body = member.http_get("/metrics")
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def test_garbage_and_truncated_frames_are_counted_and_the_member_keeps_serving(self):
        import socket
        m = self.c.members[0]
        before = self.metric(m, "chorus_transport_bad_frames_total") or 0
        for payload in [b"GET / HTTP/1.1\r\n\r\n" * 10, bytes(range(256)) * 40,
                        b"\x00\x00\x00\x10\x01"]:  # the last: a frame cut short
            s = socket.create_connection(("127.0.0.1", m.peer_port), timeout=5)
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            try:
                s.recv(4096)
            except OSError:
                pass
            s.close()
        deadline = time.time() + 10
        while (self.metric(m, "chorus_transport_bad_frames_total") or 0) < before + 3:
            self.assertLess(time.time(), deadline, self.metric(m, "chorus_transport_bad_frames_total"))
            time.sleep(0.1)
        self.c.ctl("put", "peer/after-garbage", "ok", endpoints=m.endpoint)
        self.assertEqual(self.get("peer/after-garbage")["count"], 1)
        self.assertTrue(m.running())


class MaintenanceTest(ClusterTest):
    def test_snapshot_save_writes_a_verifiable_file(self):
        import os
        for i in range(20):
            self.put("snap/%d" % i, "v" * 100)
        path = os.path.join(self.c.root, "backup.snap")
        out = self.c.ctl("snapshot", "save", path, endpoints=self.c.members[0].endpoint)
        self.assertIn("Snapshot saved at " + path, out.stdout + out.stderr)
        with open(path, "rb") as f:
            data = f.read()
        # Length-prefixed checksummed chunks, a zero length, zeros to a multiple of 512 bytes,
        # then the SHA-256 of everything before it (what etcd's clients check).
        import hashlib
        import struct
        self.assertEqual(len(data) % 512, 32)
        self.assertEqual(hashlib.sha256(data[:-32]).digest(), data[-32:])
        off, chunks = 0, 0
        while True:
            (n,) = struct.unpack_from("<I", data, off)
            off += 4
            if n == 0:
                break
            off += n
            chunks += 1
        self.assertGreaterEqual(chunks, 1)
        self.assertEqual(data[off:-32], b"\0" * (len(data) - 32 - off))

    def test_hashkv_agrees_on_every_member(self):
        self.put("hash/k", "v")
        rev = self.get("hash/k")["header"]["revision"]
        deadline = time.time() + 10
        while True:
            hashes = set()
            for m in self.c.members:
                r = self.c.ctl_json("endpoint", "hashkv", "--rev", str(rev), endpoints=m.endpoint)
                hashes.add(r[0]["HashKV"]["hash"])
            if len(hashes) == 1 or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(len(hashes), 1)

    def test_defrag_and_alarm_list(self):
        out = self.c.ctl("defrag", "--cluster").stdout
        self.assertEqual(out.count("Finished defragmenting etcd member"), 3, out)
        self.assertEqual(self.c.ctl("alarm", "list").stdout.strip(), "")

    def test_move_leader(self):
        leader = self.c.wait_leader()
        target = next(m for m in self.c.members if m is not leader)
        tid = "%x" % self.c.status(target)["header"]["member_id"]
        out = self.c.ctl("move-leader", tid, endpoints=leader.endpoint).stdout
        self.assertIn("Leadership transferred", out)
        self.assertIs(self.c.wait_leader(), target)
        p = self.c.ctl("move-leader", tid, endpoints=leader.endpoint, check=False)
        self.assertNotEqual(p.returncode, 0)


class QuotaTest(unittest.TestCase):
    def test_space_alarm_refuses_writes_until_disarmed(self):
        c = Cluster(CHORUSD, size=1)
        try:
            c.members[0].start(extra=["--quota-backend-bytes", "300000"])
            c.wait_leader()
            blob = "x" * 100000
            deadline = time.time() + 30
            refused = None
            i = 0
            while time.time() < deadline:
                p = c.ctl("put", "q/%d" % i, stdin=blob, check=False)
                i += 1
                if p.returncode != 0:
                    refused = p.stderr
                    break
                time.sleep(0.1)
            self.assertIsNotNone(refused, "no alarm after %d puts" % i)
            self.assertIn("database space exceeded", refused)
            self.assertIn("NOSPACE", c.ctl("alarm", "list").stdout)
            # Reads and deletes still work; after freeing space and disarming, writes work.
            c.ctl("get", "q/0")
            c.ctl("del", "q/", "--prefix")
            rev = c.ctl_json("get", "q/0")["header"]["revision"]
            c.ctl("compaction", str(rev))
            c.ctl("defrag")
            c.ctl("alarm", "disarm")
            self.assertEqual(c.ctl("alarm", "list").stdout.strip(), "")
            c.ctl("put", "q/after", "ok")
        finally:
            c.close()


class SnapshotTest(unittest.TestCase):
    """Log compaction with a small --snapshot-count: a member far behind gets the leader's
    state machine, and restarts recover from the snapshot plus the log after it."""

    def setUp(self):
        self.c = Cluster(CHORUSD)
        for m in self.c.members:
            m.start(extra=["--snapshot-count", "100"])
        self.c.wait_leader()

    def tearDown(self):
        self.c.close()

    def count(self, member, prefix):
        p = self.c.ctl("get", prefix, "--prefix", "--keys-only", "--consistency=s", "-w", "json",
                       endpoints=member.endpoint, check=False)
        return json.loads(p.stdout).get("count", 0) if p.returncode == 0 else -1

    def test_a_member_behind_the_compacted_log_installs_a_snapshot(self):
        leader = self.c.wait_leader()
        lagging = next(m for m in self.c.members if m is not leader)
        lagging.stop()
        lease = self.c.ctl("lease", "grant", "600").stdout.split()[1]
        self.c.ctl("put", "snapkeep/leased", "v", "--lease", lease)
        for i in range(400):
            self.c.ctl("put", "snapkeep/%03d" % i, "v%d" % i)
        lagging.start(extra=["--snapshot-count", "100"])
        deadline = time.time() + 60
        while self.count(lagging, "snapkeep/") != 401:
            self.assertLess(time.time(), deadline, "no catch-up\n" + self.c.logs())
            time.sleep(0.3)
        # Fetched off the raft thread, then installed.
        self.assertIn("fetching the leader's store", lagging.log())
        self.assertIn("installed a snapshot", lagging.wait_log("installed a snapshot"))
        # Same data, the member table and leases intact on the member that installed it.
        r = self.c.ctl_json("get", "snapkeep/399", endpoints=lagging.endpoint)
        self.assertEqual(unb64(r["kvs"][0]["value"]), "v399")
        names = sorted(m.get("name", "") for m in
                       self.c.ctl_json("member", "list", endpoints=lagging.endpoint)["members"])
        self.assertEqual(names, ["m1", "m2", "m3"])
        ttl = self.c.ctl_json("lease", "timetolive", lease, endpoints=lagging.endpoint)
        self.assertEqual(ttl["granted-ttl"], 600)
        # And the cluster keeps working with it: its vote counts again.
        self.c.ctl("put", "snapkeep/after", "v")

    def test_restart_after_compaction_keeps_everything(self):
        for i in range(350):
            self.c.ctl("put", "snaprs/%03d" % i, "v")
        before = self.c.ctl_json("get", "snaprs/", "--prefix", "--keys-only")
        for m in self.c.members:
            self.assertEqual(m.stop(), 0)
        # Every member took snapshots and let the log go before them (chorus-wal sits beside
        # chorusd in the build tree), so the restart below recovers from a snapshot.
        import re
        import subprocess
        wal_tool = os.path.join(os.path.dirname(CHORUSD), "..", "storage", "chorus-wal")
        for m in self.c.members:
            out = subprocess.run([wal_tool, "verify", os.path.join(m.data_dir, "member", "wal")],
                                 capture_output=True, text=True, timeout=60).stdout
            snap = re.search(r"log \[(\d+), \d+\], snapshot at (\d+)", out)
            self.assertIsNotNone(snap, out)
            self.assertGreater(int(snap.group(2)), 0, out)
            self.assertGreater(int(snap.group(1)), 1, "the log was never compacted\n" + out)
        for m in self.c.members:
            m.start(extra=["--snapshot-count", "100"])
        self.c.wait_leader()
        after = self.c.ctl_json("get", "snaprs/", "--prefix", "--keys-only")
        self.assertEqual(before["count"], after["count"])
        names = sorted(m.get("name", "") for m in self.c.ctl_json("member", "list")["members"])
        self.assertEqual(names, ["m1", "m2", "m3"])


class AutoCompactionTest(unittest.TestCase):
    """--auto-compaction-mode periodic --auto-compaction-retention 3s: the leader compacts on its
    own, keeping at least three seconds of history."""

    def test_the_leader_compacts_history_older_than_the_retention(self):
        c = Cluster(CHORUSD, member_args=lambda m: ["--auto-compaction-mode", "periodic",
                                                    "--auto-compaction-retention", "3s"])
        c.start_or_keep()
        try:
            c.ctl("put", "ac/k", "v1")
            old = c.ctl_json("get", "ac/k")["header"]["revision"]
            c.ctl("put", "ac/k", "v2")
            # Still inside the retention: the old revision reads.
            self.assertEqual(unb64(c.ctl_json("get", "ac/k", "--rev", str(old))["kvs"][0]["value"]),
                             "v1")
            deadline = time.time() + 20
            while True:
                p = c.ctl("get", "ac/k", "--rev", str(old), check=False)
                if "required revision has been compacted" in p.stderr:
                    break
                self.assertLess(time.time(), deadline, "no auto-compaction\n" + c.logs())
                time.sleep(0.5)
            self.assertEqual(c.ctl("get", "ac/k", "--print-value-only").stdout.strip(), "v2")
            self.assertTrue(any("auto-compaction" in m.log() for m in c.members))
        finally:
            c.close()


class FaultTest(unittest.TestCase):
    """Each test gets its own cluster."""

    def setUp(self):
        self.c = Cluster(CHORUSD)
        self.c.start()

    def tearDown(self):
        self.c.close(keep=False)

    def test_leader_killed_under_load_loses_no_acknowledged_write(self):
        """Writers and readers on a few keys while the leader is SIGKILLed: no acknowledged
        write is lost, and the whole history (with unknown outcomes for failed writes) is
        linearizable."""
        import os
        history = []
        lock = threading.Lock()
        acked = []
        stop = threading.Event()
        errors = []

        def record(line):
            with lock:
                history.append(line)

        def writer(wid):
            i = 0
            while not stop.is_set():
                key = "load/%d/%d" % (wid, i)
                p = self.c.ctl("put", key, str(i), check=False, timeout=30)
                if p.returncode == 0:
                    acked.append(key)
                else:
                    errors.append(p.stderr.strip())
                i += 1

        def register(cid):
            # put and get on three shared keys: the operations the checker judges.
            i = 0
            while not stop.is_set():
                key = "reg%d" % (i % 3)
                if i % 2 == 0:
                    value = "c%d-%d" % (cid, i)
                    t0 = time.monotonic_ns()
                    p = self.c.ctl("put", key, value, check=False, timeout=30)
                    t1 = time.monotonic_ns()
                    if p.returncode == 0:
                        record("%d %d %d put %s %s ok" % (cid, t0, t1, key, value))
                    else:
                        record("%d %d - put %s %s" % (cid, t0, key, value))
                else:
                    t0 = time.monotonic_ns()
                    p = self.c.ctl("get", key, "-w", "json", check=False, timeout=30)
                    t1 = time.monotonic_ns()
                    if p.returncode == 0:
                        kvs = json.loads(p.stdout).get("kvs", [])
                        if kvs:
                            record("%d %d %d get %s found %s" % (cid, t0, t1, key,
                                                                unb64(kvs[0]["value"])))
                        else:
                            record("%d %d %d get %s missing" % (cid, t0, t1, key))
                i += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
        threads += [threading.Thread(target=register, args=(c,)) for c in range(1, 4)]
        for t in threads:
            t.start()
        time.sleep(2)
        old = self.c.wait_leader()
        old.kill()
        time.sleep(4)
        stop.set()
        for t in threads:
            t.join()
        new = self.c.wait_leader()
        self.assertIsNot(new, old)
        self.assertGreater(len(acked), 10, errors[:5])
        got = {unb64(kv["key"]) for kv in
               self.c.ctl_json("get", "load/", "--prefix", "--limit", "0").get("kvs", [])}
        lost = [k for k in acked if k not in got]
        self.assertEqual(lost, [], "acknowledged writes lost")
        if LINCHECK:
            path = os.path.join(self.c.root, "history.txt")
            with open(path, "w") as f:
                f.write("\n".join(history) + "\n")
            import subprocess
            p = subprocess.run([LINCHECK, path], capture_output=True, text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("linearizable: %d operations" % len(history), p.stdout)
            sys.stderr.write("[history of %d operations: %s] " % (len(history), p.stdout.strip()))
        # The old leader rejoins and catches up.
        old.start()
        deadline = time.time() + 30
        while True:
            st = self.c.status(old)
            r = None
            if st is not None:
                r = self.c.ctl_json("get", "load/", "--prefix", "--keys-only", "--limit", "1",
                                    "--consistency=s", endpoints=old.endpoint)
            if r is not None and r.get("count", 0) >= len(acked):
                break
            self.assertLess(time.time(), deadline, "old leader did not catch up\n" + self.c.logs())
            time.sleep(0.3)

    def test_every_member_restarted_keeps_the_data(self):
        for i in range(50):
            self.c.ctl("put", "keep/%02d" % i, "v%d" % i)
        before = self.c.ctl_json("get", "keep/", "--prefix")
        for m in self.c.members:
            self.assertEqual(m.stop(), 0, m.log()[-2000:])
        for m in self.c.members:
            m.start()
        self.c.wait_leader()
        after = self.c.ctl_json("get", "keep/", "--prefix")
        self.assertEqual([(kv["key"], kv["value"], kv["mod_revision"]) for kv in before["kvs"]],
                         [(kv["key"], kv["value"], kv["mod_revision"]) for kv in after["kvs"]])
        self.assertGreaterEqual(after["header"]["revision"], before["header"]["revision"])
        self.c.ctl("put", "keep/after", "yes")

    def add_member(self, name, learner):
        """Adds a member through etcdctl; returns (Member, id hex) not yet started."""
        import re
        from cluster import Member, free_ports
        client, peer, metrics = free_ports(3)
        m = Member(self.c, name, client, peer, metrics)
        args = ["member", "add", name, "--peer-urls", m.peer_url] + (["--learner"] if learner else [])
        out = self.c.ctl(*args).stdout
        mid = re.search(r"Member\s+([0-9a-f]+)\s+added", out).group(1)
        self.assertIn("ETCD_INITIAL_CLUSTER_STATE=\"existing\"", out)
        self.c.members.append(m)
        return m, mid

    def wait_count(self, member, prefix, n, timeout=30):
        deadline = time.time() + timeout
        while True:
            p = self.c.ctl("get", prefix, "--prefix", "--keys-only", "--consistency=s", "-w",
                           "json", endpoints=member.endpoint, check=False)
            if p.returncode == 0 and json.loads(p.stdout).get("count", 0) >= n:
                return
            self.assertLess(time.time(), deadline, "%s did not catch up\n%s" %
                            (member.name, self.c.logs()))
            time.sleep(0.3)

    def test_learner_added_promoted_removed_and_added_back(self):
        for i in range(30):
            self.c.ctl("put", "mem/%02d" % i, "v")
        m4, mid = self.add_member("m4", learner=True)
        m4.start(state="existing")
        self.wait_count(m4, "mem/", 30)
        listed = self.c.ctl_json("member", "list")["members"]
        self.assertEqual(len(listed), 4)
        self.assertTrue(any(m.get("isLearner") for m in listed))
        # Through a follower: the request is passed on to the leader, as etcd does.
        leader = self.c.wait_leader()
        follower = next(m for m in self.c.members if m is not leader and m is not m4)
        deadline = time.time() + 30
        while True:
            p = self.c.ctl("member", "promote", mid, check=False, endpoints=follower.endpoint)
            if p.returncode == 0:
                break
            self.assertLess(time.time(), deadline, p.stderr + self.c.logs())
            time.sleep(0.5)
        self.assertIn("promoted", p.stdout)
        listed = self.c.ctl_json("member", "list")["members"]
        self.assertFalse(any(m.get("isLearner") for m in listed))
        # The new voter takes part: writes still commit with it in the quorum.
        self.c.ctl("put", "mem/after-promote", "v")
        self.wait_count(m4, "mem/", 31)

        others = [m for m in self.c.members if m is not m4]
        out = self.c.ctl("member", "remove", mid, endpoints=self.c.endpoints(others)).stdout
        self.assertIn("removed", out)
        m4.proc.wait(timeout=20)  # a removed member stops by itself
        self.c.members.remove(m4)
        self.assertEqual(len(self.c.ctl_json("member", "list")["members"]), 3)
        self.c.ctl("put", "mem/after-remove", "v")

        # Added back at the same address with an empty data directory, as after a lost disk:
        # a new member with a new id, which it learns from its peers when it starts.
        import re
        import shutil
        shutil.rmtree(m4.data_dir)
        out = self.c.ctl("member", "add", "m4", "--peer-urls", m4.peer_url).stdout
        mid2 = re.search(r"Member\s+([0-9a-f]+)\s+added", out).group(1)
        self.assertNotEqual(int(mid2, 16), int(mid, 16))
        self.c.members.append(m4)
        m4.start(state="existing")
        self.wait_count(m4, "mem/", 32)
        self.assertIn("joining an existing cluster", m4.log())
        listed = self.c.ctl_json("member", "list")["members"]
        self.assertEqual(len(listed), 4)
        self.assertIn(int(mid2, 16), [m["ID"] for m in listed])
        self.c.ctl("put", "mem/final", "v")
        self.wait_count(m4, "mem/", 33)
        # With the re-added member leading, whose id no one can derive from the flags, a new
        # member still joins: the answer to its join request names every member.
        deadline = time.time() + 30
        while True:
            p = self.c.ctl("move-leader", mid2, check=False,
                           endpoints=self.c.endpoints([self.c.wait_leader()]))
            if p.returncode == 0 and self.c.wait_leader() is m4:
                break
            self.assertLess(time.time(), deadline, p.stderr + self.c.logs())
            time.sleep(0.5)
        m5, mid5 = self.add_member("m5", learner=True)
        m5.start(state="existing")
        self.wait_count(m5, "mem/", 33)
        others = [m for m in self.c.members if m is not m5]
        self.c.ctl("member", "remove", mid5, endpoints=self.c.endpoints(others))
        m5.proc.wait(timeout=20)
        self.c.members.remove(m5)
        # Restarted, it keeps the id it was given.
        self.assertEqual(m4.stop(), 0)
        m4.start(state="existing")
        self.wait_count(m4, "mem/", 33)
        deadline = time.time() + 20
        while self.c.ctl("put", "mem/final2", "v", endpoints=m4.endpoint, check=False).returncode:
            self.assertLess(time.time(), deadline, self.c.logs())
            time.sleep(0.3)

    def test_a_member_not_added_first_cannot_join(self):
        from cluster import Member, free_ports
        client, peer, metrics = free_ports(3)
        m = Member(self.c, "stranger", client, peer, metrics)
        self.c.members.append(m)
        try:
            m.start(state="existing")
            self.assertNotEqual(m.proc.wait(timeout=60), 0)
        finally:
            self.c.members.remove(m)
        self.assertIn("add it first", m.log())

    def test_sigterm_on_the_leader_hands_leadership_over(self):
        old = self.c.wait_leader()
        t0 = time.time()
        self.assertEqual(old.stop(), 0, old.log()[-2000:])
        new = self.c.wait_leader(timeout=10)
        self.assertIsNot(new, old)
        self.c.ctl("put", "after/stop", "ok")
        self.assertLess(time.time() - t0, 10)


class RestoreTest(unittest.TestCase):
    """A backup taken with etcdctl snapshot save seeds a new cluster (chorus-snapshot restore)."""

    def setUp(self):
        if not SNAPSHOT_TOOL:
            self.skipTest("needs --snapshot-tool")
        self.clusters = []

    def tearDown(self):
        for c in self.clusters:
            c.close()

    def tool(self, *args, check=True):
        import subprocess
        p = subprocess.run([SNAPSHOT_TOOL] + list(args), capture_output=True, text=True,
                           timeout=120)
        if check:
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p

    def test_a_backup_restored_into_a_new_cluster_keeps_keys_revisions_and_leases(self):
        old = Cluster(CHORUSD)
        self.clusters.append(old)
        old.start()
        lease = old.ctl("lease", "grant", "900").stdout.split()[1]
        old.ctl("put", "rs/leased", "v", "--lease", lease)
        for i in range(60):
            old.ctl("put", "rs/%02d" % (i % 40), "v%d" % i)
        old.ctl("del", "rs/39")
        before = old.ctl_json("get", "rs/", "--prefix")
        path = os.path.join(old.root, "backup.db")
        old.ctl("snapshot", "save", path, endpoints=old.members[0].endpoint)
        status = json.loads(self.tool("status", path, "--json").stdout)
        self.assertEqual(status["revision"], before["header"]["revision"])
        self.assertEqual(status["totalKey"], 40)  # rs/00..38 and rs/leased
        self.assertEqual(status["leases"], 1)
        old.close(keep=True)  # the backup stays until tearDown

        new = Cluster(CHORUSD, token="restored-%d" % os.getpid())
        self.clusters.append(new)
        for m in new.members:
            out = self.tool("restore", path, "--data-dir", m.data_dir).stdout
            self.assertIn("--initial-cluster-state new", out)
        # A restored directory refuses to join an existing cluster: it would mix two histories.
        stray = new.members[0]
        stray.start(state="existing")
        self.assertNotEqual(stray.proc.wait(timeout=30), 0)
        self.assertIn("restored backup", stray.log())
        new.start()
        # The refused start wrote nothing: that member is a full member of the new cluster.
        deadline = time.time() + 20
        while True:
            p = new.ctl("put", "rs/via-m1", "x", endpoints=stray.endpoint, check=False)
            if p.returncode == 0:
                break
            self.assertLess(time.time(), deadline, p.stderr + new.logs())
            time.sleep(0.3)
        new.ctl("del", "rs/via-m1")
        after = new.ctl_json("get", "rs/", "--prefix")
        self.assertEqual([(kv["key"], kv["value"], kv["mod_revision"], kv["version"])
                          for kv in before["kvs"]],
                         [(kv["key"], kv["value"], kv["mod_revision"], kv["version"])
                          for kv in after["kvs"]])
        self.assertGreaterEqual(after["header"]["revision"], before["header"]["revision"])
        ttl = new.ctl_json("lease", "timetolive", lease)
        self.assertEqual(ttl["granted-ttl"], 900)
        names = sorted(m.get("name", "") for m in new.ctl_json("member", "list")["members"])
        self.assertEqual(names, ["m1", "m2", "m3"])
        new.ctl("put", "rs/new", "x")
        r = new.ctl_json("get", "rs/new")
        self.assertEqual(r["kvs"][0]["mod_revision"], after["header"]["revision"] + 1)
        s = new.ctl_json("get", "rs/00", "--consistency=s", endpoints=stray.endpoint)
        self.assertEqual(s["kvs"][0]["value"], before["kvs"][0]["value"])
        # A damaged file is refused before anything is written.
        with open(path, "r+b") as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 1]))
        p = self.tool("restore", path, "--data-dir", os.path.join(new.root, "x"), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("damaged", p.stderr)


def main():
    global CHORUSD, LINCHECK, SNAPSHOT_TOOL
    ap = argparse.ArgumentParser()
    ap.add_argument("--chorusd", required=True)
    ap.add_argument("--lincheck", help="chorus-lincheck, to check recorded histories")
    ap.add_argument("--snapshot-tool", help="chorus-snapshot, to restore backups")
    args, rest = ap.parse_known_args()
    CHORUSD = args.chorusd
    LINCHECK = args.lincheck
    SNAPSHOT_TOOL = args.snapshot_tool
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()
