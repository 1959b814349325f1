#include "transport/transport.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "transport/codec.h"

namespace chorus::transport {
namespace {

using namespace std::chrono_literals;
using raft::MessageType;
using raft::NodeId;

constexpr uint64_t kCluster = 0xc1u;
constexpr auto kWait = 10s;

// Polls `done` until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = kWait) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// A message exercising every field, distinct per (from, to, seq) through the context.
raft::Message make_message(NodeId from, NodeId to, uint64_t seq) {
  static constexpr MessageType kTypes[] = {
      MessageType::kApp,  MessageType::kAppResp,   MessageType::kVote,    MessageType::kHeartbeat,
      MessageType::kSnap, MessageType::kReadIndex, MessageType::kPropose, MessageType::kTimeoutNow};
  raft::Message m;
  m.group = seq % 3 + 1;
  m.type = kTypes[seq % std::size(kTypes)];
  m.from = from;
  m.to = to;
  m.term = seq + 1;
  m.log_term = seq;
  m.index = seq * 10;
  for (uint64_t i = 0; i < seq % 4; ++i)
    m.entries.push_back({seq, seq * 10 + i + 1,
                         i % 2 == 0 ? raft::EntryType::kNormal : raft::EntryType::kConfChange,
                         "entry " + std::to_string(seq) + "/" + std::to_string(i)});
  m.commit = seq * 5;
  m.reject = seq % 2 == 1;
  m.reject_hint = seq * 7;
  m.context = seq;
  if (m.type == MessageType::kSnap) {
    auto snap = std::make_shared<raft::Snapshot>();
    snap->metadata.index = seq * 10;
    snap->metadata.term = seq;
    snap->metadata.conf_state = {{1, 2, 3}, {1, 2}, {4}, {}, seq % 2 == 0};
    snap->data = "snapshot " + std::to_string(seq);
    m.snapshot = snap;
  }
  return m;
}

// What one transport hands to its node.
class Inbox {
 public:
  void add(std::vector<raft::Message>&& batch) {
    std::lock_guard lock(mu_);
    batch_sizes_.push_back(batch.size());
    for (raft::Message& m : batch)
      messages_.push_back(std::move(m));
  }
  void unreachable(NodeId id) {
    std::lock_guard lock(mu_);
    unreachable_.push_back(id);
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return messages_.size();
  }
  bool wait_for(size_t n) {
    return eventually([&] { return size() >= n; });
  }
  std::vector<raft::Message> messages() const {
    std::lock_guard lock(mu_);
    return messages_;
  }
  std::vector<size_t> batch_sizes() const {
    std::lock_guard lock(mu_);
    return batch_sizes_;
  }
  size_t unreachable_count(NodeId id) const {
    std::lock_guard lock(mu_);
    return static_cast<size_t>(std::count(unreachable_.begin(), unreachable_.end(), id));
  }

 private:
  mutable std::mutex mu_;
  std::vector<raft::Message> messages_;
  std::vector<size_t> batch_sizes_;
  std::vector<NodeId> unreachable_;
};

struct Node {
  // `joining`: the node does not know the cluster id yet and learns it.
  explicit Node(NodeId id, uint16_t listen_port = 0, TransportOptions options = {},
                bool joining = false) {
    options.self = id;
    if (!joining && options.cluster_id == 0) options.cluster_id = kCluster;
    transport = std::make_unique<PeerTransport>(
        options, [this](std::vector<raft::Message>&& batch) { inbox.add(std::move(batch)); },
        [this](NodeId peer) { inbox.unreachable(peer); });
    storage::Status st = transport->listen("127.0.0.1", listen_port, &port);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    transport->start();
  }
  PeerTransport& operator*() { return *transport; }
  PeerTransport* operator->() { return transport.get(); }
  bool connected_to(NodeId id) const {
    std::optional<PeerStatus> s = transport->peer_status(id);
    return s && s->connected;
  }

