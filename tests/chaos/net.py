"""The harness's own test hosts: one network namespace per member, joined by veth pairs to a
bridge in the harness's namespace, and faults made with iptables inside each member's namespace.

Delay, jitter and duplication on links come from relay.py instead (this kernel has no netem
qdisc): with relays on, each member's namespace runs one for the whole run, and a nat rule sends
every connection the member opens to a peer through it. The relay dials on from the member's own
address, so the iptables faults below apply to relayed connections unchanged.

Needs root (CAP_NET_ADMIN), iproute2 and iptables. Nothing here touches the machine's own
interfaces: every name carries the run's tag, and teardown removes all of it."""

import json
import os
import select
import subprocess
import sys
import time

RELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "relay.py")
# Where the nat rule sends a member's peer connections, on the namespace's loopback, and the
# mark on the relay's own onward connections, which the rule lets pass.
RELAY_PORT = 2390
RELAY_MARK = 0x2380


def sh(*args, check=True):
    r = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r


def available():
    """None if namespaces, veth and iptables (the statistic match, nat REDIRECT with a mark test)
    work here, else why not."""
    tag = "chk%d" % (os.getpid() % 100000)
    try:
        sh("ip", "netns", "add", tag)
        try:
            sh("ip", "netns", "exec", tag, "iptables", "-A", "INPUT", "-s", "10.255.255.1",
               "-m", "statistic", "--mode", "random", "--probability", "0.5", "-j", "DROP")
            sh("ip", "netns", "exec", tag, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp",
               "-d", "10.255.255.0/24", "--dport", "2380", "-m", "mark", "!", "--mark",
               hex(RELAY_MARK), "-j", "REDIRECT", "--to-ports", str(RELAY_PORT))
        finally:
            sh("ip", "netns", "del", tag, check=False)
    except (RuntimeError, OSError) as e:
        return str(e)
    return None


