"""etcd's finer TLS flags, with certificates and revocation lists made here by the openssl
command: --client-crl-file and --peer-crl-file (a revoked certificate is refused in the
handshake, the list re-read when it changes), --client-cert-allowed-hostname,
--peer-cert-allowed-cn and --peer-cert-allowed-hostname, --cipher-suites and --tls-min-version /
--tls-max-version (probed with openssl s_client).

    python3 tests/integration/test_tls_extras.py --chorusd build/rel/src/server/chorusd [-v]
"""

import os
import shutil
import subprocess
import tempfile
import time
import unittest

from cluster import Cluster, run_tests
from test_tls import OPENSSL, Pki, curl_tls, openssl

CHORUSD = None

CA_CONFIG = """[ ca ]
default_ca = chorus_ca
[ chorus_ca ]
database = {db}
crlnumber = {crlnumber}
default_md = sha256
default_crl_days = 2
"""


class RevokingPki(Pki):
    """Pki, plus certificates for the finer checks and a CA that can revoke."""

    def __init__(self, root):
        super().__init__(root)
        self.cert("revoked-client", "ca", "root")
        self.cert("other-client", "ca", "root")
        self.cert("revoked-server", "ca", "chorus-member", server=True)
        self.cert("intruder", "ca", "intruder", server=True)
        self.cert("named-client", "ca", "root", san="DNS:client.chorus.test")
        open(self.path("index.txt"), "w").close()
        with open(self.path("crlnumber"), "w") as f:
            f.write("01\n")
        with open(self.path("ca.cnf"), "w") as f:
            f.write(CA_CONFIG.format(db=self.path("index.txt"), crlnumber=self.path("crlnumber")))
        self.crl("ca.crl")

    def ca_cmd(self, *args):
        openssl("ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.crt", *args,
                cwd=self.root)

    def revoke(self, name):
        self.ca_cmd("-revoke", name + ".crt")

    def crl(self, out):
        self.ca_cmd("-gencrl", "-out", out + ".tmp")
        os.replace(self.path(out + ".tmp"), self.path(out))


def s_client(port, *args):
    """Whether openssl s_client completes a handshake with 127.0.0.1:port."""
    p = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-brief"]
                       + list(args), input="", capture_output=True, text=True, timeout=20)
    # The server closing after the empty input may make s_client's exit status non-zero.
    return "CONNECTION ESTABLISHED" in p.stderr and "Ciphersuite" in p.stderr, p.stderr


class ClientTlsExtrasTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="chorus-tls-extras-")
        cls.pki = RevokingPki(cls.dir)
        cls.pki.revoke("revoked-client")
        cls.pki.crl("ca.crl")

        def member_args(m):
            return ["--cert-file", cls.pki.path("server.crt"),
                    "--key-file", cls.pki.path("server.key"),
                    "--trusted-ca-file", cls.pki.path("ca.crt"), "--client-cert-auth",
                    "--client-crl-file", cls.pki.path("ca.crl"),
                    "--cipher-suites", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                    "--tls-max-version", "TLS1.2"]

        cls.c = Cluster(CHORUSD, size=1, client_scheme="https", member_args=member_args,
                        ctl_args=cls.pki.ctl_args()).start_or_keep()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def works(self, client):
        return self.c.ctl("put", "crl/k", "v", check=False, timeout=20,
                          ctl_args=self.pki.ctl_args(client=client)).returncode == 0

    def test_a_revoked_client_certificate_is_refused_and_a_new_list_is_read(self):
        self.assertTrue(self.works("client"), self.c.logs())
        self.assertFalse(self.works("revoked-client"), "a revoked certificate was served")
        port = self.c.members[0].client_port
        rc, code, r = curl_tls(self.pki, port, "/health")
        self.assertEqual((rc, code), (0, 200), r)
        rc, _, _ = curl_tls(self.pki, port, "/health", client="revoked-client")
        self.assertNotEqual(rc, 0, "the gateway served a revoked certificate")
        self.assertTrue(self.works("other-client"))
        # Revoked while the member runs: the changed list is picked up without a restart.
        self.pki.revoke("other-client")
        self.pki.crl("ca.crl")
        deadline = time.time() + 15
        while time.time() < deadline and self.works("other-client"):
            time.sleep(0.5)
        self.assertFalse(self.works("other-client"), "the new revocation list was not read")
        self.assertTrue(self.works("client"))

    def test_only_the_listed_cipher_suite_is_offered_over_tls_1_2(self):
        port = self.c.members[0].client_port
        cert = ["-cert", self.pki.path("client.crt"), "-key", self.pki.path("client.key")]
        ok, err = s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384", *cert)
        self.assertTrue(ok, err)
        ok, err = s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", *cert)
        self.assertFalse(ok, "a cipher suite not in --cipher-suites was accepted")
        ok, _ = s_client(port, "-tls1_3", *cert)
        self.assertFalse(ok, "TLS 1.3 was accepted above --tls-max-version TLS1.2")


