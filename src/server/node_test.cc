// The node driver with real threads, real time and real files: three members in one process,
// joined by an in-process router that can cut members off, on a file system whose syncs a test
// can hold (an fsync stall). These are the driver's own behaviours, which the simulator does not
// run.
#include "server/node.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kv/codec.h"
#include "storage/fault_fs.h"
#include "storage/file.h"
#include "storage/forwarding_fs.h"
#include "storage/testing.h"

namespace chorus::server {
namespace {

using namespace std::chrono_literals;

// The local disk, except that while held, every file sync blocks until released.
class StallableFileSystem final : public storage::ForwardingFileSystem {
 public:
  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool held = false;
    int stalled = 0;  // syncs blocked right now
  };

  explicit StallableFileSystem(std::shared_ptr<Gate> gate)
      : ForwardingFileSystem(storage::make_posix_file_system()), gate_(std::move(gate)) {}

 private:
  storage::Status on_file_sync() override {
    std::unique_lock<std::mutex> lk(gate_->mu);
    ++gate_->stalled;
    gate_->cv.notify_all();
    gate_->cv.wait(lk, [this] { return !gate_->held; });
    --gate_->stalled;
    return storage::Status::ok();
  }

  std::shared_ptr<Gate> gate_;
};

// Delivers messages between the members of one process; a cut-off member neither sends nor
// receives anything.
class Router final : public MessageSink {
 public:
  void add(Node* node) {
    std::lock_guard<std::mutex> lk(mu_);
    nodes_[node->id()] = node;
  }
  void remove(raft::NodeId id) {
    std::lock_guard<std::mutex> lk(mu_);
    nodes_.erase(id);
  }
  void isolate(raft::NodeId id) {
    std::lock_guard<std::mutex> lk(mu_);
    isolated_.insert(id);
  }
  void heal() {
    std::lock_guard<std::mutex> lk(mu_);
    isolated_.clear();
  }
  void send(std::vector<raft::Message>&& messages) override {
    std::lock_guard<std::mutex> lk(mu_);
    for (raft::Message& m : messages) {
      if (isolated_.count(m.from) != 0 || isolated_.count(m.to) != 0) continue;
      auto it = nodes_.find(m.to);
      if (it == nodes_.end()) continue;
      std::vector<raft::Message> one;
      one.push_back(std::move(m));
      it->second->receive(std::move(one));
    }
  }
  void set_peer(raft::NodeId, const std::vector<std::string>&) override {}
  void remove_peer(raft::NodeId) override {}

 private:
  std::mutex mu_;
  std::map<raft::NodeId, Node*> nodes_;
  std::set<raft::NodeId> isolated_;
};

class NodeCluster {
 public:
  NodeCluster(int n, bool lease_reads, uint32_t groups = 0,
              const std::function<void(NodeOptions&)>& tweak = nullptr)
      : dir_("node-cluster") {
    std::vector<InitialMember> members;
    for (int i = 1; i <= n; ++i) {
      members.push_back(InitialMember{static_cast<raft::NodeId>(i),
                                      "m" + std::to_string(i),
                                      {"http://member-" + std::to_string(i)}});
    }
    for (int i = 1; i <= n; ++i) {
      auto gate = std::make_shared<StallableFileSystem::Gate>();
      gates_.push_back(gate);
      NodeOptions o;
      o.id = static_cast<raft::NodeId>(i);
      o.cluster_id = 0xc1;
      o.name = "m" + std::to_string(i);
      o.data_dir = storage::join_path(dir_.path(), "m" + std::to_string(i));
      o.initial_members = members;
      o.cluster_token = "node-test";
      // Long enough ticks that a loaded machine running sanitizers sees no spurious elections.
      o.tick_ms = 50;
      o.election_ticks = 10;
      o.lease_reads = lease_reads;
      o.request_timeout_ms = 10000;
      o.file_system = [gate] { return std::make_unique<StallableFileSystem>(gate); };
      o.initial_groups = groups;
      if (tweak) tweak(o);
      options_.push_back(o);
      std::unique_ptr<Node> node;
      storage::Status st = Node::open(o, &node);
      EXPECT_TRUE(st.is_ok()) << st.to_string();
      router_.add(node.get());
      nodes_.push_back(std::move(node));
    }
    for (auto& node : nodes_)
      node->start(&router_, [](const std::string& why) { ADD_FAILURE() << "fatal: " << why; });
  }

  // Stops the member and starts it again on its data directory.
  void restart(raft::NodeId id) {
    std::unique_ptr<Node>& slot = nodes_.at(id - 1);
    router_.remove(id);
    slot->stop(0);
    slot.reset();
    storage::Status st = Node::open(options_.at(id - 1), &slot);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    router_.add(slot.get());
    slot->start(&router_, [](const std::string& why) { ADD_FAILURE() << "fatal: " << why; });
  }

  ~NodeCluster() {
    for (auto& g : gates_)
      release(*g);
    for (auto& node : nodes_)
      node->stop(0);
  }

  Node& node(raft::NodeId id) { return *nodes_.at(id - 1); }
  Router& router() { return router_; }
  StallableFileSystem::Gate& gate(raft::NodeId id) { return *gates_.at(id - 1); }

  static void hold(StallableFileSystem::Gate& g) {
    std::lock_guard<std::mutex> lk(g.mu);
    g.held = true;
  }
  static void release(StallableFileSystem::Gate& g) {
    {
      std::lock_guard<std::mutex> lk(g.mu);
      g.held = false;
    }
    g.cv.notify_all();
  }
  static bool wait_stalled(StallableFileSystem::Gate& g, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lk(g.mu);
    return g.cv.wait_for(lk, timeout, [&] { return g.stalled > 0; });
  }

  // The leader all of `among` agree on, or 0 if they do not agree within the timeout.
  raft::NodeId wait_leader(const std::vector<raft::NodeId>& among,
                           std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      raft::NodeId lead = node(among.front()).status().leader;
      bool agreed = lead != 0;
      for (raft::NodeId id : among)
        agreed = agreed && node(id).status().leader == lead;
      if (agreed && std::find(among.begin(), among.end(), lead) != among.end()) return lead;
      std::this_thread::sleep_for(20ms);
    }
    return 0;
  }

 private:
  storage::testing::TempDir dir_;
  Router router_;
  std::vector<std::shared_ptr<StallableFileSystem::Gate>> gates_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<NodeOptions> options_;
};

RpcError put(Node& n, const std::string& key, const std::string& value) {
  kv::Command c;
  c.op = kv::PutRequest{key, value};
  auto done = std::make_shared<std::promise<RpcError>>();
  auto f = done->get_future();
  n.propose(std::move(c), [done](const RpcError& e, kv::Response&&) { done->set_value(e); });
  if (f.wait_for(20s) != std::future_status::ready) return RpcError{RpcCode::kUnknown, "no answer"};
  return f.get();
}