  Inbox inbox;
  uint16_t port = 0;
  std::unique_ptr<PeerTransport> transport;
};

void link(Node& a, NodeId a_id, Node& b, NodeId b_id) {
  a->set_peer(b_id, "127.0.0.1", b.port);
  b->set_peer(a_id, "127.0.0.1", a.port);
}

// A plain TCP socket for playing a misbehaving peer.
class RawSocket {
 public:
  explicit RawSocket(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr = loopback(port);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawSocket() { ::close(fd_); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  static sockaddr_in loopback(uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
  }

  bool connected() const { return connected_; }
  void write(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }
  // Reads what arrives within `timeout`; false when nothing came in time, else `*n` bytes
  // (0 when the other side closed).
  bool read(std::string* out, size_t* n, std::chrono::milliseconds timeout = kWait) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char buffer[4096];
    ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
    *n = got > 0 ? static_cast<size_t>(got) : 0;
    out->append(buffer, *n);
    return true;
  }
  // The next frame the other side sends.
  std::optional<Frame> read_frame() {
    for (;;) {
      Frame f;
      if (decoder_.next(&f) == FrameDecoder::Result::kFrame) return f;
      std::string bytes;
      size_t n = 0;
      if (!read(&bytes, &n) || n == 0) return std::nullopt;
      decoder_.feed(bytes);
    }
  }
  // Whether the other side closes the connection within `timeout`.
  bool closed_by_peer(std::chrono::milliseconds timeout = kWait) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::string bytes;
      size_t n = 0;
      if (read(&bytes, &n, 100ms) && n == 0) return true;
    }
    return false;
  }
  // Says hello as node `from` to node `to`; true when acknowledged.
  bool handshake(NodeId from, NodeId to, uint64_t cluster = kCluster) {
    std::string hello;
    append_frame(&hello, FrameType::kHello,
                 encode_hello({.cluster_id = cluster, .from = from, .to = to}));
    write(hello);
    std::optional<Frame> ack = read_frame();
    return ack && ack->type == FrameType::kHelloAck;
  }

 private:
  int fd_;
  bool connected_ = false;
  FrameDecoder decoder_;
};

// A port that nothing listens on now (it may be reused later by a test that wants it).
uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = RawSocket::loopback(0);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Checks that `got` holds exactly make_message(from, to, 0..n) for every sender, in order.
void expect_in_order(const std::vector<raft::Message>& got, const std::vector<NodeId>& senders,
                     NodeId to, uint64_t n) {
  std::map<NodeId, uint64_t> next;
  for (const raft::Message& m : got) {
    ASSERT_NE(std::find(senders.begin(), senders.end(), m.from), senders.end());
    uint64_t seq = next[m.from]++;
    ASSERT_TRUE(same_message(m, make_message(m.from, to, seq)))
        << "message " << seq << " from " << m.from << " to " << to;
  }
  for (NodeId from : senders)
    EXPECT_EQ(next[from], n) << "from " << from;
}

TEST(TransportTest, TwoNodesExchangeBatchesWithEveryField) {
  Node a(1), b(2);
  link(a, 1, b, 2);
  constexpr uint64_t kCount = 300;
  for (uint64_t i = 0; i < kCount; i += 3) {
    a->send({make_message(1, 2, i), make_message(1, 2, i + 1), make_message(1, 2, i + 2)});
    b->send({make_message(2, 1, i), make_message(2, 1, i + 1), make_message(2, 1, i + 2)});
  }
  ASSERT_TRUE(b.inbox.wait_for(kCount));
  ASSERT_TRUE(a.inbox.wait_for(kCount));
  expect_in_order(b.inbox.messages(), {1}, 2, kCount);
  expect_in_order(a.inbox.messages(), {2}, 1, kCount);
  TransportStats s = a->stats();
  EXPECT_EQ(s.messages_sent, kCount);
  EXPECT_EQ(s.messages_received, kCount);
  EXPECT_EQ(s.messages_dropped, 0u);
  EXPECT_EQ(s.bad_frames, 0u);
  EXPECT_EQ(s.connects, 2u);  // ours to b, b's to us
  EXPECT_GT(s.bytes_sent, 0u);
  EXPECT_GT(s.frames_received, 0u);
  std::optional<PeerStatus> status = a->peer_status(2);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->connected);
  EXPECT_GT(status->round_trip_seconds, 0.0);
  EXPECT_TRUE(status->last_error.empty());
  // Per-peer byte counts: with one peer they are most of the totals, and what a wrote to b
  // is what b read from a.
  EXPECT_GT(status->sent_bytes, kCount * 10);
  EXPECT_LE(status->sent_bytes, a->stats().bytes_sent);
  EXPECT_GT(status->received_bytes, kCount * 10);
  EXPECT_LE(status->received_bytes, a->stats().bytes_received);
  uint64_t a_sent = status->sent_bytes;
  EXPECT_TRUE(eventually([&] { return b->peer_status(1)->received_bytes >= a_sent; }));
}

