"""Peer TLS: a 3-member cluster whose members talk Raft over https peer URLs with certificates
from one CA (made here with the openssl command) and --peer-client-cert-auth. Replication works,
plain text to a peer port is refused, a member presenting a certificate from another CA cannot
take part, and MemberAdd refuses an http peer URL in an https cluster.

    python3 tests/integration/test_peer_tls.py --chorusd build/rel/src/server/chorusd [-v]
"""

import os
import socket
import tempfile
import time
import unittest

from cluster import Cluster, run_tests
from test_tls import Pki

CHORUSD = None


class PeerTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="chorus-peer-tls-")
        cls.pki = Pki(cls.dir)
        cls.certs = {}  # member name -> (cert, key, ca)

        def member_args(m):
            cert, key, ca = cls.certs.get(m.name, ("server.crt", "server.key", "ca.crt"))
            return ["--peer-cert-file", cls.pki.path(cert), "--peer-key-file", cls.pki.path(key),
                    "--peer-trusted-ca-file", cls.pki.path(ca), "--peer-client-cert-auth"]

        cls.c = Cluster(CHORUSD, peer_scheme="https", member_args=member_args).start_or_keep()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def test_writes_replicate_over_tls(self):
        self.c.ctl("put", "ptls/a", "1")
        for m in self.c.members:
            self.assertTrue(self.c.wait_value(m, "ptls/a", "1"), m.name + "\n" + self.c.logs())
        names = [x["name"] for x in self.c.ctl_json("member", "list")["members"]]
        self.assertEqual(sorted(names), ["m1", "m2", "m3"])
        peer_urls = [u for x in self.c.ctl_json("member", "list")["members"]
                     for u in x["peerURLs"]]
        self.assertTrue(all(u.startswith("https://") for u in peer_urls), peer_urls)

    def test_plain_text_to_a_peer_port_gets_no_answer(self):
        m = self.c.members[0]
        s = socket.create_connection(("127.0.0.1", m.peer_port), timeout=5)
        try:
            # What a plain-text dialer sends first: not a TLS ClientHello.
            s.sendall(b"\x01" + b"\x00" * 63)
            got = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
            except (ConnectionResetError, socket.timeout):
                pass
            # Nothing but, at most, a TLS alert record (content type 21) before the close.
            self.assertTrue(got == b"" or got[0] == 21, got[:16])
        finally:
            s.close()

    def test_member_add_refuses_an_http_peer_url(self):
        p = self.c.ctl("member", "add", "x", "--peer-urls", "http://127.0.0.1:9", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("this cluster's peer URLs are https", p.stderr)

    def test_zz_a_member_with_a_foreign_ca_certificate_is_kept_out(self):
        m3 = self.c.members[2]
        m3.stop()
        # Signed by another CA; it still trusts the cluster's CA, so only the others refuse it.
        self.certs["m3"] = ("server-other.crt", "server-other.key", "ca.crt")
        m3.start()
        self.c.ctl("put", "ptls/late", "1", endpoints=self.c.endpoints(self.c.members[:2]))
        time.sleep(3)
        self.assertNotEqual(self.c.local_value(m3, "ptls/late"), "1",
                            "a member the others cannot verify got the write")
        # The others' refusal reaches it as a TLS alert, logged once per peer and reason.
        self.assertIn("unknown ca", m3.wait_log("unknown ca"))
        # With a certificate from the cluster's CA it catches up.
        m3.stop()
        del self.certs["m3"]
        m3.start()
        self.assertTrue(self.c.wait_value(m3, "ptls/late", "1", timeout=30), self.c.logs())


class PeerAutoTlsTest(unittest.TestCase):
    def test_self_signed_peers_replicate(self):
        c = Cluster(CHORUSD, peer_scheme="https",
                    member_args=lambda m: ["--peer-auto-tls"]).start_or_keep()
        try:
            c.ctl("put", "auto/k", "v")
            for m in c.members:
                self.assertTrue(c.wait_value(m, "auto/k", "v"), m.name + "\n" + c.logs())
            self.assertTrue(os.path.exists(os.path.join(c.members[0].data_dir, "fixtures", "peer")))
        finally:
            c.close()


if __name__ == "__main__":
    run_tests(globals())
