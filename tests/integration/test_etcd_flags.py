"""etcd's flags beyond the basic ones, on real chorusd processes: an etcd command line starts a
member; --wal-dir keeps the log apart (and a member started without it refuses); --log-outputs
writes where told; --metrics extensive adds the request histograms; --strict-reconfig-check
refuses membership changes that could cost the quorum; --force-new-cluster brings a cluster
that lost its quorum back as one member with its data, to which members are then added.

    python3 tests/integration/test_etcd_flags.py --chorusd build/rel/src/server/chorusd [-v]
"""

import json
import os
import re
import shutil
import subprocess
import time
import unittest

from cluster import Cluster, Member, free_ports, run_tests, unb64

CHORUSD = None


class EtcdCommandLineTest(unittest.TestCase):
    def test_etcd_flags_wal_dir_log_outputs_and_extensive_metrics(self):
        c = Cluster(CHORUSD, size=1)
        m = c.members[0]
        wal = os.path.join(c.root, "wal-disk", "wal")
        os.makedirs(os.path.dirname(wal))
        log_file = os.path.join(c.root, "m1-outputs.log")
        etcd_style = [
            "--wal-dir", wal, "--logger", "capnslog", "--log-outputs", log_file + ",stderr",
            "--metrics", "extensive", "--pre-vote=false", "--strict-reconfig-check",
            "--max-snapshots", "5", "--max-wals", "5", "--backend-batch-interval", "100ms",
            "--backend-batch-limit", "10000", "--max-concurrent-streams", "1000",
            "--grpc-keepalive-min-time", "5s", "--grpc-keepalive-interval", "2h",
            "--grpc-keepalive-timeout", "20s", "--initial-election-tick-advance",
            "--experimental-backend-bbolt-freelist-type", "map",
            "--experimental-compaction-batch-limit", "1000",
            "--experimental-warning-apply-duration", "100ms",
            "--experimental-watch-progress-notify-interval", "10m",
            "--proxy", "off", "--enable-v2=false", "--discovery-fallback", "exit"]
        c.member_args = lambda _: etcd_style
        c.start_or_keep()
        try:
            c.ctl("put", "flags/a", "1")
            self.assertEqual(c.local_value(m, "flags/a"), "1")
            self.assertTrue(os.listdir(wal), "the log is not in --wal-dir")
            self.assertFalse(os.path.exists(os.path.join(m.data_dir, "member", "wal")))
            with open(log_file) as f:
                self.assertIn('"msg":"serving"', f.read())
            self.assertIn('"msg":"serving"', m.log(), "stderr too, as listed")
            _, metrics = m.http_get("/metrics")
            self.assertRegex(metrics, r'grpc_server_handling_seconds_bucket\{grpc_method="Put"')

            # Restarted without --wal-dir, the member refuses rather than start an empty log.
            m.stop()
            c.member_args = None
            m.start()
            self.assertEqual(m.proc.wait(timeout=20), 1)
            self.assertIn("start it with --wal-dir " + wal, m.log())
            # Moved with the member stopped, the log is found in its new place.
            moved = os.path.join(c.root, "wal-disk", "moved")
            shutil.move(wal, moved)
            c.member_args = lambda _: [moved if a == wal else a for a in etcd_style]
            m.start()
            c.wait_leader()
            self.assertEqual(c.local_value(m, "flags/a"), "1")
            c.ctl("put", "flags/b", "2")
            self.assertTrue(os.listdir(moved))
        finally:
            c.close()

    def test_refused_flags_say_why(self):
        for flag, why in [("--enable-v2", "v2 API"), ("--proxy=on", "v2 proxy"),
                          ("--enable-pprof", "perf"),
                          ("--discovery=https://discovery.etcd.io/x", "--discovery-srv")]:
            p = subprocess.run([CHORUSD, flag], capture_output=True, text=True, timeout=20)
            self.assertEqual(p.returncode, 1, flag)
            self.assertIn(why, p.stderr, flag)


