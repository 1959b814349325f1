#!/usr/bin/python3
"""make chaos: clusters of real chorusd processes, each member in its own network namespace, under
a fault schedule drawn from a seed, with every client operation recorded and checked.

One run: start the cluster, let clients of the etcd v3 API work while the nemesis injects faults
(partitions, one-way drops, packet loss, SIGKILL and restart, SIGSTOP and SIGCONT, leader moves,
and through a relay in each member's namespace: delay, jitter, duplicated Raft messages),
heal everything, then check
  - linearizability of the register history (chorus-lincheck; a history it cannot decide fails),
  - that every acknowledged write under set/ reads back,
  - the bank's totals, and the watch, lock and list-append workloads' histories (checks.py),
  - that every member's HashKV agrees at the same revision,
  - that the cluster recovered (a leader, and a write acknowledged) within a bound after the heal.
Each run writes a report (fault timeline, history summary, verdicts, an HTML picture of operations
and faults over time) under --out. A failing run keeps its history and member logs and prints the
command that repeats its schedule. The last line is "N passed, N failed".

    chaos.py --chorusd build/rel/src/server/chorusd --lincheck build/rel/src/check/chorus-lincheck
             [--plan ci|soak|broken] [--seconds S] [--runs N] [--seed X] [--out DIR]
             [--only NAME] [--members 3|5 --mix MIX] [--unsafe MODE --expect-fail]

Needs root for the namespaces (as CI and the project's machines have)."""

import argparse
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checks  # noqa: E402
import net as netmod  # noqa: E402
import report  # noqa: E402
import workload  # noqa: E402

import etcd3  # noqa: E402
import etcd3.etcdrpc  # noqa: E402
import etcd3.exceptions  # noqa: E402
import grpc  # noqa: E402

CLIENT_PORT, PEER_PORT, METRICS_PORT = 2379, 2380, 2381
HEARTBEAT_MS, ELECTION_MS = 100, 1000
# After the last fault heals: a leader and an acknowledged write within this bound.
RECOVERY_BOUND_S = 20.0

# Fault mixes: the kinds the nemesis draws from.
MIXES = {
    "partitions": ["isolate", "isolate-leader", "split", "one-way", "loss"],
    "ring": ["ring", "split", "isolate-leader", "loss"],
    "kills": ["kill", "kill-leader", "kill-majority"],
    "pauses": ["pause", "pause-leader"],
    "moves": ["move-leader", "isolate", "kill"],
    "clocks": ["clock", "clock-leader", "isolate-leader", "pause-leader"],
    "disks": ["disk-full", "disk-full", "kill", "isolate"],
    "membership": ["replace", "replace", "isolate", "kill", "move-leader"],
    "links": ["delay", "jitter", "duplicate", "slow-leader"],
    "all": ["isolate", "isolate-leader", "split", "one-way", "loss", "kill", "kill-leader",
            "kill-majority", "pause", "pause-leader", "move-leader", "clock", "clock-leader",
            "delay", "jitter", "duplicate", "slow-leader"],
}

# Faults made by the relays (tests/chaos/relay.py): a run whose mix has any of these puts a relay
# in every member's peer path from the start, so a fault only changes the relay's settings and
# never has to break a connection to begin.
LINK_KINDS = {"delay", "jitter", "duplicate", "slow-leader"}
# Per-frame delays, each way. A delay below the election timeout leaves heartbeats arriving at
# their usual rate, only late, so it should cost latency and never a leader; the largest values
# push a write's round trip past the clients' 1 s timeout. Handshakes (two crossings) must finish
# within chorusd's 2 s, which every value here allows.
DELAYS_MS = [20, 100, 250, 600]
SLOW_LEADER_MS = [50, 150, 400]
JITTER_MS = [(0, 50), (10, 200), (50, 500)]
# Shares of Raft message batches sent twice.
DUPLICATE_SHARES = [0.1, 0.3, 0.6]

def kinds_of(mix):
    """The fault kinds of a mix; "a+b" joins mixes."""
    kinds = []
    for part in mix.split("+"):
        if part not in MIXES:
            raise ValueError("unknown fault mix %s (known: %s)" % (part, ", ".join(sorted(MIXES))))
        kinds += MIXES[part]
    return kinds


# Each member's own filesystem in runs with full-disk faults (tmpfs, so filling it is cheap).
DISK_BYTES = 256 << 20

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
# Clock rates for a member restarted under libfaketime (its monotonic clock runs this much faster
# or slower than real time). With lease reads the rates stay inside the lease's drift allowance:
# the lease is (election - drift) = 8 of the leader's ticks, and a follower refuses votes for at
# least 9 of its own after a heartbeat, so the leader's rate must be at least 8/9 of any
# follower's. Only one member is skewed at a time, so rates in [0.92, 1.08] against the others'
# 1.0 keep within it (0.92 > 0.889).
CLOCK_RATES_LEASE = [0.92, 0.95, 1.05, 1.08]
CLOCK_RATES = [0.5, 0.8, 1.25, 2.0]

