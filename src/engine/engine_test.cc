// Many groups on three members, each member an Engine over one write-ahead log: a round of
// every group with work costs one write and one fdatasync.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <deque>
#include <limits>
#include <map>
#include <memory>

#include "storage/fault_fs.h"
#include "storage/forwarding_fs.h"

namespace chorus::engine {
namespace {

constexpr uint64_t kTick = 1000;
constexpr raft::GroupId kGroups = 100;

class CountingFileSystem final : public storage::ForwardingFileSystem {
 public:
  explicit CountingFileSystem(storage::FileSystem* base) : ForwardingFileSystem(base) {}
  uint64_t syncs = 0;

 protected:
  storage::Status on_file_sync() override {
    ++syncs;
    return storage::Status::ok();
  }
};

struct Member {
  explicit Member(const EngineOptions& options) : engine(options) {}
  storage::FaultFileSystem disk;
  CountingFileSystem fs{&disk};
  std::unique_ptr<storage::Wal> wal;
  Engine engine;
  std::map<raft::GroupId, std::vector<std::string>> applied;
  uint64_t rounds = 0;
  uint64_t synced_rounds = 0;
};

class Cluster {
 public:
  explicit Cluster(bool quiesce = false, bool liveness = true) {
    raft::ConfState cs{{1, 2, 3}, {}, {}, {}, false};
    for (raft::NodeId id = 1; id <= 3; ++id) {
      // With quiescence, member liveness is on (an engine without it keeps its groups
      // awake); the test delivers group messages only, and no member is ever judged down.
      EngineOptions eo;
      eo.id = id;
      eo.incarnation = id;
      if (quiesce && liveness) {
        eo.heartbeat_us = kTick;
        eo.dead_after_us = std::numeric_limits<uint64_t>::max() / 2;
      }
      auto m = std::make_unique<Member>(eo);
      storage::WalOptions wo;
      wo.segment_bytes = 1 << 20;
      EXPECT_TRUE(storage::Wal::open(&m->fs, "wal", wo, &m->wal).is_ok());
      for (raft::GroupId g = 1; g <= kGroups; ++g) {
        EXPECT_TRUE(m->wal->bootstrap(g, cs).is_ok());
        ReplicaOptions o;
        o.raft.id = id;
        o.raft.group = g;
        o.raft.storage = m->wal->group(g);
        o.raft.election_ticks = 10;
        o.raft.heartbeat_ticks = 1;
        // Seeded by member and group, so the groups do not time out in lockstep.
        o.raft.seed = id * 1'000'003 + g * 7919;
        o.raft.quiesce = quiesce;
        o.tick_us = kTick;
        m->engine.add(o, 0);
      }
      members_[id] = std::move(m);
    }
  }

  Member& at(raft::NodeId id) { return *members_.at(id); }
  uint64_t now() const { return now_; }

  // One engine round of member `m`; returns how many groups took part.
  size_t round(Member& m) {
    std::vector<raft::GroupId> damaged;
    const std::vector<GroupRound>& rounds = m.engine.begin_round(&damaged);
    EXPECT_TRUE(damaged.empty());
    ++m.rounds;
    const size_t groups = rounds.size();
    for (const GroupRound& g : rounds) {
      for (auto& msg : g.round->early_messages)
        queue_.push_back(std::move(msg));
    }
    if (m.engine.must_write()) {
      storage::WalBatch batch;
      m.engine.append_to(&batch);
      EXPECT_TRUE(m.wal->write(batch).is_ok());
      if (m.engine.must_sync()) {
        EXPECT_TRUE(m.wal->sync().is_ok());
        ++m.synced_rounds;
      }
    }
    std::vector<std::pair<raft::GroupId, RoundResult>> out;
    m.engine.finish_round(&out);
    for (auto& [group, result] : out) {
      EXPECT_EQ(result.error, "");
      for (auto& msg : result.messages)
        queue_.push_back(std::move(msg));
      for (const raft::Entry& e : result.committed) {
        if (e.type == raft::EntryType::kNormal && !e.data.empty())
          m.applied[group].push_back(e.data);
      }
    }
    return groups;
  }

  // Delivers every message in flight.
  void deliver() {
    std::deque<raft::Message> in_flight;
    in_flight.swap(queue_);
    for (auto& msg : in_flight) {
      Replica* r = members_.at(msg.to)->engine.find(msg.group);
      ASSERT_NE(r, nullptr);
      (void)r->step(std::move(msg));
    }
  }