class ClientAllowedHostnameTest(unittest.TestCase):
    def test_a_client_certificate_must_name_the_allowed_host(self):
        d = tempfile.mkdtemp(prefix="chorus-tls-host-")
        pki = RevokingPki(d)
        c = Cluster(CHORUSD, size=1, client_scheme="https",
                    ctl_args=pki.ctl_args(client="named-client"),
                    member_args=lambda m: [
                        "--cert-file", pki.path("server.crt"), "--key-file", pki.path("server.key"),
                        "--trusted-ca-file", pki.path("ca.crt"), "--client-cert-auth",
                        "--client-cert-allowed-hostname", "client.chorus.test"]).start_or_keep()
        try:
            ok = c.ctl("put", "host/k", "v", check=False, timeout=20,
                       ctl_args=pki.ctl_args(client="named-client"))
            self.assertEqual(ok.returncode, 0, ok.stderr + c.logs())
            bad = c.ctl("put", "host/k", "v", check=False, timeout=20,
                        ctl_args=pki.ctl_args(client="client"))
            self.assertNotEqual(bad.returncode, 0, "a certificate without the name was served")
            port = c.members[0].client_port
            rc, code, r = curl_tls(pki, port, "/health", client="named-client")
            self.assertEqual((rc, code), (0, 200), r)
            rc, _, _ = curl_tls(pki, port, "/health", client="client")
            self.assertNotEqual(rc, 0, "the gateway served a certificate without the name")
        finally:
            c.close()
            shutil.rmtree(d, ignore_errors=True)


class PeerTlsExtrasTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="chorus-peer-extras-")
        cls.pki = RevokingPki(cls.dir)
        cls.pki.revoke("revoked-server")
        cls.pki.crl("ca.crl")
        cls.certs = {}  # member name -> certificate name

        def member_args(m):
            cert = cls.certs.get(m.name, "server")
            return ["--peer-cert-file", cls.pki.path(cert + ".crt"),
                    "--peer-key-file", cls.pki.path(cert + ".key"),
                    "--peer-trusted-ca-file", cls.pki.path("ca.crt"), "--peer-client-cert-auth",
                    "--peer-crl-file", cls.pki.path("ca.crl"),
                    "--peer-cert-allowed-cn", "chorus-member",
                    "--peer-cert-allowed-hostname", "localhost",
                    "--cipher-suites", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                    "--tls-max-version", "TLS1.2"]

        cls.c = Cluster(CHORUSD, peer_scheme="https", member_args=member_args).start_or_keep()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_peers_replicate_with_every_check_on(self):
        self.c.ctl("put", "pe/a", "1")
        for m in self.c.members:
            self.assertTrue(self.c.wait_value(m, "pe/a", "1"), m.name + "\n" + self.c.logs())

    def test_the_peer_port_offers_tls_1_2_with_the_listed_suite_only(self):
        port = self.c.members[0].peer_port
        cert = ["-cert", self.pki.path("server.crt"), "-key", self.pki.path("server.key")]
        ok, err = s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384", *cert)
        self.assertTrue(ok, err)
        ok, _ = s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", *cert)
        self.assertFalse(ok, "a cipher suite not in --cipher-suites was accepted")
        ok, _ = s_client(port, "-tls1_3", *cert)
        self.assertFalse(ok, "TLS 1.3 was accepted above --tls-max-version TLS1.2")

    def keep_out(self, cert, reason):
        m3 = self.c.members[2]
        m3.stop()
        self.certs["m3"] = cert
        m3.start()
        try:
            key = "pe/" + cert
            self.c.ctl("put", key, "1", endpoints=self.c.endpoints(self.c.members[:2]))
            time.sleep(3)
            self.assertNotEqual(self.c.local_value(m3, key), "1",
                                "a member with a %s certificate got the write" % cert)
            self.assertIn(reason, self.c.members[0].wait_log(reason) +
                          self.c.members[1].wait_log(reason) + m3.wait_log(reason))
        finally:
            m3.stop()
            del self.certs["m3"]
            m3.start()
        self.assertTrue(self.c.wait_value(m3, key, "1", timeout=30), self.c.logs())

    def test_a_revoked_peer_is_kept_out(self):
        self.keep_out("revoked-server", "revoked")

    def test_a_peer_with_another_common_name_is_kept_out(self):
        self.keep_out("intruder", "--peer-cert-allowed-cn")


if __name__ == "__main__":
    run_tests(globals())
