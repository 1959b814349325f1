"""A real Chorus cluster for integration tests: chorusd processes on loopback with free ports,
driven by Debian's etcdctl. Standard library only."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


def run_tests(module_globals, flags=("--chorusd",)):
    """The main of a test file: each of `flags` (required) becomes the upper-case global of its
    name (--proto-dir: PROTO_DIR), the rest goes to unittest."""
    import argparse
    import sys
    import unittest
    ap = argparse.ArgumentParser()
    for f in flags:
        ap.add_argument(f, required=True)
    args, rest = ap.parse_known_args()
    for f in flags:
        name = f.lstrip("-").replace("-", "_")
        module_globals[name.upper()] = getattr(args, name)
    unittest.main(argv=[sys.argv[0]] + rest)


def b64(s):
    """etcd's JSON form of a key or value."""
    import base64
    return base64.b64encode(s.encode()).decode()


def unb64(s):
    import base64
    return base64.b64decode(s).decode()


def redis_slot(key):
    """Redis Cluster's slot of a key: CRC16 (XMODEM) of the key or its {hash tag}, mod 16384."""
    k = key.encode()
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            k = k[s + 1:e]
    crc = 0
    for b in k:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % 16384


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Member:
    def __init__(self, cluster, name, client_port, peer_port, metrics_port):
        self.cluster = cluster
        self.name = name
        self.client_port = client_port
        self.peer_port = peer_port
        self.metrics_port = metrics_port
        self.data_dir = os.path.join(cluster.root, name)
        self.log_path = os.path.join(cluster.root, name + ".log")
        self.proc = None

    @property
    def endpoint(self):
        if self.cluster.client_scheme == "https":
            return "https://127.0.0.1:%d" % self.client_port
        return "127.0.0.1:%d" % self.client_port

    @property
    def client_url(self):
        return "%s://127.0.0.1:%d" % (self.cluster.client_scheme, self.client_port)

    @property
    def peer_url(self):
        return "%s://127.0.0.1:%d" % (self.cluster.peer_scheme, self.peer_port)

    def start(self, state="new", extra=()):
        args = [
            self.cluster.chorusd,
            "--name", self.name,
            "--data-dir", self.data_dir,
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--listen-metrics-urls", "http://127.0.0.1:%d" % self.metrics_port,
        ] + (["--initial-cluster", self.cluster.initial_cluster()]
             if self.cluster.initial_cluster() is not None else []) + [
            "--initial-cluster-state", state,
            "--initial-cluster-token", self.cluster.token,
            "--heartbeat-interval", "50",
            "--election-timeout", "500",
        ] + list(self.cluster.extra_args(self)) + list(extra)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def http_get(self, path):
        """(status, body) of an HTTP GET on the member's metrics listener."""
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.metrics_port, path),
                                        timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout=20):
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("%s did not stop within %ds on SIGTERM" % (self.name, timeout))
        return self.proc.returncode if self.proc else None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_log(self, text, timeout=10):
        """The member's log once it holds `text` (or after `timeout` seconds, without it). A
        line logged just after a change clients can already see (the store replaced by a
        snapshot, then the line saying so) may trail the client that saw it."""
        deadline = time.time() + timeout
        log = self.log()
        while text not in log and time.time() < deadline:
            time.sleep(0.1)
            log = self.log()
        return log


class Cluster:
    def __init__(self, chorusd, size=3, token=None, client_scheme="http", member_args=None,
                 ctl_args=(), peer_scheme="http"):
        """member_args(member) gives flags for one member (certificates); ctl_args go to every
        etcdctl call (--cacert ...)."""
        self.chorusd = chorusd
        self.client_scheme = client_scheme
        self.peer_scheme = peer_scheme
        self.member_args = member_args
        self.ctl_args = list(ctl_args)
        self.root = tempfile.mkdtemp(prefix="chorus-it-")
        self.token = token or "it-%d" % os.getpid()
        ports = free_ports(3 * size)
        self.members = [
            Member(self, "m%d" % (i + 1), ports[3 * i], ports[3 * i + 1], ports[3 * i + 2])
            for i in range(size)
        ]

    def extra_args(self, member):
        return self.member_args(member) if self.member_args else []

    def initial_cluster(self):
        return ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)

    def endpoints(self, members=None):
        return ",".join(m.endpoint for m in (members or self.members))

    def start(self):
        for m in self.members:
            m.start()
        self.wait_leader()

    def start_or_keep(self):
        """start(); if it fails, the members stop and their data and logs stay for a look."""
        try:
            self.start()
        except Exception:
            self.close(keep=True)
            raise
        return self

    def close(self, keep=False):
        for m in self.members:
            try:
                m.stop()
            except AssertionError:
                pass
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def logs(self):
        return "\n".join("--- %s ---\n%s" % (m.name, m.log()[-4000:]) for m in self.members)

    # etcdctl ------------------------------------------------------------------------------
    def ctl(self, *args, endpoints=None, stdin=None, timeout=30, check=True, ctl_args=None):
        env = dict(os.environ, ETCDCTL_API="3")
        cmd = [ETCDCTL, "--endpoints", endpoints or self.endpoints(self.live()),
               "--command-timeout", "10s", "--dial-timeout", "3s"]
        cmd += self.ctl_args if ctl_args is None else list(ctl_args)
        cmd += list(args)
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("etcdctl %s failed (%d): %s %s" %
                                 (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def ctl_json(self, *args, **kw):
        return json.loads(self.ctl(*args, "-w", "json", **kw).stdout)

    def local_value(self, member, key):
        """`key`'s value in `member`'s own store (a serializable read), or None."""
        p = self.ctl("get", key, "--consistency=s", "--print-value-only",
                     endpoints=member.endpoint, check=False)
        return p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else None

    def wait_value(self, member, key, value, timeout=15):
        """Whether `member` holds `value` for `key` within `timeout` seconds."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.local_value(member, key) == value:
                return True
            time.sleep(0.2)
        return False

    def live(self):
        return [m for m in self.members if m.running()]

    def status(self, member):
        """The member's endpoint status, or None while it cannot give one (starting, stopping,
        or slower than etcdctl's own command timeout: a probe, asked again by its callers)."""
        try:
            p = self.ctl("endpoint", "status", "-w", "json", endpoints=member.endpoint,
                         check=False, timeout=15)
        except subprocess.TimeoutExpired:
            return None
        if p.returncode != 0:
            return None
        return json.loads(p.stdout)[0]["Status"]

    def leader(self):
        """The member every live member names as leader, or None."""
        leaders = set()
        for m in self.live():
            st = self.status(m)
            if st is None or not st.get("leader"):
                return None
            leaders.add(st["leader"])
        if len(leaders) != 1:
            return None
        lead = leaders.pop()
        for m in self.live():
            st = self.status(m)
            if st and st["header"]["member_id"] == lead:
                return m
        return None

    def wait_leader(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.leader()
            if m is not None:
                return m
            time.sleep(0.2)
        raise AssertionError("no leader within %ds\n%s" % (timeout, self.logs()))