# The harness must be able to fail: each of these runs a deliberately unsafe chorusd and passes
# only if the named check catches it. (name, members, mix, lease reads, unsafe mode, check)
BROKEN = [
    ("stale-reads-3", 3, "partitions", False, "stale-reads", "linearizability"),
]

# (name, members, mix, lease reads): CI's runs, one per kind of fault and both cluster sizes.
CI_RUNS = [
    ("partitions-links-3", 3, "partitions+links", False),
    ("kills-3", 3, "kills", False),
    ("pauses-lease-3", 3, "pauses", True),
    ("ring-5", 5, "ring", False),
    ("all-5", 5, "all", False),
    ("all-lease-3", 3, "all", True),
    ("disks-membership-3", 3, "disks+membership", False),
]

PLANS = {
    "ci": BROKEN + CI_RUNS,
    # Longer and wider: every mix on its own as well.
    "soak": CI_RUNS + [
        ("clocks-lease-3", 3, "clocks", True),
        ("clocks-5", 5, "clocks", False),
        ("all-lease-5", 5, "all", True),
        ("moves-3", 3, "moves", False),
        ("disks-3", 3, "disks", False),
        ("membership-3", 3, "membership", False),
        ("membership-5", 5, "membership", False),
        ("links-lease-3", 3, "links", True),
        ("links-5", 5, "links", False),
    ],
    "broken": BROKEN,
}


class Member:
    def __init__(self, run, i):
        self.run = run
        self.i = i
        self.name = "m%d" % i
        self.ip = run.net.ip(i)
        self.disk = os.path.join(run.dir, self.name + "-disk")  # its own filesystem, if any
        self.data_dir = os.path.join(self.disk if run.uses_disks else run.dir, self.name)
        self.log_path = os.path.join(run.dir, self.name + ".log")
        self.proc = None
        self.paused = False
        self.killed = False  # down because the harness killed it
        self.state = "new"  # how it starts: "existing" once it was replaced (joins, never bootstraps)
        self.may_exit = False  # a full disk may stop it: that is a clean fail-stop, not a crash

    def exited_by_itself(self):
        """Notes (once) and returns True if the process ended without the harness killing it."""
        if self.proc is not None and not self.killed and self.proc.poll() is not None:
            reason = checks.stop_reason(self.log_tail(2000))
            what = "%s exited with status %s at %.1f s: %s" % (
                self.name, self.proc.returncode, self.run.t(), reason[:300] or self.last_log_line())
            # A member stops, with a clear error, when its disk fills (a fail-stop, not a crash),
            # also when the error surfaces only after the space came back (RocksDB keeps a
            # background write error until the store is reopened).
            if self.may_exit or (self.run.uses_disks and "No space left" in reason):
                self.run.note("stopped on a full disk (expected): " + what)
            else:
                self.run.crashes.append(what)
            self.killed = True
            return True
        return False

    def log_tail(self, n):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode(errors="replace").strip().splitlines()[-n:])
        except OSError:
            return ""

    def last_log_line(self):
        return self.log_tail(1)[:300]

    @property
    def peer_url(self):
        return "http://%s:%d" % (self.ip, PEER_PORT)

    def start(self, clock=None):
        """`clock`: (offset seconds, rate) for libfaketime, or None for the real clock."""
        url = "http://%s:%d" % (self.ip, CLIENT_PORT)
        env = []
        if clock is not None and os.path.exists(LIBFAKETIME):
            env = ["env", "LD_PRELOAD=" + LIBFAKETIME, "FAKETIME=%+ds x%g" % clock,
                   "FAKETIME_NO_CACHE=1"]
        args = self.run.net.exec_prefix(self.i) + env + [
            self.run.chorusd,
            "--name", self.name,
            "--data-dir", self.data_dir,
            "--listen-client-urls", url,
            "--advertise-client-urls", url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--listen-metrics-urls", "http://%s:%d" % (self.ip, METRICS_PORT),
            "--initial-cluster", self.run.initial_cluster(),
            "--initial-cluster-state", self.state,
            "--initial-cluster-token", "chaos-%d" % self.run.seed,
            "--heartbeat-interval", str(HEARTBEAT_MS),
            "--election-timeout", str(ELECTION_MS),
            "--snapshot-count", "2000",
        ]
        if self.run.lease_reads:
            args.append("--lease-reads")
        if self.run.unsafe:
            args += ["--unsafe-test-fault", self.run.unsafe]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.paused = False
        self.killed = False

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        self.exited_by_itself()
        if self.running():
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.paused = False
        self.killed = True

    def pause(self):
        if self.running() and not self.paused:
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.running() and self.paused:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self):
        self.exited_by_itself()
        if self.running():
            self.resume()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self, timeout=2):
        return etcd3.client(host=self.ip, port=CLIENT_PORT, timeout=timeout)