TEST(TransportTest, ThreeNodesKeepOrderPerPair) {
  Node n1(1), n2(2), n3(3);
  link(n1, 1, n2, 2);
  link(n1, 1, n3, 3);
  link(n2, 2, n3, 3);
  constexpr uint64_t kCount = 200;
  std::vector<Node*> nodes = {&n1, &n2, &n3};
  // Each node sends from its own thread, mixing destinations within one call.
  std::vector<std::thread> senders;
  for (NodeId from = 1; from <= 3; ++from) {
    senders.emplace_back([&, from] {
      for (uint64_t i = 0; i < kCount; ++i) {
        std::vector<raft::Message> batch;
        for (NodeId to = 1; to <= 3; ++to)
          if (to != from) batch.push_back(make_message(from, to, i));
        (*nodes[from - 1])->send(std::move(batch));
      }
    });
  }
  for (std::thread& t : senders)
    t.join();
  for (NodeId to = 1; to <= 3; ++to) {
    Node& node = *nodes[to - 1];
    ASSERT_TRUE(node.inbox.wait_for(2 * kCount)) << "node " << to;
    std::vector<NodeId> from;
    for (NodeId id = 1; id <= 3; ++id)
      if (id != to) from.push_back(id);
    expect_in_order(node.inbox.messages(), from, to, kCount);
  }
}

TEST(TransportTest, OneSendLeavesInOneFrame) {
  Node a(1), b(2);
  a->set_peer(2, "127.0.0.1", b.port);
  ASSERT_TRUE(eventually([&] { return a.connected_to(2); }));
  std::vector<raft::Message> batch;
  for (uint64_t i = 0; i < 500; ++i)
    batch.push_back(make_message(1, 2, i));
  a->send(std::move(batch));
  ASSERT_TRUE(b.inbox.wait_for(500));
  EXPECT_EQ(b.inbox.batch_sizes(), std::vector<size_t>{500});
  expect_in_order(b.inbox.messages(), {1}, 2, 500);
}

TEST(TransportTest, BatchesBeyondTheFrameLimitAreSplit) {
  TransportOptions options;
  options.max_frame_bytes = 8 << 10;
  Node a(1, 0, options), b(2, 0, options);
  a->set_peer(2, "127.0.0.1", b.port);
  ASSERT_TRUE(eventually([&] { return a.connected_to(2); }));
  std::vector<raft::Message> batch;
  for (uint64_t i = 0; i < 100; ++i) {
    raft::Message m = make_message(1, 2, i);
    m.entries = {{1, 1, raft::EntryType::kNormal, std::string(1000, 'x')}};
    batch.push_back(std::move(m));
  }
  // Bigger than a frame: dropped, not sent.
  raft::Message huge = make_message(1, 2, 1000);
  huge.entries = {{1, 1, raft::EntryType::kNormal, std::string(9 << 10, 'h')}};
  batch.insert(batch.begin() + 50, huge);
  a->send(std::move(batch));
  ASSERT_TRUE(b.inbox.wait_for(100));
  std::vector<size_t> sizes = b.inbox.batch_sizes();
  EXPECT_GE(sizes.size(), 13u);  // about 7 messages of 1 KiB per 8 KiB frame
  std::vector<raft::Message> got = b.inbox.messages();
  ASSERT_EQ(got.size(), 100u);
  for (uint64_t i = 0; i < 100; ++i)
    EXPECT_EQ(got[i].context, i);
  EXPECT_EQ(a->stats().messages_dropped, 1u);
}

TEST(TransportTest, APeerThatStartsLaterIsReachedAfterBackoff) {
  uint16_t port = free_port();
  Node a(1);
  a->set_peer(2, "127.0.0.1", port);
  for (uint64_t i = 0; i < 10; ++i)
    a->send({make_message(1, 2, i)});
  // Dials fail and are reported until the peer comes up.
  ASSERT_TRUE(eventually([&] { return a.inbox.unreachable_count(2) >= 2; }));
  std::optional<PeerStatus> status = a->peer_status(2);
  ASSERT_TRUE(status.has_value());
  EXPECT_FALSE(status->connected);
  EXPECT_NE(status->last_error.find("connect"), std::string::npos) << status->last_error;
  Node b(2, port);
  ASSERT_TRUE(b.inbox.wait_for(10));
  expect_in_order(b.inbox.messages(), {1}, 2, 10);
  EXPECT_TRUE(a.connected_to(2));
}

