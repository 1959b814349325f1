#!/usr/bin/python3
"""A fault-injecting TCP relay for one member's peer connections: delay, jitter and duplication
on links, which this kernel cannot make (it has no netem qdisc).

One relay runs inside each member's network namespace for the whole run. An iptables rule in
that namespace (nat OUTPUT, REDIRECT) sends every connection the member opens to a peer port to
the relay on 127.0.0.1; the relay reads the original destination back (SO_ORIGINAL_DST) and dials
it itself, from the member's own address, with a socket mark the rule lets through. The peer
therefore sees the same source address as without the relay, so the harness's iptables faults
in either namespace (isolation, one-way drops, loss) hit the relay's connection exactly as they
would hit the member's own.

chorusd's peer connections carry checksummed frames (src/transport/codec.h): a 9-byte header (u32
payload length, u8 type, u32 crc32c, little-endian) then the payload. The relay cuts each
direction into whole frames and gives every frame, per link, a release time:
  - delay:  arrival + D;
  - jitter: arrival + a delay drawn per frame from [D1, D2];
either way never earlier than the frame before it, so the byte stream keeps its order (it is TCP:
jitter shows as variable latency and bursts, not reordering). With duplication, a kMessages frame
(Raft messages, dialer to acceptor) is written twice in a row with probability p; handshakes,
probes and partial bytes never are. A frame that carries a forwarded client proposal (kPropose)
is not duplicated either: Raft makes no promise that a client request delivered twice takes
effect once (that needs client sessions, which chorusd does not keep; it relies on TCP, which
never duplicates), so duplicating those would test a guarantee chorusd does not claim. Every
other Raft message (appends, votes, heartbeats, their answers, snapshots, read-index requests)
is legal to receive twice, and the cluster must stay correct.

Closes travel both ways: an end of stream is forwarded after the bytes before it (shutdown of the
write side), and a reset (or any error) on either side resets both (SO_LINGER 0), so a killed
member's peers see their connections end as they would without the relay. A dialer that gives
up while the relay is still connecting (a partitioned peer) ends the attempt; a connect that
fails resets the dialer's connection. Each direction holds at most HIGH_WATER bytes before it
stops reading, so a stalled peer pushes back on the member as TCP would.

The harness controls the relay over stdin and stdout, one JSON object per line:
  {"op": "set", "peer": IP, "delay_ms": [D1, D2], "duplicate": P}   fault settings toward a peer
  {"op": "clear"}                                                   no faults on any link
  {"op": "stats"}                                                   counters since the start
Each answer is one JSON line. The first line the relay prints is {"ready": PORT}. End of stdin
(the harness closed it, or died) stops the relay."""

import argparse
import asyncio
import collections
import json
import random
import socket
import struct
import sys

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h, at level SOL_IP
SO_MARK = 36  # asm-generic/socket.h
HEADER = struct.Struct("<IBI")
K_MESSAGES = 4
MAX_FRAME_TYPE = 8
# chorusd's default frame limit: a header announcing more (or an unknown type) is not a frame
# the relay understands, and the rest of that direction is forwarded as raw bytes.
MAX_FRAME_BYTES = 64 << 20
K_PROPOSE = 3  # raft::MessageType::kPropose
READ_BYTES = 64 << 10
HIGH_WATER = 1 << 20  # bytes held in one direction before reading from it pauses
LOW_WATER = 256 << 10


def original_dst(sock):
    """The (ip, port) a REDIRECTed connection was addressed to."""
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack_from("!H", raw, 2)[0]
    return socket.inet_ntoa(raw[4:8]), port