  // Every member runs one round with whatever its groups have, then every message in flight
  // is delivered; until nothing is left.
  void settle() {
    for (int guard = 0; guard < 1000; ++guard) {
      bool busy = false;
      for (auto& [id, m] : members_) {
        if (m->engine.has_round()) {
          busy = true;
          round(*m);
        }
      }
      busy = busy || !queue_.empty();
      deliver();
      if (!busy) return;
    }
    FAIL() << "never settled";
  }

  // Returns the ticks the engines delivered to their replicas.
  uint64_t advance(uint64_t ticks) {
    uint64_t delivered = 0;
    for (uint64_t t = 0; t < ticks; ++t) {
      now_ += kTick;
      for (auto& [id, m] : members_)
        delivered += m->engine.on_clock(now_);
      settle();
    }
    return delivered;
  }

  // Advances until every group has a leader (200 ticks at most); returns the leaders.
  std::map<raft::GroupId, raft::NodeId> elect_all() {
    std::map<raft::GroupId, raft::NodeId> out;
    for (int i = 0; i < 200 && out.size() < kGroups; ++i) {
      advance(1);
      out = leaders();
    }
    return out;
  }

  // The leader of every group, once each has one.
  std::map<raft::GroupId, raft::NodeId> leaders() {
    std::map<raft::GroupId, raft::NodeId> out;
    for (auto& [id, m] : members_) {
      for (const auto& [g, r] : m->engine.replicas()) {
        if (r->core().role() == raft::Role::kLeader) out[g] = id;
      }
    }
    return out;
  }

