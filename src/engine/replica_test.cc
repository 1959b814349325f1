// The replica driver on the real write-ahead log (over an in-memory disk), three replicas of one
// group exchanging messages in a queue: rounds, reads, time and configuration changes.
#include "engine/replica.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <memory>

#include "storage/fault_fs.h"

namespace chorus::engine {
namespace {

constexpr raft::GroupId kGroup = 7;
constexpr uint64_t kTick = 1000;

struct Member {
  storage::FaultFileSystem fs;
  std::unique_ptr<storage::Wal> wal;
  std::unique_ptr<Replica> replica;
  std::vector<raft::Entry> applied;
  std::vector<AppliedConf> confs;
  std::vector<ReadPoint> reads;
  uint64_t syncs = 0;
  uint64_t early_sent = 0;
};

class Group {
 public:
  explicit Group(int n, std::function<void(raft::Config&)> tweak = nullptr)
      : tweak_(std::move(tweak)) {
    raft::ConfState cs;
    for (int i = 1; i <= n; ++i)
      cs.voters.push_back(static_cast<raft::NodeId>(i));
    for (int i = 1; i <= n; ++i) {
      auto m = std::make_unique<Member>();
      storage::WalOptions wo;
      wo.segment_bytes = 1 << 20;
      EXPECT_TRUE(storage::Wal::open(&m->fs, "wal", wo, &m->wal).is_ok());
      EXPECT_TRUE(m->wal->bootstrap(kGroup, cs).is_ok());
      members_[static_cast<raft::NodeId>(i)] = std::move(m);
      start(static_cast<raft::NodeId>(i));
    }
  }

  void start(raft::NodeId id) {
    Member& m = *members_.at(id);
    ReplicaOptions o;
    o.raft.id = id;
    o.raft.group = kGroup;
    o.raft.storage = m.wal->group(kGroup);
    o.raft.election_ticks = 10;
    o.raft.heartbeat_ticks = 1;
    o.raft.seed = id * 31;
    o.tick_us = kTick;
    if (tweak_) tweak_(o.raft);
    m.replica = std::make_unique<Replica>(o, now_);
  }

  Member& at(raft::NodeId id) { return *members_.at(id); }
  Replica& replica(raft::NodeId id) { return *members_.at(id)->replica; }

  // Runs every open round of every member and delivers messages until all is quiet.
  void settle() {
    for (int guard = 0; guard < 10000; ++guard) {
      bool busy = false;
      for (auto& [id, m] : members_) {
        while (m->replica->has_round()) {
          busy = true;
          run_round(*m);
        }
      }
      if (!queue_.empty()) {
        busy = true;
        raft::Message msg = std::move(queue_.front());
        queue_.pop_front();
        auto it = members_.find(msg.to);
        if (it != members_.end()) (void)it->second->replica->step(std::move(msg));
      }
      if (!busy) return;
    }
    FAIL() << "the group never settled";
  }

  void run_round(Member& m) {
    Round* r = m.replica->begin_round();
    ASSERT_NE(r, nullptr);
    m.early_sent += r->early_messages.size();
    for (auto& msg : r->early_messages)
      queue_.push_back(std::move(msg));
    if (r->write) {
      storage::WalBatch batch;
      m.replica->append_to(&batch);
      ASSERT_TRUE(m.wal->write(batch).is_ok());
      if (r->sync) {
        ASSERT_TRUE(m.wal->sync().is_ok());
        ++m.syncs;
      }
    }
    RoundResult out;
    m.replica->finish_round(&out);
    EXPECT_EQ(out.error, "");
    for (auto& msg : out.messages)
      queue_.push_back(std::move(msg));
    for (auto& e : out.committed)
      m.applied.push_back(std::move(e));
    for (auto& c : out.confs)
      m.confs.push_back(std::move(c));
    for (auto& p : out.reads)
      m.reads.push_back(std::move(p));
  }

  // Advances every member's clock by `ticks` ticks, settling after each.
  void advance(uint64_t ticks) {
    for (uint64_t t = 0; t < ticks; ++t) {
      now_ += kTick;
      for (auto& [id, m] : members_)
        m->replica->on_clock(now_);
      settle();
    }
  }