TEST(TransportTest, ARestartedPeerIsReachedAgain) {
  Node a(1);
  auto b = std::make_unique<Node>(2);
  uint16_t port = b->port;
  link(a, 1, *b, 2);
  a->send({make_message(1, 2, 0)});
  ASSERT_TRUE(b->inbox.wait_for(1));
  (*b)->send({make_message(2, 1, 0)});
  ASSERT_TRUE(a.inbox.wait_for(1));

  b.reset();
  ASSERT_TRUE(eventually([&] { return !a.connected_to(2); }));
  EXPECT_GE(a.inbox.unreachable_count(2), 1u);
  // Queued while the peer is down, delivered once it is back.
  for (uint64_t i = 0; i < 5; ++i)
    a->send({make_message(1, 2, i)});
  b = std::make_unique<Node>(2, port);
  (*b)->set_peer(1, "127.0.0.1", a.port);
  ASSERT_TRUE(b->inbox.wait_for(5));
  expect_in_order(b->inbox.messages(), {1}, 2, 5);
  (*b)->send({make_message(2, 1, 1)});
  ASSERT_TRUE(a.inbox.wait_for(2));
  TransportStats s = a->stats();
  EXPECT_GE(s.connects, 4u);  // two each way, before and after the restart
  EXPECT_GE(s.disconnects, 2u);
}

TEST(TransportTest, AnAddressChangeRedialsAtOnce) {
  TransportOptions options;
  options.backoff_min_ms = 5000;  // a redial after failure would outlast the test's wait
  options.backoff_max_ms = 5000;
  Node a(1, 0, options), b(2);
  a->set_peer(2, "127.0.0.1", free_port());
  ASSERT_TRUE(eventually([&] { return a.inbox.unreachable_count(2) >= 1; }));
  a->set_peer(2, "127.0.0.1", b.port);
  a->send({make_message(1, 2, 0)});
  ASSERT_TRUE(b.inbox.wait_for(1));
}

TEST(TransportTest, APeerNamedByHostIsResolved) {
  Node a(1), b(2);
  a->set_peer(2, "localhost", b.port);
  a->send({make_message(1, 2, 0)});
  ASSERT_TRUE(b.inbox.wait_for(1));
}

TEST(TransportTest, ProbesMeasureTheRoundTrip) {
  TransportOptions options;
  options.ping_interval_ms = 10;
  std::atomic<int> samples{0};
  std::atomic<NodeId> sampled{0};
  TransportOptions a_options = options;
  a_options.on_round_trip = [&](NodeId peer, double seconds) {
    if (seconds > 0 && seconds < 5) ++samples;
    sampled = peer;
  };
  Node a(1, 0, a_options), b(2, 0, options);
  a->set_peer(2, "127.0.0.1", b.port);
  ASSERT_TRUE(eventually([&] { return a.connected_to(2); }));
  uint64_t received = a->stats().frames_received;  // the acknowledgement
  // Pongs are all a dialer receives.
  ASSERT_TRUE(eventually([&] { return a->stats().frames_received >= received + 5; }));
  EXPECT_GT(a->peer_status(2)->round_trip_seconds, 0.0);
  EXPECT_LT(a->peer_status(2)->round_trip_seconds, 5.0);
  EXPECT_GE(samples.load(), 5) << "the handshake's sample and every probe's reach the callback";
  EXPECT_EQ(sampled.load(), 2u);
  EXPECT_EQ(a->stats().bad_frames + b->stats().bad_frames, 0u);
  EXPECT_TRUE(a.connected_to(2));
}