class Run:
    def __init__(self, args, name, members, mix, lease_reads, seed, unsafe=None, expect=None):
        self.args = args
        self.name = name
        self.n = members
        self.mix = mix
        self.lease_reads = lease_reads
        self.seed = seed
        self.unsafe = unsafe
        self.expect = expect  # the check that must fail (a broken variant), or None
        self.chorusd = os.path.abspath(args.chorusd)
        self.rng = random.Random(seed)
        self.dir = os.path.join(os.path.abspath(args.out), "%s-seed%d" % (name, seed))
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        tag = "%d%d" % (os.getpid() % 1000, seed % 100)
        self.net = netmod.Net(tag, members, "10.%d.%d" % (200 + os.getpid() % 50, seed % 250),
                              relay_port=PEER_PORT if LINK_KINDS & set(kinds_of(mix)) else None,
                              log_dir=self.dir, seed=seed)
        self.kinds = kinds_of(mix)
        self.uses_disks = "disk-full" in self.kinds
        self.members = [Member(self, i) for i in range(1, members + 1)]
        self.t0 = time.monotonic()
        self.faults = []  # (start_s, end_s, description)
        self.events = []  # (t_s, text): the timeline
        self.history = workload.History()
        self.bank = workload.Bank()
        # Leases expire by the leader's clock: with clock faults, up to the fastest rate sooner.
        clock_rate = max(CLOCK_RATES_LEASE if lease_reads else CLOCK_RATES) \
            if any(k.startswith("clock") for k in self.kinds) else 1.0
        self.workloads = [workload.WatchWorkload(seed),
                          workload.LockWorkload(seed, clock_rate=clock_rate),
                          workload.AppendWorkload(seed)]
        self.checks = {}  # name -> (ok, detail)
        self.crashes = []  # members that exited without being killed
        self.lincheck_status = None

    def t(self):
        return time.monotonic() - self.t0

    def note(self, text):
        self.events.append((self.t(), text))
        if self.args.verbose:
            print("  [%7.2f s] %s" % (self.t(), text), flush=True)

    def initial_cluster(self):
        return ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)

    def repeat_command(self):
        cmd = [sys.argv[0], "--chorusd", self.args.chorusd, "--lincheck", self.args.lincheck,
               "--members", str(self.n), "--mix", self.mix, "--seed", str(self.seed),
               "--seconds", str(self.args.seconds), "--out", self.args.out, "--verbose"]
        if self.lease_reads:
            cmd.append("--lease-reads")
        if self.unsafe:
            cmd += ["--unsafe", self.unsafe]
        if self.expect:
            cmd += ["--expect-fail", self.expect]
        cmd += ["--clients", str(self.args.clients), "--keys", str(self.args.keys),
                "--pace-ms", str(self.args.pace_ms), "--bank-clients", str(self.args.bank_clients)]
        return " ".join(cmd)

    # --- the cluster ---------------------------------------------------------------------
    def leader(self):
        """The member every reachable member names as leader, or None."""
        for m in self.members:
            if not m.running() or m.paused:
                continue
            try:
                c = m.client(timeout=1)
                st = c.status()
                c.close()
                name = st.leader.name if st.leader is not None else None
                for x in self.members:
                    if x.name == name:
                        return x
            except Exception:  # noqa: BLE001 - try the next member
                continue
        return None

    def wait_ready(self, bound):
        """Until a write is acknowledged through some member; seconds taken, or None."""
        start = time.monotonic()
        while time.monotonic() - start < bound:
            for m in self.members:
                if not m.running() or m.paused:
                    continue
                try:
                    c = m.client(timeout=1)
                    c.put("chaos/ready", "%.3f" % self.t())
                    c.close()
                    return time.monotonic() - start
                except Exception:  # noqa: BLE001 - not yet
                    pass
            time.sleep(0.1)
        return None

    # --- the nemesis -----------------------------------------------------------------------
    def pick(self, k):
        return self.rng.sample(self.members, k)

    def start_fault(self, kind):
        """Applies one fault; returns (description, undo or None)."""
        net = self.net
        if kind in ("isolate", "isolate-leader"):
            m = self.leader() if kind == "isolate-leader" else None
            m = m or self.pick(1)[0]
            net.partition([[m.i], [x.i for x in self.members if x is not m]])
            return "isolate %s%s" % (m.name, " (leader)" if kind == "isolate-leader" else ""), net.heal
        if kind == "split":
            order = [m.i for m in self.members]
            self.rng.shuffle(order)
            minority = order[: (self.n - 1) // 2]
            majority = order[(self.n - 1) // 2:]
            net.partition([minority, majority])
            return "split %s | %s" % (minority, majority), net.heal
        if kind == "ring":
            order = [m.i for m in self.members]
            self.rng.shuffle(order)
            # Each member hears only its two neighbours: every majority overlaps, none is whole.
            for a in range(self.n):
                for b in range(a + 1, self.n):
                    if (b - a) % self.n not in (1, self.n - 1):
                        net.cut(order[a], order[b])
            return "majorities ring %s" % order, net.heal
        if kind == "one-way":
            a, b = self.pick(2)
            net.drop(a.i, b.i)
            return "%s hears nothing from %s" % (a.name, b.name), net.heal
        if kind == "loss":
            m = self.pick(1)[0]
            p = self.rng.choice([0.1, 0.2, 0.3])
            for x in self.members:
                if x is not m:
                    net.drop(m.i, x.i, p)
                    net.drop(x.i, m.i, p)
            return "%d%% loss on %s's links" % (int(p * 100), m.name), net.heal
        if kind in ("delay", "slow-leader"):
            # Every frame between the member and each other member waits, both ways.
            lead = self.leader() if kind == "slow-leader" else None
            m = lead or self.pick(1)[0]
            d = self.rng.choice(SLOW_LEADER_MS if kind == "slow-leader" else DELAYS_MS)
            for x in self.members:
                if x is not m:
                    net.link(m.i, x.i, delay_ms=(d, d))
            return "delay %d ms each way on %s's links%s" % (
                d, m.name, " (leader)" if lead else ""), net.clear_links
        if kind == "jitter":
            lo, hi = self.rng.choice(JITTER_MS)
            for a in range(1, self.n + 1):
                for b in range(a + 1, self.n + 1):
                    net.link(a, b, delay_ms=(lo, hi))
            return "jitter: each frame on every link delayed %d-%d ms" % (lo, hi), net.clear_links
        if kind == "duplicate":
            p = self.rng.choice(DUPLICATE_SHARES)
            for a in range(1, self.n + 1):
                for b in range(a + 1, self.n + 1):
                    net.link(a, b, duplicate=p)
            return "duplicate: %d%% of Raft message batches on every link sent twice" % (
                int(p * 100)), net.clear_links
        if kind in ("kill", "kill-leader", "kill-majority"):
            if kind == "kill-majority":
                victims = self.pick(self.n // 2 + 1)
            else:
                m = self.leader() if kind == "kill-leader" else None
                victims = [m or self.pick(1)[0]]
            for m in victims:
                m.kill()

            def restart():
                for m in victims:
                    if not m.running():
                        m.start()
            return "SIGKILL %s" % ",".join(m.name for m in victims), restart
        if kind in ("clock", "clock-leader"):
            m = self.leader() if kind == "clock-leader" else None
            m = m or self.pick(1)[0]
            rate = self.rng.choice(CLOCK_RATES_LEASE if self.lease_reads else CLOCK_RATES)
            offset = self.rng.choice([-30, -5, 5, 30])
            m.kill()
            m.start(clock=(offset, rate))

            def real_clock():
                m.kill()
                m.start()
            return "%s restarted with its clock %+ds, rate x%g" % (m.name, offset, rate), real_clock
        if kind == "disk-full":
            m = self.pick(1)[0]
            filler = os.path.join(m.disk, "filler")
            m.may_exit = True
            with open(filler, "wb") as f:
                # The member writes between the look at the free space and the allocation: an
                # allocation that no longer fits fails whole, so it is asked again with what is
                # free by then.
                for attempt in range(20):
                    st = os.statvfs(m.disk)
                    free_bytes = st.f_bavail * st.f_frsize
                    try:
                        os.posix_fallocate(f.fileno(), 0,
                                           max(os.fstat(f.fileno()).st_size + free_bytes - 4096,
                                               4096))
                        break
                    except OSError as e:
                        if e.errno != errno.ENOSPC or attempt == 19:
                            raise

            def free():
                os.remove(filler)
                m.exited_by_itself()
                m.may_exit = False
                if not m.running():
                    m.start()
            return "disk full on %s" % m.name, free
        if kind == "replace":
            return self.replace_member(), None
        if kind in ("pause", "pause-leader"):
            m = self.leader() if kind == "pause-leader" else None
            m = m or self.pick(1)[0]
            m.pause()
            return "SIGSTOP %s%s" % (m.name, " (leader)" if kind == "pause-leader" else ""), m.resume
        if kind == "move-leader":
            lead = self.leader()
            if lead is None:
                return "move-leader: no leader", None
            target = self.rng.choice([m for m in self.members if m is not lead])
            try:
                c = lead.client(timeout=3)
                mid = None
                for mem in c.members:
                    if mem.name == target.name:
                        mid = mem.id
                if mid is not None:
                    c.maintenancestub.MoveLeader(etcd3.etcdrpc.MoveLeaderRequest(targetID=mid),
                                                 3)
                c.close()
                return "move leader %s -> %s" % (lead.name, target.name), None
            except etcd3.exceptions.Etcd3Exception as e:  # a move may fail under faults: noted
                return "move leader %s -> %s failed: %s" % (lead.name, target.name,
                                                            type(e).__name__), None
            except grpc.RpcError as e:
                return "move leader %s -> %s failed: %s" % (lead.name, target.name,
                                                            e.code()), None
        raise ValueError("unknown fault " + kind)

    def member_list(self):
        """{name or peer URL: id} as the leader (or else some reachable member) reports it."""
        lead = self.leader()
        for x in ([lead] if lead else []) + self.members:
            if not x.running() or x.paused:
                continue
            try:
                c = x.client(timeout=3)
                out = {}
                for mem in c.members:
                    out[mem.name or (mem.peer_urls[0] if mem.peer_urls else "")] = mem.id
                    for url in mem.peer_urls:
                        out[url] = mem.id
                c.close()
                return out
            except Exception:  # noqa: BLE001 - ask another member
                continue
        return None

    def until(self, what, deadline):
        while time.monotonic() < deadline:
            if what():
                return True
            time.sleep(0.2)
        return False

    def replace_member(self):
        """Removes a follower from the cluster, wipes its data, adds it back (a new member id
        at the same address) and starts it empty, to join and catch up. Each step is retried
        until the member list shows it done; a step that never gets done fails the run."""
        lead = self.leader()
        if lead is None:
            return "replace: no leader"
        m = self.rng.choice([x for x in self.members if x is not lead])
        # As an operator would: never while another member is down (stopped on a full disk,
        # killed): the configuration left after the removal could have no quorum to add it back.
        down = [x.name for x in self.members if x is not m and not x.running()]
        if down:
            return "replace %s: skipped, %s down" % (m.name, ",".join(down))
        deadline = time.monotonic() + 20
        m.may_exit = True  # a removed member stops by itself

        def removed():
            ids = self.member_list()
            if ids is None:
                return False
            if m.peer_url not in ids:
                return True
            try:
                c = (self.leader() or lead).client(timeout=3)
                c.remove_member(ids[m.peer_url])
                c.close()
            except Exception:  # noqa: BLE001 - retried until the list shows it
                pass
            return False

        def added():
            ids = self.member_list()
            if ids is None:
                return False
            if m.peer_url in ids:
                return True
            try:
                c = (self.leader() or lead).client(timeout=3)
                c.add_member([m.peer_url])
                c.close()
            except Exception:  # noqa: BLE001 - retried until the list shows it
                pass
            return False

        if not self.until(removed, deadline):
            m.may_exit = False
            self.checks["nemesis"] = (False, "could not remove %s within 20 s" % m.name)
            return "replace %s: removal never took effect" % m.name
        m.kill()
        m.may_exit = False
        shutil.rmtree(m.data_dir, ignore_errors=True)
        m.state = "existing"
        if not self.until(added, deadline + 20):
            self.checks["nemesis"] = (False, "could not add %s back within 20 s" % m.name)
            return "replace %s: adding it back never took effect" % m.name
        m.start()
        return "replaced %s: removed, data wiped, added back, started empty" % m.name

    def heal_all(self):
        self.net.heal()
        for m in self.members:
            m.exited_by_itself()
            m.resume()
            if not m.running():
                m.start()
        if self.net.relays:
            self.check_relays()

    def check_relays(self):
        """Every relay ran to the end and took every command: a relay that died would have cut
        its member off, a fault no schedule asked for. Its counters go to the timeline."""
        errors = self.net.relay_errors()
        stats = self.net.relay_stats()
        total = {}
        for counters in stats.values():
            for key, value in counters.items():
                total[key] = total.get(key, 0) + value
        detail = ("%d connections, %d frames, %d delayed, %d duplicated "
                  "(%d batches with a forwarded proposal left single)" % (
                      total.get("connections", 0), total.get("frames", 0),
                      total.get("delayed_frames", 0), total.get("duplicated_frames", 0),
                      total.get("proposals_not_duplicated", 0)))
        self.note("relays: " + detail)
        self.checks["relays"] = (not errors, "; ".join(errors[:5]) or detail)

    def nemesis(self, until):
        kinds = self.kinds
        while self.t() < until:
            for m in self.members:
                m.exited_by_itself()
            time.sleep(self.rng.uniform(1.0, 3.0))
            if self.t() >= until:
                break
            kind = self.rng.choice(kinds)
            start = self.t()
            desc, undo = self.start_fault(kind)
            self.note("fault: " + desc)
            if undo is None:
                self.faults.append((start, start + 0.2, desc))
                continue
            hold = self.rng.uniform(2.0, 6.0)
            end_at = min(until, self.t() + hold)
            while self.t() < end_at:
                time.sleep(0.05)
            undo()
            self.faults.append((start, self.t(), desc))
            self.note("healed: " + desc)

    # --- one run ---------------------------------------------------------------------------
    def execute(self):
        seconds = self.args.seconds
        try:
            self.net.setup()
            if self.uses_disks:
                for m in self.members:
                    os.makedirs(m.disk, exist_ok=True)
                    netmod.sh("mount", "-t", "tmpfs", "-o", "size=%d" % DISK_BYTES, "tmpfs", m.disk)
            for m in self.members:
                m.start()
            took = self.wait_ready(30)
            if took is None:
                self.checks["startup"] = (False, "no write acknowledged within 30 s of start")
                return self.finish()
            self.note("cluster ready after %.1f s" % took)
            for m in self.members:
                try:
                    c = m.client(timeout=5)
                    self.bank.setup(c)
                    for w in self.workloads:
                        w.setup(c)
                    c.close()
                    break
                except Exception:  # noqa: BLE001 - try another member
                    continue
            self.t0 = time.monotonic()
            self.events = [(0.0, "workload starts")]
            stop_at = time.monotonic() + seconds
            endpoints = [(m.ip, CLIENT_PORT) for m in self.members]
            clients = [
                workload.Client(cid, endpoints, self.history, self.seed * 1000 + cid,
                                keys=self.args.keys, timeout=1.0, stop_at=stop_at,
                                pace_ms=self.args.pace_ms)
                for cid in range(1, self.args.clients + 1)
            ]
            clients += [
                workload.BankClient(100 + b, endpoints, self.bank, self.seed * 1000 + 100 + b,
                                    timeout=1.0, stop_at=stop_at, pace_ms=self.args.pace_ms)
                for b in range(1, self.args.bank_clients + 1)
            ]
            for w in self.workloads:
                clients += w.clients(endpoints, stop_at)
            for c in clients:
                c.start()
            # Faults stop a few seconds before the clients do, so the history ends healed.
            self.nemesis(until=max(1.0, seconds - 5.0))
            self.heal_all()
            healed_at = self.t()
            self.note("every fault healed")
            # Recovery is timed from the heal, while the clients still run.
            took = self.wait_ready(RECOVERY_BOUND_S)
            self.checks["recovery"] = (
                took is not None,
                "a write acknowledged %.1f s after the last fault healed (at %.1f s)"
                % (took, healed_at) if took is not None
                else "no write acknowledged within %.0f s after the heal" % RECOVERY_BOUND_S)
            for c in clients:
                c.join(timeout=seconds + 30)
            self.note("workload ends")
            self.check_workload(clients)
            if took is not None:
                self.final_reads()
                self.check_set()
                self.check_bank()
                for w in self.workloads:
                    w.finish(endpoints)
                    self.checks.update(w.checks())
                self.check_hashkv()
            self.check_linearizable()
            self.check_members_up()
        finally:
            for m in self.members:
                m.stop()
            self.net.teardown()
            if self.uses_disks:
                failed = not all(ok for ok, _ in self.checks.values())
                for m in self.members:
                    if failed or self.args.keep:
                        try:
                            shutil.copytree(m.data_dir, os.path.join(self.dir, m.name + "-data"),
                                            dirs_exist_ok=True)
                        except OSError:
                            pass  # a member wiped by a replace has nothing to keep
                    netmod.sh("umount", m.disk, check=False)
        return self.finish()

    def check_workload(self, clients):
        """The clients did work: a run in which every operation failed proves nothing."""
        problems = ["%s died: %s" % (c.name, c.error) for c in clients if c.error]
        problems += ["%s still running after the workload" % c.name for c in clients
                     if c.is_alive()]
        acked = self.history.counts["ok"]
        if acked < 100:
            problems.append("only %d operations acknowledged" % acked)
        if self.args.bank_clients and self.bank.reads == 0:
            problems.append("no bank read succeeded")
        self.checks["workload"] = (not problems, "; ".join(problems) or
                                   "%d operations acknowledged, %d bank reads" % (
                                       acked, self.bank.reads))

    def check_members_up(self):
        """No member exited without the harness killing it (a crash, a failed start), and every
        member is running after the heal."""
        for m in self.members:
            m.exited_by_itself()
        problems = list(self.crashes)
        problems += ["%s is not running" % m.name for m in self.members if not m.running()]
        self.checks["members-up"] = (not problems, "; ".join(problems[:5]) or
                                     "no member exited by itself; all %d running" % self.n)

    def final_reads(self):
        """A linearizable read of every register through every member, into the history."""
        for m in self.members:
            try:
                c = m.client(timeout=5)
            except Exception:  # noqa: BLE001
                continue
            for key in sorted(self.history.register_keys):
                call = workload.now_ns()
                try:
                    value, _ = c.get(key)
                except Exception:  # noqa: BLE001 - a failed read proves nothing either way
                    continue
                ret = workload.now_ns()
                if value is None:
                    self.history.add(0, call, ret, "get", key, [], "missing")
                else:
                    self.history.add(0, call, ret, "get", key, ["found"], value.decode())
            c.close()

    def check_set(self):
        lead = self.leader() or self.members[0]
        try:
            c = lead.client(timeout=10)
            present = {meta.key.decode() for _, meta in c.get_prefix(workload.SET_PREFIX)}
            c.close()
        except Exception as e:  # noqa: BLE001
            self.checks["acknowledged-writes"] = (False, "cannot read set/: %s" % e)
            return
        acked = self.history.acked_set_keys
        lost = [k for k in acked if k not in present]
        extra = present - set(acked) - set(self.history.unknown_set_keys)
        ok = not lost and not extra
        detail = "%d acknowledged, %d unknown, %d present" % (
            len(acked), len(self.history.unknown_set_keys), len(present))
        if lost:
            detail += "; LOST: %s" % ", ".join(lost[:10])
        if extra:
            detail += "; never written: %s" % ", ".join(sorted(extra)[:10])
        self.checks["acknowledged-writes"] = (ok, detail)

    def check_bank(self):
        """Every read of all accounts during the run, and one through every member now, saw the
        whole total."""
        for m in self.members:
            try:
                c = m.client(timeout=5)
                self.bank.check_read(0, list(c.get_prefix(workload.BANK_PREFIX)))
                c.close()
            except Exception:  # noqa: BLE001 - a failed read proves nothing
                pass
        b = self.bank
        detail = "%d reads, transfers %d ok, %d refused, %d unknown" % (
            b.reads, b.transfers["ok"], b.transfers["refused"], b.transfers["unknown"])
        if b.bad_reads:
            detail += "; BAD: " + "; ".join("client %d saw %s" % x for x in b.bad_reads[:5])
        self.checks["bank"] = (not b.bad_reads and b.reads > 0, detail)

    def check_hashkv(self):
        """Every member's HashKV at the same revision, once they have all applied it."""
        deadline = time.monotonic() + 20
        last = ""
        while time.monotonic() < deadline:
            results = []
            for m in self.members:
                r = subprocess.run(
                    ["etcdctl", "--endpoints", "%s:%d" % (m.ip, CLIENT_PORT),
                     "--command-timeout=3s", "endpoint", "hashkv", "-w", "json"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                if r.returncode != 0:
                    results = None
                    last = r.stderr.strip()
                    break
                h = json.loads(r.stdout)[0]["HashKV"]
                results.append((h["header"]["revision"], h["hash"], h.get("compact_revision", 0)))
            if results is not None:
                revs = {x[0] for x in results}
                hashes = {x[1] for x in results}
                if len(revs) == 1 and len(hashes) == 1:
                    self.checks["hashkv"] = (True, "equal on %d members at revision %d"
                                             % (len(results), revs.pop()))
                    return
                last = "; ".join("%s rev %d hash %d" % (m.name, x[0], x[1])
                                 for m, x in zip(self.members, results))
                if len(revs) == 1:
                    break  # same revision, different contents: a real divergence
            time.sleep(0.5)
        self.checks["hashkv"] = (False, "members disagree: " + last)

    def check_linearizable(self):
        path = os.path.join(self.dir, "history.txt")
        with open(path, "w") as f:
            f.write("\n".join(self.history.lines) + "\n")
        r = subprocess.run([self.args.lincheck, path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=600)
        out = (r.stdout + r.stderr).strip()
        self.lincheck_status = r.returncode
        if r.returncode == 0:
            self.checks["linearizability"] = (True, out)
        elif r.returncode == 1:
            self.checks["linearizability"] = (False, "NOT linearizable: " + out[:2000])
        else:
            self.checks["linearizability"] = (False, "no verdict: " + out[:2000])

    def finish(self):
        if "members-up" in self.checks and self.crashes and self.checks["members-up"][0]:
            self.checks["members-up"] = (False, "; ".join(self.crashes[:5]))
        passed_checks = all(ok for ok, _ in self.checks.values()) and bool(self.checks)
        if self.expect:
            # A broken variant: the run passes only if the check meant for it failed.
            # Caught only by a definite verdict: a history the checker could not decide (or
            # could not read) proves nothing about the broken member.
            caught = self.expect in self.checks and not self.checks[self.expect][0]
            if self.expect == "linearizability":
                caught = caught and self.lincheck_status == 1
            ok = caught
            verdict = ("caught by %s" % self.expect) if caught else \
                ("NOT caught by %s" % self.expect)
        else:
            ok = passed_checks
            verdict = "ok" if ok else "FAILED"
        summary = {
            "name": self.name, "seed": self.seed, "members": self.n, "mix": self.mix,
            "lease_reads": self.lease_reads, "unsafe": self.unsafe, "seconds": self.args.seconds,
            "verdict": verdict, "ok": ok,
            "operations": dict(self.history.counts),
            "set_keys": {"acknowledged": len(self.history.acked_set_keys),
                         "unknown": len(self.history.unknown_set_keys)},
            "workloads": {w.name: w.counts() for w in self.workloads},
            "faults": [{"start": a, "end": b, "what": d} for a, b, d in self.faults],
            "checks": {k: {"ok": v[0], "detail": v[1]} for k, v in self.checks.items()},
            "repeat": self.repeat_command(),
        }
        with open(os.path.join(self.dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        with open(os.path.join(self.dir, "timeline.txt"), "w") as f:
            for t, text in self.events:
                f.write("[%8.3f s] %s\n" % (t, text))
        report.write_html(os.path.join(self.dir, "report.html"), summary, self.history.ops,
                          self.t0_ns(), self.events)
        if ok and not self.args.keep:
            for m in self.members:
                shutil.rmtree(m.data_dir, ignore_errors=True)
        return summary

    def t0_ns(self):
        # History times are monotonic_ns; the report draws them relative to the workload start.
        return int(self.t0 * 1e9)


def print_summary(s, run_dir):
    c = s["operations"]
    print("%-18s seed %-6d %s  ops ok %d unknown %d failed %d, faults %d" % (
        s["name"], s["seed"], s["verdict"], c["ok"], c["unknown"], c["failed"], len(s["faults"])))
    for name, v in s["checks"].items():
        print("    %-20s %s  %s" % (name, "ok" if v["ok"] else "FAIL", v["detail"][:300]))
    if not s["ok"]:
        print("    kept: %s" % run_dir)
        print("    repeat: %s" % s["repeat"])
    sys.stdout.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chorusd", required=True)
    p.add_argument("--lincheck", required=True)
    p.add_argument("--plan", choices=sorted(PLANS), default=None)
    p.add_argument("--only", default=None,
                   help="run only the plan entries with these names (comma separated)")
    p.add_argument("--members", type=int, choices=[3, 5], default=None)
    p.add_argument("--mix", default="all", help="a fault mix, or several joined by +: " +
                   ", ".join(sorted(MIXES)))
    p.add_argument("--lease-reads", action="store_true")
    p.add_argument("--unsafe", default=None, help="a deliberately unsafe chorusd mode")
    p.add_argument("--expect-fail", default=None, help="with --unsafe: the check that must fail")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--runs", type=int, default=1, help="runs of each plan entry (seeds apart)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--bank-clients", type=int, default=2)
    p.add_argument("--keys", type=int, default=6)
    p.add_argument("--pace-ms", type=float, default=20)
    p.add_argument("--out", default="build/chaos")
    p.add_argument("--keep", action="store_true", help="keep data directories of passing runs")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()

    # A CI timeout's SIGTERM unwinds through the runs' cleanup (processes, namespaces, mounts).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        print("chaos: needs root for network namespaces (CAP_NET_ADMIN)", file=sys.stderr)
        return 2
    why = netmod.available()
    if why:
        print("chaos: network namespaces or iptables do not work here: %s" % why, file=sys.stderr)
        return 2
    base_seed = args.seed if args.seed is not None else int(time.time()) % 100000
    if args.members:
        entries = [("custom-%d" % args.members, args.members, args.mix, args.lease_reads,
                    args.unsafe, args.expect_fail)]
    else:
        plan = PLANS[args.plan or "ci"]
        entries = [e if len(e) == 6 else e + (None, None) for e in plan]
        if args.only:
            names = args.only.split(",")
            unknown = [n for n in names if n not in [e[0] for e in entries]]
            if unknown:
                print("chaos: no plan entry named %s" % ", ".join(unknown), file=sys.stderr)
                return 2
            entries = [e for e in entries if e[0] in names]
    os.makedirs(args.out, exist_ok=True)
    print("chaos: %d run(s) of %.0f s, base seed %d, reports in %s" % (
        len(entries) * args.runs, args.seconds, base_seed, os.path.abspath(args.out)))
    passed = failed = 0
    totals = {"ok": 0, "unknown": 0, "failed": 0, "faults": 0}
    for r in range(args.runs):
        for k, (name, members, mix, lease, unsafe, expect) in enumerate(entries):
            seed = base_seed + r * 100 + k
            run = Run(args, name, members, mix, lease, seed, unsafe, expect)
            s = run.execute()
            print_summary(s, run.dir)
            for key in ("ok", "unknown", "failed"):
                totals[key] += s["operations"][key]
            totals["faults"] += len(s["faults"])
            if s["ok"]:
                passed += 1
            else:
                failed += 1
    print("operations: %d acknowledged, %d unknown, %d failed reads; faults injected: %d" % (
        totals["ok"], totals["unknown"], totals["failed"], totals["faults"]))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
