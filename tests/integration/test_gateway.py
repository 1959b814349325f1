"""etcd's HTTP/JSON gateway with the real curl, on the same client port as the gRPC API that the
real etcdctl uses: every service's paths, streaming watches and keep-alives, /health, /version
and /metrics, auth tokens in the Authorization header, and bad input that gets a clear error and
leaves the member serving.

    python3 tests/integration/test_gateway.py --chorusd build/rel/src/server/chorusd [-v]
"""

import json
import shutil
import socket
import subprocess
import time
import unittest

from cluster import Cluster, b64, run_tests, unb64

CHORUSD = None
CURL = shutil.which("curl") or "/usr/bin/curl"


class GatewayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(CHORUSD).start_or_keep()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def url(self, member, path):
        return "http://127.0.0.1:%d%s" % (member.client_port, path)

    def curl(self, member, path, body=None, headers=(), method=None, raw=False):
        """(HTTP status, parsed JSON body, or the text with raw)."""
        cmd = [CURL, "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20"]
        if method:
            cmd += ["-X", method]
        data = None
        if body is not None:
            # From stdin: a large body does not fit on a command line.
            cmd += ["-X", method or "POST", "--data-binary", "@-"]
            data = body if isinstance(body, str) else json.dumps(body)
        for h in headers:
            cmd += ["-H", h]
        cmd.append(self.url(member, path))
        p = subprocess.run(cmd, input=data, capture_output=True, text=True, timeout=30)
        text, _, code = p.stdout.rpartition("\n")
        if raw:
            return int(code), text
        return int(code), (json.loads(text) if text.strip() else None)

    def test_kv_paths_and_grpc_on_the_same_port(self):
        m1, m2, m3 = self.c.members
        code, r = self.curl(m1, "/v3/kv/put", {"key": b64("kv1/a"), "value": b64("1")})
        self.assertEqual(code, 200, r)
        self.assertIn("revision", r["header"])
        # 64-bit integers as strings, field names as in the .proto files (etcd's gateway).
        self.assertIsInstance(r["header"]["revision"], str)
        self.assertIn("cluster_id", r["header"])
        code, r = self.curl(m2, "/v3/kv/range", {"key": b64("kv1/a")})
        self.assertEqual(code, 200, r)
        self.assertEqual(unb64(r["kvs"][0]["value"]), "1")
        self.assertEqual(r["count"], "1")
        # etcdctl (gRPC, HTTP/2) on the very same port sees it.
        out = self.c.ctl("get", "kv1/a", "--print-value-only", endpoints=m3.endpoint).stdout
        self.assertEqual(out.strip(), "1")
        # A prefix range, the older /v3beta/ path, and a txn.
        self.curl(m1, "/v3beta/kv/put", {"key": b64("kv1/b"), "value": b64("2")})
        code, r = self.curl(m3, "/v3/kv/range", {"key": b64("kv1/"), "range_end": b64("kv10")})
        self.assertEqual([unb64(kv["key"]) for kv in r["kvs"]], ["kv1/a", "kv1/b"])
        txn = {"compare": [{"key": b64("kv1/a"), "result": "EQUAL", "target": "VALUE",
                            "value": b64("1")}],
               "success": [{"request_put": {"key": b64("kv1/a"), "value": b64("3")}}],
               "failure": [{"request_range": {"key": b64("kv1/a")}}]}
        code, r = self.curl(m2, "/v3/kv/txn", txn)
        self.assertEqual(code, 200, r)
        self.assertTrue(r["succeeded"])
        code, r = self.curl(m1, "/v3/kv/txn", txn)
        self.assertNotIn("succeeded", r)  # false is left out, as etcd's gateway does
        self.assertEqual(unb64(r["responses"][0]["response_range"]["kvs"][0]["value"]), "3")
        code, r = self.curl(m1, "/v3/kv/deleterange", {"key": b64("kv1/b"), "prev_kv": True})
        self.assertEqual(r["deleted"], "1")
        self.assertEqual(unb64(r["prev_kvs"][0]["value"]), "2")
        rev = int(self.curl(m1, "/v3/kv/range", {"key": b64("kv1/a")})[1]["header"]["revision"])
        code, r = self.curl(m1, "/v3/kv/compaction", {"revision": str(rev)})
        self.assertEqual(code, 200, r)

    def test_watch_streams_events_as_they_happen(self):
        m = self.c.members[2]
        p = subprocess.Popen([CURL, "-s", "-N", "--max-time", "15", "-X", "POST", "-d",
                              json.dumps({"create_request": {"key": b64("gw/w"),
                                                             "range_end": b64("gw/x")}}),
                              self.url(m, "/v3/watch")],
                             stdout=subprocess.PIPE, text=True)
        try:
            first = json.loads(p.stdout.readline())
            self.assertTrue(first["result"]["created"])
            self.c.ctl("put", "gw/w1", "a")
            self.curl(self.c.members[0], "/v3/kv/put", {"key": b64("gw/w2"), "value": b64("b")})
            seen = []
            while len(seen) < 2:
                line = p.stdout.readline()
                self.assertTrue(line, "the stream ended early")
                for ev in json.loads(line)["result"].get("events", []):
                    seen.append((unb64(ev["kv"]["key"]), unb64(ev["kv"]["value"])))
            self.assertEqual(seen, [("gw/w1", "a"), ("gw/w2", "b")])
        finally:
            p.kill()
            p.wait()

    def test_leases_cluster_and_maintenance(self):
        m = self.c.members[0]
        code, g = self.curl(m, "/v3/lease/grant", {"TTL": "60"})
        self.assertEqual(code, 200, g)
        lease = g["ID"]
        code, k = self.curl(m, "/v3/lease/keepalive", {"ID": lease}, raw=True)
        self.assertEqual(code, 200, k)
        self.assertEqual(json.loads(k.splitlines()[0])["result"]["TTL"], "60")
        code, t = self.curl(self.c.members[1], "/v3/lease/timetolive", {"ID": lease})
        self.assertEqual(t["grantedTTL"], "60")
        code, ls = self.curl(m, "/v3/lease/leases", {})
        self.assertIn(lease, [x["ID"] for x in ls["leases"]])
        code, r = self.curl(m, "/v3/lease/revoke", {"ID": lease})
        self.assertEqual(code, 200, r)
        code, members = self.curl(m, "/v3/cluster/member/list", {})
        self.assertEqual(sorted(x["name"] for x in members["members"]), ["m1", "m2", "m3"])
        code, st = self.curl(m, "/v3/maintenance/status", {})
        self.assertEqual(st["version"], "3.5.0")
        self.assertIn("leader", st)

    def test_health_version_and_metrics_on_the_client_port(self):
        m = self.c.members[1]
        self.curl(m, "/v3/kv/range", {"key": b64("gw/none")})
        code, h = self.curl(m, "/health", method="GET")
        self.assertEqual((code, h), (200, {"health": "true", "reason": ""}))
        code, v = self.curl(m, "/version", method="GET")
        self.assertEqual(v["etcdserver"], "3.5.0")
        code, text = self.curl(m, "/metrics", method="GET", raw=True)
        self.assertEqual(code, 200)
        self.assertIn("etcd_server_has_leader", text)
        # The gateway's calls are gRPC calls to the member: counted like any other.
        self.assertIn('grpc_method="Range"', text)

    def test_bad_input_gets_a_clear_error_and_the_member_keeps_serving(self):
        m = self.c.members[0]
        cases = [
            ("/v3/kv/range", '{"key":', 400, "not a valid etcdserverpb.RangeRequest"),
            ("/v3/kv/range", '{"key": 5}', 400, "not a valid etcdserverpb.RangeRequest"),
            ("/v3/kv/range", '{"key": "not base64!"}', 400, "not a valid"),
            ("/v3/kv/range", '{"kee": "Zm9v"}', 400, "kee"),
            ("/v3/kv/txn", '{"compare": [{"key": "YQ==", "": {"key": "dzI="}}]}', 400,
             "a field name the request does not have"),
            ("/v3/kv/range", '[1, 2]', 400, "not a valid"),
            ("/v3/kv/put", '{"key": ""}', 400, "etcdserver: key is not provided"),
            ("/v3/nothing/here", "{}", 404, "Not Found"),
        ]
        for path, body, status, text in cases:
            with self.subTest(path=path, body=body):
                code, r = self.curl(m, path, body, raw=True)
                self.assertEqual(code, status, r)
                err = json.loads(r)
                self.assertIn(text, err["error"])
                self.assertIn("code", err)
        code, r = self.curl(m, "/v3/kv/range", method="GET", raw=True)
        self.assertEqual(code, 405)
        # A token gRPC could not carry (a tab, bytes past ASCII) is refused before any call.
        for bad in ["Authorization: a\tb", "Authorization: caf\u00e9"]:
            code, r = self.curl(m, "/v3/kv/range", {"key": b64("x")}, headers=[bad])
            self.assertEqual((code, r["error"]), (401, "etcdserver: invalid auth token"))
        # A body past --max-request-bytes (1.5 MiB, a third more for base64) is refused unread.
        big = json.dumps({"key": b64("gw/big"), "value": "A" * (3 << 20)})
        code, r = self.curl(m, "/v3/kv/put", big, raw=True)
        self.assertEqual(code, 413, r[:200])
        self.assertIn("request is too large", r)
        # Not HTTP at all, and a connection that says nothing: closed, nothing else.
        for junk in [b"\x00\x01\x02garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b""]:
            s = socket.create_connection(("127.0.0.1", m.client_port), timeout=15)
            s.sendall(junk)
            if not junk:
                s.shutdown(socket.SHUT_WR)
            try:
                s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                pass
            s.close()
        code, r = self.curl(m, "/v3/kv/put", {"key": b64("gw/after"), "value": b64("ok")})
        self.assertEqual(code, 200, r)
        self.assertEqual(self.c.ctl("get", "gw/after", "--print-value-only",
                                    endpoints=m.endpoint).stdout.strip(), "ok")

    def test_requests_share_a_kept_alive_connection(self):
        import http.client
        m = self.c.members[2]
        conn = http.client.HTTPConnection("127.0.0.1", m.client_port, timeout=10)
        try:
            for i in range(3):
                conn.request("POST", "/v3/kv/put",
                             json.dumps({"key": b64("gw/ka%d" % i), "value": b64("v")}))
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                json.loads(r.read())
        finally:
            conn.close()

    def test_zz_auth_through_the_gateway(self):
        ctl = self.c.ctl
        ctl("user", "add", "root:rootpw")
        ctl("user", "grant-role", "root", "root")
        ctl("auth", "enable")
        try:
            m = self.c.members[1]
            code, r = self.curl(m, "/v3/auth/authenticate", {"name": "root", "password": "rootpw"})
            self.assertEqual(code, 200, r)
            token = r["token"]
            code, r = self.curl(m, "/v3/kv/put", {"key": b64("gw/auth"), "value": b64("x")},
                                headers=["Authorization: " + token])
            self.assertEqual(code, 200, r)
            code, r = self.curl(m, "/v3/kv/range", {"key": b64("gw/auth")})
            self.assertEqual((code, r["error"]), (400, "etcdserver: user name is empty"))
            code, r = self.curl(m, "/v3/kv/range", {"key": b64("gw/auth")},
                                headers=["Authorization: forged"])
            self.assertEqual((code, r["error"]), (401, "etcdserver: invalid auth token"))
            code, r = self.curl(m, "/v3/auth/authenticate", {"name": "root", "password": "no"})
            self.assertEqual(code, 400)
            self.assertEqual(r["error"],
                             "etcdserver: authentication failed, invalid user ID or password")
            code, r = self.curl(m, "/v3/auth/status", {}, headers=["Authorization: " + token])
            self.assertTrue(r["enabled"])
        finally:
            ctl("auth", "disable", ctl_args=["--user", "root:rootpw"])


class GatewayOriginTest(unittest.TestCase):
    """etcd's --cors and --host-whitelist on the gateway."""

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(CHORUSD, size=1, member_args=lambda m: [
            "--cors", "https://app.example", "--host-whitelist", "127.0.0.1,localhost"]
        ).start_or_keep()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def head(self, path, *headers, method="POST", body='{"key": "YQ=="}'):
        """(status, response head in lower case) of a request with `headers`."""
        cmd = [CURL, "-s", "-i", "--max-time", "20", "-X", method]
        if method == "POST":
            cmd += ["--data-binary", body]
        for h in headers:
            cmd += ["-H", h]
        cmd.append("http://127.0.0.1:%d%s" % (self.c.members[0].client_port, path))
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
        head = out.split("\r\n\r\n", 1)[0].lower()
        return int(head.split()[1]), head

    def test_a_listed_origin_gets_cors_headers_and_others_do_not(self):
        code, head = self.head("/v3/kv/range", "Origin: https://app.example")
        self.assertEqual(code, 200, head)
        self.assertIn("access-control-allow-origin: https://app.example", head)
        self.assertIn("access-control-allow-headers: accept, content-type, authorization", head)
        code, head = self.head("/v3/kv/range", "Origin: https://evil.example")
        self.assertEqual(code, 200, head)
        self.assertNotIn("access-control-allow-origin", head)
        # A browser's preflight: an empty 200 with the headers.
        code, head = self.head("/v3/kv/put", "Origin: https://app.example", method="OPTIONS")
        self.assertEqual(code, 200, head)
        self.assertIn("access-control-allow-methods: post, get, options, put, delete", head)

    def test_a_host_header_not_listed_is_refused(self):
        code, head = self.head("/v3/kv/range", "Host: evil.example:2379")
        self.assertEqual(code, 421, head)
        self.assertIn("421 misdirected request", head)
        code, head = self.head("/v3/kv/range", "Host: localhost:2379")
        self.assertEqual(code, 200, head)
        code, _ = self.head("/v3/kv/range")  # curl names 127.0.0.1
        self.assertEqual(code, 200)


if __name__ == "__main__":
    run_tests(globals())