class Relay:
    """The harness's handle on one member's relay.py process: started inside the member's
    namespace, driven over its stdin and stdout. A relay that stops answering is recorded in
    `errors` rather than raised, so a run goes on and its checks report it."""

    def __init__(self, net, i, log_path, seed):
        self.net = net
        self.i = i
        self.log_path = log_path
        self.seed = seed
        self.proc = None
        self.pending = b""
        self.errors = []

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.net.exec_prefix(self.i) + [sys.executable, RELAY, "--port", str(RELAY_PORT),
                                            "--mark", hex(RELAY_MARK), "--seed", str(self.seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, bufsize=0)
        log.close()
        ready = self._readline(10.0)
        if ready is None or json.loads(ready).get("ready") != RELAY_PORT:
            raise RuntimeError("relay of member %d did not start: %s" % (self.i, self.errors))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _readline(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                self.errors.append("relay of member %d did not answer within %.0f s"
                                   % (self.i, timeout))
                return None
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    self.errors.append("relay of member %d exited (status %s)"
                                       % (self.i, self.proc.poll()))
                    return None
                self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return line.decode()

    def call(self, request, timeout=5.0):
        """Sends one command; its answer, or None if the relay is gone or silent."""
        if not self.running():
            self.errors.append("relay of member %d is not running" % self.i)
            return None
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
        except OSError as e:
            self.errors.append("relay of member %d: %s" % (self.i, e))
            return None
        line = self._readline(timeout)
        answer = json.loads(line) if line is not None else None
        if answer is not None and not answer.get("ok"):
            self.errors.append("relay of member %d refused %s: %s"
                               % (self.i, request, answer.get("error")))
        return answer

    def stop(self):
        """Closing stdin ends the relay; its open connections close with it."""
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc = None


class Net:
    """Hosts 1..n at PREFIX.i on a bridge at PREFIX.254 (the harness and its clients).

    relay_port: if given, every connection a member opens to that port on another member goes
    through the member's relay (see relay.py), whose logs go to log_dir."""

    def __init__(self, tag, n, subnet, relay_port=None, log_dir=None, seed=0):
        self.tag = tag
        self.n = n
        self.prefix = subnet  # e.g. "10.201.7"
        self.bridge = "chb" + tag
        self.up = False
        self.relay_port = relay_port
        self.log_dir = log_dir
        self.seed = seed
        self.relays = {}  # member -> Relay, while set up

    def ns(self, i):
        return "ch%s-%d" % (self.tag, i)

    def ip(self, i):
        return "%s.%d" % (self.prefix, i)

    @property
    def harness_ip(self):
        return "%s.254" % self.prefix

    def setup(self):
        self.teardown()
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", self.harness_ip + "/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        self.up = True
        for i in range(1, self.n + 1):
            ns, host_end = self.ns(i), "chv%s%d" % (self.tag, i)
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", host_end, "master", self.bridge, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", self.ip(i) + "/24", "dev", "eth0")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        if self.relay_port is not None:
            for i in range(1, self.n + 1):
                self.start_relay(i)

    def start_relay(self, i):
        """Starts member i's relay, then sends the member's peer connections through it: the nat
        rule REDIRECTs them to the relay on loopback, except the relay's own (marked) ones."""
        relay = Relay(self, i, os.path.join(self.log_dir, "relay-m%d.log" % i), self.seed * 10 + i)
        self.relays[i] = relay
        relay.start()
        self._ipt(i, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", self.prefix + ".0/24",
                  "--dport", str(self.relay_port), "-m", "mark", "!", "--mark", hex(RELAY_MARK),
                  "-j", "REDIRECT", "--to-ports", str(RELAY_PORT))

    def teardown(self):
        for relay in self.relays.values():
            relay.stop()
        self.relays = {}
        for i in range(1, self.n + 1):
            sh("ip", "netns", "del", self.ns(i), check=False)
        sh("ip", "link", "del", self.bridge, check=False)
        self.up = False

    def exec_prefix(self, i):
        return ["ip", "netns", "exec", self.ns(i)]

    def _ipt(self, i, *rule):
        sh("ip", "netns", "exec", self.ns(i), "iptables", "-w", *rule)

    # Faults. Rules only ever name member addresses, so the harness's clients always get through
    # (a partitioned member still answers them, as a partitioned server would its local clients).
    # They match only packets arriving on eth0, the member's link: with a relay, the replies
    # from the relay to the member on loopback carry the peer's address too (conntrack undoes
    # the REDIRECT), and must not be dropped a second time.
    def drop(self, to, frm, probability=None):
        """Member `to` no longer receives from member `frm` (with `probability`: that share)."""
        rule = ["-A", "INPUT", "-i", "eth0", "-s", self.ip(frm)]
        if probability is not None:
            rule += ["-m", "statistic", "--mode", "random", "--probability", "%.3f" % probability]
        self._ipt(to, *(rule + ["-j", "DROP"]))

    def cut(self, a, b):
        self.drop(a, b)
        self.drop(b, a)

    def partition(self, groups):
        """Members in different groups cannot talk to each other."""
        for gi, ga in enumerate(groups):
            for gb in groups[gi + 1:]:
                for a in ga:
                    for b in gb:
                        self.cut(a, b)

    def heal(self):
        """Removes every fault: the drop rules and the relays' link settings."""
        for i in range(1, self.n + 1):
            self._ipt(i, "-F", "INPUT")
        self.clear_links()

    # Link faults, through the relays (only with relay_port set).
    def link(self, a, b, delay_ms=(0, 0), duplicate=0.0):
        """Everything between members a and b, both ways, is held for a delay drawn per frame
        from delay_ms ([lo, hi] in ms; lo == hi is a fixed delay), and each batch of Raft
        messages is sent twice with probability `duplicate`. Each relay carries both directions
        of the connections its member dialed, so both relays get the setting for the other."""
        for x, y in ((a, b), (b, a)):
            self.relays[x].call({"op": "set", "peer": self.ip(y), "delay_ms": list(delay_ms),
                                 "duplicate": duplicate})

    def clear_links(self):
        for relay in self.relays.values():
            relay.call({"op": "clear"})

    def relay_stats(self):
        """{member: the relay's counters}, for members whose relay answers."""
        out = {}
        for i, relay in self.relays.items():
            answer = relay.call({"op": "stats"})
            if answer is not None:
                out[i] = answer.get("stats", {})
        return out

    def relay_errors(self):
        """What went wrong with any relay so far: exits, silences, refused commands."""
        errors = []
        for i, relay in self.relays.items():
            errors += relay.errors
            if not relay.running():
                errors.append("relay of member %d is not running" % i)
        return errors
