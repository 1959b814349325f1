"""Auth at the gRPC level, where etcdctl cannot reach: tokens sent by hand to each member
(a login on one member is good on every member), a forged token, tokens ended by a password
change, and etcd 3.5's AuthStatus. Stubs are generated here from the same etcd .proto files
chorusd is built from; Debian's python3-grpcio and python3-protobuf run them.

    /usr/bin/python3 tests/integration/test_auth_grpc.py --chorusd build/rel/src/server/chorusd \
        --proto-dir build/rel/etcd-proto [-v]
"""

import importlib
import os
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

from cluster import Cluster, run_tests

CHORUSD = None
PROTO_DIR = None
pb = None  # etcdserverpb's rpc_pb2


def load_stubs():
    global pb
    out = tempfile.mkdtemp(prefix="chorus-pb-")
    files = ["etcd/etcdserver/etcdserverpb/rpc.proto", "etcd/mvcc/mvccpb/kv.proto",
             "etcd/auth/authpb/auth.proto"]
    subprocess.run(["protoc", "-I", PROTO_DIR, "--python_out", out] + files, check=True)
    for d in ["etcd", "etcd/etcdserver", "etcd/etcdserver/etcdserverpb", "etcd/mvcc",
              "etcd/mvcc/mvccpb", "etcd/auth", "etcd/auth/authpb"]:
        open(os.path.join(out, d, "__init__.py"), "a").close()
    sys.path.insert(0, out)
    pb = importlib.import_module("etcd.etcdserver.etcdserverpb.rpc_pb2")


def call(channel, method, request, response_type, token=None):
    fn = channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                             response_deserializer=response_type.FromString)
    md = [("token", token)] if token else None
    return fn(request, metadata=md, timeout=10)


class AuthGrpcTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        load_stubs()
        cls.c = Cluster(CHORUSD).start_or_keep()
        cls.channels = [grpc.insecure_channel("127.0.0.1:%d" % m.client_port)
                        for m in cls.c.members]

    @classmethod
    def tearDownClass(cls):
        for ch in cls.channels:
            ch.close()
        cls.c.close()

    def status(self, ch):
        return call(ch, "/etcdserverpb.Auth/AuthStatus", pb.AuthStatusRequest(),
                    pb.AuthStatusResponse)

    def login(self, ch, name, password):
        return call(ch, "/etcdserverpb.Auth/Authenticate",
                    pb.AuthenticateRequest(name=name, password=password),
                    pb.AuthenticateResponse).token

    def get(self, ch, key, token):
        return call(ch, "/etcdserverpb.KV/Range", pb.RangeRequest(key=key.encode()),
                    pb.RangeResponse, token=token)

    def expect_error(self, code, text, fn, *args, **kw):
        with self.assertRaises(grpc.RpcError) as e:
            fn(*args, **kw)
        self.assertEqual(e.exception.code(), code)
        self.assertEqual(e.exception.details(), text)

    def eventually(self, fn, timeout=5):
        """fn() once it stops raising (members apply an entry a moment apart)."""
        deadline = time.time() + timeout
        while True:
            try:
                return fn()
            except (grpc.RpcError, AssertionError):
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    def test_tokens_and_auth_status_across_members(self):
        ch = self.channels
        before = self.status(ch[0])
        self.assertFalse(before.enabled)
        self.c.ctl("user", "add", "root:rootpw")
        self.c.ctl("user", "grant-role", "root", "root")
        self.c.ctl("user", "add", "alice:alicepw")
        self.c.ctl("put", "k", "v")
        self.c.ctl("auth", "enable")
        # Every member answers at a linearizable point: all see it on, at the same revision.
        statuses = [self.status(c) for c in ch]
        self.assertTrue(all(s.enabled for s in statuses))
        self.assertEqual(len({s.authRevision for s in statuses}), 1)
        self.assertGreater(statuses[0].authRevision, before.authRevision)

        token = self.login(ch[1], "root", "rootpw")
        # The login went through the log: every member knows the token once it applied it.
        for c in ch:
            self.assertEqual(self.eventually(lambda: self.get(c, "k", token)).kvs[0].value, b"v")
        self.expect_error(grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token",
                          self.get, ch[0], "k", token + "x")
        self.expect_error(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: user name is empty",
                          self.get, ch[0], "k", None)
        alice = self.login(ch[0], "alice", "alicepw")
        self.eventually(lambda: self.expect_error(grpc.StatusCode.PERMISSION_DENIED,
                                                  "etcdserver: permission denied",
                                                  self.get, ch[2], "k", alice))
        self.expect_error(grpc.StatusCode.INVALID_ARGUMENT,
                          "etcdserver: authentication failed, invalid user ID or password",
                          self.login, ch[0], "alice", "nope")

        # A changed password ends the user's tokens on every member.
        call(ch[2], "/etcdserverpb.Auth/UserChangePassword",
             pb.AuthUserChangePasswordRequest(name="alice", password="new"),
             pb.AuthUserChangePasswordResponse, token=token)
        for c in ch:
            self.eventually(lambda: self.expect_error(grpc.StatusCode.UNAUTHENTICATED,
                                                      "etcdserver: invalid auth token",
                                                      self.get, c, "k", alice))
        self.assertTrue(self.login(ch[1], "alice", "new"))
        self.assertGreater(self.status(ch[0]).authRevision, statuses[0].authRevision)

        # Disabling ends every token; then anyone may read.
        call(ch[0], "/etcdserverpb.Auth/AuthDisable", pb.AuthDisableRequest(),
             pb.AuthDisableResponse, token=token)
        self.assertFalse(self.status(ch[1]).enabled)
        self.assertEqual(self.eventually(lambda: self.get(ch[1], "k", None)).kvs[0].value, b"v")


class GrpcLimitsTest(unittest.TestCase):
    """--max-concurrent-streams: a connection holding its limit of streams gets no more."""

    def test_a_connection_gets_at_most_its_streams(self):
        import threading
        if pb is None:
            load_stubs()
        c = Cluster(CHORUSD, size=1, member_args=lambda m: [
            "--max-concurrent-streams", "2", "--grpc-keepalive-min-time", "1s"]).start_or_keep()
        ch = grpc.insecure_channel("127.0.0.1:%d" % c.members[0].client_port)
        release = threading.Event()
        try:
            watch = ch.stream_stream("/etcdserverpb.Watch/Watch",
                                     request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=pb.WatchResponse.FromString)

            def requests():
                yield pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"lim"))
                release.wait()

            streams = [watch(requests()) for _ in range(2)]
            for st in streams:
                self.assertTrue(next(st).created)
            with self.assertRaises(grpc.RpcError) as e:
                ch.unary_unary("/etcdserverpb.KV/Range",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=pb.RangeResponse.FromString)(
                    pb.RangeRequest(key=b"lim"), timeout=2)
            self.assertEqual(e.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
            streams[0].cancel()
            r = call(ch, "/etcdserverpb.KV/Range", pb.RangeRequest(key=b"lim"), pb.RangeResponse)
            self.assertEqual(r.count, 0)
        finally:
            release.set()
            ch.close()
            c.close()


if __name__ == "__main__":
    run_tests(globals(), ("--chorusd", "--proto-dir"))