struct ReadResult {
  RpcError error;
  std::string value;
};

// A linearizable read of one key, as the KV service makes it: a read barrier, then the store.
std::future<ReadResult> read_async(Node& n, const std::string& key) {
  auto done = std::make_shared<std::promise<ReadResult>>();
  auto f = done->get_future();
  n.read_barrier([done, &n, key](const RpcError& e) {
    ReadResult r{e, {}};
    if (e.ok()) {
      kv::RangeRequest req;
      req.key = key;
      kv::RangeResponse resp;
      kv::ApiError err = n.store().range(req, &resp);
      if (!err.ok()) r.error = RpcError{RpcCode::kUnknown, err.message};
      if (!resp.kvs.empty()) r.value = resp.kvs.front().value;
    }
    done->set_value(std::move(r));
  });
  return f;
}

// A leader whose raft thread stalls in fdatasync (or is paused) must not answer reads that
// queued meanwhile from its lease: in real time the lease ran out, and another member may have
// been elected and have taken writes. Before the fix, the driver stepped the queued reads before
// catching up on the ticks it missed, and served the old value.
TEST(NodeDriver, LeaseReadQueuedDuringAnFsyncStallIsNotServedFromAnExpiredLease) {
  NodeCluster c(3, /*lease_reads=*/true);
  raft::NodeId old_leader = c.wait_leader({1, 2, 3}, 20s);
  ASSERT_NE(old_leader, 0u) << "no leader";
  ASSERT_TRUE(put(c.node(old_leader), "k", "v1").ok());
  {
    // The lease path works at all: a read on the leader sees the write.
    std::future<ReadResult> first = read_async(c.node(old_leader), "k");
    ASSERT_EQ(first.wait_for(30s), std::future_status::ready) << "no answer";
    ReadResult r = first.get();
    ASSERT_TRUE(r.error.ok()) << r.error.message;
    ASSERT_EQ(r.value, "v1");
  }

  // The leader's next fdatasync stalls, and it is cut off from the others.
  NodeCluster::hold(c.gate(old_leader));
  c.router().isolate(old_leader);
  std::jthread stalled_write([&] { (void)put(c.node(old_leader), "k", "lost"); });
  ASSERT_TRUE(NodeCluster::wait_stalled(c.gate(old_leader), 10s)) << "the sync did not stall";

  // The others elect a new leader and take a write.
  std::vector<raft::NodeId> others;
  for (raft::NodeId id : {1, 2, 3}) {
    if (id != old_leader) others.push_back(id);
  }
  raft::NodeId new_leader = c.wait_leader(others, 20s);
  ASSERT_NE(new_leader, 0u) << "the others elected no leader";
  ASSERT_TRUE(put(c.node(new_leader), "k", "v2").ok());

  // A read reaches the old leader while its raft thread is still stalled; then the stall ends.
  std::future<ReadResult> stale = read_async(c.node(old_leader), "k");
  std::this_thread::sleep_for(100ms);
  NodeCluster::release(c.gate(old_leader));
  ASSERT_EQ(stale.wait_for(30s), std::future_status::ready) << "the read was never answered";
  ReadResult r = stale.get();
  EXPECT_TRUE(!r.error.ok() || r.value == "v2")
      << "the old leader served \"" << r.value << "\" after a newer write was acknowledged";
  c.router().heal();
}

std::vector<raft::Entry> entries(raft::Index from, raft::Index to, raft::Term term) {
  std::vector<raft::Entry> out;
  for (raft::Index i = from; i <= to; ++i) {
    raft::Entry e;
    e.index = i;
    e.term = term;
    e.data = "entry-" + std::to_string(i);
    out.push_back(std::move(e));
  }
  return out;
}

// A follower catching up persists, in one Ready, many entries and a hard state whose commit
// index covers them. A power cut tearing that batch at any byte must leave a log the member
// can start from: never a commit index past the last entry recovered (the core refuses to
// start on that), and no repair by recovery needed. Before the fix the driver wrote the hard
// state first.
TEST(NodeDriver, ATornReadyBatchNeverLeavesACommitPastTheLog) {
  storage::FaultFileSystem fs;
  const storage::WalOptions options{.segment_bytes = 1 << 16, .cache_bytes = 1 << 20};
  const raft::ConfState conf{{1, 2, 3}, {}, {}, {}, false};
  std::string before;
  std::string after;
  {
    std::unique_ptr<storage::Wal> wal;
    ASSERT_TRUE(storage::Wal::open(&fs, "wal", options, &wal).is_ok());
    ASSERT_TRUE(wal->bootstrap(1, conf).is_ok());
    storage::WalBatch first;
    first.append(1, entries(1, 5, 1));
    first.set_hard_state(1, raft::HardState{1, 2, 3});
    ASSERT_TRUE(wal->commit(first).is_ok());
    const std::string path = storage::join_path("wal", wal->segment_names().back());
    before = *fs.contents(path);
    raft::Ready rd;
    rd.entries = entries(6, 30, 2);
    rd.hard_state = raft::HardState{2, 2, 30};
    ASSERT_TRUE(wal->commit(engine::ready_batch(1, rd)).is_ok());
    after = *fs.contents(path);
  }
  const std::string path = storage::join_path("wal", storage::segment_name(1));
  // The segment is preallocated: records end where its zero padding starts.
  const size_t batch_start = before.find_last_not_of('\0') + 1;
  const size_t batch_end = after.find_last_not_of('\0') + 1;
  ASSERT_GT(batch_end, batch_start);
  int checked = 0;
  for (size_t cut = batch_start; cut <= batch_end; ++cut) {
    *fs.contents(path) = after.substr(0, cut) + std::string(after.size() - cut, '\0');
    std::unique_ptr<storage::Wal> wal;
    storage::Status st = storage::Wal::open(&fs, "wal", options, &wal);
    ASSERT_TRUE(st.is_ok()) << "cut " << cut << ": " << st.to_string();
    const raft::LogStorage* log = wal->group(1);
    raft::HardState hs = log->hard_state();
    EXPECT_TRUE(wal->recovery_warnings().empty())
        << "cut " << cut << ": " << wal->recovery_warnings().front();
    ASSERT_LE(hs.commit, log->last_index()) << "cut " << cut;
    // The core starts on what was recovered (it aborts on a commit past the log).
    raft::Config c;
    c.id = 1;
    c.storage = log;
    raft::Raft r(c);
    EXPECT_EQ(r.log().committed(), hs.commit);
    ++checked;
  }
  EXPECT_GT(checked, 500);
}

