"""The Redis face on real chorusd processes: a 3-member cluster with four data groups serving
RESP on --listen-redis-urls, driven by Debian's redis-cli and python3-redis (run with
/usr/bin/python3). Strings and keys, Redis's error texts, expiry, pipelining, RESP3, bad framing,
writes on one member read linearizably on another, and no acknowledged write lost when every
member is killed with SIGKILL and started again."""

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import unittest

import redis

from cluster import Cluster, free_ports, redis_slot, run_tests

CHORUSD = None
GROUPS_TOOL = None
LINCHECK = None
REDIS_CLI = "/usr/bin/redis-cli"
GROUPS = 4


def group_of(key):
    """The data group a key lands in: slots spread in equal ranges over groups 2..GROUPS+1."""
    return 2 + redis_slot(key) * GROUPS // 16384


class RedisFaceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ports = dict(zip(["m1", "m2", "m3"], free_ports(3)))
        cls.c = Cluster(CHORUSD, member_args=lambda m: [
            "--initial-groups", str(GROUPS),
            "--listen-redis-urls", "redis://127.0.0.1:%d" % cls.ports[m.name]])
        cls.c.start_or_keep()
        cls.clients = [redis.Redis(host="127.0.0.1", port=cls.ports[m.name], socket_timeout=20)
                       for m in cls.c.members]
        cls.wait_groups()

    @classmethod
    def wait_groups(cls):
        """Until every group has a leader: a write to each answers, through every member."""
        deadline = time.time() + 30
        while True:
            try:
                for g in range(GROUPS):
                    key = next("probe-%d" % i for i in range(1000)
                               if group_of("probe-%d" % i) == 2 + g)
                    for c in cls.clients:
                        c.set(key, "1")
                return
            except redis.exceptions.RedisError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def cli(self, member, *args, resp3=False):
        cmd = [REDIS_CLI, "-p", str(self.ports[member.name])] + (["-3"] if resp3 else []) + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.rstrip("\n")

    def raw(self, member, data, want_close=False):
        """Sends bytes on a fresh connection; returns what comes back before a pause (or the
        close)."""
        s = socket.create_connection(("127.0.0.1", self.ports[member.name]), timeout=10)
        s.sendall(data)
        out = b""
        s.settimeout(1.0 if not want_close else 10)
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    out += b"<closed>"
                    break
                out += b
        except socket.timeout:
            pass
        s.close()
        return out

    def test_strings_through_redis_cli(self):
        m1, m2, m3 = self.c.members
        self.assertEqual(self.cli(m1, "PING"), "PONG")
        self.assertEqual(self.cli(m1, "SET", "cli:k", "hello world"), "OK")
        self.assertEqual(self.cli(m2, "GET", "cli:k"), "hello world")
        self.assertEqual(self.cli(m3, "APPEND", "cli:k", "!"), "12")
        self.assertEqual(self.cli(m1, "STRLEN", "cli:k"), "12")
        self.assertEqual(self.cli(m2, "INCR", "cli:n"), "1")
        self.assertEqual(self.cli(m3, "INCRBY", "cli:n", "41"), "42")
        self.assertEqual(self.cli(m1, "INCRBYFLOAT", "cli:f", "2.5"), "2.5")
        self.assertEqual(self.cli(m1, "TYPE", "cli:k"), "string")
        self.assertEqual(self.cli(m2, "DEL", "cli:k"), "1")
        self.assertEqual(self.cli(m3, "GET", "cli:k"), "")
        self.assertEqual(self.cli(m1, "EXISTS", "cli:missing"), "0")

    def test_error_texts_are_redis_own(self):
        r = self.clients[0]
        with self.assertRaisesRegex(redis.exceptions.ResponseError,
                                    "^wrong number of arguments for 'get' command$"):
            r.execute_command("GET")
        with self.assertRaisesRegex(redis.exceptions.ResponseError,
                                    "^unknown command 'NOSUCH', with args beginning with: 'a' $"):
            r.execute_command("NOSUCH", "a")
        r.set("err:s", "abc")
        with self.assertRaisesRegex(redis.exceptions.ResponseError,
                                    "^value is not an integer or out of range$"):
            r.incr("err:s")
        with self.assertRaisesRegex(redis.exceptions.ResponseError, "^syntax error$"):
            r.execute_command("SET", "err:s", "v", "NX", "XX")
        with self.assertRaisesRegex(redis.exceptions.ResponseError,
                                    "^invalid expire time in 'set' command$"):
            r.execute_command("SET", "err:s", "v", "EX", "0")
        a, b = "x", next("x%d" % i for i in range(100) if group_of("x%d" % i) != group_of("x"))
        with self.assertRaisesRegex(redis.exceptions.ResponseError,
                                    "^CROSSSLOT Keys in request don't hash to the same slot$"):
            r.mget(a, b)
        # Hash tags keep keys together.
        self.assertTrue(r.mset({"{user1}.name": "ann", "{user1}.mail": "a@x"}))
        self.assertEqual(r.mget("{user1}.name", "{user1}.mail"), [b"ann", b"a@x"])
        self.assertEqual(self.cli(self.c.members[1], "SELECT", "1"), "ERR DB index is out of range")

    def test_expired_keys_are_swept(self):
        r = self.clients[0]
        before = sum(c.info("stats")["expired_keys"] for c in self.clients)
        p = r.pipeline(transaction=False)
        for i in range(60):
            if i % 3 == 0:
                p.hset("sweep:%d" % i, "f", "v")
                p.pexpire("sweep:%d" % i, 150)
            else:
                p.set("sweep:%d" % i, "v", px=150)
        p.set("sweep:kept", "v")
        p.execute()
        deadline = time.time() + 15
        while True:
            swept = sum(c.info("stats")["expired_keys"] for c in self.clients) - before
            if swept >= 60 or time.time() > deadline:
                break
            time.sleep(0.3)
        self.assertEqual(swept, 60)
        self.assertEqual(self.clients[1].get("sweep:kept"), b"v")

    def test_hashes_sets_and_lists(self):
        r1, r2, r3 = self.clients
        self.assertEqual(r1.hset("h:1", mapping={"name": "ann", "age": "31"}), 2)
        self.assertEqual(r2.hgetall("h:1"), {b"name": b"ann", b"age": b"31"})
        self.assertEqual(r3.hincrby("h:1", "age", 1), 32)
        self.assertEqual(r1.hdel("h:1", "name", "none"), 1)
        self.assertEqual(r2.hkeys("h:1"), [b"age"])
        self.assertEqual(r1.sadd("s:1", "a", "b", "c"), 3)
        self.assertEqual(r2.smembers("s:1"), {b"a", b"b", b"c"})
        self.assertIn(r3.spop("s:1"), {b"a", b"b", b"c"})
        self.assertEqual(r1.scard("s:1"), 2)
        self.assertEqual(r1.rpush("l:1", "a", "b", "c"), 3)
        self.assertEqual(r2.lpush("l:1", "z"), 4)
        self.assertEqual(r3.lrange("l:1", 0, -1), [b"z", b"a", b"b", b"c"])
        self.assertEqual(r1.lpop("l:1"), b"z")
        self.assertEqual(r2.rpop("l:1", 2), [b"c", b"b"])
        self.assertEqual(r3.llen("l:1"), 1)
        self.assertEqual(r1.type("l:1"), b"list")
        with self.assertRaisesRegex(redis.exceptions.ResponseError, "^WRONGTYPE "):
            r1.get("l:1")
        self.assertEqual(r1.zadd("z:1", {"a": 1, "b": 2.5, "c": -1}), 3)
        self.assertEqual(r2.zrange("z:1", 0, -1, withscores=True),
                         [(b"c", -1.0), (b"a", 1.0), (b"b", 2.5)])
        self.assertEqual(r3.zincrby("z:1", 5, "a"), 6.0)
        self.assertEqual(r1.zrangebyscore("z:1", "(0", "+inf"), [b"b", b"a"])
        self.assertEqual(r2.zpopmin("z:1"), [(b"c", -1.0)])
        self.assertEqual(r3.zrank("z:1", "a"), 1)
        # RESP3 answers a set as a set and a hash as a map.
        m1 = self.c.members[0]
        out = self.raw(m1, b"HELLO 3\r\nSMEMBERS s:1\r\nHGETALL h:1\r\n")
        self.assertIn(b"~2\r\n", out)
        self.assertIn(b"%1\r\n$3\r\nage\r\n$2\r\n32\r\n", out)

    def test_keys_scan_dbsize_and_flushall(self):
        r1, r2, r3 = self.clients
        self.assertTrue(r1.flushall())
        self.assertEqual(r2.dbsize(), 0)
        names = set()
        p = r1.pipeline(transaction=False)
        for i in range(300):
            name = "scan:%d" % i
            names.add(name)
            if i % 10 == 0:
                p.hset(name, "f", "v")
            else:
                p.set(name, "v")
        p.set("other", "x")
        p.set("gone", "x", px=1)
        p.execute()
        time.sleep(0.05)
        self.assertEqual(r2.dbsize(), 301)
        self.assertEqual({k.decode() for k in r3.keys("scan:*")}, names)
        self.assertEqual(sorted(r3.keys("scan:1?9")), [b"scan:109", b"scan:119", b"scan:129",
                                                       b"scan:139", b"scan:149", b"scan:159",
                                                       b"scan:169", b"scan:179", b"scan:189",
                                                       b"scan:199"])
        seen = []
        cursor, calls = "0", 0
        while True:
            cursor, batch = r2.scan(cursor, match="scan:*", count=7)
            calls += 1
            self.assertLessEqual(len(batch), 7)
            seen += [k.decode() for k in batch]
            if cursor == 0:
                break
        self.assertEqual(set(seen), names)
        self.assertGreaterEqual(calls, 300 // 7)
        hashes = {k.decode() for k in r1.scan_iter(count=50, _type="hash")}
        self.assertEqual(hashes, {"scan:%d" % i for i in range(0, 300, 10)})
        self.assertTrue(r3.flushall())
        for c in self.clients:
            self.assertEqual(c.dbsize(), 0)
            self.assertIsNone(c.get("scan:1"))
            self.assertEqual(c.hgetall("scan:0"), {})

    def test_multi_exec(self):
        r = self.clients[0]
        p = r.pipeline(transaction=True)
        p.set("{tx}a", "1").incr("{tx}a").rpush("{tx}l", "x").get("{tx}a")
        self.assertEqual(p.execute(), [True, 2, 1, b"2"])
        self.assertEqual(self.clients[1].get("{tx}a"), b"2")
        # An error inside runs the rest, as Redis does.
        p = r.pipeline(transaction=True)
        p.set("{tx}s", "abc").incr("{tx}s").get("{tx}s")
        out = p.execute(raise_on_error=False)
        self.assertEqual(out[0], True)
        self.assertIsInstance(out[1], redis.exceptions.ResponseError)
        self.assertEqual(out[2], b"abc")
        m1 = self.c.members[0]
        self.assertEqual(self.raw(m1, b"MULTI\r\nSET a 1\r\nNOSUCH\r\nEXEC\r\nGET a\r\n"),
                         b"+OK\r\n+QUEUED\r\n-ERR unknown command 'NOSUCH', with args beginning "
                         b"with: \r\n-EXECABORT Transaction discarded because of previous "
                         b"errors.\r\n$-1\r\n")
        self.assertEqual(self.raw(m1, b"MULTI\r\nSET tx:b 1\r\nDISCARD\r\nGET tx:b\r\n"
                                      b"EXEC\r\nMULTI\r\nMULTI\r\n"),
                         b"+OK\r\n+QUEUED\r\n+OK\r\n$-1\r\n-ERR EXEC without MULTI\r\n"
                         b"+OK\r\n-ERR MULTI calls can not be nested\r\n")
        a, b = "x", next("x%d" % i for i in range(100) if group_of("x%d" % i) != group_of("x"))
        p = r.pipeline(transaction=True)
        p.set(a, "1").set(b, "2")
        with self.assertRaisesRegex(redis.exceptions.ResponseError, "^CROSSSLOT "):
            p.execute()

    def test_watch_aborts_exec_when_a_key_changed_through_another_member(self):
        r, other = self.clients[0], self.clients[2]
        r.set("{w}k", "1")
        with r.pipeline(transaction=True) as p:
            p.watch("{w}k")
            other.set("{w}k", "2")  # through another member, before EXEC
            p.multi()
            p.set("{w}k", "mine")
            with self.assertRaises(redis.exceptions.WatchError):
                p.execute()
        self.assertEqual(r.get("{w}k"), b"2")
        # Unchanged, and changed then watched again: EXEC runs.
        with r.pipeline(transaction=True) as p:
            p.watch("{w}k", "{w}absent")
            p.multi()
            p.incr("{w}n")
            self.assertEqual(p.execute(), [1])
        # A watched key that expires, or is deleted, aborts too.
        r.set("{w}e", "x", px=300)
        with r.pipeline(transaction=True) as p:
            p.watch("{w}e")
            time.sleep(0.5)
            p.multi()
            p.incr("{w}n")
            with self.assertRaises(redis.exceptions.WatchError):
                p.execute()
        m1 = self.c.members[0]
        self.assertEqual(self.raw(m1, b"WATCH {w}k\r\nMULTI\r\nWATCH {w}k\r\nPING\r\n"
                                      b"EXEC\r\nUNWATCH\r\n"),
                         b"+OK\r\n+OK\r\n-ERR WATCH inside MULTI is not allowed\r\n"
                         b"+QUEUED\r\n*1\r\n+PONG\r\n+OK\r\n")

    def test_blocked_pop_is_answered_across_a_leader_kill(self):
        """A BLPOP blocked on one member is woken by a push through another, also after the
        key's group lost its leader to SIGKILL; a timed-out BLPOP answers nil."""
        r0 = self.clients[0]
        self.assertIsNone(r0.blpop(["{bl}none"], timeout=0.2))
        key = "{bl}q"
        group = group_of(key)
        leader = self.group_leader(group)
        waiter = next(m for m in self.c.members if m is not leader)
        pusher = next(m for m in self.c.members if m is not leader and m is not waiter)
        results = []

        def wait(n):
            c = redis.Redis(host="127.0.0.1", port=self.ports[waiter.name], socket_timeout=60)
            results.append(c.blpop([key], timeout=45))

        t = threading.Thread(target=wait, args=(0,))
        t.start()
        deadline = time.time() + 10
        info = redis.Redis(host="127.0.0.1", port=self.ports[waiter.name], socket_timeout=10)
        while info.info("clients")["blocked_clients"] < 1:
            self.assertLess(time.time(), deadline, "the BLPOP never blocked")
            time.sleep(0.05)
        leader.kill()
        p = redis.Redis(host="127.0.0.1", port=self.ports[pusher.name], socket_timeout=10)
        deadline = time.time() + 30
        while True:
            try:
                p.rpush(key, "after-kill")
                break
            except redis.exceptions.RedisError:
                self.assertLess(time.time(), deadline, "no push after the kill")
                time.sleep(0.3)
        t.join(60)
        leader.start()
        self.wait_groups()
        self.assertEqual(results, [(key.encode(), b"after-kill")])
        self.assertEqual(info.info("clients")["blocked_clients"], 0)

    def test_auth_takes_the_etcd_faces_users(self):
        """With the etcd face's auth on, a connection must AUTH (or HELLO AUTH) as one of its
        users first; turning auth off lets everyone in again."""
        self.c.ctl("user", "add", "root:rootpw")
        self.c.ctl("user", "grant-role", "root", "root")
        self.c.ctl("user", "add", "ann:annpw")
        self.c.ctl("auth", "enable")
        root = ["--user", "root:rootpw"]
        try:
            port = self.ports[self.c.members[1].name]
            anyone = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
            with self.assertRaisesRegex(redis.exceptions.AuthenticationError,
                                        "Authentication required"):
                anyone.get("{auth}k")
            with self.assertRaisesRegex((redis.exceptions.ResponseError,
                                         redis.exceptions.AuthenticationError), "WRONGPASS"):
                redis.Redis(host="127.0.0.1", port=port, username="ann", password="nope",
                            socket_timeout=10).ping()
            ann = redis.Redis(host="127.0.0.1", port=port, username="ann", password="annpw",
                              socket_timeout=10)
            self.assertTrue(ann.set("{auth}k", "v"))
            out = self.raw(self.c.members[1], b"GET {auth}k\r\nHELLO 3 AUTH ann annpw\r\n"
                                              b"GET {auth}k\r\n")
            self.assertTrue(out.startswith(b"-NOAUTH Authentication required.\r\n%7\r\n"), out)
            self.assertTrue(out.endswith(b"$1\r\nv\r\n"), out)
            # A user deleted is out at its next command.
            self.c.ctl("user", "delete", "ann", ctl_args=root)
            deadline = time.time() + 10
            while True:
                try:
                    ann.get("{auth}k")
                except redis.exceptions.AuthenticationError:
                    break
                self.assertLess(time.time(), deadline, "a deleted user still served")
                time.sleep(0.1)
        finally:
            self.c.ctl("auth", "disable", ctl_args=root)
            self.c.ctl("user", "delete", "root")
        self.assertEqual(self.clients[0].get("{auth}k"), b"v")

    def test_publish_reaches_subscribers_of_every_member(self):
        subs = []
        for c in self.clients:
            ps = c.pubsub()
            ps.subscribe("news")
            ps.psubscribe("n*")
            self.assertEqual(ps.get_message(timeout=5)["type"], "subscribe")
            self.assertEqual(ps.get_message(timeout=5)["type"], "psubscribe")
            subs.append(ps)
        self.assertEqual(self.clients[1].publish("news", "hello"), 2)  # its own member's two
        for ps in subs:
            got = [ps.get_message(timeout=5) for _ in range(2)]
            self.assertEqual(sorted((m["type"], m["data"]) for m in got),
                             [("message", b"hello"), ("pmessage", b"hello")])
        self.assertEqual(self.clients[0].pubsub_numsub("news"), [(b"news", 1)])
        self.assertEqual(self.clients[0].pubsub_numpat(), 1)
        for ps in subs:
            ps.close()
        m1 = self.c.members[0]
        self.assertEqual(self.raw(m1, b"SUBSCRIBE a b\r\nGET x\r\nPING\r\nUNSUBSCRIBE\r\n"
                                      b"GET nothing:here\r\n"),
                         b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
                         b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
                         b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                         b"PING / QUIT / RESET are allowed in this context\r\n"
                         b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
                         b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n"
                         b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n$-1\r\n")

    def test_expiry(self):
        r = self.clients[1]
        self.assertTrue(r.set("exp:k", "v", px=400))
        ttl = r.pttl("exp:k")
        self.assertTrue(0 < ttl <= 400, ttl)
        self.assertEqual(self.clients[2].get("exp:k"), b"v")
        time.sleep(0.6)
        for c in self.clients:
            self.assertIsNone(c.get("exp:k"))
        self.assertEqual(r.ttl("exp:k"), -2)
        r.set("exp:p", "v")
        self.assertTrue(r.expire("exp:p", 100))
        self.assertEqual(self.clients[0].ttl("exp:p"), 100)
        self.assertTrue(r.persist("exp:p"))
        self.assertEqual(self.clients[2].ttl("exp:p"), -1)

    def test_pipelined_commands_answer_in_order(self):
        r = self.clients[2]
        p = r.pipeline(transaction=False)
        n = 2000
        for i in range(n):
            p.incr("pipe:%d" % (i % 37))
            p.get("pipe:%d" % (i % 37))
        out = p.execute()
        self.assertEqual(len(out), 2 * n)
        counts = {}
        for i in range(n):
            k = i % 37
            counts[k] = counts.get(k, 0) + 1
            self.assertEqual(out[2 * i], counts[k])
            self.assertEqual(out[2 * i + 1], str(counts[k]).encode())

    def test_resp3_inline_and_bad_framing(self):
        m1, m2, _ = self.c.members
        out = self.raw(m1, b"HELLO 3\r\nGET resp3:none\r\nPING\r\n")
        self.assertTrue(out.startswith(b"%7\r\n"), out)
        self.assertTrue(out.endswith(b"_\r\n+PONG\r\n"), out)
        self.assertEqual(self.raw(m1, b"ECHO \"a b\"\r\n"), b"$3\r\na b\r\n")
        self.assertEqual(self.raw(m2, b"*1\r\n+PING\r\nPING\r\n", want_close=True),
                         b"-ERR Protocol error: expected '$', got '+'\r\n<closed>")
        self.assertEqual(self.raw(m2, b"*1\r\n$999999999999\r\n", want_close=True),
                         b"-ERR Protocol error: invalid bulk length\r\n<closed>")
        self.assertEqual(self.raw(m2, b"PING\r\nQUIT\r\nPING\r\n", want_close=True),
                         b"+PONG\r\n+OK\r\n<closed>")
        # The member serves on.
        self.assertEqual(self.cli(m2, "PING"), "PONG")

    def group_leader(self, group):
        """The member leading a data group, from chorus-groups list and the member table."""
        names = {"%x" % m["ID"]: m["name"] for m in self.c.ctl_json("member", "list")["members"]}
        deadline = time.time() + 20
        while True:
            for m in self.c.members:
                if not m.running():
                    continue
                p = subprocess.run([GROUPS_TOOL, "--endpoint", m.endpoint, "list"],
                                   capture_output=True, text=True, timeout=30)
                for line in p.stdout.splitlines():
                    g = json.loads(line)
                    if g["group"] == group and g["leader"] in names:
                        return next(x for x in self.c.members if x.name == names[g["leader"]])
            if time.time() > deadline:
                raise AssertionError("group %d has no leader" % group)
            time.sleep(0.2)

    def test_leader_killed_under_load_history_is_linearizable(self):
        """Clients SET and GET ten keys of one group through the two other members while the
        group's leader is SIGKILLed and restarted; chorus-lincheck checks the recorded history.
        (A client of the killed member would add an unknown write per attempt, each concurrent
        with everything after it, which the checker's search pays for.)"""
        keys = ["{lin}k%d" % i for i in range(10)]
        group = group_of(keys[0])
        leader = self.group_leader(group)
        others = [m for m in self.c.members if m is not leader]
        history, lock = [], threading.Lock()
        stop = threading.Event()
        done_after_kill = [0]
        killed = threading.Event()

        def client(n):
            member = others[n % 2]
            r = redis.Redis(host="127.0.0.1", port=self.ports[member.name], socket_timeout=5)
            rng = random.Random(n)
            i = 0
            while not stop.is_set():
                key = rng.choice(keys)
                call = time.monotonic_ns()
                if rng.random() < 0.5:
                    value = "c%d-%d" % (n, i)
                    i += 1
                    try:
                        r.set(key, value)
                        line = "%d %d %d put %s %s ok" % (n, call, time.monotonic_ns(), key, value)
                    except redis.exceptions.RedisError:
                        line = "%d %d - put %s %s" % (n, call, key, value)
                        time.sleep(0.3)
                else:
                    try:
                        v = r.get(key)
                        ret = time.monotonic_ns()
                        line = "%d %d %d get %s %s" % (
                            n, call, ret, key, "missing" if v is None else "found " + v.decode())
                    except redis.exceptions.RedisError:
                        time.sleep(0.3)
                        continue
                with lock:
                    history.append(line)
                    if killed.is_set() and " ok" in line[-3:]:
                        done_after_kill[0] += 1

        threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        leader.kill()
        killed.set()
        # Until the group, under a new leader, has acknowledged writes again (requests caught
        # by the kill wait out their timeouts first).
        deadline = time.time() + 30
        while done_after_kill[0] < 30 and time.time() < deadline:
            time.sleep(0.2)
        leader.start()
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join()
        self.wait_groups()
        self.assertGreater(done_after_kill[0], 20, "writes after the kill")
        path = os.path.join(self.c.root, "redis-history.txt")
        with open(path, "w") as f:
            f.write("\n".join(history) + "\n")
        p = subprocess.run([LINCHECK, path], capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("linearizable: %d operations" % len(history), p.stdout)
        sys.stderr.write("[history of %d operations, %d writes acknowledged after the kill: %s] " % (
            len(history), done_after_kill[0], p.stdout.strip()))

    def test_no_acknowledged_write_lost_when_every_member_is_killed(self):
        acked = {}
        stop = threading.Event()
        errors = []

        def writer(n):
            r = redis.Redis(host="127.0.0.1", port=self.ports[self.c.members[n % 3].name],
                            socket_timeout=5)
            i = 0
            while not stop.is_set():
                key = "kill:%d:%d" % (n, i)
                try:
                    if r.set(key, str(i)):
                        acked[key] = str(i).encode()
                except redis.exceptions.RedisError as e:
                    errors.append(str(e))
                i += 1

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        time.sleep(2)
        for m in self.c.members:
            m.kill()
        stop.set()
        for t in threads:
            t.join()
        self.assertGreater(len(acked), 100)
        for m in self.c.members:
            m.start()
        self.wait_groups()
        keys = sorted(acked)
        got = []
        for i in range(0, len(keys), 500):
            p = self.clients[1].pipeline(transaction=False)
            for k in keys[i:i + 500]:
                p.get(k)
            got.extend(p.execute())
        lost = [k for k, v in zip(keys, got) if v != acked[k]]
        self.assertEqual(lost, [], "%d of %d acknowledged writes lost" % (len(lost), len(keys)))


if __name__ == "__main__":
    run_tests(globals(), flags=("--chorusd", "--groups-tool", "--lincheck"))
