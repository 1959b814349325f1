"""Clients of the etcd v3 API (Debian's python3-etcd3 over gRPC) that record every operation with
its call and return times, in the history format chorus-lincheck reads.

The register workload: each client picks a key among a few and reads it (a linearizable Range),
writes a value no one wrote before (Put), or swaps the value it last saw for a new one (a Txn
comparing the value, then a Put). A write or swap that fails or times out may still take effect:
its outcome is unknown and it is recorded without a return time. A read that fails had no
effect and is left out. Keys are used for a few seconds each, then the clients move on to fresh
ones (as Jepsen's independent keys): an unknown outcome stays concurrent with everything after it
on its key, so bounding each key's history keeps the checker's search decidable. For the same
reason a client whose write to a key had an unknown outcome only reads that key from then on: a
key gathers at most one unknown write per client.

Beside it, each client now and then adds a key of its own under "set/" that is never changed
again: after the faults heal, every one whose put was acknowledged must be read back."""

import random
import threading
import time

import etcd3

REGISTER_PREFIX = "r/"
SET_PREFIX = "set/"


class History:
    def __init__(self):
        self.lock = threading.Lock()
        self.lines = []  # chorus-lincheck lines
        self.ops = []  # (client, call_ns, return_ns or None, kind, outcome) for the report
        self.register_keys = set()
        self.acked_set_keys = []
        self.unknown_set_keys = []
        self.counts = {"ok": 0, "unknown": 0, "failed": 0}

    def add(self, client, call, ret, kind, key, args, result):
        """ret None: unknown outcome. result None with ret: a failed read (left out)."""
        with self.lock:
            self.register_keys.add(key)
            if ret is None:
                self.lines.append("%d %d - %s %s %s" % (client, call, kind, key, " ".join(args)))
                self.ops.append((client, call, None, kind, "unknown"))
                self.counts["unknown"] += 1
            elif result is None:
                self.ops.append((client, call, ret, kind, "failed"))
                self.counts["failed"] += 1
            else:
                self.lines.append("%d %d %d %s %s %s" % (client, call, ret, kind, key,
                                                          " ".join(list(args) + [result])))
                self.ops.append((client, call, ret, kind, "ok"))
                self.counts["ok"] += 1


def now_ns():
    return time.monotonic_ns()


class Client(threading.Thread):
    def __init__(self, cid, endpoints, history, rng_seed, keys, timeout, stop_at, pace_ms,
                 key_seconds=5.0):
        super().__init__(daemon=True)
        self.cid = cid
        self.endpoints = endpoints  # [(host, port)], tried in turn after a failure
        self.history = history
        self.rng = random.Random(rng_seed)
        self.keys = keys
        self.timeout = timeout
        self.stop_at = stop_at  # monotonic seconds
        self.pace_ms = pace_ms
        self.seq = 0
        self.error = None  # an unexpected exception that ended this client: fails the run
        self.which = self.rng.randrange(len(endpoints))
        self.conn = None
        self.last_seen = {}
        self.uncertain = set()  # keys this client wrote with an unknown outcome
        self.began = time.monotonic()
        self.key_seconds = key_seconds

    def connect(self):
        if self.conn is None:
            host, port = self.endpoints[self.which % len(self.endpoints)]
            self.conn = etcd3.client(host=host, port=port, timeout=self.timeout)
        return self.conn

    def rotate(self):
        try:
            if self.conn is not None:
                self.conn.close()
        except Exception:  # noqa: BLE001 - a broken channel may fail to close; it is dropped
            pass
        self.conn = None
        self.which += 1

    def value(self):
        self.seq += 1
        return "c%d-%d" % (self.cid, self.seq)

    def run(self):
        try:
            while time.monotonic() < self.stop_at:
                self.one_op()
                time.sleep(self.rng.uniform(0, self.pace_ms) / 1000.0)
        except Exception as e:  # noqa: BLE001 - recorded, and the run fails on it
            self.error = "%s: %s" % (type(e).__name__, e)
        self.rotate()

    def one_op(self):
        r = self.rng.random()
        if r < 0.08:
            return self.set_add()
        generation = int((time.monotonic() - self.began) / self.key_seconds)
        key = REGISTER_PREFIX + "g%d-k%d" % (generation, self.rng.randrange(self.keys))
        if r < 0.50 or key in self.uncertain:
            return self.read(key)
        if r < 0.80:
            return self.write(key)
        return self.cas(key)

    def read(self, key):
        call = now_ns()
        try:
            value, _ = self.connect().get(key)
            ret = now_ns()
        except Exception:  # noqa: BLE001 - any failure: the read had no effect
            self.history.add(self.cid, call, now_ns(), "get", key, [], None)
            self.rotate()
            return
        if value is None:
            self.history.add(self.cid, call, ret, "get", key, [], "missing")
        else:
            v = value.decode()
            self.last_seen[key] = v
            self.history.add(self.cid, call, ret, "get", key, ["found"], v)

    def write(self, key):
        v = self.value()
        call = now_ns()
        try:
            self.connect().put(key, v)
            ret = now_ns()
        except Exception:  # noqa: BLE001 - the write may still happen
            self.history.add(self.cid, call, None, "put", key, [v], None)
            self.uncertain.add(key)
            self.rotate()
            return
        self.last_seen[key] = v
        self.history.add(self.cid, call, ret, "put", key, [v], "ok")

    def cas(self, key):
        old = self.last_seen.get(key)
        if old is None:
            return self.read(key)  # a swap needs a value seen before
        v = self.value()
        call = now_ns()
        try:
            c = self.connect()
            t = c.transactions
            ok, _ = c.transaction(compare=[t.value(key) == old], success=[t.put(key, v)],
                                  failure=[])
            ret = now_ns()
        except Exception:  # noqa: BLE001 - the swap may still happen
            self.history.add(self.cid, call, None, "cas", key, [old, v], None)
            self.uncertain.add(key)
            self.rotate()
            return
        if ok:
            self.last_seen[key] = v
        self.history.add(self.cid, call, ret, "cas", key, [old, v], "ok" if ok else "fail")

    def set_add(self):
        key = SET_PREFIX + self.value()
        try:
            self.connect().put(key, "1")
        except Exception:  # noqa: BLE001 - may or may not be there afterwards
            with self.history.lock:
                self.history.unknown_set_keys.append(key)
            self.rotate()
            return
        with self.history.lock:
            self.history.acked_set_keys.append(key)