TEST(TransportTest, WrongClusterOrReceiverIsRejectedAndCounted) {
  Node a(1);
  TransportOptions other;
  other.cluster_id = kCluster + 1;
  Node stranger(3, 0, other);
  stranger->set_peer(1, "127.0.0.1", a.port);
  stranger->send({make_message(3, 1, 0)});
  ASSERT_TRUE(eventually([&] { return a->stats().handshakes_rejected >= 1; }));
  ASSERT_TRUE(eventually([&] { return stranger.inbox.unreachable_count(1) >= 1; }));
  std::optional<PeerStatus> status = stranger->peer_status(1);
  ASSERT_TRUE(status.has_value());
  EXPECT_FALSE(status->connected);
  EXPECT_NE(status->last_error.find("cluster id"), std::string::npos) << status->last_error;

  // Right cluster, but it believes node 1 lives at node 5's address.
  Node misdirected(4);
  misdirected->set_peer(5, "127.0.0.1", a.port);
  ASSERT_TRUE(eventually([&] { return a->stats().handshakes_rejected >= 2; }));
  ASSERT_TRUE(eventually([&] {
    std::optional<PeerStatus> s = misdirected->peer_status(5);
    return s && s->last_error.find("this is node 1") != std::string::npos;
  }));

  // Wrong protocol version, from a raw socket.
  RawSocket raw(a.port);
  ASSERT_TRUE(raw.connected());
  Hello hello{.cluster_id = kCluster, .from = 9, .to = 1};
  hello.version = kProtocolVersion + 1;
  std::string frame;
  append_frame(&frame, FrameType::kHello, encode_hello(hello));
  raw.write(frame);
  std::optional<Frame> answer = raw.read_frame();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->type, FrameType::kReject);
  std::string reason;
  ASSERT_TRUE(decode_reject(answer->payload, &reason));
  EXPECT_NE(reason.find("protocol version"), std::string::npos) << reason;
  EXPECT_TRUE(raw.closed_by_peer());
  EXPECT_GE(a->stats().handshakes_rejected, 3u);
  EXPECT_EQ(a.inbox.size(), 0u);
  EXPECT_EQ(a->stats().connects, 0u);
}

TEST(TransportTest, AJoiningNodeLearnsTheClusterIdFromThePeerThatDialsIt) {
  std::atomic<uint64_t> learned{0};
  TransportOptions o;
  o.on_cluster_id = [&](uint64_t id) { learned = id; };
  Node joiner(2, 0, o, /*joining=*/true);
  Node a(1);
  EXPECT_EQ(joiner->cluster_id(), 0u);
  // The joiner's own dial carries no cluster id and is refused until it has learned one.
  joiner->set_peer(1, "127.0.0.1", a.port);
  ASSERT_TRUE(eventually([&] { return a->stats().handshakes_rejected >= 1; }));
  a->set_peer(2, "127.0.0.1", joiner.port);
  a->send({make_message(1, 2, 0)});
  ASSERT_TRUE(joiner.inbox.wait_for(1));
  EXPECT_EQ(learned.load(), kCluster);
  EXPECT_EQ(joiner->cluster_id(), kCluster);
  // From then on it speaks as a member of that cluster, and refuses others.
  joiner->send({make_message(2, 1, 1)});
  ASSERT_TRUE(a.inbox.wait_for(1));
  TransportOptions other;
  other.cluster_id = kCluster + 1;
  Node stranger(3, 0, other);
  stranger->set_peer(2, "127.0.0.1", joiner.port);
  stranger->send({make_message(3, 2, 0)});
  ASSERT_TRUE(eventually([&] { return joiner->stats().handshakes_rejected >= 1; }));
  EXPECT_EQ(joiner->cluster_id(), kCluster);
}

TEST(TransportTest, AJoiningMemberAsksForTheIdItsPeerUrlsWereGiven) {
  TransportOptions o;
  o.answer_join = [](const std::vector<std::string>& urls, JoinAck* out) {
    if (urls != std::vector<std::string>{"http://127.0.0.1:9"}) return false;
    out->member_id = 0x42;
    out->applied_index = 17;
    out->members = {{1, {"http://127.0.0.1:1"}}, {0x42, {"http://127.0.0.1:9"}}};
    return true;
  };
  Node a(1, 0, o);
  JoinAck ack;
  storage::Status st = ask_to_join("127.0.0.1", a.port, {"http://127.0.0.1:9"}, 5000, &ack);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(ack.member_id, 0x42u);
  EXPECT_EQ(ack.cluster_id, kCluster) << "filled in by the transport";
  EXPECT_EQ(ack.applied_index, 17u);
  ASSERT_EQ(ack.members.size(), 2u);
  EXPECT_EQ(ack.members[0].peer_urls, std::vector<std::string>{"http://127.0.0.1:1"});
  // URLs no member has: refused with a reason the operator can act on.
  st = ask_to_join("127.0.0.1", a.port, {"http://127.0.0.1:10"}, 5000, &ack);
  EXPECT_EQ(st.code(), storage::Status::Code::kNotFound);
  EXPECT_NE(st.message().find("member add"), std::string::npos) << st.to_string();
  // A node that does not know its cluster cannot answer.
  Node joiner(2, 0, o, /*joining=*/true);
  st = ask_to_join("127.0.0.1", joiner.port, {"http://127.0.0.1:9"}, 5000, &ack);
  EXPECT_EQ(st.code(), storage::Status::Code::kNotFound);
  // Nobody listening: an I/O error, quickly.
  uint16_t closed_port = a.port;
  a.transport.reset();
  st = ask_to_join("127.0.0.1", closed_port, {"http://127.0.0.1:9"}, 5000, &ack);
  EXPECT_EQ(st.code(), storage::Status::Code::kIoError) << st.to_string();
  // The questions neither broke nor counted as handshakes.
  EXPECT_EQ(joiner->stats().handshakes_rejected, 0u);
}