class StrictReconfigTest(unittest.TestCase):
    def test_changes_that_could_cost_the_quorum_are_refused(self):
        c = Cluster(CHORUSD).start_or_keep()
        try:
            m1, m2, m3 = c.members
            ids = {x["name"]: x["ID"] for x in c.ctl_json("member", "list")["members"]}
            m3.stop()
            live = c.endpoints([m1, m2])
            # Wait until both members' connections to m3 are down (their metrics say so).
            down = 'etcd_network_active_peers{Local="%%x",Remote="%x"} 0' % ids["m3"]
            deadline = time.time() + 20
            for m in (m1, m2):
                while (down % ids[m.name]) not in m.http_get("/metrics")[1]:
                    self.assertLess(time.time(), deadline, "m3 still seen as up\n" + c.logs())
                    time.sleep(0.2)
            p = c.ctl("member", "add", "m4", "--peer-urls", "http://127.0.0.1:1", endpoints=live,
                      check=False)
            self.assertNotEqual(p.returncode, 0, "a voter was added with a member down")
            self.assertIn("etcdserver: unhealthy cluster", p.stderr)
            p = c.ctl("member", "remove", "%x" % ids["m2"], endpoints=live, check=False)
            self.assertNotEqual(p.returncode, 0, "a reachable voter was removed with one down")
            self.assertIn("etcdserver: unhealthy cluster", p.stderr)
            # A learner holds no vote: adding one is allowed, and removing it.
            out = c.ctl("member", "add", "l1", "--learner", "--peer-urls", "http://127.0.0.1:1",
                        endpoints=live).stdout
            learner = re.search(r"Member\s+([0-9a-f]+)\s+added", out).group(1)
            c.ctl("member", "remove", learner, endpoints=live)
            # The member that is down may go: the two left are a quorum of two.
            c.ctl("member", "remove", "%x" % ids["m3"], endpoints=live)
            self.assertEqual(len(c.ctl_json("member", "list", endpoints=live)["members"]), 2)
            c.members.remove(m3)
        finally:
            c.close()


class ForceNewClusterTest(unittest.TestCase):
    def test_a_cluster_that_lost_its_quorum_comes_back_as_one_member(self):
        c = Cluster(CHORUSD).start_or_keep()
        try:
            m1, m2, m3 = c.members
            first_cluster = c.initial_cluster()
            for i in range(20):
                c.ctl("put", "fnc/%02d" % i, "v%d" % i)
            c.wait_value(m1, "fnc/19", "v19")
            m2.kill()
            m3.kill()
            p = c.ctl("put", "fnc/lost", "x", endpoints=m1.endpoint, check=False, timeout=30)
            self.assertNotEqual(p.returncode, 0, "a write committed without a quorum")
            m1.stop()
            m1.start(extra=["--force-new-cluster"])
            c.members = [m1]
            c.wait_leader()
            self.assertIn("--force-new-cluster", m1.wait_log("forms its cluster alone"))
            got = c.ctl_json("get", "fnc/", "--prefix", endpoints=m1.endpoint)
            keys = {unb64(kv["key"]): unb64(kv["value"]) for kv in got.get("kvs", [])}
            for i in range(20):
                self.assertEqual(keys.get("fnc/%02d" % i), "v%d" % i)
            # The write that got no answer was in m1's log: the whole log is kept, so it may
            # have taken effect (its client saw neither outcome).
            self.assertIn(keys.get("fnc/lost"), (None, "x"))
            self.assertLessEqual(len(keys), 21)
            members = c.ctl_json("member", "list", endpoints=m1.endpoint)["members"]
            self.assertEqual([x["name"] for x in members], ["m1"])
            c.ctl("put", "fnc/after", "1", endpoints=m1.endpoint)

            # Started again with the flag, it changes nothing: the member is alone already.
            m1.stop()
            m1.start(extra=["--force-new-cluster"])
            c.wait_leader()
            self.assertEqual(c.local_value(m1, "fnc/after"), "1")

            # A member added back with an empty directory catches up on everything.
            client, peer, metrics = free_ports(3)
            m4 = Member(c, "m4", client, peer, metrics)
            c.ctl("member", "add", "m4", "--peer-urls", m4.peer_url, endpoints=m1.endpoint)
            c.members.append(m4)
            m4.start(state="existing")
            self.assertTrue(c.wait_value(m4, "fnc/after", "1", timeout=30), c.logs())
            c.ctl("put", "fnc/two", "2")
            self.assertTrue(c.wait_value(m4, "fnc/two", "2"), c.logs())
            # The old members were removed: back, they are refused.
            m2.start(extra=["--initial-cluster", first_cluster])
            m2.proc.wait(timeout=30)  # a removed member stops by itself
            self.assertIn("removed from the cluster", m2.log())
        finally:
            m2.kill()
            c.close()