def carries_proposal(payload):
    """True if a kMessages payload holds a forwarded proposal, or cannot be walked (so the
    caller errs on the side of not duplicating it). Walks the layout of encode_message in
    src/transport/codec.cc without decoding the contents."""
    try:
        (count,) = struct.unpack_from("<I", payload, 0)
        at = 4
        for _ in range(count):
            kind = payload[at + 8]
            if kind == K_PROPOSE:
                return True
            at += 8 + 1 + 8 * 5
            (entries,) = struct.unpack_from("<I", payload, at)
            at += 4
            for _ in range(entries):
                (size,) = struct.unpack_from("<I", payload, at + 17)
                at += 17 + 4 + size
            at += 8 + 1 + 8 + 8
            has_snapshot = payload[at]
            at += 1
            if has_snapshot:
                at += 16
                for _ in range(4):
                    (nodes,) = struct.unpack_from("<I", payload, at)
                    at += 4 + 8 * nodes
                at += 1
                (size,) = struct.unpack_from("<I", payload, at)
                at += 4 + size
        return at != len(payload)
    except (struct.error, IndexError):
        return True


class Link:
    """Fault settings toward one peer: a delay range in seconds and a duplication share."""

    def __init__(self, delay_ms=(0, 0), duplicate=0.0):
        self.lo = max(0.0, float(delay_ms[0])) / 1000.0
        self.hi = max(self.lo, float(delay_ms[1]) / 1000.0)
        self.duplicate = float(duplicate)

    def delay(self, rng):
        return self.lo if self.hi == self.lo else rng.uniform(self.lo, self.hi)


NO_FAULT = Link()


class Direction:
    """One direction of a relayed connection. pump() reads and cuts frames, giving each a release
    time; flush() writes them out, in order, once due. `forward` is the dialer-to-acceptor
    direction, the only one that carries Raft messages."""

    def __init__(self, relay, peer, reader, forward):
        self.relay = relay
        self.peer = peer
        self.reader = reader
        self.forward = forward
        self.queue = collections.deque()  # (release time, bytes, or None for end of stream)
        self.held = 0
        self.ready = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.last_release = 0.0
        self.buf = bytearray()
        self.raw = False  # the stream stopped looking like frames: bytes pass as they come

    def push(self, release, data):
        self.queue.append((release, data))
        if data is not None:
            self.held += len(data)
        self.ready.set()

    def release_time(self, link, now):
        d = link.delay(self.relay.rng)
        release = max(now + d, self.last_release)
        self.last_release = release
        if d > 0:
            self.relay.stats["delayed_frames"] += 1
        return release

    def split(self):
        """Moves every whole frame from the read buffer to the queue. Frames of one read that
        share a release time (all of them, on a link without delay) go as one write."""
        link = self.relay.links.get(self.peer, NO_FAULT)
        now = asyncio.get_running_loop().time()
        at = 0
        run_release, run = None, []
        while not self.raw and len(self.buf) - at >= HEADER.size:
            length, kind, _ = HEADER.unpack_from(self.buf, at)
            if kind == 0 or kind > MAX_FRAME_TYPE or length > MAX_FRAME_BYTES:
                self.raw = True
                self.relay.stats["raw_streams"] += 1
                break
            end = at + HEADER.size + length
            if end > len(self.buf):
                break
            frame = bytes(self.buf[at:end])
            at = end
            self.relay.stats["frames"] += 1
            self.relay.stats["bytes"] += len(frame)
            release = self.release_time(link, now)
            if self.forward and kind == K_MESSAGES and link.duplicate > 0 and \
                    self.relay.rng.random() < link.duplicate:
                if carries_proposal(memoryview(frame)[HEADER.size:]):
                    self.relay.stats["proposals_not_duplicated"] += 1
                else:
                    frame += frame
                    self.relay.stats["duplicated_frames"] += 1
            if run and release != run_release:
                self.push(run_release, b"".join(run))
                run = []
            run_release = release
            run.append(frame)
        if run:
            self.push(run_release, b"".join(run))
        if self.raw and len(self.buf) > at:
            chunk = bytes(self.buf[at:])
            at = len(self.buf)
            self.relay.stats["bytes"] += len(chunk)
            self.push(self.release_time(link, now), chunk)
        del self.buf[:at]

    async def pump(self):
        while True:
            data = await self.reader.read(READ_BYTES)
            if not data:
                if self.buf:  # a frame cut short goes on as it came; the receiver judges it
                    link = self.relay.links.get(self.peer, NO_FAULT)
                    self.push(self.release_time(link, asyncio.get_running_loop().time()),
                              bytes(self.buf))
                    self.buf.clear()
                self.push(self.last_release, None)
                return
            self.buf += data
            self.split()
            if self.held > HIGH_WATER:
                self.room.clear()
                await self.room.wait()

    async def flush(self, writer):
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.ready.clear()
                await self.ready.wait()
            release, data = self.queue[0]
            wait = release - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self.queue.popleft()
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            self.held -= len(data)
            writer.write(data)
            await writer.drain()
            if self.held <= LOW_WATER:
                self.room.set()


