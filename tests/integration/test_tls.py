"""Client TLS with the real etcdctl and curl: a 3-member cluster serving https client URLs with
--client-cert-auth (gRPC and the JSON gateway on one port), and the certificate's common name as
the user once auth is on; certificates generated here with the openssl command.

    python3 tests/integration/test_tls.py --chorusd build/rel/src/server/chorusd [-v]
"""

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from cluster import Cluster, free_ports

CHORUSD = None
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
CURL = shutil.which("curl") or "/usr/bin/curl"


def b64(text):
    return base64.b64encode(text.encode()).decode()


def curl_tls(pki, port, path, body=None, client="client", extra=()):
    """(curl's exit status, HTTP status, parsed JSON body) of an https call to the gateway."""
    cmd = [CURL, "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20",
           "--cacert", pki.path("ca.crt")] + list(extra)
    if client:
        cmd += ["--cert", pki.path(client + ".crt"), "--key", pki.path(client + ".key")]
    if body is not None:
        cmd += ["-X", "POST", "--data-binary", json.dumps(body)]
    cmd.append("https://127.0.0.1:%d%s" % (port, path))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    text, _, code = p.stdout.rpartition("\n")
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        parsed = text
    return p.returncode, int(code or 0), parsed


def openssl(*args, cwd):
    p = subprocess.run([OPENSSL] + list(args), cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError("openssl %s failed: %s" % (" ".join(args), p.stderr))


class Pki:
    """Two CAs and the certificates the tests present, all EC P-256 (quick to make)."""

    def __init__(self, root):
        self.root = root
        self.ca("ca")
        self.ca("other-ca")
        self.cert("server", "ca", "chorus-member", server=True)
        self.cert("client", "ca", "root")
        self.cert("stranger", "other-ca", "root")
        self.cert("server-other", "other-ca", "chorus-member", server=True)

    def path(self, name):
        return os.path.join(self.root, name)

    def ca(self, name):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", name + ".key", "-out", name + ".crt", "-days", "2",
                "-subj", "/CN=" + name, cwd=self.root)

    def cert(self, name, ca, cn, server=False, san=None):
        """A certificate `name` for `cn` signed by `ca`: a member's (server) names loopback;
        a client's names `san` when given (subjectAltName syntax)."""
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn,
                cwd=self.root)
        ext = name + ".ext"
        with open(self.path(ext), "w") as f:
            if server:
                f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                        "extendedKeyUsage=serverAuth,clientAuth\n")
            else:
                if san:
                    f.write("subjectAltName=%s\n" % san)
                f.write("extendedKeyUsage=clientAuth\n")
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
                "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", ext,
                cwd=self.root)

    def ctl_args(self, client="client", ca="ca"):
        return ["--cacert", self.path(ca + ".crt"), "--cert", self.path(client + ".crt"),
                "--key", self.path(client + ".key")]


class TlsClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="chorus-tls-")
        cls.pki = Pki(cls.dir)

        def member_args(m):
            # Each member its own copy of the certificate, so one can be rotated alone.
            for ext in ("crt", "key"):
                dst = cls.pki.path("%s.%s" % (m.name, ext))
                if not os.path.exists(dst):
                    shutil.copy(cls.pki.path("server." + ext), dst)
            return ["--cert-file", cls.pki.path(m.name + ".crt"),
                    "--key-file", cls.pki.path(m.name + ".key"),
                    "--trusted-ca-file", cls.pki.path("ca.crt"), "--client-cert-auth",
                    "--snapshot-count", "50"]

        cls.c = Cluster(CHORUSD, client_scheme="https", member_args=member_args,
                        ctl_args=cls.pki.ctl_args()).start_or_keep()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def refused(self, p):
        self.assertNotEqual(p.returncode, 0, p.stdout)

    def refused_while_allowed_works(self, endpoint=None, **bad):
        """The same call with the good client certificate works; with `bad` it fails."""
        m = endpoint or self.c.members[0].endpoint
        self.c.ctl("get", "tls/", "--prefix", endpoints=m)
        self.refused(self.c.ctl("get", "tls/", "--prefix", check=False, timeout=30, endpoints=m,
                                **bad))

    def test_a_client_with_a_certificate_reads_and_writes_on_every_member(self):
        for i, m in enumerate(self.c.members):
            self.c.ctl("put", "tls/%d" % i, "v%d" % i, endpoints=m.endpoint)
        for m in self.c.members:
            out = self.c.ctl("get", "tls/", "--prefix", "--keys-only", endpoints=m.endpoint)
            self.assertEqual(out.stdout.split(), ["tls/0", "tls/1", "tls/2"])

    def test_a_follower_forwards_keep_alives_to_the_leader_over_tls(self):
        leader = self.c.wait_leader()
        follower = next(m for m in self.c.members if m is not leader)
        out = self.c.ctl("lease", "grant", "30", endpoints=follower.endpoint).stdout
        lease = out.split()[1]
        out = self.c.ctl("lease", "keep-alive", "--once", lease, endpoints=follower.endpoint)
        self.assertIn("keepalived with TTL", out.stdout)
        # Forwarded, not answered locally: leadership did not move meanwhile.
        self.assertIs(self.c.wait_leader(), leader)

    def test_a_client_without_a_certificate_is_refused(self):
        self.refused_while_allowed_works(ctl_args=["--cacert", self.pki.path("ca.crt")])

    def test_a_certificate_from_another_ca_is_refused(self):
        self.refused_while_allowed_works(ctl_args=self.pki.ctl_args(client="stranger"))

    def test_plain_text_to_a_tls_port_is_refused(self):
        m = self.c.members[0]
        p = self.c.ctl("put", "tls/x", "1", check=False, timeout=30, ctl_args=[],
                       endpoints="http://127.0.0.1:%d" % m.client_port)
        self.refused(p)
        # And the member still serves TLS clients afterwards.
        self.c.ctl("put", "tls/after-plain", "1", endpoints=m.endpoint)

    def test_the_json_gateway_answers_curl_over_tls_on_the_grpc_port(self):
        m1, m2 = self.c.members[0], self.c.members[1]
        rc, code, r = curl_tls(self.pki, m1.client_port, "/v3/kv/put",
                               {"key": b64("tls/gw"), "value": b64("over-tls")})
        self.assertEqual((rc, code), (0, 200), r)
        # Read back through gRPC, and through the gateway of another member.
        self.assertEqual(self.c.ctl("get", "tls/gw", "--print-value-only",
                                    endpoints=m2.endpoint).stdout.strip(), "over-tls")
        rc, code, r = curl_tls(self.pki, m2.client_port, "/v3/kv/range", {"key": b64("tls/gw")})
        self.assertEqual((rc, code), (0, 200), r)
        self.assertEqual(base64.b64decode(r["kvs"][0]["value"]).decode(), "over-tls")
        # HTTP/1.1 when offered beside h2 (curl's default), and when it is all that is offered.
        rc, code, r = curl_tls(self.pki, m1.client_port, "/health", extra=["--http1.1"])
        self.assertEqual((rc, code, r["health"]), (0, 200, "true"), r)
        rc, code, r = curl_tls(self.pki, m1.client_port, "/version")
        self.assertEqual((rc, code), (0, 200), r)
        # The same checks as gRPC's: no certificate, or one of another CA, gets no answer.
        rc, code, _ = curl_tls(self.pki, m1.client_port, "/health", client=None)
        self.assertNotEqual(rc, 0)
        rc, code, _ = curl_tls(self.pki, m1.client_port, "/health", client="stranger")
        self.assertNotEqual(rc, 0)
        # Plain HTTP to the TLS port is refused, never served.
        p = subprocess.run([CURL, "-s", "--max-time", "10",
                            "http://127.0.0.1:%d/health" % m1.client_port],
                           capture_output=True, text=True, timeout=30)
        self.assertNotIn("health", p.stdout)
        self.c.ctl("put", "tls/after-gateway", "1", endpoints=m1.endpoint)

    def test_an_https_peer_url_is_refused_by_member_add(self):
        # This cluster's peers talk plain TCP: a member that expects TLS could not join it.
        p = self.c.ctl("member", "add", "m9", "--peer-urls", "https://127.0.0.1:1", check=False)
        self.refused(p)
        self.assertIn("this cluster's peer URLs are http", p.stderr)

    def test_x_a_damaged_certificate_shows_in_health_and_the_log(self):
        m = self.c.members[0]
        good = open(self.pki.path(m.name + ".crt")).read()
        tmp = self.pki.path(m.name + ".crt.new")
        try:
            with open(tmp, "w") as f:
                f.write("not a certificate\n")
            os.replace(tmp, self.pki.path(m.name + ".crt"))
            deadline = time.time() + 15
            while True:
                status, body = m.http_get("/health")
                if status != 200 or time.time() > deadline:
                    break
                time.sleep(0.3)
            self.assertNotEqual(status, 200, body)
            self.assertIn("TLS", body)
            self.assertIn(m.name + ".crt", body)
        finally:
            with open(tmp, "w") as f:
                f.write(good)
            os.replace(tmp, self.pki.path(m.name + ".crt"))
        deadline = time.time() + 15
        while time.time() < deadline and m.http_get("/health")[0] != 200:
            time.sleep(0.3)
        self.assertEqual(m.http_get("/health")[0], 200)
        # Logged before /health could tell.
        self.assertIn("TLS files", m.log())
        self.assertIn("usable again", m.log())

    def test_z_a_rotated_certificate_is_served_without_a_restart(self):
        m = self.c.members[2]
        for ext in ("key", "crt"):
            tmp = self.pki.path("%s.%s.new" % (m.name, ext))
            shutil.copy(self.pki.path("server-other." + ext), tmp)
            os.replace(tmp, self.pki.path("%s.%s" % (m.name, ext)))
        deadline = time.time() + 20
        new_ca = self.pki.ctl_args(ca="other-ca")
        while True:
            p = self.c.ctl("get", "tls/", "--prefix", check=False, endpoints=m.endpoint,
                           ctl_args=new_ca, timeout=30)
            if p.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(p.returncode, 0, p.stderr + self.c.logs())
        # The old chain no longer verifies against this member; the others still serve it.
        self.refused(self.c.ctl("get", "tls/", check=False, endpoints=m.endpoint, timeout=30))
        self.c.ctl("get", "tls/", endpoints=self.c.members[0].endpoint)

    def test_y_a_member_behind_fetches_the_snapshot_over_tls(self):
        m = self.c.members[1]
        leader = self.c.wait_leader()
        if m is leader:
            m = self.c.members[0]
        others = [x for x in self.c.members if x is not m]
        self.assertEqual(m.stop(), 0)
        for i in range(300):
            self.c.ctl("put", "snap/%03d" % i, "v", endpoints=self.c.endpoints(others))
        m.start()
        deadline = time.time() + 60
        count = None
        while time.time() < deadline:
            p = self.c.ctl("get", "snap/", "--prefix", "--limit", "1", "--consistency=s", "-w",
                           "json", check=False, endpoints=m.endpoint)
            if p.returncode == 0:
                count = json.loads(p.stdout).get("count")
                if count == 300:
                    break
            time.sleep(0.5)
        self.assertEqual(count, 300, m.log()[-3000:])
        self.assertIn("installed a snapshot", m.wait_log("installed a snapshot"))


