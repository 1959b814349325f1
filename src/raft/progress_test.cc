#include "raft/progress.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace chorus::raft {
namespace {

Progress make(ProgressState state, Index match, Index next) {
  Progress pr(4, 0);
  pr.match = match;
  pr.next = next;
  pr.state = state;
  return pr;
}

TEST(Progress, MaybeUpdateTable) {
  struct Case {
    Index match, next, update;
    bool updated;
    Index want_match, want_next;
  };
  const std::vector<Case> cases = {
      {3, 5, 2, false, 3, 5},  // older than match: stale
      {3, 5, 3, false, 3, 5},  // equal to match: nothing new
      {3, 5, 4, true, 4, 5},   // new match below next: next stays
      {3, 5, 7, true, 7, 8},   // past next: next follows
      {0, 1, 0, false, 0, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message()
                 << "match " << c.match << " next " << c.next << " update " << c.update);
    Progress pr = make(ProgressState::kReplicate, c.match, c.next);
    EXPECT_EQ(pr.maybe_update(c.update), c.updated);
    EXPECT_EQ(pr.match, c.want_match);
    EXPECT_EQ(pr.next, c.want_next);
  }
}

TEST(Progress, MaybeDecrToTable) {
  struct Case {
    std::string name;
    ProgressState state;
    Index match, next, rejected, hint;
    bool decreased;
    Index want_next;
  };
  constexpr auto kReplicate = ProgressState::kReplicate;
  constexpr auto kProbe = ProgressState::kProbe;
  const std::vector<Case> cases = {
      {"replicate: a rejection below match is stale", kReplicate, 5, 10, 4, 0, false, 10},
      {"replicate: a rejection at match is stale", kReplicate, 5, 10, 5, 0, false, 10},
      {"replicate: falls back to match + 1", kReplicate, 5, 10, 9, 9, true, 6},
      {"probe: only the last probe's rejection counts", kProbe, 0, 10, 5, 5, false, 10},
      {"probe: the hint moves next back", kProbe, 0, 10, 9, 2, true, 3},
      {"probe: a hint past the rejection is capped", kProbe, 0, 10, 9, 9, true, 9},
      {"probe: never below match + 1", kProbe, 5, 10, 9, 2, true, 6},
      {"probe: a hint of zero", kProbe, 0, 10, 9, 0, true, 1},
      {"probe: next at 0 never matches", kProbe, 0, 0, 0, 0, false, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Progress pr = make(c.state, c.match, c.next);
    pr.msg_app_flow_paused = true;
    EXPECT_EQ(pr.maybe_decr_to(c.rejected, c.hint), c.decreased);
    EXPECT_EQ(pr.next, c.want_next);
    // A counted rejection lets a probe send again.
    if (c.decreased && c.state == kProbe) {
      EXPECT_FALSE(pr.msg_app_flow_paused);
    }
  }
}

TEST(Progress, IsPausedByState) {
  Progress probe = make(ProgressState::kProbe, 0, 1);
  EXPECT_FALSE(probe.is_paused());
  probe.sent_entries(1, 10, 1);  // one probe in flight per heartbeat interval
  EXPECT_TRUE(probe.is_paused());
  EXPECT_EQ(probe.next, 1u);  // a probe does not move next

  Progress repl = make(ProgressState::kReplicate, 0, 1);
  for (Index i = 1; i <= 4; ++i) {
    EXPECT_FALSE(repl.is_paused());
    repl.sent_entries(1, 10, i);
    EXPECT_EQ(repl.next, i + 1);  // optimistic: next moves past what was sent
  }
  EXPECT_TRUE(repl.is_paused());  // the window of 4 is full
  repl.inflights.free_le(2);
  EXPECT_FALSE(repl.is_paused());

  Progress snap = make(ProgressState::kReplicate, 3, 4);
  snap.become_snapshot(20);
  EXPECT_TRUE(snap.is_paused());
}

TEST(Progress, StateTransitionsTable) {
  struct Case {
    std::string name;
    ProgressState from;
    Index match, pending_snapshot;
    ProgressState to;
    Index want_next;
  };
  constexpr auto kProbe = ProgressState::kProbe;
  constexpr auto kReplicate = ProgressState::kReplicate;
  constexpr auto kSnapshot = ProgressState::kSnapshot;
  const std::vector<Case> cases = {
      {"replicate to probe", kReplicate, 5, 0, kProbe, 6},
      {"snapshot to probe: after the snapshot", kSnapshot, 5, 20, kProbe, 21},
      {"snapshot to probe: after match if further", kSnapshot, 30, 20, kProbe, 31},
      {"probe to replicate", kProbe, 7, 0, kReplicate, 8},
      {"snapshot to replicate", kSnapshot, 20, 20, kReplicate, 21},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Progress pr = make(c.from, c.match, 100);
    pr.pending_snapshot = c.pending_snapshot;
    pr.msg_app_flow_paused = true;
    pr.inflights.add(99, 1);
    if (c.to == kProbe) pr.become_probe();
    if (c.to == kReplicate) pr.become_replicate();
    EXPECT_EQ(pr.state, c.to);
    EXPECT_EQ(pr.next, c.want_next);
    EXPECT_EQ(pr.pending_snapshot, 0u);
    EXPECT_FALSE(pr.msg_app_flow_paused);
    EXPECT_EQ(pr.inflights.count(), 0u);
  }
}

ProgressTracker tracker(const MajorityConfig& voters, const MajorityConfig& outgoing = {}) {
  ProgressTracker t(4, 0);
  t.config.voters = JointConfig{voters, outgoing};
  for (NodeId id : voters)
    t.progress.emplace(id, t.make_progress());
  for (NodeId id : outgoing)
    t.progress.emplace(id, t.make_progress());
  return t;
}

TEST(ProgressTracker, CommittedTable) {
  struct Case {
    std::string name;
    MajorityConfig voters, outgoing;
    std::map<NodeId, Index> match;
    Index want;
  };
  const std::vector<Case> cases = {
      {"no voters", {}, {}, {}, 0},
      {"single voter", {1}, {}, {{1, 4}}, 4},
      {"three voters", {1, 2, 3}, {}, {{1, 9}, {2, 7}, {3, 2}}, 7},
      {"joint: both sides", {1, 2, 3}, {1, 4, 5}, {{1, 9}, {2, 7}, {3, 2}, {4, 3}}, 3},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ProgressTracker t = tracker(c.voters, c.outgoing);
    for (auto [id, m] : c.match)
      t.progress.at(id).match = m;
    EXPECT_EQ(t.committed(), c.want);
  }
}

TEST(ProgressTracker, QuorumActiveCountsVotersOnly) {
  ProgressTracker t = tracker({1, 2, 3});
  t.progress.emplace(4, t.make_progress());
  t.progress.at(4).is_learner = true;
  t.config.learners = {4};
  t.progress.at(1).recent_active = true;
  t.progress.at(4).recent_active = true;
  EXPECT_FALSE(t.quorum_active());  // a learner is no substitute for a voter
  t.progress.at(2).recent_active = true;
  EXPECT_TRUE(t.quorum_active());
}

TEST(ProgressTracker, VotesAndSingleton) {
  ProgressTracker t = tracker({1, 2, 3});
  EXPECT_FALSE(t.is_singleton());
  t.record_vote(1, true);
  EXPECT_EQ(t.tally(), VoteResult::kPending);
  t.record_vote(2, false);
  t.record_vote(2, true);  // the first answer of a voter stands
  EXPECT_EQ(t.tally(), VoteResult::kPending);
  t.record_vote(3, true);
  EXPECT_EQ(t.tally(), VoteResult::kWon);
  t.reset_votes();
  EXPECT_EQ(t.tally(), VoteResult::kPending);

  EXPECT_TRUE(tracker({1}).is_singleton());
  EXPECT_FALSE(tracker({1}, {1, 2}).is_singleton());  // joint: the outgoing side counts too
}

}  // namespace
}  // namespace chorus::raft