TEST(TransportTest, AMemberAsksAnotherForItsHashOnThePeerPort) {
  TransportOptions o;
  std::mutex mu;
  std::vector<std::thread> hashers;  // answers come from threads of their own, later
  o.answer_hash_kv = [&](int64_t revision, std::function<void(const HashKvAnswer&)> reply) {
    std::lock_guard lock(mu);
    hashers.emplace_back([revision, reply] {
      std::this_thread::sleep_for(revision == 1 ? 300ms : 20ms);
      if (revision > 100) return reply(HashKvAnswer{false, 0, 0, 0, "future revision"});
      reply(HashKvAnswer{true, static_cast<uint32_t>(revision * 7), 100, 3, ""});
    });
  };
  Node a(1, 0, o);
  HashKvAnswer answer;
  storage::Status st = ask_hash_kv("127.0.0.1", a.port, kCluster, 40, 5000, &answer);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_TRUE(answer.ok);
  EXPECT_EQ(answer.hash, 280u);
  EXPECT_EQ(answer.revision, 100);
  EXPECT_EQ(answer.compact_revision, 3);
  // The member's reason when it cannot hash, and a refusal for another cluster's question.
  st = ask_hash_kv("127.0.0.1", a.port, kCluster, 101, 5000, &answer);
  EXPECT_EQ(st.code(), storage::Status::Code::kNotFound);
  EXPECT_FALSE(answer.ok);
  EXPECT_NE(answer.error.find("future revision"), std::string::npos) << answer.error;
  st = ask_hash_kv("127.0.0.1", a.port, kCluster + 1, 40, 5000, &answer);
  EXPECT_EQ(st.code(), storage::Status::Code::kNotFound);
  EXPECT_NE(answer.error.find("cluster id"), std::string::npos) << answer.error;
  // A node without a hasher refuses; none of this counted as a handshake.
  Node plain(2);
  st = ask_hash_kv("127.0.0.1", plain.port, kCluster, 40, 5000, &answer);
  EXPECT_EQ(st.code(), storage::Status::Code::kNotFound);
  EXPECT_EQ(a->stats().handshakes_rejected, 0u);
  // An answer later than the asker waits: it gives up; and once the transport is gone, the
  // answer goes nowhere.
  st = ask_hash_kv("127.0.0.1", a.port, kCluster, 1, 50, &answer);
  EXPECT_EQ(st.code(), storage::Status::Code::kIoError) << st.to_string();
  a.transport.reset();
  std::lock_guard lock(mu);
  for (auto& t : hashers)
    t.join();
}

TEST(TransportTest, AHelloNeverSentTimesOut) {
  TransportOptions options;
  options.handshake_timeout_ms = 100;
  Node a(1, 0, options);
  RawSocket raw(a.port);
  ASSERT_TRUE(raw.connected());
  EXPECT_TRUE(raw.closed_by_peer());
  EXPECT_EQ(a->stats().handshakes_rejected, 1u);
}