class CorruptionCheckTest(unittest.TestCase):
    def test_a_member_whose_store_diverged_is_caught_with_auth_on(self):
        faulty = {"m3"}

        def member_args(m):
            args = ["--experimental-corrupt-check-time", "1s"]
            if m.name in faulty:
                args += ["--unsafe-test-fault", "corrupt-writes"]
            return args

        c = Cluster(CHORUSD, member_args=member_args).start_or_keep()
        try:
            m1, m2, m3 = c.members
            # With auth on: members ask each other's hashes on the peer port, as no user.
            c.ctl("user", "add", "root", "--new-user-password=root-pw")
            c.ctl("auth", "enable")
            c.ctl_args = ["--user", "root:root-pw"]
            # The first put makes m3's history differ; the alarm may stop later ones.
            c.ctl("put", "cc/0", "v")
            for i in range(1, 5):
                c.ctl("put", "cc/%d" % i, "v", check=False)
            # The leader compares hashes every second and raises the alarm against the member
            # whose history differs (m3; or, should m3 lead, against each of the others).
            deadline = time.time() + 30
            while "alarm:CORRUPT" not in c.ctl("alarm", "list").stdout:
                self.assertLess(time.time(), deadline, "no CORRUPT alarm\n" + c.logs())
                time.sleep(0.5)
            p = c.ctl("put", "cc/after", "x", check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("etcdserver: corrupt cluster", p.stderr)
            p = c.ctl("get", "cc/0", check=False)
            self.assertIn("etcdserver: corrupt cluster", p.stderr)
            code, body = m1.http_get("/health")
            self.assertEqual(code, 503, body)
            self.assertIn("ALARM CORRUPT", body)

            # With the faulty member stopped, an operator clears the alarm and writes resume.
            m3.stop()
            c.ctl("alarm", "disarm", endpoints=c.endpoints([m1, m2]))
            c.ctl("put", "cc/after", "1", endpoints=c.endpoints([m1, m2]))

            # Restarted with the check at start, the diverged member refuses to serve...
            faulty.clear()
            m3.start(extra=["--experimental-initial-corrupt-check"])
            try:
                code = m3.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                code = None
            self.assertEqual(code, 1, m3.log())
            self.assertIn("found data inconsistency with peers", m3.log())
            # ...while a sound one passes it.
            m1.stop()
            m1.start(extra=["--experimental-initial-corrupt-check"])
            self.assertIn("corruption check passed", m1.wait_log("corruption check passed", 20))
            self.assertIn('"members-compared":"1"', m1.log())
            c.members.remove(m3)
            c.wait_leader()
            c.ctl("put", "cc/end", "1")
        finally:
            c.close()


class DnsServer:
    """A DNS server on a loopback UDP port answering SRV questions from `records` (name ->
    [(target, port)]) and NXDOMAIN for any other name: enough for --discovery-srv."""

    def __init__(self, records):
        import socket
        import struct
        import threading
        self.records = {k.lower().rstrip("."): v for k, v in records.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.asked = []
        self.struct = struct
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @staticmethod
    def name(labels):
        out = b""
        for label in labels.rstrip(".").split("."):
            out += bytes([len(label)]) + label.encode()
        return out + b"\0"

    def serve(self):
        pack = self.struct.pack
        while True:
            try:
                query, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            qid, = self.struct.unpack("!H", query[:2])
            pos, labels = 12, []
            while query[pos]:
                labels.append(query[pos + 1:pos + 1 + query[pos]].decode())
                pos += 1 + query[pos]
            question = query[12:pos + 5]
            qname = ".".join(labels).lower()
            self.asked.append(qname)
            answers = self.records.get(qname)
            rcode = 0 if answers else 3
            body = b""
            for target, port in answers or []:
                rdata = pack("!HHH", 0, 0, port) + self.name(target)
                body += pack("!HHHIH", 0xC00C, 33, 1, 60, len(rdata)) + rdata
            header = pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(answers or []), 0, 0)
            self.sock.sendto(header + question + body, peer)

    def close(self):
        self.sock.close()


class DiscoverySrvTest(unittest.TestCase):
    def test_a_cluster_bootstraps_from_srv_records(self):
        c = Cluster(CHORUSD)
        dns = DnsServer({"_etcd-server._tcp.chorus.test":
                         [("localhost.", m.peer_port) for m in c.members]})
        c.initial_cluster = lambda: None
        c.member_args = lambda m: ["--discovery-srv", "chorus.test",
                                   "--discovery-srv-resolver", "127.0.0.1:%d" % dns.port]
        try:
            c.start_or_keep()
            self.assertIn("_etcd-server-ssl._tcp.chorus.test", dns.asked)
            self.assertIn("found the initial cluster in DNS", c.members[0].log())
            c.ctl("put", "srv/a", "1")
            for m in c.members:
                self.assertTrue(c.wait_value(m, "srv/a", "1"), c.logs())
            members = c.ctl_json("member", "list")["members"]
            self.assertEqual(sorted(x["name"] for x in members), ["m1", "m2", "m3"])
            self.assertTrue(all(x["peerURLs"][0].startswith("http://localhost:")
                                for x in members), members)
            # Restarted, a member reads its data directory, not DNS.
            dns.close()
            c.members[0].stop()
            c.members[0].start()
            c.wait_leader()
            self.assertEqual(c.local_value(c.members[0], "srv/a"), "1")
        finally:
            dns.close()
            c.close()

    def test_no_record_for_this_member_is_a_clear_error(self):
        dns = DnsServer({"_etcd-server._tcp.chorus.test": [("localhost.", 1)]})
        try:
            p = subprocess.run([CHORUSD, "--discovery-srv", "chorus.test",
                                "--discovery-srv-resolver", "127.0.0.1:%d" % dns.port,
                                "--listen-peer-urls", "http://127.0.0.1:%d" % free_ports(1)[0],
                                "--data-dir", "/nonexistent/x"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 1)
            self.assertIn("no SRV record matches this member", p.stderr)
        finally:
            dns.close()


class LeaseCheckpointTest(unittest.TestCase):
    def test_a_new_leader_keeps_the_time_left_on_a_lease(self):
        c = Cluster(CHORUSD, member_args=lambda m: [
            "--experimental-enable-lease-checkpoint",
            "--experimental-lease-checkpoint-interval", "1s"]).start_or_keep()
        try:
            leader = c.wait_leader()
            lease = c.ctl("lease", "grant", "30", endpoints=leader.endpoint).stdout.split()[1]
            time.sleep(5)
            ids = {x["name"]: x["ID"] for x in c.ctl_json("member", "list")["members"]}
            other = next(m for m in c.members if m is not leader)
            c.ctl("move-leader", "%x" % ids[other.name], endpoints=leader.endpoint)
            self.assertIs(c.wait_leader(), other)
            out = c.ctl("lease", "timetolive", lease, endpoints=other.endpoint).stdout
            left = int(re.search(r"remaining\((-?\d+)s\)", out).group(1))
            # About 25 s were left at the last checkpoint; without one it would be a full 30.
            self.assertLessEqual(left, 27, out)
            self.assertGreater(left, 15, out)
        finally:
            c.close()


if __name__ == "__main__":
    run_tests(globals())