BANK_PREFIX = "bank/"


class Bank:
    """Accounts under bank/ whose total never changes: transfers are Txns that compare both
    accounts' mod revisions before writing both; every read of all accounts is one Range, so it
    must see a consistent snapshot with the full total."""

    def __init__(self, accounts=5, balance=100):
        self.accounts = accounts
        self.balance = balance
        self.total = accounts * balance
        self.lock = threading.Lock()
        self.reads = 0
        self.bad_reads = []  # (client, detail)
        self.transfers = {"ok": 0, "refused": 0, "unknown": 0}

    def key(self, i):
        return BANK_PREFIX + "a%d" % i

    def setup(self, client):
        for i in range(self.accounts):
            client.put(self.key(i), str(self.balance))

    def check_read(self, cid, kvs):
        """Records one read of every account; False if it was not a consistent whole."""
        with self.lock:
            self.reads += 1
            try:
                balances = [int(v) for v, _ in kvs]
            except ValueError:
                self.bad_reads.append((cid, "a balance that is not a number: %r" %
                                       [v for v, _ in kvs]))
                return False
            total = sum(balances)
            if len(kvs) != self.accounts or total != self.total or min(balances, default=0) < 0:
                self.bad_reads.append((cid, "%d accounts summing to %d (%s)" % (
                    len(kvs), total, balances)))
                return False
            return True


class BankClient(Client):
    def __init__(self, cid, endpoints, bank, rng_seed, timeout, stop_at, pace_ms):
        super().__init__(cid, endpoints, None, rng_seed, 0, timeout, stop_at, pace_ms)
        self.bank = bank

    def one_op(self):
        try:
            c = self.connect()
            kvs = list(c.get_prefix(BANK_PREFIX))
        except Exception:  # noqa: BLE001 - a failed read proves nothing
            self.rotate()
            return
        if not self.bank.check_read(self.cid, kvs) or self.rng.random() < 0.3:
            return
        state = {m.key.decode(): (int(v), m.mod_revision) for v, m in kvs}
        names = sorted(state)
        src, dst = self.rng.sample(names, 2)
        amount = self.rng.randint(0, state[src][0])
        t = c.transactions
        try:
            ok, _ = c.transaction(
                compare=[t.mod(src) == state[src][1], t.mod(dst) == state[dst][1]],
                success=[t.put(src, str(state[src][0] - amount)),
                         t.put(dst, str(state[dst][0] + amount))],
                failure=[])
        except Exception:  # noqa: BLE001 - the transfer may still happen, whole or not at all
            with self.bank.lock:
                self.bank.transfers["unknown"] += 1
            self.rotate()
            return
        with self.bank.lock:
            self.bank.transfers["ok" if ok else "refused"] += 1