TEST(TransportTest, GarbageAndTruncatedFramesCloseOnlyThatConnection) {
  Node a(1), b(2);
  a->set_peer(2, "127.0.0.1", b.port);
  a->send({make_message(1, 2, 0)});
  ASSERT_TRUE(b.inbox.wait_for(1));

  // Not our protocol at all.
  RawSocket http(b.port);
  http.write("GET / HTTP/1.1\r\nHost: chorus\r\n\r\n");
  EXPECT_TRUE(http.closed_by_peer());
  EXPECT_EQ(b->stats().bad_frames, 1u);

  // A valid handshake, then half a frame and a hang-up.
  {
    RawSocket cut(b.port);
    ASSERT_TRUE(cut.handshake(9, 2));
    std::string frame;
    append_frame(&frame, FrameType::kMessages, encode_messages({make_message(9, 2, 0)}));
    cut.write(std::string_view(frame).substr(0, frame.size() / 2));
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(eventually([&] { return b->stats().bad_frames == 2; }));

  // A checksummed frame whose payload is not a batch of messages.
  RawSocket bad_payload(b.port);
  ASSERT_TRUE(bad_payload.handshake(9, 2));
  std::string frame;
  append_frame(&frame, FrameType::kMessages, "not messages");
  bad_payload.write(frame);
  EXPECT_TRUE(bad_payload.closed_by_peer());
  EXPECT_EQ(b->stats().bad_frames, 3u);

  // A flipped bit.
  RawSocket flipped(b.port);
  ASSERT_TRUE(flipped.handshake(9, 2));
  frame.clear();
  append_frame(&frame, FrameType::kMessages, encode_messages({make_message(9, 2, 0)}));
  frame[frame.size() - 3] ^= 1;
  flipped.write(frame);
  EXPECT_TRUE(flipped.closed_by_peer());
  EXPECT_EQ(b->stats().bad_frames, 4u);

  // A message for another node.
  RawSocket misaddressed(b.port);
  ASSERT_TRUE(misaddressed.handshake(9, 2));
  frame.clear();
  append_frame(&frame, FrameType::kMessages, encode_messages({make_message(9, 3, 0)}));
  misaddressed.write(frame);
  EXPECT_TRUE(misaddressed.closed_by_peer());
  EXPECT_EQ(b->stats().bad_frames, 5u);

  // A frame only an acceptor sends.
  RawSocket pong(b.port);
  ASSERT_TRUE(pong.handshake(9, 2));
  frame.clear();
  append_frame(&frame, FrameType::kPong, encode_ping(1));
  pong.write(frame);
  EXPECT_TRUE(pong.closed_by_peer());
  EXPECT_EQ(b->stats().bad_frames, 6u);

  // Before a handshake, no frame may be large.
  RawSocket big(b.port);
  frame.clear();
  append_frame(&frame, FrameType::kHello, std::string(5000, 'h'));
  big.write(frame);
  EXPECT_TRUE(big.closed_by_peer());
  EXPECT_EQ(b->stats().bad_frames, 7u);

  // The real peer's connection was never disturbed.
  for (uint64_t i = 1; i < 20; ++i)
    a->send({make_message(1, 2, i)});
  ASSERT_TRUE(b.inbox.wait_for(20));
  expect_in_order(b.inbox.messages(), {1}, 2, 20);
  EXPECT_TRUE(a.connected_to(2));
  EXPECT_EQ(a->stats().disconnects, 0u);
}

TEST(TransportTest, AValidRawPeerIsServedAndAnsweredToPings) {
  Node b(2);
  RawSocket raw(b.port);
  ASSERT_TRUE(raw.handshake(9, 2));
  std::string frames;
  append_frame(&frames, FrameType::kMessages,
               encode_messages({make_message(9, 2, 0), make_message(9, 2, 1)}));
  append_frame(&frames, FrameType::kPing, encode_ping(1234));
  raw.write(frames);
  std::optional<Frame> pong = raw.read_frame();
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->type, FrameType::kPong);
  uint64_t token = 0;
  ASSERT_TRUE(decode_ping(pong->payload, &token));
  EXPECT_EQ(token, 1234u);
  ASSERT_TRUE(b.inbox.wait_for(2));
  expect_in_order(b.inbox.messages(), {9}, 2, 2);
}