  raft::NodeId elect() {
    for (int i = 0; i < 100; ++i) {
      advance(1);
      for (auto& [id, m] : members_) {
        if (m->replica->core().role() == raft::Role::kLeader) return id;
      }
    }
    return raft::kNoNode;
  }

  // Elects a leader and commits `data` through it everywhere; returns the leader.
  raft::NodeId elect_and_commit(const std::string& data) {
    raft::NodeId leader = elect();
    EXPECT_NE(leader, raft::kNoNode);
    if (leader == raft::kNoNode) return leader;
    EXPECT_EQ(replica(leader).propose(data), raft::Error::kOk);
    settle();
    return leader;
  }

  uint64_t now() const { return now_; }
  std::deque<raft::Message>& queue() { return queue_; }

 private:
  std::function<void(raft::Config&)> tweak_;
  std::map<raft::NodeId, std::unique_ptr<Member>> members_;
  std::deque<raft::Message> queue_;
  uint64_t now_ = 0;
};

TEST(ReplicaTest, ProposalCommitsEverywhereThroughTheLog) {
  Group g(3);
  raft::NodeId leader = g.elect_and_commit("x=1");
  ASSERT_NE(leader, raft::kNoNode);
  for (raft::NodeId id : {1, 2, 3}) {
    Member& m = g.at(id);
    ASSERT_FALSE(m.applied.empty()) << id;
    EXPECT_EQ(m.applied.back().data, "x=1") << id;
    // The entry is in the member's log, read back through the Wal's view of the group.
    std::vector<raft::Entry> got;
    const raft::LogStorage* log = m.wal->group(kGroup);
    raft::Index i = m.applied.back().index;
    ASSERT_EQ(log->entries(i, i + 1, raft::kNoLimit, &got), raft::Error::kOk);
    EXPECT_EQ(got.at(0).data, "x=1");
  }
  // The leader's appends left before its own write; a follower's answers never do.
  EXPECT_GT(g.at(leader).early_sent, 0u);
  for (raft::NodeId id : {1, 2, 3}) {
    if (id != leader) {
      EXPECT_EQ(g.at(id).early_sent, 0u) << id;
    }
  }
}

TEST(ReplicaTest, ReadersShareOneRoundAndSettleAtTheCommitIndex) {
  Group g(3);
  raft::NodeId leader = g.elect_and_commit("a");
  ASSERT_NE(leader, raft::kNoNode);
  Replica& r = g.replica(leader);
  r.read(11);
  r.read(12);
  r.read(13);
  EXPECT_EQ(r.reads_waiting(), 3u);
  EXPECT_TRUE(r.start_reads(g.now() + 100 * kTick).empty());
  g.settle();
  ASSERT_EQ(g.at(leader).reads.size(), 1u);
  const ReadPoint& p = g.at(leader).reads.front();
  EXPECT_EQ(p.readers, (std::vector<uint64_t>{11, 12, 13}));
  EXPECT_EQ(p.index, r.core().log().committed());
  EXPECT_EQ(r.reads_waiting(), 0u);
}

TEST(ReplicaTest, ReadsWithoutALeaderAreRefusedAndStalledRoundsExpire) {
  Group g(3);
  // No election yet: nobody leads.
  g.replica(1).read(5);
  EXPECT_EQ(g.replica(1).start_reads(10 * kTick), (std::vector<uint64_t>{5}));
  EXPECT_EQ(g.replica(1).reads_waiting(), 0u);

  raft::NodeId leader = g.elect();
  ASSERT_NE(leader, raft::kNoNode);
  Replica& r = g.replica(leader);
  r.read(7);
  ASSERT_TRUE(r.start_reads(g.now() + 5 * kTick).empty());
  // The confirmations are lost: the round never settles.
  while (r.has_round())
    g.run_round(g.at(leader));
  g.queue().clear();
  EXPECT_TRUE(r.expire_reads(g.now() + 4 * kTick).empty());
  EXPECT_EQ(r.expire_reads(g.now() + 5 * kTick), (std::vector<uint64_t>{7}));
  EXPECT_EQ(r.reads_waiting(), 0u);
}

TEST(ReplicaTest, MissedTicksArriveAtOnceBeforeAnythingElse) {
  raft::MemoryLogStorage log(raft::ConfState{{1}, {}, {}, {}, false});
  ReplicaOptions o;
  o.raft.id = 1;
  o.raft.storage = &log;
  o.raft.election_ticks = 10;
  o.tick_us = 100;
  Replica r(o, 1000);
  EXPECT_EQ(r.on_clock(1099), 0u);
  EXPECT_EQ(r.on_clock(1100), 1u);
  EXPECT_EQ(r.next_tick_us(), 1200u);
  // A stall of 2.5 ms: 25 ticks at once, enough for the lone voter to elect itself.
  EXPECT_EQ(r.on_clock(3650), 25u);
  EXPECT_EQ(r.core().role(), raft::Role::kLeader);
  r.restart_clock(10'000);
  EXPECT_EQ(r.on_clock(10'099), 0u);
  EXPECT_EQ(r.next_tick_us(), 10'100u);
}

TEST(ReplicaTest, ConfigurationChangesApplyToTheCoreAsTheyAreHandedOn) {
  Group g(3);
  raft::NodeId leader = g.elect();
  ASSERT_NE(leader, raft::kNoNode);
  raft::ConfChange cc;
  cc.changes.push_back({raft::ConfChangeType::kAddLearner, 9});
  ASSERT_EQ(g.replica(leader).propose_conf_change(cc), raft::Error::kOk);
  g.settle();
  for (raft::NodeId id : {1, 2, 3}) {
    Member& m = g.at(id);
    ASSERT_EQ(m.confs.size(), 1u) << id;
    EXPECT_EQ(m.confs[0].change.changes, cc.changes);
    EXPECT_EQ(m.confs[0].conf.learners, (std::vector<raft::NodeId>{9}));
    // The configuration change is among the committed entries, at the index reported.
    bool found = false;
    for (const raft::Entry& e : m.applied)
      found = found || (e.index == m.confs[0].index && e.type == raft::EntryType::kConfChange);
    EXPECT_TRUE(found) << id;
    EXPECT_EQ(m.replica->core().status().config.learners, (std::vector<raft::NodeId>{9}));
  }
}

TEST(ReplicaTest, AnUndecodableConfigurationChangeStopsTheReplica) {
  raft::MemoryLogStorage log(raft::ConfState{{1}, {}, {}, {}, false});
  log.append({raft::Entry{1, 1, raft::EntryType::kConfChange, "\xff\xff not a change"}});
  log.set_hard_state(raft::HardState{1, 1, 1});
  ReplicaOptions o;
  o.raft.id = 1;
  o.raft.storage = &log;
  Replica r(o, 0);
  ASSERT_TRUE(r.has_round());
  ASSERT_NE(r.begin_round(), nullptr);
  RoundResult out;
  r.finish_round(&out);
  EXPECT_EQ(out.error, "undecodable configuration change at index 1");
  EXPECT_TRUE(out.confs.empty());
}

TEST(ReplicaTest, TheRoundsRecordsAreTheReadysInRecoveryOrder) {
  raft::MemoryLogStorage log(raft::ConfState{{1}, {}, {}, {}, false});
  ReplicaOptions o;
  o.raft.id = 1;
  o.raft.group = kGroup;
  o.raft.storage = &log;
  o.raft.election_ticks = 10;
  o.tick_us = 1;
  Replica r(o, 0);
  r.on_clock(30);
  ASSERT_EQ(r.core().role(), raft::Role::kLeader);
  ASSERT_EQ(r.propose("v"), raft::Error::kOk);
  Round* round = r.begin_round();
  ASSERT_NE(round, nullptr);
  EXPECT_TRUE(round->write);
  EXPECT_TRUE(round->sync);
  storage::WalBatch got;
  r.append_to(&got);
  storage::WalBatch want;
  if (!round->entries->empty()) want.append(kGroup, *round->entries);
  if (round->hard_state) want.set_hard_state(kGroup, *round->hard_state);
  EXPECT_EQ(got.encoded(), want.encoded());
  EXPECT_FALSE(r.has_round());  // one round at a time
  RoundResult out;
  r.finish_round(&out);
}

TEST(ReplicaTest, DriverMutationsAreTheReplicasOwn) {
  // forget_vote: the vote never reaches the log; ack_before_durable: a follower's answers
  // leave before its write.
  Group g(3, [](raft::Config& c) {
    c.unsafe.forget_vote = true;
    c.unsafe.ack_before_durable = true;
  });
  ASSERT_NE(g.elect(), raft::kNoNode);
  for (raft::NodeId id : {1, 2, 3}) {
    EXPECT_EQ(g.at(id).wal->group(kGroup)->hard_state().vote, raft::kNoNode) << id;
    EXPECT_GT(g.at(id).early_sent, 0u) << id;
  }
}

// A write holding two configuration changes is torn at every byte: whatever recovery keeps, a
// log that holds the second change holds a commit covering the first (append_ready writes a
// hard state before each change). A member restarting with both changes and the commit of
// neither would campaign in the configuration before them.
TEST(ReplicaRecords, ATornWriteThatKeepsAChangeKeepsTheCommitOfTheOneBefore) {
  storage::FaultFileSystem fs;
  storage::WalOptions wo;
  wo.segment_bytes = 1 << 20;
  const raft::ConfState conf{{1, 2, 3}, {}, {}, {}, false};
  std::string image;
  std::string path;
  {
    std::unique_ptr<storage::Wal> wal;
    ASSERT_TRUE(storage::Wal::open(&fs, "wal", wo, &wal).is_ok());
    ASSERT_TRUE(wal->bootstrap(kGroup, conf).is_ok());
    storage::WalBatch first;
    std::vector<raft::Entry> normal;
    for (raft::Index i = 1; i <= 4; ++i)
      normal.push_back(raft::Entry{1, i, raft::EntryType::kNormal, "x"});
    append_ready(&first, kGroup, nullptr, normal, raft::HardState{1, 1, 4});
    ASSERT_TRUE(wal->commit(first).is_ok());
    raft::ConfChange enter;
    enter.changes = {{raft::ConfChangeType::kAddNode, 4}, {raft::ConfChangeType::kRemoveNode, 3}};
    raft::ConfChange leave;  // an empty change leaves a joint configuration
    std::vector<raft::Entry> changes = {
        raft::Entry{1, 5, raft::EntryType::kConfChange, enter.encode()},
        raft::Entry{1, 6, raft::EntryType::kConfChange, leave.encode()},
        raft::Entry{1, 7, raft::EntryType::kNormal, "y"}};
    storage::WalBatch second;
    append_ready(&second, kGroup, nullptr, changes, raft::HardState{1, 1, 7});
    ASSERT_TRUE(wal->commit(second).is_ok());
    path = "wal/" + wal->segment_names().back();
    image = *fs.contents(path);
  }
  const size_t end = image.find_last_not_of('\0') + 1;
  int kept_change = 0;
  for (size_t cut = 0; cut <= end; ++cut) {
    *fs.contents(path) = image.substr(0, cut) + std::string(image.size() - cut, '\0');
    std::unique_ptr<storage::Wal> wal;
    storage::Status st = storage::Wal::open(&fs, "wal", wo, &wal);
    if (!st.is_ok() || wal->group(kGroup) == nullptr) continue;  // cut inside the bootstrap
    const raft::LogStorage* log = wal->group(kGroup);
    raft::Index commit = log->hard_state().commit;
    EXPECT_LE(commit, log->last_index()) << "cut " << cut;
    if (log->last_index() >= 6) {
      ++kept_change;
      EXPECT_GE(commit, 5u) << "cut " << cut << ": the second change survived, the commit of "
                            << "the first did not";
    }
  }
  EXPECT_GT(kept_change, 10);
}

}  // namespace
}  // namespace chorus::engine