class CertificateUserTest(unittest.TestCase):
    """With --client-cert-auth and auth on, the certificate's common name is the user (as in
    etcd), for gRPC calls and for the JSON gateway alike."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="chorus-tls-cn-")
        cls.pki = Pki(cls.dir)
        cls.pki.cert("reader", "ca", "reader")
        cls.pki.cert("nobody", "ca", "nobody")

        def member_args(m):
            return ["--cert-file", cls.pki.path("server.crt"),
                    "--key-file", cls.pki.path("server.key"),
                    "--trusted-ca-file", cls.pki.path("ca.crt"), "--client-cert-auth"]

        cls.c = Cluster(CHORUSD, size=1, client_scheme="https", member_args=member_args,
                        ctl_args=cls.pki.ctl_args()).start_or_keep()
        ctl = cls.c.ctl
        ctl("put", "cn/a", "1")
        ctl("user", "add", "root", "--new-user-password=root-pw")
        ctl("user", "add", "reader", "--new-user-password=reader-pw")
        ctl("role", "add", "read-cn")
        ctl("role", "grant-permission", "read-cn", "read", "cn/", "--prefix")
        ctl("user", "grant-role", "reader", "read-cn")
        ctl("auth", "enable")

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def ctl_as(self, client, *args):
        return self.c.ctl(*args, check=False, ctl_args=self.pki.ctl_args(client=client))

    def test_grpc_callers_are_their_certificates_common_names(self):
        self.assertEqual(self.ctl_as("client", "put", "cn/root", "1").returncode, 0)  # root
        p = self.ctl_as("reader", "get", "cn/a", "--print-value-only")
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "1"), p.stderr)
        p = self.ctl_as("reader", "put", "cn/b", "1")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("permission denied", p.stderr)
        p = self.ctl_as("nobody", "get", "cn/a")
        self.assertNotEqual(p.returncode, 0)
        # A password login still names another user than the certificate's.
        p = self.c.ctl("put", "cn/by-password", "1", "--user", "reader:reader-pw", check=False,
                       ctl_args=self.pki.ctl_args(client="nobody"))
        self.assertIn("permission denied", p.stderr)

    def test_gateway_callers_are_their_certificates_common_names(self):
        port = self.c.members[0].client_port
        rc, code, r = curl_tls(self.pki, port, "/v3/kv/range", {"key": b64("cn/a")},
                               client="reader")
        self.assertEqual((rc, code), (0, 200), r)
        self.assertEqual(base64.b64decode(r["kvs"][0]["value"]).decode(), "1")
        rc, code, r = curl_tls(self.pki, port, "/v3/kv/put",
                               {"key": b64("cn/gw"), "value": b64("1")}, client="reader")
        self.assertEqual(code, 403, r)
        self.assertIn("permission denied", r["error"])
        rc, code, r = curl_tls(self.pki, port, "/v3/kv/put",
                               {"key": b64("cn/gw"), "value": b64("1")}, client="client")
        self.assertEqual((rc, code), (0, 200), r)
        rc, code, r = curl_tls(self.pki, port, "/v3/auth/user/list", {}, client="reader")
        self.assertEqual(code, 403, r)
        rc, code, r = curl_tls(self.pki, port, "/v3/auth/user/list", {}, client="client")
        self.assertEqual((rc, code), (0, 200), r)
        self.assertEqual(sorted(r["users"]), ["reader", "root"])


class TlsStartupTest(unittest.TestCase):
    """A member refuses to start on TLS files it cannot use, and says which and why."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="chorus-tls-start-")
        cls.pki = Pki(cls.dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def args(self, name, client, *flags):
        peer = free_ports(1)[0]
        return [CHORUSD, "--name", name, "--data-dir", os.path.join(self.dir, name),
                "--listen-client-urls", "https://127.0.0.1:%d" % client,
                "--listen-peer-urls", "http://127.0.0.1:%d" % peer,
                "--initial-cluster", "%s=http://127.0.0.1:%d" % (name, peer)] + list(flags)

    def start(self, *flags):
        return subprocess.run(self.args("solo", free_ports(1)[0], *flags), capture_output=True,
                              text=True, timeout=30)

    def serving(self, name, client, flags, check):
        """Runs a member with `flags` until `check(ctl)` has run; ctl(*args) runs etcdctl
        against it and returns the completed process."""
        from cluster import ETCDCTL
        env = dict(os.environ, ETCDCTL_API="3")
        base = [ETCDCTL, "--endpoints", "https://127.0.0.1:%d" % client, "--dial-timeout", "3s",
                "--command-timeout", "5s"]

        def ctl(*args):
            return subprocess.run(base + list(args), capture_output=True, text=True, env=env,
                                  timeout=30)

        log = open(os.path.join(self.dir, name + ".log"), "ab")
        proc = subprocess.Popen(self.args(name, client, *flags), stdout=log,
                                stderr=subprocess.STDOUT)
        log.close()
        try:
            check(ctl)
        finally:
            proc.terminate()
            proc.wait(timeout=20)

    def until_ok(self, ctl, *args):
        deadline = time.time() + 20
        while True:
            p = ctl(*args)
            if p.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.3)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_auto_tls_serves_a_self_signed_certificate_and_keeps_it(self):
        client = free_ports(1)[0]
        cert = os.path.join(self.dir, "auto", "fixtures", "client", "cert.pem")
        texts = []

        def check(ctl):
            self.until_ok(ctl, "--insecure-skip-tls-verify", "--insecure-transport=false", "put",
                          "k", "v")
            # Self-signed: a client that verifies refuses it.
            self.assertNotEqual(ctl("--cacert", self.pki.path("ca.crt"), "get", "k").returncode, 0)

        for _ in range(2):
            self.serving("auto", client, ["--auto-tls"], check)
            self.assertEqual(os.stat(cert.replace("cert.pem", "key.pem")).st_mode & 0o777, 0o600)
            self.assertEqual(os.stat(os.path.dirname(cert)).st_mode & 0o777, 0o700)
            with open(cert) as f:
                texts.append(f.read())
        self.assertEqual(texts[0], texts[1])  # made once, kept across restarts

    def test_a_trusted_ca_alone_requires_client_certificates(self):
        # As etcd: --trusted-ca-file without --client-cert-auth still verifies clients.
        def check(ctl):
            self.until_ok(ctl, *(self.pki.ctl_args() + ["put", "k", "v"]))
            p = ctl("--cacert", self.pki.path("ca.crt"), "get", "k")
            self.assertNotEqual(p.returncode, 0, p.stdout)

        self.serving("ca-only", free_ports(1)[0],
                     ["--cert-file", self.pki.path("server.crt"), "--key-file",
                      self.pki.path("server.key"), "--trusted-ca-file", self.pki.path("ca.crt")],
                     check)

    def test_a_missing_certificate(self):
        p = self.start("--cert-file", self.pki.path("nope.crt"), "--key-file",
                       self.pki.path("server.key"))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("cannot use the TLS files", p.stdout + p.stderr)
        self.assertIn("nope.crt", p.stdout + p.stderr)

    def test_a_key_of_another_certificate(self):
        p = self.start("--cert-file", self.pki.path("server.crt"), "--key-file",
                       self.pki.path("client.key"))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("is not the key of", p.stdout + p.stderr)

    def test_https_without_a_certificate(self):
        p = self.start()
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--cert-file and --key-file", p.stdout + p.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--chorusd", required=True)
    args, rest = parser.parse_known_args()
    CHORUSD = os.path.abspath(args.chorusd)
    unittest.main(argv=[sys.argv[0]] + rest)