// A moved commit index alone is written without an fdatasync (raft.h, Ready::must_write), so
// a power cut can lose it while the store, flushed meanwhile, has applied the entries it
// covered. The member must start on such a log, apply nothing twice, and go on: the next write
// takes the next revision, and every earlier value reads back.
// Starts a member of a cluster of one through `router` and waits (up to 5 s) until it leads.
void start_alone(Node& node, Router& router) {
  router.add(&node);
  node.start(&router, [](const std::string& why) { ADD_FAILURE() << "fatal: " << why; });
  for (int i = 0; i < 500 && node.status().leader != node.id(); ++i)
    std::this_thread::sleep_for(10ms);
}

TEST(NodeDriver, AStoreAppliedPastTheCommitIndexTheLogRecoversAppliesNothingTwice) {
  storage::testing::TempDir dir("store-ahead");
  NodeOptions o;
  o.id = 1;
  o.cluster_id = 0xc1;
  o.name = "m1";
  o.data_dir = storage::join_path(dir.path(), "m1");
  o.initial_members = {InitialMember{1, "m1", {"http://member-1"}}};
  o.cluster_token = "node-test";
  o.tick_ms = 50;
  o.election_ticks = 10;
  o.request_timeout_ms = 10000;
  auto run = [&](const std::function<void(Node&)>& body) {
    std::unique_ptr<Node> node;
    storage::Status st = Node::open(o, &node);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    Router router;
    start_alone(*node, router);
    ASSERT_EQ(node->status().leader, 1u);
    body(*node);
    node->stop(0);
  };
  int64_t revision = 0;
  raft::Index applied = 0;
  run([&](Node& n) {
    for (int i = 0; i < 20; ++i)
      ASSERT_TRUE(put(n, "k" + std::to_string(i), "v" + std::to_string(i)).ok());
    // Wait until the store holds them all (applied on its own thread after the replies).
    for (int i = 0; i < 200 && n.status().revision < 21; ++i)
      std::this_thread::sleep_for(10ms);
    revision = n.status().revision;
    applied = n.status().applied;
  });
  ASSERT_EQ(revision, 21);
  {
    // The log loses its last commit records: its commit index falls 10 entries behind.
    auto fs = storage::make_posix_file_system();
    std::unique_ptr<storage::Wal> wal;
    const std::string wal_dir = storage::join_path(o.data_dir, "member/wal");
    ASSERT_TRUE(storage::Wal::open(fs.get(), wal_dir, storage::WalOptions{}, &wal).is_ok());
    raft::HardState hs = wal->group(1)->hard_state();
    ASSERT_GE(hs.commit, applied);
    hs.commit = applied - 10;
    storage::WalBatch batch;
    batch.set_hard_state(1, hs);
    ASSERT_TRUE(wal->commit(batch).is_ok());
  }
  run([&](Node& n) {  // restarted with the same options, as chorusd is
    kv::Command c;
    c.op = kv::PutRequest{"after", "restart"};
    auto done = std::make_shared<std::promise<int64_t>>();
    auto f = done->get_future();
    n.propose(std::move(c), [done](const RpcError& e, kv::Response&& r) {
      auto* put = std::get_if<kv::PutResponse>(&r.op);
      done->set_value(e.ok() && put != nullptr ? put->revision : -1);
    });
    ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
    EXPECT_EQ(f.get(), revision + 1);
    for (int i = 0; i < 20; ++i) {
      ReadResult r = read_async(n, "k" + std::to_string(i)).get();
      EXPECT_TRUE(r.error.ok());
      EXPECT_EQ(r.value, "v" + std::to_string(i));
    }
  });
}

}  // namespace
}  // namespace chorus::server

