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
again: after the faults heal, every one whose put was acknowledged must be read back.

The watch (w/), lock (/locks/chaos and lock/counter) and list-append (la/) workloads each keep
their own clients and records: setup() writes their starting keys before the workload,
clients() gives the threads the harness starts and joins, finish() makes their reads after the
heal, and checks() judges the records with checks.py."""

import collections
import queue
import random
import threading
import time

import etcd3
import etcd3.etcdrpc
import etcd3.locks
import grpc
from etcd3.etcdrpc import kv_pb2

import checks

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


def on_any_member(endpoints, fn, seconds=10.0, timeout=3.0):
    """fn(client) through each member in turn until a call succeeds: its result, or None once
    `seconds` have passed without one."""
    deadline = time.monotonic() + seconds
    while True:
        for host, port in endpoints:
            c = None
            try:
                c = etcd3.client(host=host, port=port, timeout=timeout)
                return fn(c)
            except Exception:  # noqa: BLE001 - the next member, until the deadline
                pass
            finally:
                if c is not None:
                    c.close()
            if time.monotonic() >= deadline:
                return None
        time.sleep(0.2)


# --- watch ---------------------------------------------------------------------------------------

WATCH_PREFIX = "w/"
WATCH_PREFIX_END = "w0"  # the first key past the prefix: "/" + 1
WATCH_KEYS = 8
DELETE_EVENT = kv_pb2.Event.DELETE


class WatchWorkload:
    """A writer puts values no one wrote before to a few keys under w/, and now and then deletes
    one, recording each write's revision (its response header's) or that its outcome is unknown.
    Watchers, each starting on a different member, watch the prefix from the revision of a begin
    marker written before the workload. A watcher whose stream fails or is cancelled, or stalls
    (no event for STALL_S while the writer has acknowledged a later revision: a paused or cut-off
    member), opens a new stream through the next member from the revision after its last event.
    After the heal the harness has an end marker written; the watchers run until they have seen
    it, and the prefix is read at its revision. Checked by checks.check_watch."""

    name = "watch"
    STALL_S = 3.0
    CATCH_UP_S = 20.0

    def __init__(self, seed, watchers=3, pace_ms=50, timeout=1.0):
        self.seed = seed
        self.watcher_count = watchers
        self.pace_ms = pace_ms
        self.timeout = timeout
        self.lock = threading.Lock()
        self.writes = []  # checks.Write
        self.acked_revision = 0
        self.begin = None
        self.begin_attempts = []  # the begin marker's values, one per attempt
        self.end = None
        self.final = None
        self.cluster_compact = 0
        self.watchers = []
        self.writer = None
        self.finish_s = None  # how long finish() took

    def record(self, write):
        with self.lock:
            self.writes.append(write)
            if write.revision:
                self.acked_revision = max(self.acked_revision, write.revision)

    def latest(self):
        """The latest revision the watchers must reach: the end marker's, else the writer's."""
        return self.end if self.end is not None else self.acked_revision

    def setup(self, client):
        """Writes the begin marker (again, with a new value, if an earlier attempt failed: that
        one's outcome is unknown)."""
        key = WATCH_PREFIX + "begin"
        self.begin_attempts.append("begin-%d" % (len(self.begin_attempts) + 1))
        self.begin = client.put(key, self.begin_attempts[-1]).header.revision
        with self.lock:
            self.writes = [checks.Write("put", key, v, "unknown", None, None)
                           for v in self.begin_attempts[:-1]]
            self.writes.append(checks.Write("put", key, self.begin_attempts[-1], "ok", self.begin,
                                            None))
            self.acked_revision = self.begin

    def clients(self, endpoints, stop_at):
        """Starts the watchers, which run on until finish() has them catch up (or a hard
        deadline, if it never runs), and returns the writer for the harness to start and join
        with the other clients."""
        deadline = stop_at + 60.0 + self.CATCH_UP_S
        self.watchers = [Watcher("watcher-%d" % (i + 1), endpoints, i, self, self.begin,
                                 deadline, self.timeout) for i in range(self.watcher_count)]
        for w in self.watchers:
            w.start()
        self.writer = WatchWriter(200, endpoints, self, self.seed * 1000 + 200, self.timeout,
                                  stop_at, self.pace_ms)
        return [self.writer]

    def finish(self, endpoints):
        """After the heal, once the writer has stopped: writes the end marker, lets the watchers
        catch up to it, reads the prefix at its revision and the cluster's compact revision."""
        began = time.monotonic()
        key = WATCH_PREFIX + "end"
        attempts = []  # a new value each time: a failed attempt may still land

        def put_end(c):
            attempts.append("end-%d" % (len(attempts) + 1))
            return c.put(key, attempts[-1])

        r = on_any_member(endpoints, put_end)
        for value in attempts[:-1] if r is not None else attempts:
            self.record(checks.Write("put", key, value, "unknown", None, None))
        if r is not None:
            self.end = r.header.revision
            self.record(checks.Write("put", key, attempts[-1], "ok", self.end, None))
        until = time.monotonic() + self.CATCH_UP_S
        for w in self.watchers:
            w.target = self.end if self.end is not None else 0
        for w in self.watchers:
            w.join(timeout=max(0.0, until - time.monotonic()))
        for w in self.watchers:
            w.stop = True
        if self.end is not None:
            self.final = on_any_member(endpoints, self.read_at_end)
        compact = on_any_member(endpoints, lambda c: c.maintenancestub.HashKV(
            etcd3.etcdrpc.HashKVRequest(), 5).compact_revision)
        self.cluster_compact = compact or 0
        self.finish_s = round(time.monotonic() - began, 2)

    def read_at_end(self, c):
        resp = c.kvstub.Range(etcd3.etcdrpc.RangeRequest(
            key=WATCH_PREFIX.encode(), range_end=WATCH_PREFIX_END.encode(), revision=self.end), 5)
        return {kv.key.decode(): kv.value.decode() for kv in resp.kvs}

    def streams(self):
        return [checks.Stream(w.name, list(w.events), w.compacted, w.reconnects)
                for w in self.watchers]

    def checks(self):
        ok, detail = checks.check_watch(self.writes, self.streams(), self.begin, self.end,
                                        self.final, self.cluster_compact)
        problems = ["%s died: %s" % (w.name, w.error) for w in self.watchers if w.error]
        problems += ["%s still running" % w.name for w in self.watchers if w.is_alive()]
        markers = (WATCH_PREFIX + "begin", WATCH_PREFIX + "end")
        if not any(x.outcome == "ok" and x.key not in markers for x in self.writes):
            problems.append("the writer had no write acknowledged")
        if problems:
            ok, detail = False, detail + "; " + "; ".join(problems)
        return {self.name: (ok, detail)}

    def counts(self):
        outcomes = collections.Counter(w.outcome for w in self.writes)
        return {"writes_acknowledged": outcomes["ok"], "writes_unknown": outcomes["unknown"],
                "events_per_watcher": [len(w.events) for w in self.watchers],
                "reconnects_per_watcher": [w.reconnects for w in self.watchers],
                "stream_ends": dict(sum((w.reasons for w in self.watchers),
                                        collections.Counter())),
                "begin_revision": self.begin, "end_revision": self.end,
                "final_reads_s": self.finish_s}


class WatchWriter(Client):
    def __init__(self, cid, endpoints, watch, rng_seed, timeout, stop_at, pace_ms):
        super().__init__(cid, endpoints, None, rng_seed, 0, timeout, stop_at, pace_ms)
        self.watch = watch

    def one_op(self):
        key = WATCH_PREFIX + "k%d" % self.rng.randrange(WATCH_KEYS)
        if self.rng.random() < 0.15:
            try:
                r = self.connect().delete(key, return_response=True)
            except Exception:  # noqa: BLE001 - the delete may still happen
                self.watch.record(checks.Write("delete", key, None, "unknown", None, None))
                self.rotate()
                return
            self.watch.record(checks.Write("delete", key, None, "ok", r.header.revision,
                                           r.deleted))
            return
        v = self.value()
        try:
            r = self.connect().put(key, v)
        except Exception:  # noqa: BLE001 - the put may still happen
            self.watch.record(checks.Write("put", key, v, "unknown", None, None))
            self.rotate()
            return
        self.watch.record(checks.Write("put", key, v, "ok", r.header.revision, None))


class Watcher(threading.Thread):
    """Watches the prefix through one member at a time, resuming after its last event."""

    def __init__(self, name, endpoints, which, workload, start_revision, deadline, timeout):
        super().__init__(daemon=True, name=name)
        self.endpoints = endpoints
        self.which = which
        self.workload = workload
        self.start_revision = start_revision
        self.deadline = deadline
        self.timeout = timeout
        self.events = []  # (revision, key, value, "put" | "delete")
        self.reconnects = 0
        self.reasons = collections.Counter()  # why each stream ended
        self.compacted = None
        self.error = None
        self.target = None  # set by finish(): the revision to reach
        self.stop = False

    def done(self):
        if self.stop or self.compacted is not None or time.monotonic() >= self.deadline:
            return True
        return self.target is not None and bool(self.events) and \
            self.events[-1][0] >= self.target

    def behind(self):
        seen = self.events[-1][0] if self.events else (self.start_revision or 1) - 1
        return self.workload.latest() > seen

    def run(self):
        try:
            while True:
                why = self.stream()
                self.reasons[why] += 1
                if self.done():
                    break
                self.reconnects += 1
                self.which += 1
                time.sleep(0.1)
        except Exception as e:  # noqa: BLE001 - recorded, and the watch check fails on it
            self.error = "%s: %s" % (type(e).__name__, e)

    def stream(self):
        """One stream through one member, until it ends, stalls or the watcher is done: why."""
        host, port = self.endpoints[self.which % len(self.endpoints)]
        client = etcd3.client(host=host, port=port, timeout=self.timeout)
        start = self.events[-1][0] + 1 if self.events else self.start_revision
        create = etcd3.etcdrpc.WatchCreateRequest(
            key=WATCH_PREFIX.encode(), range_end=WATCH_PREFIX_END.encode(),
            start_revision=start or 0)
        ended = threading.Event()

        def requests():
            yield etcd3.etcdrpc.WatchRequest(create_request=create)
            ended.wait()  # the stream stays open until this one is done with

        call = etcd3.etcdrpc.WatchStub(client.channel).Watch(requests())
        responses = queue.Queue()

        def read():
            try:
                for resp in call:
                    responses.put(resp)
                responses.put("ended by the server")
            except grpc.RpcError as e:
                responses.put("error %s" % getattr(e, "code", lambda: "?")())
            except Exception as e:  # noqa: BLE001 - a closed channel: the stream is over
                responses.put("error %s" % type(e).__name__)

        threading.Thread(target=read, daemon=True, name=self.name + "-reader").start()
        progress = time.monotonic()
        try:
            while not self.done():
                try:
                    item = responses.get(timeout=0.2)
                except queue.Empty:
                    if time.monotonic() - progress > WatchWorkload.STALL_S and self.behind():
                        return "stalled"
                    continue
                if isinstance(item, str):
                    return item
                if item.compact_revision:
                    self.compacted = item.compact_revision
                    return "compacted"
                if item.canceled:
                    return "cancelled"
                for ev in item.events:
                    if ev.type == DELETE_EVENT:
                        self.events.append((ev.kv.mod_revision, ev.kv.key.decode(), "", "delete"))
                    else:
                        self.events.append((ev.kv.mod_revision, ev.kv.key.decode(),
                                            ev.kv.value.decode(), "put"))
                if item.events:
                    progress = time.monotonic()
            return "done"
        finally:
            ended.set()
            call.cancel()
            client.close()



# --- lock ----------------------------------------------------------------------------------------

LOCK_NAME = "chaos"  # python-etcd3 keeps it at /locks/chaos
COUNTER_KEY = "lock/counter"


class LockWorkload:
    """Clients take one lock with python-etcd3's recipe (etcd3/locks.py: a lease, then a Txn
    that puts the lock key under it if the key does not exist; release is a Txn deleting it if
    it still holds this holder's id). A client first looks whether the key exists, to spare the
    leases of attempts bound to fail, then makes one attempt. Holding it, it increments a counter
    with a plain get and put (no Txn: only the lock keeps two increments apart), holds on for up
    to HOLD_MS and releases. Each hold is recorded from acquire's return to the release call, with
    the earliest time its lease could expire: acquire's call time + TTL_S / the fastest rate any
    leader's clock runs at in the run (leases expire by the leader's clock). After the heal the
    counter's history is read back through its revisions. Checked by checks.check_lock."""

    name = "lock"
    TTL_S = 10
    HOLD_MS = 50

    def __init__(self, seed, clock_rate=1.0, clients=3, pace_ms=100, timeout=1.0):
        self.seed = seed
        self.valid_ns = int(self.TTL_S / clock_rate * 1e9)
        self.client_count = clients
        self.pace_ms = pace_ms
        self.timeout = timeout
        self.lock = threading.Lock()
        self.holds = []  # checks.Hold
        self.increments = []  # checks.Increment
        self.outcomes = collections.Counter()  # acquires and releases, for the report
        self.versions = None
        self.finish_s = None  # how long finish() took

    def note(self, what):
        with self.lock:
            self.outcomes[what] += 1

    def add_hold(self, hold, increment):
        with self.lock:
            self.holds.append(hold)
            if increment is not None:
                self.increments.append(increment._replace(hold=len(self.holds) - 1))

    def setup(self, client):
        client.put(COUNTER_KEY, checks.COUNTER_INITIAL)

    def clients(self, endpoints, stop_at):
        return [LockClient(300 + i, endpoints, self, self.seed * 1000 + 300 + i, self.timeout,
                           stop_at, self.pace_ms) for i in range(1, self.client_count + 1)]

    def finish(self, endpoints):
        began = time.monotonic()
        self.versions = on_any_member(endpoints, self.read_versions)
        self.finish_s = round(time.monotonic() - began, 2)

    def read_versions(self, c):
        """Every value the counter had, oldest first, back to the initial one: each Range at the
        revision before the last version's gives the version before it."""
        value, meta = c.get(COUNTER_KEY)
        if value is None:
            return []
        versions = [value.decode()]
        rev = meta.mod_revision
        while versions[-1] != checks.COUNTER_INITIAL:
            resp = c.kvstub.Range(etcd3.etcdrpc.RangeRequest(key=COUNTER_KEY.encode(),
                                                             revision=rev - 1), 5)
            if not resp.kvs:
                break
            versions.append(resp.kvs[0].value.decode())
            rev = resp.kvs[0].mod_revision
        versions.reverse()
        return versions

    def checks(self):
        ok, detail = checks.check_lock(self.holds, self.increments, self.versions)
        if not any(inc.outcome == "ok" for inc in self.increments):
            ok, detail = False, detail + "; no increment acknowledged"
        return {self.name: (ok, detail)}

    def counts(self):
        outcomes = collections.Counter(inc.outcome for inc in self.increments)
        out = {"holds": len(self.holds), "increments_acknowledged": outcomes["ok"],
               "increments_unknown": outcomes["unknown"],
               "counter_versions": len(self.versions) - 1 if self.versions else None,
               "final_reads_s": self.finish_s}
        out.update(self.outcomes)
        return out


class LockClient(Client):
    def __init__(self, cid, endpoints, workload, rng_seed, timeout, stop_at, pace_ms):
        super().__init__(cid, endpoints, None, rng_seed, 0, timeout, stop_at, pace_ms)
        self.workload = workload
        self.to_revoke = []  # leases that may still hold the lock: revoked before anything else

    def revoke_pending(self):
        """Revokes the leases left to revoke; True once none is left. Until then the lock may
        be held for nothing, and only expiry would free it, which a leader change puts off (a
        new leader gives every lease a full TTL), so this is retried on every turn."""
        while self.to_revoke:
            try:
                self.connect().revoke_lease(self.to_revoke[0])
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND:  # not found: expired, or revoked
                    self.rotate()
                    return False
            except Exception:  # noqa: BLE001 - again on the next turn
                self.rotate()
                return False
            self.to_revoke.pop(0)
        return True

    def one_op(self):
        wl = self.workload
        if not self.revoke_pending():
            return
        c = self.connect()
        try:
            held, _ = c.get(etcd3.locks.Lock.lock_prefix + LOCK_NAME)
        except Exception:  # noqa: BLE001 - a failed read: try again later
            self.rotate()
            return
        if held is not None:
            return
        lock = etcd3.locks.Lock(LOCK_NAME, ttl=wl.TTL_S, etcd_client=c)
        call = now_ns()
        try:
            got = lock.acquire(timeout=0)  # one attempt
        except Exception:  # noqa: BLE001 - the outcome is unknown
            # The Txn may have put the lock key under this lease all the same: this client may
            # hold the lock without knowing it. It never enters the critical section, so it is
            # left out of the holds; that drops only an interval in which nothing was done under
            # the lock, and no one else could have taken the lock during it unless the lock is
            # broken, which the holds that are checked still show. Then it revokes the lease:
            # that deletes the lock key if the Txn put it, so the others need not wait out the
            # TTL, and a Txn landing later fails for want of its lease.
            wl.note("acquires_unknown")
            self.rotate()
            if lock.lease is not None:
                self.to_revoke.append(lock.lease.id)
                self.revoke_pending()
            return
        if not got:
            wl.note("acquires_refused")
            return
        start = now_ns()
        increment, healthy = self.increment(c)
        time.sleep(self.rng.uniform(0, wl.HOLD_MS) / 1000.0)
        end = now_ns()
        wl.add_hold(checks.Hold(self.cid, call, start, end, call + wl.valid_ns), increment)
        if not healthy:
            self.rotate()
            lock.etcd_client = self.connect()
        try:
            wl.note("releases_ok" if lock.release() else "releases_found_it_gone")
        except Exception:  # noqa: BLE001 - the lock stays taken until its lease goes
            wl.note("releases_unknown")
            self.rotate()
            self.to_revoke.append(lock.lease.id)
            self.revoke_pending()

    def increment(self, c):
        """Counter + 1 with a get and a put: (Increment or None if nothing was sent, whether
        the connection still answered)."""
        try:
            value, _ = c.get(COUNTER_KEY)
        except Exception:  # noqa: BLE001 - nothing written
            return None, False
        read = value.decode() if value is not None else "(missing)"
        wrote = "%d %s" % ((checks.count_of(read) or 0) + 1, self.value())
        try:
            c.put(COUNTER_KEY, wrote)
        except Exception:  # noqa: BLE001 - the put may still happen, even later
            return checks.Increment(self.cid, read, wrote, "unknown", None), False
        return checks.Increment(self.cid, read, wrote, "ok", None), True


# --- list-append ---------------------------------------------------------------------------------

APPEND_PREFIX = "la/"


class AppendWorkload:
    """Elle's list-append over single keys: each key holds a list as comma-separated text.
    Clients read a key's whole list, or append a value no one appended before: a get of the list
    and its mod revision, then a Txn that puts the list with the value added if the key's mod
    revision is still that one (or, for a missing key, its version is still 0), retried on a failed
    compare up to ATTEMPTS times. A Txn that fails or times out leaves the append's outcome
    unknown, and it is not retried. The get of each attempt is a read too, and so is the list an
    acknowledged Txn wrote. Like the register workload's, keys are used for KEY_SECONDS each so
    that lists stay short. After the heal every key is read once more. Checked by
    checks.check_list_append."""

    name = "list-append"
    KEYS = 3
    KEY_SECONDS = 10.0
    ATTEMPTS = 5

    def __init__(self, seed, clients=3, pace_ms=50, timeout=1.0):
        self.seed = seed
        self.client_count = clients
        self.pace_ms = pace_ms
        self.timeout = timeout
        self.lock = threading.Lock()
        self.appends = []  # checks.Append
        self.reads = []  # checks.Read
        self.finish_s = None  # how long finish() took

    def add(self, append=None, read=None):
        with self.lock:
            if append is not None:
                self.appends.append(append)
            if read is not None:
                self.reads.append(read)

    def setup(self, client):
        pass

    def clients(self, endpoints, stop_at):
        began = time.monotonic()
        return [AppendClient(400 + i, endpoints, self, self.seed * 1000 + 400 + i, self.timeout,
                             stop_at, self.pace_ms, began)
                for i in range(1, self.client_count + 1)]

    def finish(self, endpoints):
        keys = sorted({a.key for a in self.appends} | {r.key for r in self.reads})

        def read_all(c):
            out = []
            for key in keys:
                call = now_ns()
                value, _ = c.get(key)
                out.append(checks.Read(key, call, now_ns(), parse_list(value), True))
            return out

        began = time.monotonic()
        for r in on_any_member(endpoints, read_all) or []:
            self.add(read=r)
        self.finish_s = round(time.monotonic() - began, 2)

    def checks(self):
        ok, detail = checks.check_list_append(self.appends, self.reads)
        if not any(a.outcome == "ok" for a in self.appends):
            ok, detail = False, detail + "; no append acknowledged"
        return {self.name: (ok, detail)}

    def counts(self):
        outcomes = collections.Counter(a.outcome for a in self.appends)
        return {"appends_acknowledged": outcomes["ok"], "appends_unknown": outcomes["unknown"],
                "appends_refused": outcomes["refused"], "lists_read": len(self.reads),
                "final_reads_s": self.finish_s}


def parse_list(value):
    """A stored list (bytes, or None for a missing key) as a tuple of its values."""
    if not value:
        return ()
    return tuple(value.decode().split(","))


class AppendClient(Client):
    def __init__(self, cid, endpoints, workload, rng_seed, timeout, stop_at, pace_ms, began):
        super().__init__(cid, endpoints, None, rng_seed, 0, timeout, stop_at, pace_ms)
        self.workload = workload
        self.began = began

    def one_op(self):
        generation = int((time.monotonic() - self.began) / AppendWorkload.KEY_SECONDS)
        key = APPEND_PREFIX + "g%d-k%d" % (generation, self.rng.randrange(AppendWorkload.KEYS))
        if self.rng.random() < 0.5:
            self.read_list(key)
        else:
            self.append(key)

    def read_list(self, key):
        """The list and its mod revision, recorded as a read; None if the get failed."""
        call = now_ns()
        try:
            value, meta = self.connect().get(key)
        except Exception:  # noqa: BLE001 - a failed read proves nothing
            self.rotate()
            return None
        self.workload.add(read=checks.Read(key, call, now_ns(), parse_list(value), False))
        return value, meta

    def append(self, key):
        x = self.value()
        for _ in range(AppendWorkload.ATTEMPTS):
            got = self.read_list(key)
            if got is None:
                break  # no Txn of this attempt was sent
            value, meta = got
            c = self.connect()
            t = c.transactions
            if value is None:
                compare, new = [t.version(key) == 0], x
            else:
                compare, new = [t.mod(key) == meta.mod_revision], value.decode() + "," + x
            call = now_ns()
            try:
                ok, _ = c.transaction(compare=compare, success=[t.put(key, new)], failure=[])
            except Exception:  # noqa: BLE001 - the append may still happen
                self.workload.add(append=checks.Append(key, x, "unknown", call, None))
                self.rotate()
                return
            if ok:
                ret = now_ns()
                self.workload.add(append=checks.Append(key, x, "ok", call, ret),
                                  read=checks.Read(key, call, ret, tuple(new.split(",")), False))
                return
        # No Txn sent for it took effect: each was refused by its compare (or none was sent).
        self.workload.add(append=checks.Append(key, x, "refused", None, None))