def reset(writer):
    """Closes a connection with a reset, as a peer whose process died mid-stream would."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


class Relay:
    def __init__(self, mark, seed):
        self.mark = mark
        self.rng = random.Random(seed)
        self.links = {}  # peer IP -> Link
        self.stats = collections.Counter()

    async def on_client(self, creader, cwriter):
        """One connection the member dialed: connect on to where it was going, then relay."""
        self.stats["connections"] += 1
        loop = asyncio.get_running_loop()
        try:
            peer, port = original_dst(cwriter.get_extra_info("socket"))
        except OSError:
            self.stats["no_destination"] += 1
            reset(cwriter)
            return
        up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        up.setsockopt(socket.SOL_SOCKET, SO_MARK, self.mark)
        up.setblocking(False)
        fwd = Direction(self, peer, creader, forward=True)
        tasks = [asyncio.ensure_future(fwd.pump())]
        connect = asyncio.ensure_future(loop.sock_connect(up, (peer, port)))
        uwriter = None
        try:
            done, _ = await asyncio.wait([tasks[0], connect],
                                         return_when=asyncio.FIRST_COMPLETED)
            if connect not in done:
                # The dialer ended (gave up, or its process died) before the peer answered.
                connect.cancel()
                up.close()
                self.stats["abandoned"] += 1
                reset(cwriter)
                return
            if connect.exception() is not None:
                up.close()
                self.stats["connect_failed"] += 1
                reset(cwriter)
                return
            ureader, uwriter = await asyncio.open_connection(sock=up, limit=READ_BYTES)
            back = Direction(self, peer, ureader, forward=False)
            tasks += [asyncio.ensure_future(fwd.flush(uwriter)),
                      asyncio.ensure_future(back.pump()),
                      asyncio.ensure_future(back.flush(cwriter))]
            await asyncio.gather(*tasks)
            cwriter.close()
            uwriter.close()
        except (OSError, asyncio.IncompleteReadError, EOFError):
            self.stats["resets"] += 1
            reset(cwriter)
            reset(uwriter)
            if uwriter is None:
                up.close()
        finally:
            for t in tasks + [connect]:
                if t.done():
                    if not t.cancelled():
                        t.exception()  # seen: an error here was handled as a reset above
                else:
                    t.cancel()

    def command(self, line):
        try:
            req = json.loads(line)
            op = req["op"]
            if op == "set":
                link = Link(req.get("delay_ms", (0, 0)), req.get("duplicate", 0.0))
                self.links[req["peer"]] = link
                return {"ok": True}
            if op == "clear":
                self.links.clear()
                return {"ok": True}
            if op == "stats":
                return {"ok": True, "stats": dict(self.stats)}
            return {"ok": False, "error": "unknown op %r" % op}
        except (ValueError, KeyError, TypeError) as e:
            return {"ok": False, "error": str(e)}

    async def control(self):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            sys.stdout.write(json.dumps(self.command(line)) + "\n")
            sys.stdout.flush()


async def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True, help="where the REDIRECT rule sends")
    p.add_argument("--mark", type=lambda s: int(s, 0), required=True,
                   help="socket mark of the relay's own connections, which the rule lets pass")
    p.add_argument("--seed", type=int, default=0, help="for jitter and duplication draws")
    args = p.parse_args()
    relay = Relay(args.mark, args.seed)
    server = await asyncio.start_server(relay.on_client, "127.0.0.1", args.port,
                                        limit=READ_BYTES, reuse_address=True)
    sys.stdout.write(json.dumps({"ready": args.port}) + "\n")
    sys.stdout.flush()
    await relay.control()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