 private:
  std::map<raft::NodeId, std::unique_ptr<Member>> members_;
  std::deque<raft::Message> queue_;
  uint64_t now_ = 0;
};

TEST(EngineTest, OneSyncPerRoundServesEveryGroupWithWork) {
  Cluster c;
  std::map<raft::GroupId, raft::NodeId> leaders = c.elect_all();
  ASSERT_EQ(leaders.size(), kGroups);
  // Leadership is spread: per-group seeds keep the groups from electing the same member.
  std::map<raft::NodeId, int> led;
  for (const auto& [g, id] : leaders)
    ++led[id];
  EXPECT_EQ(led.size(), 3u);

  // One proposal to every group at its leader, then one round per member: each leader writes
  // the entries of every group it leads with one fdatasync.
  for (raft::NodeId id = 1; id <= 3; ++id) {
    Member& m = c.at(id);
    uint64_t syncs_before = m.fs.syncs;
    for (const auto& [g, leader] : leaders) {
      if (leader != id) continue;
      ASSERT_EQ(m.engine.find(g)->propose("v" + std::to_string(g)), raft::Error::kOk);
    }
    ASSERT_TRUE(m.engine.has_round());
    EXPECT_GE(c.round(m), static_cast<size_t>(led[id]));
    EXPECT_EQ(m.fs.syncs - syncs_before, 1u) << led[id] << " groups' entries, one fdatasync";
  }
  // The appends reach the followers: each member appends for every group it follows, again
  // with one fdatasync.
  c.deliver();
  for (raft::NodeId id = 1; id <= 3; ++id) {
    Member& m = c.at(id);
    uint64_t syncs_before = m.fs.syncs;
    EXPECT_EQ(c.round(m), static_cast<size_t>(kGroups - led[id]));
    EXPECT_EQ(m.fs.syncs - syncs_before, 1u) << kGroups - led[id] << " groups, one fdatasync";
  }
  c.settle();
  for (raft::NodeId id = 1; id <= 3; ++id) {
    for (raft::GroupId g = 1; g <= kGroups; ++g) {
      ASSERT_EQ(c.at(id).applied[g], (std::vector<std::string>{"v" + std::to_string(g)}))
          << "member " << id << " group " << g;
    }
    EXPECT_EQ(c.at(id).wal->group(1)->hard_state().commit,
              c.at(id).engine.find(1)->core().log().committed());
  }
}

// A group removed from every member is gone from each engine and log; the others keep working.
TEST(EngineTest, ARemovedGroupIsGoneAndTheOthersCarryOn) {
  Cluster c;
  std::map<raft::GroupId, raft::NodeId> leaders = c.elect_all();
  ASSERT_EQ(leaders.size(), kGroups);
  c.settle();
  for (raft::NodeId id = 1; id <= 3; ++id) {
    Member& m = c.at(id);
    ASSERT_TRUE(m.engine.remove(5));
    EXPECT_FALSE(m.engine.remove(5));
    ASSERT_TRUE(m.wal->remove(5).is_ok());
    EXPECT_EQ(m.engine.find(5), nullptr);
    EXPECT_EQ(m.engine.replicas().size(), kGroups - 1);
    raft::Message stray;
    stray.group = 5;
    stray.from = id == 1 ? 2 : 1;
    stray.to = id;
    stray.type = raft::MessageType::kHeartbeat;
    EXPECT_EQ(m.engine.step(std::move(stray), c.now()), raft::Error::kWrongGroup);
  }
  Member& leader = c.at(leaders[6]);
  ASSERT_EQ(leader.engine.find(6)->propose("after"), raft::Error::kOk);
  // No removal while a round is open: its records may be in the batch.
  std::vector<raft::GroupId> damaged;
  ASSERT_FALSE(leader.engine.begin_round(&damaged).empty());
  EXPECT_FALSE(leader.engine.remove(6));
  storage::WalBatch batch;
  leader.engine.append_to(&batch);
  ASSERT_TRUE(leader.wal->commit(batch).is_ok());
  std::vector<std::pair<raft::GroupId, RoundResult>> out;
  leader.engine.finish_round(&out);  // its messages are lost: the leader sends them again
  c.advance(20);
  for (raft::NodeId id = 1; id <= 3; ++id)
    EXPECT_EQ(c.at(id).applied[6], (std::vector<std::string>{"after"})) << "member " << id;
}

TEST(EngineTest, TheEarliestTickAmongTheReplicasIsTheEngines) {
  raft::MemoryLogStorage a(raft::ConfState{{1}, {}, {}, {}, false});
  raft::MemoryLogStorage b(raft::ConfState{{1}, {}, {}, {}, false});
  Engine e;
  ReplicaOptions o;
  o.raft.id = 1;
  o.raft.group = 1;
  o.raft.storage = &a;
  o.tick_us = 100;
  e.add(o, 0);
  o.raft.group = 2;
  o.raft.storage = &b;
  o.tick_us = 70;
  e.add(o, 0);
  EXPECT_EQ(e.next_tick_us(), 70u);
  EXPECT_EQ(e.on_clock(150), 3u);  // 100 for group 1; 70 and 140 for group 2
  EXPECT_EQ(e.next_tick_us(), 200u);
  EXPECT_EQ(e.find(3), nullptr);
  EXPECT_FALSE(e.in_round());
}

// Idle groups quiesce, and then an engine neither ticks them nor looks at them for work: a
// tick costs nothing per idle group. A proposal to one group wakes just that group, on every
// member, and commits; the others stay quiet.
TEST(EngineTest, QuiescedReplicasAreNeitherTickedNorLookedAt) {
  Cluster c(/*quiesce=*/true);
  std::map<raft::GroupId, raft::NodeId> leaders = c.elect_all();
  ASSERT_EQ(leaders.size(), kGroups);
  c.advance(5);
  for (raft::NodeId id = 1; id <= 3; ++id) {
    Engine& e = c.at(id).engine;
    EXPECT_EQ(e.awake(), 0u) << "member " << id;
    EXPECT_FALSE(e.has_round());
    EXPECT_EQ(e.dirty(), 0u) << "member " << id;
    EXPECT_EQ(e.next_tick_us(), std::numeric_limits<uint64_t>::max());
  }
  uint64_t before = c.now();
  EXPECT_EQ(c.advance(50), 0u) << "a quiesced replica ticked";
  // Group 7 gets a write: it wakes (its clock caught up on the ticks it skipped), commits, and
  // quiesces again; nobody else woke.
  raft::NodeId l = leaders.at(7);
  ASSERT_EQ(c.at(l).engine.find(7)->propose("w"), raft::Error::kOk);
  EXPECT_EQ(c.at(l).engine.awake(), 1u);
  EXPECT_GE(c.at(l).engine.find(7)->next_tick_us(), before + 50 * kTick);
  c.settle();
  for (raft::NodeId id = 1; id <= 3; ++id) {
    EXPECT_EQ(c.at(id).applied[7], (std::vector<std::string>{"w"})) << id;
    EXPECT_LE(c.at(id).engine.awake(), 1u) << id;
  }
  c.advance(5);
  for (raft::NodeId id = 1; id <= 3; ++id)
    EXPECT_EQ(c.at(id).engine.awake(), 0u) << id;
  EXPECT_EQ(c.leaders(), leaders) << "quiescence moved no leadership";
}

// Without member liveness nothing would wake a quiesced follower whose leader died: an engine
// without it keeps its groups awake.
TEST(EngineTest, WithoutMemberLivenessGroupsDoNotQuiesce) {
  Cluster c(/*quiesce=*/true, /*liveness=*/false);
  std::map<raft::GroupId, raft::NodeId> leaders = c.elect_all();
  ASSERT_EQ(leaders.size(), kGroups);
  c.advance(20);
  for (raft::NodeId id = 1; id <= 3; ++id) {
    EXPECT_EQ(c.at(id).engine.awake(), static_cast<size_t>(kGroups)) << id;
    for (const auto& [g, r] : c.at(id).engine.replicas())
      ASSERT_FALSE(r->quiesced()) << "member " << id << " group " << g;
  }
}

// A replica that gets work while the engine's round is open waits for the next round: opening
// another would drop the open one, whose replicas would then never finish it.
TEST(EngineTest, WorkArrivingDuringARoundWaitsForTheNextOne) {
  raft::MemoryLogStorage a(raft::ConfState{{1}, {}, {}, {}, false});
  raft::MemoryLogStorage b(raft::ConfState{{1}, {}, {}, {}, false});
  Engine e;
  ReplicaOptions o;
  o.raft.id = 1;
  o.raft.group = 1;
  o.raft.storage = &a;
  o.raft.election_ticks = 10;
  o.tick_us = 100;
  e.add(o, 0);
  o.raft.group = 2;
  o.raft.storage = &b;
  e.add(o, 0);
  // Group 1's election timeout passes (a single voter elects itself): its round opens.
  e.find(1)->on_clock(3000);
  ASSERT_TRUE(e.has_round());
  std::vector<raft::GroupId> damaged;
  ASSERT_EQ(e.begin_round(&damaged).size(), 1u);
  // Group 2's passes while group 1's round is open.
  e.find(2)->on_clock(3000);
  ASSERT_TRUE(e.find(2)->has_round());
  EXPECT_TRUE(e.in_round());
  EXPECT_FALSE(e.has_round());
  std::vector<std::pair<raft::GroupId, RoundResult>> out;
  e.finish_round(&out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].first, 1u);
  EXPECT_FALSE(e.find(1)->in_round());
  // Now group 2's turn, and group 1 is free for its next round too.
  ASSERT_TRUE(e.has_round());
  const std::vector<GroupRound>& next = e.begin_round(&damaged);
  ASSERT_FALSE(next.empty());
  EXPECT_EQ(next.front().replica->group(), 2u);
  out.clear();
  e.finish_round(&out);
  EXPECT_TRUE(damaged.empty());
}

// Member liveness: one heartbeat per peer per interval whatever the number of groups, a peer
// silent for dead_after_us counts as down until heard from again, and a malformed member
// heartbeat is refused.
TEST(EngineTest, MembersExchangeOneHeartbeatPerPairAndNoticeSilence) {
  EngineOptions eo;
  eo.id = 1;
  eo.incarnation = 77;
  eo.heartbeat_us = 200;
  eo.dead_after_us = 1000;
  Engine e(eo);
  std::vector<raft::MemoryLogStorage> logs(
      50, raft::MemoryLogStorage(raft::ConfState{{1, 2, 3}, {}, {}, {}, false}));
  for (raft::GroupId g = 1; g <= 50; ++g) {
    ReplicaOptions o;
    o.raft.id = 1;
    o.raft.group = g;
    o.raft.storage = &logs[g - 1];
    o.raft.quiesce = true;
    e.add(o, 0);
  }
  e.set_peers({1, 2, 3}, 0);
  std::vector<raft::Message> beats = e.liveness(0);
  ASSERT_EQ(beats.size(), 2u) << "one per peer, not one per group";
  for (const raft::Message& m : beats) {
    EXPECT_EQ(m.group, kLivenessGroup);
    EXPECT_EQ(m.from, 1u);
    EXPECT_EQ(m.context, 77u);
  }
  EXPECT_TRUE(e.liveness(100).empty()) << "not again before the interval";
  EXPECT_EQ(e.liveness(200).size(), 2u);
  raft::Message hb = beats[0];
  hb.from = 2;
  hb.to = 1;
  hb.context = 5;
  ASSERT_EQ(e.step(raft::Message(hb), 900), raft::Error::kOk);
  (void)e.liveness(1100);
  EXPECT_EQ(e.peers_down(), 1u) << "3 was silent for longer than dead_after_us";
  raft::Message from3 = hb;
  from3.from = 3;
  ASSERT_EQ(e.step(std::move(from3), 1150), raft::Error::kOk);
  EXPECT_EQ(e.peers_down(), 0u);
  raft::Message bad = hb;
  bad.context = 0;  // no incarnation
  EXPECT_EQ(e.step(std::move(bad), 1200), raft::Error::kInvalidMessage);
  raft::Message other = hb;
  other.group = 51;
  other.type = raft::MessageType::kApp;
  EXPECT_EQ(e.step(std::move(other), 1200), raft::Error::kWrongGroup);
}

}  // namespace
}  // namespace chorus::engine