namespace chorus::server {
namespace {

RpcError group_put(Node& n, raft::GroupId g, const std::string& key, const std::string& value) {
  auto done = std::make_shared<std::promise<RpcError>>();
  auto f = done->get_future();
  n.group_propose(g, kv::GroupOp{kv::GroupOp::Kind::kPut, key, value},
                  [done](const RpcError& e) { done->set_value(e); });
  if (f.wait_for(30s) != std::future_status::ready) return RpcError{RpcCode::kUnknown, "no answer"};
  return f.get();
}

// As a client does: a write refused for want of a known leader (a member just restarted, before
// its groups heard from their leaders) is tried again.
RpcError group_put_retrying(Node& n, raft::GroupId g, const std::string& key,
                            const std::string& value) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (true) {
    RpcError e = group_put(n, g, key, value);
    if (e.code != RpcCode::kUnavailable || std::chrono::steady_clock::now() > deadline) return e;
    std::this_thread::sleep_for(50ms);
  }
}

// A linearizable read of one key of a data group, as the Groups service makes it.
ReadResult group_read(Node& n, raft::GroupId g, const std::string& key) {
  auto done = std::make_shared<std::promise<ReadResult>>();
  auto f = done->get_future();
  n.group_read_barrier(g, [done, &n, g, key](const RpcError& e) {
    ReadResult r{e, {}};
    if (e.ok()) {
      storage::Status st = n.group_get(g, key, &r.value);
      if (st.code() == storage::Status::Code::kNotFound)
        r.value = "<none>";
      else if (!st.is_ok())
        r.error = RpcError{RpcCode::kUnknown, st.to_string()};
    }
    done->set_value(std::move(r));
  });
  if (f.wait_for(30s) != std::future_status::ready)
    return {RpcError{RpcCode::kUnknown, "no answer"}, {}};
  return f.get();
}

// Waits until `pred` holds, polling; false on timeout.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

// --force-new-cluster on member 1 of a 3-member cluster whose other members are gone: `tail` is
// appended to its log, uncommitted, before it restarts forced.
struct ForcedStart {
  storage::testing::TempDir dir{"force-new-cluster"};
  NodeOptions o;
  ForcedStart() {
    o.id = 1;
    o.cluster_id = 0xc1;
    o.name = "m1";
    o.data_dir = storage::join_path(dir.path(), "m1");
    o.initial_members = {InitialMember{1, "m1", {"http://member-1"}},
                         InitialMember{2, "m2", {"http://member-2"}},
                         InitialMember{3, "m3", {"http://member-3"}}};
    o.cluster_token = "node-test";
    o.tick_ms = 50;
    o.election_ticks = 10;
    o.request_timeout_ms = 10000;
    std::unique_ptr<Node> node;
    storage::Status st = Node::open(o, &node);  // writes the three additions, committed
    EXPECT_TRUE(st.is_ok()) << st.to_string();
  }
  void append(const std::vector<raft::Entry>& tail) {
    auto fs = storage::make_posix_file_system();
    std::unique_ptr<storage::Wal> wal;
    ASSERT_TRUE(storage::Wal::open(fs.get(), storage::join_path(o.data_dir, "member/wal"),
                                   storage::WalOptions{}, &wal)
                    .is_ok());
    storage::WalBatch batch;
    batch.append(1, tail);
    ASSERT_TRUE(wal->commit(batch).is_ok());
  }
  static raft::Entry conf(raft::Index index, raft::ConfChange cc) {
    return raft::Entry{1, index, raft::EntryType::kConfChange, cc.encode()};
  }
  static raft::Entry put(raft::Index index, const std::string& key, const std::string& value) {
    kv::Command c;
    c.op = kv::PutRequest{key, value};
    return raft::Entry{
        1, index, raft::EntryType::kNormal,
        encode_proposal(ProposalHeader{ProposalKind::kCommand, 0, 0}, kv::encode_command(c))};
  }
  storage::Status open_forced(std::unique_ptr<Node>* node) {
    NodeOptions forced = o;
    forced.force_new_cluster = true;
    return Node::open(forced, node);
  }
};

TEST(ForceNewCluster, TheMemberLeadsAloneWithItsWholeLog) {
  ForcedStart f;
  // Past the recorded commit index: a write the old quorum may have committed and acknowledged,
  // and a fourth member's addition.
  raft::ConfChange add4;
  add4.changes.push_back({raft::ConfChangeType::kAddNode, 4});
  add4.context = encode_member_context(MemberContext{"", {"http://member-4"}});
  f.append({ForcedStart::put(4, "k", "tail"), ForcedStart::conf(5, add4)});
  std::unique_ptr<Node> node;
  storage::Status st = f.open_forced(&node);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  Router router;
  start_alone(*node, router);
  ASSERT_EQ(node->status().leader, 1u) << "alone, it elects itself";
  for (int i = 0; i < 200 && node->members().size() != 1; ++i)
    std::this_thread::sleep_for(10ms);
  ASSERT_EQ(node->members().size(), 1u);
  EXPECT_EQ(node->members().front().id, 1u);
  EXPECT_TRUE(node->member_removed(2) && node->member_removed(3) && node->member_removed(4));
  EXPECT_EQ(read_async(*node, "k").get().value, "tail") << "the uncommitted tail is kept";
  ASSERT_TRUE(put(*node, "after", "1").ok());
  node->stop(0);
  node.reset();
  // Forced again, alone: nothing changes.
  st = f.open_forced(&node);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
}

TEST(ForceNewCluster, ALearnerOrARemovedMemberIsRefused) {
  {
    ForcedStart f;
    // A joint change demoting member 1, not left yet: it would be a learner.
    raft::ConfChange demote;
    demote.transition = raft::ConfChangeTransition::kJointExplicit;
    demote.changes.push_back({raft::ConfChangeType::kAddLearner, 1});
    demote.changes.push_back({raft::ConfChangeType::kRemoveNode, 3});
    f.append({ForcedStart::conf(4, demote)});
    std::unique_ptr<Node> node;
    storage::Status st = f.open_forced(&node);
    EXPECT_EQ(st.code(), storage::Status::Code::kInvalidArgument) << st.to_string();
    EXPECT_NE(st.to_string().find("learner"), std::string::npos) << st.to_string();
  }
  {
    ForcedStart f;
    raft::ConfChange remove;
    remove.changes.push_back({raft::ConfChangeType::kRemoveNode, 1});
    f.append({ForcedStart::conf(4, remove)});
    std::unique_ptr<Node> node;
    storage::Status st = f.open_forced(&node);
    EXPECT_EQ(st.code(), storage::Status::Code::kInvalidArgument) << st.to_string();
    EXPECT_NE(st.to_string().find("removed"), std::string::npos) << st.to_string();
  }
}

TEST(InitialPlacement, ThreeReplicasRotatedOverTheMembers) {
  EXPECT_EQ(initial_placement(2, {3, 1, 2}), (std::vector<raft::NodeId>{1, 2, 3}));
  EXPECT_EQ(initial_placement(3, {1, 2, 3}), (std::vector<raft::NodeId>{2, 3, 1}));
  EXPECT_EQ(initial_placement(4, {1, 2, 3, 4, 5}), (std::vector<raft::NodeId>{3, 4, 5}));
  EXPECT_EQ(initial_placement(6, {1, 2, 3, 4, 5}), (std::vector<raft::NodeId>{5, 1, 2}));
  EXPECT_EQ(initial_placement(2, {7}), (std::vector<raft::NodeId>{7}));
  EXPECT_TRUE(initial_placement(1, {1, 2, 3}).empty());  // the etcd group is not a data group
  EXPECT_TRUE(initial_placement(2, {}).empty());
  // Over 300 groups of 5 members, every member holds 180 replicas and starts 60 leaders.
  std::map<raft::NodeId, int> replicas, firsts;
  for (raft::GroupId g = 2; g < 302; ++g) {
    std::vector<raft::NodeId> p = initial_placement(g, {1, 2, 3, 4, 5});
    ASSERT_EQ(p.size(), 3u);
    ++firsts[p.front()];
    for (raft::NodeId id : p)
      ++replicas[id];
  }
  for (raft::NodeId id = 1; id <= 5; ++id) {
    EXPECT_EQ(replicas[id], 180) << id;
    EXPECT_EQ(firsts[id], 60) << id;
  }
}

// Data groups share the members' logs with the etcd group: each elects its placed leader,
// keeps its own keys, answers writes and linearizable reads made on any member (followers
// forward), and keeps them through a restart.
TEST(DataGroups, ElectSpreadLeadersKeepSeparateKeysAndSurviveARestart) {
  constexpr uint32_t kGroups = 30;
  NodeCluster c(3, /*lease_reads=*/false, kGroups);
  ASSERT_NE(c.wait_leader({1, 2, 3}, 20s), 0u);
  ASSERT_TRUE(eventually(
      [&] {
        uint64_t leading = 0;
        for (raft::NodeId id : {1, 2, 3})
          leading += c.node(id).groups_status().leading;
        return leading == kGroups;
      },
      30s))
      << "not every data group elected a leader";
  for (raft::NodeId id : {1, 2, 3}) {
    EXPECT_EQ(c.node(id).groups_status().hosted, kGroups);
    // Each member started the elections of a third of the groups; a collision may move one.
    EXPECT_GE(c.node(id).groups_status().leading, kGroups / 3 - 2) << "member " << id;
  }
  for (raft::GroupId g = 2; g < 2 + kGroups; ++g) {
    Node& writer = c.node(1 + g % 3);
    RpcError e = group_put(writer, g, "k", "v" + std::to_string(g));
    ASSERT_TRUE(e.ok()) << "group " << g << ": " << e.message;
  }
  for (raft::GroupId g = 2; g < 2 + kGroups; ++g) {
    ReadResult r = group_read(c.node(1 + (g + 1) % 3), g, "k");
    ASSERT_TRUE(r.error.ok()) << r.error.message;
    EXPECT_EQ(r.value, "v" + std::to_string(g));
  }
  // Group 7 is the busiest: first among the groups with the most writes applied, then the
  // rest by id (each applied one write here, as on every member).
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(group_put(c.node(2), 7, "hot", std::to_string(i)).ok());
  std::vector<GroupLoad> top;
  ASSERT_TRUE(eventually(
      [&] {
        top = c.node(1).busiest_groups(3);
        return top.size() == 3 && top[0].id == 7 && top[0].writes_applied == 4 && top[1].id == 2 &&
               top[1].writes_applied == 1 && top[2].id == 3 &&
               c.node(1).busiest_groups(100).size() == kGroups;
      },
      10s));
  EXPECT_GE(top[0].applied, 5u);
  ReadResult none = group_read(c.node(2), 5, "absent");
  ASSERT_TRUE(none.error.ok()) << none.error.message;
  EXPECT_EQ(none.value, "<none>");
  // A group nobody hosts is refused, not queued.
  RpcError missing = group_put(c.node(1), 2 + kGroups, "k", "v");
  EXPECT_EQ(missing.code, RpcCode::kNotFound) << missing.message;

  c.restart(3);
  ASSERT_TRUE(eventually([&] { return c.node(3).groups_status().hosted == kGroups; }, 10s));
  for (raft::GroupId g = 2; g < 2 + kGroups; ++g) {
    RpcError e = group_put_retrying(c.node(3), g, "after", "restart");
    ASSERT_TRUE(e.ok()) << "group " << g << ": " << e.message;
    ReadResult r = group_read(c.node(3), g, "k");
    ASSERT_TRUE(r.error.ok()) << r.error.message;
    EXPECT_EQ(r.value, "v" + std::to_string(g));
  }
}

// Idle data groups quiesce: no replica's timers run. When a member goes silent, member liveness
// wakes the quiesced groups it led on the others, which elect new leaders and take writes.
TEST(DataGroups, IdleGroupsQuiesceAndTheirLeadersReplacedWhenAMemberGoesSilent) {
  constexpr uint32_t kGroups = 12;
  NodeCluster c(3, /*lease_reads=*/false, kGroups);
  ASSERT_NE(c.wait_leader({1, 2, 3}, 20s), 0u);
  for (raft::GroupId g = 2; g < 2 + kGroups; ++g) {
    RpcError e = group_put(c.node(1), g, "k", "before");
    ASSERT_TRUE(e.ok()) << "group " << g << ": " << e.message;
  }
  ASSERT_TRUE(eventually(
      [&] {
        for (raft::NodeId id : {1, 2, 3}) {
          if (c.node(id).groups_status().awake != 0) return false;
        }
        return true;
      },
      30s))
      << "the idle groups did not quiesce";
  uint64_t led_by_1 = c.node(1).groups_status().leading;
  ASSERT_GT(led_by_1, 0u);

  c.router().isolate(1);
  ASSERT_TRUE(eventually(
      [&] {
        return c.node(2).groups_status().leading + c.node(3).groups_status().leading == kGroups;
      },
      30s))
      << "the groups member 1 led were not taken over";
  EXPECT_EQ(c.node(2).groups_status().peers_down, 1u);
  for (raft::GroupId g = 2; g < 2 + kGroups; ++g) {
    ASSERT_TRUE(group_put(c.node(2), g, "k", "after").ok()) << "group " << g;
    ReadResult r = group_read(c.node(3), g, "k");
    ASSERT_TRUE(r.error.ok()) << r.error.message;
    EXPECT_EQ(r.value, "after");
  }
  c.router().heal();
}

struct GroupChangeResult {
  RpcError error;
  GroupDescriptor group;
};

// Runs one directory change (`start` calls the node with the callback) and waits for its answer.
GroupChangeResult await_change(const std::function<void(Node::GroupChangeDone)>& start) {
  auto done = std::make_shared<std::promise<GroupChangeResult>>();
  auto f = done->get_future();
  start([done](const RpcError& e, const GroupDescriptor& g) {
    done->set_value(GroupChangeResult{e, g});
  });
  if (f.wait_for(20s) != std::future_status::ready)
    return {RpcError{RpcCode::kUnknown, "no answer"}, {}};
  return f.get();
}

GroupChangeResult create_group(Node& n, raft::GroupId id, std::vector<raft::NodeId> replicas) {
  return await_change(
      [&](Node::GroupChangeDone cb) { n.create_group(id, std::move(replicas), std::move(cb)); });
}

GroupChangeResult delete_group(Node& n, raft::GroupId id) {
  return await_change([&](Node::GroupChangeDone cb) { n.delete_group(id, std::move(cb)); });
}

// The lifecycle of data groups on a running cluster: the directory in the etcd group lists the
// initial groups, groups are created (placed by the cluster or on chosen members) and deleted
// from any member, each member creating or removing its own replicas to match, and a restart
// keeps the directory and the replicas as they were.
TEST(DataGroups, CreatedAndDeletedOnARunningClusterThroughTheDirectory) {
  NodeCluster c(3, /*lease_reads=*/false, /*groups=*/2);
  ASSERT_NE(c.wait_leader({1, 2, 3}, 20s), 0u);
  const std::vector<raft::NodeId> p2 = initial_placement(2, {1, 2, 3});
  const std::vector<raft::NodeId> p3 = initial_placement(3, {1, 2, 3});
  const std::vector<GroupDescriptor> initial = {GroupDescriptor{2, p2, p2, {}, {}},
                                                GroupDescriptor{3, p3, p3, {}, {}}};
  for (raft::NodeId id : {1, 2, 3})
    ASSERT_TRUE(eventually([&] { return c.node(id).group_directory() == initial; }, 10s)) << id;

  // Placed by the cluster, asked of a member that need not lead the etcd group: answered once
  // the asking member's replica is up, so a write there works at once.
  GroupChangeResult made = create_group(c.node(2), 0, {});
  ASSERT_TRUE(made.error.ok()) << made.error.message;
  EXPECT_EQ(made.group.id, 4u) << "the next id after the initial groups";
  ASSERT_EQ(made.group.replicas.size(), 3u);
  EXPECT_TRUE(c.node(2).hosts_group(4));
  ASSERT_TRUE(group_put_retrying(c.node(2), 4, "k", "v4").ok());
  for (raft::NodeId id : {1, 2, 3}) {
    ASSERT_TRUE(eventually([&] { return c.node(id).hosts_group(4); }, 10s)) << id;
    ReadResult r = group_read(c.node(id), 4, "k");
    ASSERT_TRUE(r.error.ok()) << r.error.message;
    EXPECT_EQ(r.value, "v4");
  }

  // On a chosen member only, with a chosen id; the next free id then follows it.
  made = create_group(c.node(1), 10, {3});
  ASSERT_TRUE(made.error.ok()) << made.error.message;
  EXPECT_EQ(made.group, (GroupDescriptor{10, {3}, {3}, {}, {}}));
  ASSERT_TRUE(eventually([&] { return c.node(3).hosts_group(10); }, 10s));
  EXPECT_FALSE(c.node(1).hosts_group(10));
  EXPECT_EQ(group_put(c.node(1), 10, "k", "v").code, RpcCode::kNotFound);
  ASSERT_TRUE(group_put_retrying(c.node(3), 10, "k", "v10").ok());
  made = create_group(c.node(3), 0, {});
  ASSERT_TRUE(made.error.ok()) << made.error.message;
  EXPECT_EQ(made.group.id, 11u);

  // Refused: an id in use, a data group's reserved ids, members twice or not in the cluster.
  EXPECT_EQ(create_group(c.node(1), 10, {}).error.code, RpcCode::kAlreadyExists);
  EXPECT_EQ(create_group(c.node(1), 1, {}).error.code, RpcCode::kInvalidArgument);
  EXPECT_EQ(create_group(c.node(1), 0, {1, 1}).error.code, RpcCode::kInvalidArgument);
  EXPECT_EQ(create_group(c.node(1), 0, {1, 77}).error.code, RpcCode::kInvalidArgument);

  // Deleted from a member that holds no replica of it: every replica and its data go.
  GroupChangeResult gone = delete_group(c.node(1), 10);
  ASSERT_TRUE(gone.error.ok()) << gone.error.message;
  EXPECT_EQ(gone.group, (GroupDescriptor{10, {3}, {3}, {}, {}}));
  ASSERT_TRUE(eventually([&] { return !c.node(3).hosts_group(10); }, 10s));
  EXPECT_EQ(group_put(c.node(3), 10, "k", "v").code, RpcCode::kNotFound);
  EXPECT_EQ(delete_group(c.node(2), 10).error.code, RpcCode::kNotFound);
  GroupChangeResult again = create_group(c.node(2), 10, {3});
  EXPECT_EQ(again.error.code, RpcCode::kAlreadyExists) << "ids of deleted groups are not reused";
  ASSERT_TRUE(delete_group(c.node(3), 4).error.ok());
  for (raft::NodeId id : {1, 2, 3})
    ASSERT_TRUE(eventually([&] { return !c.node(id).hosts_group(4); }, 10s)) << id;

  const std::vector<GroupDescriptor> expected = c.node(1).group_directory();
  ASSERT_EQ(expected.size(), 3u);  // 2, 3 and 11
  for (raft::NodeId id : {1, 2, 3}) {
    c.restart(id);
    ASSERT_NE(c.wait_leader({1, 2, 3}, 20s), 0u);
    ASSERT_TRUE(eventually(
        [&] {
          return c.node(id).group_directory() == expected && !c.node(id).hosts_group(4) &&
                 !c.node(id).hosts_group(10) && c.node(id).hosts_group(11);
        },
        10s))
        << id;
  }
  ASSERT_TRUE(group_put_retrying(c.node(1), 11, "k", "v11").ok());
  ReadResult r = group_read(c.node(2), 11, "k");
  ASSERT_TRUE(r.error.ok()) << r.error.message;
  EXPECT_EQ(r.value, "v11");
}

// A member cut off while a group is created learns of it from the etcd group's log when it comes
// back, creates its replica late, and the group's leader catches it up.
TEST(DataGroups, AMemberAwayWhenAGroupIsCreatedCreatesItsReplicaOnReturn) {
  NodeCluster c(3, /*lease_reads=*/false);
  ASSERT_NE(c.wait_leader({1, 2, 3}, 20s), 0u);
  c.router().isolate(3);
  raft::NodeId lead = c.wait_leader({1, 2}, 20s);
  ASSERT_NE(lead, 0u);
  GroupChangeResult made = create_group(c.node(lead), 0, {3, 1, 2});
  ASSERT_TRUE(made.error.ok()) << made.error.message;
  const raft::GroupId g = made.group.id;
  // Answered once the asking member's replica is up; member 1's may follow a moment later.
  ASSERT_TRUE(eventually([&] { return c.node(1).hosts_group(g); }, 10s));
  ASSERT_TRUE(group_put_retrying(c.node(1), g, "k", "while away").ok());
  EXPECT_FALSE(c.node(3).hosts_group(g));
  c.router().heal();
  ASSERT_TRUE(eventually([&] { return c.node(3).hosts_group(g); }, 20s));
  ASSERT_TRUE(eventually(
      [&] {
        ReadResult r = group_read(c.node(3), g, "k");
        return r.error.ok() && r.value == "while away";
      },
      20s));
}

GroupChangeResult change_replica(Node& n, bool add, raft::GroupId id, raft::NodeId member) {
  return await_change([&](Node::GroupChangeDone cb) {
    if (add) {
      n.add_group_replica(id, member, std::move(cb));
    } else {
      n.remove_group_replica(id, member, std::move(cb));
    }
  });
}

std::vector<raft::NodeId> group_voters(Node& n, raft::GroupId g) {
  auto done = std::make_shared<std::promise<std::vector<GroupInfo>>>();
  auto f = done->get_future();
  n.group_infos([done](const RpcError&, std::vector<GroupInfo>&& infos) {
    done->set_value(std::move(infos));
  });
  if (f.wait_for(10s) != std::future_status::ready) return {};
  for (const GroupInfo& i : f.get()) {
    if (i.id == g) return i.voters;
  }
  return {};
}

// A replica moves: added on a third member, which joins as a learner, is caught up by a snapshot
// of the group (its log starts past index 1, so nothing else could) and promoted; then one of
// the first two leaves, the leader among them included, and its member drops the replica. The
// member that left may not come back; the new one keeps the data through a restart.
TEST(DataGroups, AReplicaIsAddedBySnapshotPromotedAndAnotherRemoved) {
  NodeCluster c(3, /*lease_reads=*/false);
  ASSERT_NE(c.wait_leader({1, 2, 3}, 20s), 0u);
  GroupChangeResult made = create_group(c.node(1), 0, {1, 2});
  ASSERT_TRUE(made.error.ok()) << made.error.message;
  const raft::GroupId g = made.group.id;
  for (int i = 0; i < 50; ++i)
    ASSERT_TRUE(group_put_retrying(c.node(1), g, "k" + std::to_string(i), "v").ok());
  ASSERT_TRUE(eventually([&] { return c.node(2).hosts_group(g); }, 10s));
  ASSERT_TRUE(group_put_retrying(c.node(2), g, "k", "before the move").ok());

  GroupChangeResult added = change_replica(c.node(2), /*add=*/true, g, 3);
  ASSERT_TRUE(added.error.ok()) << added.error.message;
  EXPECT_EQ(added.group.replicas, (std::vector<raft::NodeId>{1, 2, 3}));
  EXPECT_EQ(added.group.founders, (std::vector<raft::NodeId>{1, 2}));
  ASSERT_TRUE(eventually([&] { return c.node(3).hosts_group(g); }, 10s));
  ASSERT_TRUE(eventually(
      [&] {
        return group_voters(c.node(1), g) == std::vector<raft::NodeId>{1, 2, 3};
      },
      20s))
      << "member 3 was not promoted";
  ReadResult r = group_read(c.node(3), g, "k");
  ASSERT_TRUE(r.error.ok()) << r.error.message;
  EXPECT_EQ(r.value, "before the move");
  EXPECT_EQ(group_read(c.node(3), g, "k49").value, "v");
  EXPECT_EQ(change_replica(c.node(1), true, g, 3).error.code, RpcCode::kAlreadyExists);
  EXPECT_EQ(change_replica(c.node(1), true, g, 99).error.code, RpcCode::kInvalidArgument);

  GroupChangeResult gone = change_replica(c.node(3), /*add=*/false, g, 1);
  ASSERT_TRUE(gone.error.ok()) << gone.error.message;
  EXPECT_EQ(gone.group.replicas, (std::vector<raft::NodeId>{2, 3}));
  ASSERT_TRUE(eventually([&] { return !c.node(1).hosts_group(g); }, 20s))
      << "member 1 kept its replica";
  ASSERT_TRUE(eventually(
      [&] {
        return group_voters(c.node(2), g) == std::vector<raft::NodeId>{2, 3};
      },
      20s));
  ASSERT_TRUE(group_put_retrying(c.node(3), g, "k", "after the move").ok());
  EXPECT_EQ(group_read(c.node(2), g, "k").value, "after the move");
  EXPECT_EQ(change_replica(c.node(2), true, g, 1).error.code, RpcCode::kFailedPrecondition)
      << "a member does not return to a group it left";
  EXPECT_EQ(change_replica(c.node(2), false, g, 1).error.code, RpcCode::kNotFound);
  ASSERT_TRUE(change_replica(c.node(2), false, g, 2).error.ok());
  EXPECT_EQ(change_replica(c.node(2), false, g, 3).error.code, RpcCode::kFailedPrecondition)
      << "the last replica stays";
  ASSERT_TRUE(eventually([&] { return !c.node(2).hosts_group(g); }, 20s));

  c.restart(3);
  ASSERT_TRUE(eventually([&] { return c.node(3).hosts_group(g); }, 10s));
  ASSERT_TRUE(eventually(
      [&] {
        ReadResult after = group_read(c.node(3), g, "k");
        return after.error.ok() && after.value == "after the move";
      },
      20s));
  EXPECT_EQ(group_read(c.node(3), g, "k7").value, "v");
}

// A member cut off while it is removed from a group never hears of it from the group (a group
// does not talk to members it removed): it learns it from the directory, where the group's
// leader reports the removal done, and drops its replica.
TEST(DataGroups, AMemberCutOffWhileRemovedDropsItsReplicaOnReturn) {
  NodeCluster c(3, /*lease_reads=*/false);
  ASSERT_NE(c.wait_leader({1, 2, 3}, 20s), 0u);
  GroupChangeResult made = create_group(c.node(1), 0, {1, 2, 3});
  ASSERT_TRUE(made.error.ok()) << made.error.message;
  const raft::GroupId g = made.group.id;
  ASSERT_TRUE(group_put_retrying(c.node(1), g, "k", "v").ok());
  ASSERT_TRUE(
      eventually([&] { return c.node(2).hosts_group(g) && c.node(3).hosts_group(g); }, 10s));
  c.router().isolate(3);
  raft::NodeId lead = c.wait_leader({1, 2}, 20s);
  ASSERT_NE(lead, 0u);
  ASSERT_TRUE(change_replica(c.node(lead), /*add=*/false, g, 3).error.ok());
  ASSERT_TRUE(eventually(
      [&] {
        for (const GroupDescriptor& d : c.node(1).group_directory()) {
          if (d.id == g) return d.gone == std::vector<raft::NodeId>{3};
        }
        return false;
      },
      30s))
      << "the group's leader did not report member 3 gone";
  EXPECT_TRUE(c.node(3).hosts_group(g)) << "cut off, member 3 cannot know yet";
  c.router().heal();
  ASSERT_TRUE(eventually([&] { return !c.node(3).hosts_group(g); }, 30s));
  ASSERT_TRUE(group_put_retrying(c.node(2), g, "k", "after").ok());
  EXPECT_EQ(group_read(c.node(1), g, "k").value, "after");
}

// A group written without pause has its log compacted too; a replica cut off meanwhile is
// then behind the leader's first entry, and is caught up by a snapshot of the group, in place
// of the state it had.
TEST(DataGroups, ABusyGroupsLogIsCompactedAndALaggingReplicaGetsASnapshot) {
  NodeCluster c(3, /*lease_reads=*/false, /*groups=*/1, [](NodeOptions& o) {
    o.group_compact_interval_ms = 50;
    o.group_compact_min_segments = 1;
    o.group_log_entries = 40;
    o.group_catch_up_entries = 5;
  });
  ASSERT_NE(c.wait_leader({1, 2, 3}, 20s), 0u);
  const raft::GroupId g = 2;
  ASSERT_TRUE(group_put_retrying(c.node(1), g, "before", "cut").ok());
  ASSERT_TRUE(eventually([&] { return group_read(c.node(3), g, "before").value == "cut"; }, 10s));
  c.router().isolate(3);
  // Compactions from here on are of the busy log (a group cut off from a replica never
  // quiesces), past everything member 3 holds.
  const uint64_t compacted_1 = c.node(1).groups_status().logs_compacted;
  const uint64_t compacted_2 = c.node(2).groups_status().logs_compacted;
  for (int i = 0; i < 200; ++i) {
    RpcError e = group_put_retrying(c.node(1), g, "k" + std::to_string(i), std::to_string(i));
    ASSERT_TRUE(e.ok()) << i << ": " << e.message;
  }
  ASSERT_TRUE(group_put_retrying(c.node(2), g, "before", "overwritten").ok());
  ASSERT_TRUE(eventually(
      [&] {
        return c.node(1).groups_status().logs_compacted > compacted_1 &&
               c.node(2).groups_status().logs_compacted > compacted_2;
      },
      10s))
      << "the busy group's log was never compacted";
  c.router().heal();
  ASSERT_TRUE(eventually(
      [&] {
        ReadResult r = group_read(c.node(3), g, "k199");
        return r.error.ok() && r.value == "199";
      },
      20s));
  EXPECT_EQ(group_read(c.node(3), g, "k0").value, "0");
  EXPECT_EQ(group_read(c.node(3), g, "before").value, "overwritten");
  EXPECT_GE(c.node(3).groups_status().snapshots_installed, 1u);
  EXPECT_GE(c.node(1).groups_status().snapshots_sent + c.node(2).groups_status().snapshots_sent,
            1u);
  // After a restart the replica starts from the snapshot it installed and its log since.
  c.restart(3);
  ASSERT_TRUE(eventually(
      [&] {
        ReadResult r = group_read(c.node(3), g, "k150");
        return r.error.ok() && r.value == "150";
      },
      20s));
}

NodeOptions single_member(const std::string& dir, uint32_t groups) {
  NodeOptions o;
  o.id = 1;
  o.cluster_id = 0xc1;
  o.name = "m1";
  o.data_dir = dir;
  o.initial_members = {InitialMember{1, "m1", {"http://member-1"}}};
  o.cluster_token = "node-test";
  o.tick_ms = 50;
  o.election_ticks = 10;
  o.request_timeout_ms = 10000;
  o.initial_groups = groups;
  return o;
}

// A member of its own, opened and started on a router of its own; stopped when it goes.
struct SoloNode {
  Router router;
  std::unique_ptr<Node> node;
  explicit SoloNode(const NodeOptions& o) {
    storage::Status st = Node::open(o, &node);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    if (node == nullptr) return;
    router.add(node.get());
    node->start(&router, [](const std::string& why) { ADD_FAILURE() << "fatal: " << why; });
  }
  ~SoloNode() {
    if (node != nullptr) node->stop(0);
  }
};

// A first start that stopped after creating some of the member's data groups, before the etcd
// group: the next start creates what is missing, and every group works.
TEST(DataGroups, AFirstStartCutShortCreatesWhatIsMissingTheNextTime) {
  storage::testing::TempDir dir("groups-first-start");
  const std::string data = storage::join_path(dir.path(), "m1");
  {
    auto fs = storage::make_posix_file_system();
    ASSERT_TRUE(fs->create_dir(data).is_ok());
    ASSERT_TRUE(fs->create_dir(storage::join_path(data, "member")).is_ok());
    std::unique_ptr<storage::Wal> wal;
    ASSERT_TRUE(
        storage::Wal::open(fs.get(), storage::join_path(data, "member/wal"), {}, &wal).is_ok());
    raft::ConfState one;
    one.voters = {1};
    ASSERT_TRUE(wal->bootstrap({{2, one}, {3, one}}).is_ok());
  }
  SoloNode m(single_member(data, 4));
  ASSERT_NE(m.node, nullptr);
  EXPECT_EQ(m.node->groups_status().hosted, 4u);
  for (raft::GroupId g = 2; g <= 5; ++g) {
    RpcError e = group_put_retrying(*m.node, g, "k", "v");
    EXPECT_TRUE(e.ok()) << "group " << g << ": " << e.message;
  }
}

// The groups' store applied past what the log holds (the log lost its tail): the member refuses
// to start, naming the group, instead of skipping the log's new entries as already applied.
TEST(DataGroups, AStoreAheadOfTheLogIsRefusedAtStart) {
  storage::testing::TempDir dir("groups-ahead");
  const std::string data = storage::join_path(dir.path(), "m1");
  {
    SoloNode m(single_member(data, 2));
    ASSERT_NE(m.node, nullptr);
    ASSERT_TRUE(group_put_retrying(*m.node, 2, "k", "v").ok());
  }
  {
    std::unique_ptr<kv::GroupStore> store;
    ASSERT_TRUE(kv::GroupStore::open(storage::join_path(data, "member/groups"), &store).is_ok());
    ASSERT_TRUE(store->apply({{3, 1000, 1, ""}}).is_ok());
  }
  std::unique_ptr<Node> node;
  storage::Status st = Node::open(single_member(data, 2), &node);
  EXPECT_EQ(st.code(), storage::Status::Code::kCorruption) << st.to_string();
  EXPECT_NE(st.message().find("group 3"), std::string::npos) << st.message();
}

// Quiesced data groups' logs are compacted (their state flushed first), so the log can let go
// of its segments; a restarted member keeps every value, and the groups take writes again.
TEST(DataGroups, QuiescedGroupsLogsAreCompactedAndSurviveARestart) {
  storage::testing::TempDir dir("groups-compact");
  NodeOptions o = single_member(storage::join_path(dir.path(), "m1"), 6);
  o.group_compact_interval_ms = 50;
  o.group_compact_min_segments = 1;
  {
    SoloNode m(o);
    ASSERT_NE(m.node, nullptr);
    for (raft::GroupId g = 2; g <= 7; ++g) {
      for (int i = 0; i < 5; ++i) {
        RpcError e =
            group_put_retrying(*m.node, g, "k" + std::to_string(i), "v" + std::to_string(g));
        ASSERT_TRUE(e.ok()) << e.message;
      }
    }
    ASSERT_TRUE(eventually([&] { return m.node->groups_status().logs_compacted >= 6; }, 20s))
        << "compacted " << m.node->groups_status().logs_compacted;
  }
  SoloNode m(o);
  ASSERT_NE(m.node, nullptr);
  for (raft::GroupId g = 2; g <= 7; ++g) {
    ASSERT_TRUE(group_put_retrying(*m.node, g, "after", "restart").ok()) << g;
    for (int i = 0; i < 5; ++i) {
      ReadResult r = group_read(*m.node, g, "k" + std::to_string(i));
      ASSERT_TRUE(r.error.ok()) << r.error.message;
      EXPECT_EQ(r.value, "v" + std::to_string(g));
    }
  }
}

// Three members compact their quiesced groups' logs; a member restarted afterwards catches up
// without any snapshot (none can be needed: every replica held the whole log that went), and
// every group takes writes through it.
TEST(DataGroups, CompactedGroupsNeedNoSnapshotWhenAMemberRestarts) {
  constexpr uint32_t kGroups = 9;
  NodeCluster c(3, /*lease_reads=*/false, kGroups, [](NodeOptions& o) {
    o.group_compact_interval_ms = 50;
    o.group_compact_min_segments = 1;
  });
  ASSERT_NE(c.wait_leader({1, 2, 3}, 20s), 0u);
  for (raft::GroupId g = 2; g < 2 + kGroups; ++g)
    ASSERT_TRUE(group_put_retrying(c.node(1 + g % 3), g, "k", "v1").ok()) << g;
  ASSERT_TRUE(eventually(
      [&] {
        for (raft::NodeId id : {1, 2, 3}) {
          if (c.node(id).groups_status().logs_compacted < kGroups) return false;
        }
        return true;
      },
      30s));
  c.restart(3);
  for (raft::GroupId g = 2; g < 2 + kGroups; ++g) {
    RpcError e = group_put_retrying(c.node(3), g, "k", "v2");
    ASSERT_TRUE(e.ok()) << g << ": " << e.message;
    ReadResult r = group_read(c.node(1), g, "k");
    ASSERT_TRUE(r.error.ok()) << r.error.message;
    EXPECT_EQ(r.value, "v2");
  }
}

}  // namespace
}  // namespace chorus::server
