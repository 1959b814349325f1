"""The harness's own test hosts: one network namespace per member, joined by veth pairs to a
bridge in the harness's namespace, and faults made with iptables inside each member's namespace.

Needs root (CAP_NET_ADMIN), iproute2 and iptables. Nothing here touches the machine's own
interfaces: every name carries the run's tag, and teardown removes all of it."""

import os
import subprocess


def sh(*args, check=True):
    r = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r


def available():
    """None if namespaces, veth and iptables work here, else why not."""
    tag = "chk%d" % (os.getpid() % 100000)
    try:
        sh("ip", "netns", "add", tag)
        try:
            sh("ip", "netns", "exec", tag, "iptables", "-A", "INPUT", "-s", "10.255.255.1",
               "-m", "statistic", "--mode", "random", "--probability", "0.5", "-j", "DROP")
        finally:
            sh("ip", "netns", "del", tag, check=False)
    except (RuntimeError, OSError) as e:
        return str(e)
    return None


class Net:
    """Hosts 1..n at PREFIX.i on a bridge at PREFIX.254 (the harness and its clients)."""

    def __init__(self, tag, n, subnet):
        self.tag = tag
        self.n = n
        self.prefix = subnet  # e.g. "10.201.7"
        self.bridge = "chb" + tag
        self.up = False

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

    def teardown(self):
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
    def drop(self, to, frm, probability=None):
        """Member `to` no longer receives from member `frm` (with `probability`: that share)."""
        rule = ["-A", "INPUT", "-s", self.ip(frm)]
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
        for i in range(1, self.n + 1):
            self._ipt(i, "-F", "INPUT")