TEST(TransportTest, QueueOverflowDropsAndReportsUnreachable) {
  // A listener that never accepts: the dial completes in the kernel, the handshake never does,
  // so everything sent stays queued.
  int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = RawSocket::loopback(0);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(silent, 16), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  TransportOptions options;
  options.max_queue_bytes_per_peer = 4096;
  options.handshake_timeout_ms = 60000;
  Node a(1, 0, options);
  a->set_peer(2, "127.0.0.1", ntohs(addr.sin_port));
  for (uint64_t i = 0; i < 100; ++i) {
    raft::Message m = make_message(1, 2, i);
    m.entries = {{1, 1, raft::EntryType::kNormal, std::string(200, 'q')}};
    a->send({std::move(m)});
  }
  ASSERT_TRUE(eventually([&] { return a.inbox.unreachable_count(2) >= 1; }));
  TransportStats s = a->stats();
  EXPECT_GE(s.messages_dropped, 70u);
  EXPECT_LT(s.messages_dropped, 100u);
  std::optional<PeerStatus> status = a->peer_status(2);
  ASSERT_TRUE(status.has_value());
  EXPECT_LE(status->queued_bytes, 4096u);
  EXPECT_GT(status->queued_bytes, 3000u);
  EXPECT_TRUE(status->last_error.empty());  // the connection itself did not fail
  a->stop();
  ::close(silent);
}

TEST(TransportTest, UnknownPeersLocalTypesAndRemovedPeersAreDropped) {
  Node a(1), b(2);
  a->set_peer(2, "127.0.0.1", b.port);
  raft::Message local = make_message(1, 2, 0);
  local.type = MessageType::kHup;
  a->send({make_message(1, 99, 0), local, make_message(1, 2, 0)});
  ASSERT_TRUE(b.inbox.wait_for(1));
  EXPECT_EQ(a->stats().messages_dropped, 2u);
  a->remove_peer(2);
  EXPECT_FALSE(a->peer_status(2).has_value());
  a->send({make_message(1, 2, 1)});
  EXPECT_EQ(a->stats().messages_dropped, 3u);
  ASSERT_TRUE(eventually([&] { return b->stats().disconnects == 1; }));
}

TEST(TransportTest, StopWhileBusyIsClean) {
  Node n1(1), n2(2), n3(3);
  link(n1, 1, n2, 2);
  link(n1, 1, n3, 3);
  link(n2, 2, n3, 3);
  std::atomic<bool> done{false};
  std::vector<std::thread> senders;
  std::vector<Node*> nodes = {&n1, &n2, &n3};
  for (NodeId from = 1; from <= 3; ++from) {
    senders.emplace_back([&, from] {
      for (uint64_t i = 0; !done.load(); ++i) {
        std::vector<raft::Message> batch;
        for (NodeId to = 1; to <= 3; ++to)
          if (to != from) batch.push_back(make_message(from, to, i));
        (*nodes[from - 1])->send(std::move(batch));
        if (i % 64 == 0) std::this_thread::sleep_for(1ms);
      }
    });
  }
  ASSERT_TRUE(eventually([&] { return n1.inbox.size() > 500 && n3.inbox.size() > 500; }));
  n2->stop();
  n1->stop();
  std::this_thread::sleep_for(50ms);
  done = true;
  for (std::thread& t : senders)
    t.join();
  // Stopped transports drop what they are given; stopping twice is harmless.
  uint64_t dropped = n1->stats().messages_dropped;
  n1->send({make_message(1, 2, 0)});
  EXPECT_EQ(n1->stats().messages_dropped, dropped + 1);
  n1->stop();
  // The survivor sees its peers gone.
  ASSERT_TRUE(eventually([&] { return !n3.connected_to(1) && !n3.connected_to(2); }));
}

TEST(TransportTest, AnUnstartedTransportIsDestroyedCleanly) {
  TransportOptions options;
  options.self = 1;
  PeerTransport t(options, nullptr, nullptr);
  t.set_peer(2, "127.0.0.1", 1);
  t.send({make_message(1, 2, 0)});
  EXPECT_GT(t.peer_status(2)->queued_bytes, 0u);
  EXPECT_EQ(t.stats().messages_dropped, 0u);
}

TEST(TransportTest, ListenReportsErrors) {
  Node a(1);
  TransportOptions options;
  options.self = 2;
  PeerTransport t(options, nullptr, nullptr);
  storage::Status st = t.listen("127.0.0.1", a.port, nullptr);
  EXPECT_EQ(st.code(), storage::Status::Code::kIoError) << st.to_string();
  uint16_t port = 0;
  ASSERT_TRUE(t.listen("localhost", 0, &port).is_ok());
  EXPECT_NE(port, 0);
  EXPECT_FALSE(t.listen("127.0.0.1", 0, &port).is_ok());
}

}  // namespace
}  // namespace chorus::transport
