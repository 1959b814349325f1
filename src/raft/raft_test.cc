// Scenario tests named after the rules of the Raft paper (Ongaro & Ousterhout) and the
// dissertation's extensions.
#include "raft/raft.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "raft/test_cluster.h"

namespace chorus::raft {
namespace {

using testing::TestCluster;

// Scenarios that call elections by hand: without pre-vote and check-quorum a node campaigns
// when told, whatever it heard recently.
void no_pre_vote(Config& c) {
  c.pre_vote = false;
  c.check_quorum = false;
}

Message make(MessageType type, NodeId from, NodeId to, Term term) {
  Message m;
  m.group = 1;
  m.type = type;
  m.from = from;
  m.to = to;
  m.term = term;
  return m;
}

std::vector<Message> take_messages(Raft& r, MemoryLogStorage& s) {
  std::vector<Message> out;
  while (r.has_ready()) {
    Ready& rd = r.ready();
    s.append(rd.entries);
    if (rd.hard_state) s.set_hard_state(*rd.hard_state);
    for (auto& m : rd.messages)
      out.push_back(std::move(m));
    r.advance();
  }
  return out;
}

// §5.2: a candidate that receives votes from a majority becomes leader.
TEST(Raft_5_2, CandidateWithMajorityBecomesLeader) {
  TestCluster c(3);
  c.elect(1);
  EXPECT_EQ(c.raft(1).role(), Role::kLeader);
  EXPECT_EQ(c.raft(2).lead(), 1u);
  EXPECT_EQ(c.raft(3).lead(), 1u);
  EXPECT_EQ(c.raft(1).term(), 1u);
}

// §5.2: a candidate that cannot reach a majority does not become leader.
TEST(Raft_5_2, CandidateWithoutMajorityDoesNotWin) {
  TestCluster c(5, no_pre_vote);
  c.isolate(1);
  c.elect(1);
  EXPECT_EQ(c.raft(1).role(), Role::kCandidate);
}

// §5.2: each server votes for at most one candidate in a term, first come first served.
TEST(Raft_5_2, VotesForAtMostOneCandidatePerTerm) {
  TestCluster c(3, [](Config& cfg) {
    cfg.pre_vote = false;
    cfg.check_quorum = false;
  });
  Raft& r = c.raft(1);
  Message v2 = make(MessageType::kVote, 2, 1, 1);
  ASSERT_EQ(r.step(v2), Error::kOk);
  Message v3 = make(MessageType::kVote, 3, 1, 1);
  ASSERT_EQ(r.step(v3), Error::kOk);
  auto msgs = take_messages(r, c.storage(1));
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_FALSE(msgs[0].reject);
  EXPECT_EQ(msgs[0].to, 2u);
  EXPECT_TRUE(msgs[1].reject);
  // The vote is part of the hard state handed out for persistence with the response.
  EXPECT_EQ(c.storage(1).hard_state().vote, 2u);
}

// §5.2: election timeouts are randomized in [election, 2 * election) ticks.
TEST(Raft_5_2, ElectionTimeoutIsRandomized) {
  std::set<int> seen;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    MemoryLogStorage s(ConfState{{1, 2, 3}, {}, {}, {}, false});
    Config cfg;
    cfg.id = 1;
    cfg.storage = &s;
    cfg.seed = seed;
    cfg.pre_vote = false;
    Raft r(cfg);
    int ticks = 0;
    while (r.role() == Role::kFollower && ticks < 100) {
      r.tick();
      ++ticks;
    }
    EXPECT_GE(ticks, cfg.election_ticks);
    EXPECT_LT(ticks, 2 * cfg.election_ticks);
    seen.insert(ticks);
  }
  EXPECT_GT(seen.size(), 5u);
}

// §5.3: the leader replicates entries and every server applies them in order.
TEST(Raft_5_3, LeaderReplicatesAndAllApply) {
  TestCluster c(3);
  c.elect(1);
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(c.raft(1).propose("v" + std::to_string(i)), Error::kOk);
  c.stabilize();
  for (NodeId id = 1; id <= 3; ++id) {
    auto d = c.data(id);
    ASSERT_EQ(d.size(), 10u) << id;
    EXPECT_EQ(d.front(), "v0");
    EXPECT_EQ(d.back(), "v9");
  }
}

// One Ready cycle of a node by hand (persist, take the messages, advance), keeping what the
// Ready told the driver about durability and sending order.
struct Cycle {
  bool has_entries = false;
  bool must_write = false;
  bool must_sync = false;
  bool hard_state_must_sync = false;
  bool messages_first = false;
  std::vector<Message> sent;
};

Cycle cycle(TestCluster& c, NodeId id) {
  Raft& r = c.raft(id);
  Ready& rd = r.ready();
  Cycle out;
  out.has_entries = !rd.entries.empty();
  out.must_write = rd.must_write();
  out.must_sync = rd.must_sync();
  out.hard_state_must_sync = rd.hard_state_must_sync;
  out.messages_first = rd.messages_first;
  c.storage(id).append(rd.entries);
  if (rd.hard_state) c.storage(id).set_hard_state(*rd.hard_state);
  out.sent = std::move(rd.messages);
  r.advance();
  return out;
}

// The driver's contract (raft.h, Ready): entries, a new term and a vote must be durable before
// the messages that depend on them leave; a moved commit index alone is only written; and only
// a leader's messages may leave before its own fdatasync.
TEST(Raft_Ready, OnlyEntriesTermAndVoteNeedASyncAndOnlyTheLeaderSendsFirst) {
  TestCluster c(3, no_pre_vote);
  c.elect(1);
  ASSERT_EQ(c.raft(1).propose("x"), Error::kOk);
  Cycle lead = cycle(c, 1);
  EXPECT_TRUE(lead.has_entries);
  EXPECT_TRUE(lead.must_sync);
  EXPECT_FALSE(lead.hard_state_must_sync);
  EXPECT_TRUE(lead.messages_first);
  ASSERT_FALSE(lead.sent.empty());
  std::vector<Message> acks;
  for (Message& m : lead.sent)
    c.deliver(std::move(m));
  for (NodeId f : {NodeId{2}, NodeId{3}}) {
    Cycle fol = cycle(c, f);
    EXPECT_TRUE(fol.has_entries) << f;
    EXPECT_TRUE(fol.must_sync) << f;
    EXPECT_FALSE(fol.messages_first) << f;  // its acknowledgement promises durability
    for (Message& m : fol.sent)
      acks.push_back(std::move(m));
  }
  for (Message& m : acks)
    c.deliver(std::move(m));
  Cycle commit = cycle(c, 1);
  EXPECT_FALSE(commit.has_entries);
  EXPECT_TRUE(commit.must_write);  // the commit index moved
  EXPECT_FALSE(commit.must_sync);
  EXPECT_TRUE(commit.messages_first);
  EXPECT_EQ(c.storage(1).hard_state().commit, c.raft(1).log().last_index());

  // A candidate's new term and its own vote must be durable before its vote requests leave.
  ASSERT_EQ(c.raft(2).campaign(), Error::kOk);
  Cycle cand = cycle(c, 2);
  EXPECT_TRUE(cand.hard_state_must_sync);
  EXPECT_TRUE(cand.must_sync);
  EXPECT_FALSE(cand.messages_first);
  EXPECT_FALSE(cand.sent.empty());
}

// A commit index that lets a configuration change apply is made durable before the change is
// applied, even on the leader: a member must never restart with a configuration older than one
// it acted on.
TEST(Raft_Ready, ACommitThatAppliesAConfigurationChangeIsSynced) {
  TestCluster c(3, no_pre_vote);
  c.elect(1);
  ConfChange add;
  add.changes = {{ConfChangeType::kAddLearner, 4}};
  ASSERT_EQ(c.raft(1).propose_conf_change(add), Error::kOk);
  Cycle lead = cycle(c, 1);
  std::vector<Message> acks;
  for (Message& m : lead.sent)
    c.deliver(std::move(m));
  for (NodeId f : {NodeId{2}, NodeId{3}}) {
    for (Message& m : cycle(c, f).sent)
      acks.push_back(std::move(m));
  }
  for (Message& m : acks)
    c.deliver(std::move(m));
  Ready& rd = c.raft(1).ready();
  ASSERT_TRUE(std::any_of(rd.committed_entries.begin(), rd.committed_entries.end(),
                          [](const Entry& e) { return e.type == EntryType::kConfChange; }));
  EXPECT_TRUE(rd.entries.empty());
  EXPECT_TRUE(rd.hard_state_must_sync);
  EXPECT_TRUE(rd.must_sync());
  EXPECT_FALSE(rd.messages_first);
  c.raft(1).advance();
}

// In a joint configuration the leader writes before it sends: a member only in the outgoing
// half may already have left (and no longer campaign) while the leader still needs its vote,
// which it would refuse for good if it held an entry the leader lost in a crash.
TEST(Raft_Ready, ALeaderInAJointConfigurationWritesBeforeItSends) {
  TestCluster c(3, no_pre_vote);
  c.elect(1);
  c.add_node(4, ConfState{});
  ConfChange joint;
  joint.transition = ConfChangeTransition::kJointExplicit;
  joint.changes = {{ConfChangeType::kAddNode, 4}, {ConfChangeType::kRemoveNode, 3}};
  ASSERT_EQ(c.raft(1).propose_conf_change(joint), Error::kOk);
  c.stabilize();
  ASSERT_FALSE(c.raft(1).status().config.voters_outgoing.empty());
  ASSERT_EQ(c.raft(1).propose("x"), Error::kOk);
  Cycle in_joint = cycle(c, 1);
  EXPECT_TRUE(in_joint.has_entries);
  EXPECT_FALSE(in_joint.messages_first);
  // Once the joint configuration is left, the leader sends first again.
  ASSERT_EQ(c.raft(1).propose_conf_change(ConfChange{}), Error::kOk);
  c.stabilize();
  ASSERT_TRUE(c.raft(1).status().config.voters_outgoing.empty());
  ASSERT_EQ(c.raft(1).propose("y"), Error::kOk);
  EXPECT_TRUE(cycle(c, 1).messages_first);
}

// §10.2.1 of the dissertation: the leader may send its entries before they are durable on its
// own disk, because it counts itself toward a commit only once they are (advance()). With one
// follower's acknowledgement in hand, 3 members commit only after the leader's own write.
TEST(Raft_Ready, LeaderCountsItselfTowardACommitOnlyAfterItsOwnWrite) {
  TestCluster c(3, no_pre_vote);
  c.elect(1);
  Index before = c.raft(1).log().committed();
  ASSERT_EQ(c.raft(1).propose("x"), Error::kOk);
  Raft& leader = c.raft(1);
  Ready& rd = leader.ready();
  ASSERT_TRUE(rd.messages_first);
  ASSERT_FALSE(rd.entries.empty());
  Index last = rd.entries.back().index;
  // Sent first; only member 2 answers, while the leader's own write is still in flight.
  for (Message& m : rd.messages) {
    if (m.to == 2) c.deliver(std::move(m));
  }
  rd.messages.clear();
  Cycle fol = cycle(c, 2);
  for (Message& m : fol.sent)
    c.deliver(std::move(m));
  EXPECT_EQ(leader.log().committed(), before);
  // The leader's write completes: now it and member 2 are a quorum.
  c.storage(1).append(rd.entries);
  if (rd.hard_state) c.storage(1).set_hard_state(*rd.hard_state);
  leader.advance();
  EXPECT_EQ(leader.log().committed(), last);
}

// §5.3: a follower whose log conflicts with the leader's is brought in line, and the leader
// backtracks a whole term per round trip using the rejection hint.
TEST(Raft_5_3, ConflictingFollowerLogIsOverwrittenWithFastBacktracking) {
  TestCluster c(3, no_pre_vote);
  c.elect(1);
  // Node 1 appends entries in term 1 that only it holds.
  c.isolate(2);
  c.isolate(3);
  for (int i = 0; i < 20; ++i)
    ASSERT_EQ(c.raft(1).propose("stale"), Error::kOk);
  c.stabilize();
  c.heal();
  c.isolate(1);
  c.elect(2);
  ASSERT_EQ(c.raft(2).role(), Role::kLeader);
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(c.raft(2).propose("fresh"), Error::kOk);
  c.stabilize();
  ASSERT_EQ(c.data(2).size(), 10u);
  // S2 wins again in term 3, so it starts probing S1 from the end of its long log.
  c.restart(2, c.raft(2).log().applied());
  c.elect(2);
  ASSERT_EQ(c.raft(2).term(), 3u);
  c.heal();
  int rejects = 0;
  c.set_drop([&](const Message& m) {
    if (m.type == MessageType::kAppResp && m.reject) ++rejects;
    return false;
  });
  ASSERT_EQ(c.raft(2).propose("after"), Error::kOk);
  c.stabilize();
  c.tick_all(2);  // the probe to S1 resumes after a heartbeat response
  EXPECT_GE(rejects, 1);
  EXPECT_LE(rejects, 2);
  EXPECT_EQ(c.data(1), c.data(2));
  std::vector<std::string> want(10, "fresh");
  want.push_back("after");
  EXPECT_EQ(c.data(1), want);
}

// §5.4.1: a voter denies its vote to a candidate whose log is less up-to-date.
TEST(Raft_5_4_1, VoteDeniedToCandidateWithStaleLog) {
  TestCluster c(3, no_pre_vote);
  c.elect(1);
  c.isolate(3);
  ASSERT_EQ(c.raft(1).propose("x"), Error::kOk);
  c.stabilize();
  c.heal();
  c.isolate(1);
  // Node 3 missed the entry; node 2 has it and must refuse.
  c.tick_all(0);
  ASSERT_EQ(c.raft(3).campaign(), Error::kOk);
  c.stabilize();
  EXPECT_NE(c.raft(3).role(), Role::kLeader);
  EXPECT_EQ(c.raft(2).role(), Role::kFollower);
}

// §5.4.2, Figure 8: a leader never commits an entry of an earlier term by counting replicas.
// S1 (term 1) replicates index 2 to S2 only; S5 wins term 2 with S3 and S4 and writes its own
// index 2 that nobody receives; S1 comes back in term 3 and copies its term-1 entry to a
// majority. It must not commit it: S5 could still win term 4 and overwrite it.
void run_figure8(bool unsafe, bool* committed_old_entry) {
  TestCluster c(5, [&](Config& cfg) {
    no_pre_vote(cfg);
    cfg.max_bytes_per_message = 1;  // one entry per message, so acks can be told apart
    cfg.unsafe.commit_previous_term_entries = unsafe;
  });
  c.elect(1);  // term 1, its no-op at index 1 committed everywhere
  ASSERT_EQ(c.raft(1).term(), 1u);
  c.isolate(3);
  c.isolate(4);
  c.isolate(5);
  ASSERT_EQ(c.raft(1).propose("old"), Error::kOk);  // index 2, term 1, on S1 and S2 only
  c.stabilize();
  c.heal();
  c.isolate(1);
  c.isolate(2);
  c.set_drop([](const Message& m) { return m.type == MessageType::kApp && m.from == 5; });
  c.elect(5);
  ASSERT_EQ(c.raft(5).role(), Role::kLeader);
  ASSERT_EQ(c.raft(5).term(), 2u);
  c.heal();
  c.isolate(5);
  c.restart(1);
  // Acknowledgements of S1's term-3 no-op (index 3) are lost.
  c.set_drop([](const Message& m) {
    return m.type == MessageType::kAppResp && !m.reject && m.index >= 3;
  });
  for (int i = 0; i < 3 && c.raft(1).role() != Role::kLeader; ++i)
    c.elect(1);
  ASSERT_EQ(c.raft(1).role(), Role::kLeader);
  ASSERT_EQ(c.raft(1).term(), 3u);
  ASSERT_EQ(c.raft(3).log().term_or_zero(2), 1u) << "S3 holds the term-1 entry";
  *committed_old_entry = c.raft(1).log().committed() >= 2;
}

TEST(Raft_5_4_2, Figure8_LeaderDoesNotCommitPreviousTermEntryByCounting) {
  bool committed = true;
  run_figure8(false, &committed);
  EXPECT_FALSE(committed);
}

TEST(Raft_5_4_2, Figure8_UnsafeMutationCommitsPreviousTermEntry) {
  bool committed = false;
  run_figure8(true, &committed);
  EXPECT_TRUE(committed);
}

// §5.4.2: committing an entry of the current term commits all earlier entries.
TEST(Raft_5_4_2, CurrentTermEntryCommitsEarlierEntries) {
  TestCluster c(3);
  c.elect(1);
  c.isolate(1);
  c.isolate(2);
  c.isolate(3);
  ASSERT_EQ(c.raft(1).propose("a"), Error::kOk);
  c.stabilize();
  Index a_index = c.raft(1).log().last_index();
  EXPECT_LT(c.raft(1).log().committed(), a_index);
  // Check-quorum makes S1 step down; nobody else can win alone.
  c.tick_all(25);
  ASSERT_NE(c.raft(1).role(), Role::kLeader);
  c.heal();
  c.elect(1);
  ASSERT_EQ(c.raft(1).role(), Role::kLeader);
  EXPECT_EQ(c.raft(1).term(), 2u);
  EXPECT_EQ(c.raft(2).log().term_or_zero(a_index), 1u);
  EXPECT_GE(c.raft(2).log().committed(), a_index);
  EXPECT_EQ(c.data(2), std::vector<std::string>{"a"});
}

// Pre-vote (dissertation §9.6): a partitioned node that rejoins does not disrupt the leader.
TEST(Raft_PreVote, RejoiningPartitionedNodeDoesNotDisruptLeader) {
  TestCluster c(3);
  c.elect(1);
  Term term = c.raft(1).term();
  c.isolate(3);
  for (int i = 0; i < 100; ++i)
    c.tick_all();
  EXPECT_EQ(c.raft(3).term(), term) << "pre-vote must not increase the term";
  c.heal();
  for (int i = 0; i < 30; ++i)
    c.tick_all();
  EXPECT_EQ(c.leader(), 1u);
  EXPECT_EQ(c.raft(1).term(), term);
}

// Check-quorum (dissertation §6.2): a leader cut off from a quorum steps down.
TEST(Raft_CheckQuorum, IsolatedLeaderStepsDown) {
  TestCluster c(3);
  c.elect(1);
  c.isolate(1);
  for (int i = 0; i < 25; ++i)
    c.tick_all();
  EXPECT_NE(c.raft(1).role(), Role::kLeader);
  EXPECT_NE(c.leader(), 1u);
  EXPECT_NE(c.leader(), kNoNode);
}

// Flow control: a follower that does not acknowledge gets at most max_inflight_messages.
TEST(Raft_FlowControl, SlowFollowerWindowIsBounded) {
  TestCluster c(3, [](Config& cfg) {
    cfg.max_inflight_messages = 4;
    cfg.max_bytes_per_message = 1;  // one entry per message
  });
  c.elect(1);
  c.set_drop([](const Message& m) { return m.from == 3 && m.type == MessageType::kAppResp; });
  int sent_to_3 = 0;
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(c.raft(1).propose("p"), Error::kOk);
    c.process(1);
    for (const Message& m : c.queue()) {
      if (m.to == 3 && m.type == MessageType::kApp && !m.entries.empty()) ++sent_to_3;
    }
    c.stabilize();
  }
  EXPECT_LE(sent_to_3, 4 + 1);
  auto st = c.raft(1).status();
  EXPECT_LE(st.progress.at(3).inflight_messages, 4u);
  EXPECT_EQ(c.data(2).size(), 20u);
}

// Bytes in flight are bounded too, not only messages.
TEST(Raft_FlowControl, InflightBytesAreBounded) {
  TestCluster c(3, [](Config& cfg) {
    cfg.max_inflight_bytes = 10000;
    cfg.max_bytes_per_message = 1;
  });
  c.elect(1);
  c.set_drop([](const Message& m) { return m.from == 3 && m.type == MessageType::kAppResp; });
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(c.raft(1).propose(std::string(1000, 'x')), Error::kOk);
    c.stabilize();
  }
  auto st = c.raft(1).status();
  EXPECT_LE(st.progress.at(3).inflight_bytes, 10000u + 1100u);
}

// Leadership transfer (dissertation §3.10): the target catches up and takes over.
TEST(Raft_Transfer, LeadershipMovesToTarget) {
  TestCluster c(3);
  c.elect(1);
  ASSERT_EQ(c.raft(1).propose("x"), Error::kOk);
  c.stabilize();
  ASSERT_EQ(c.raft(1).transfer_leader(3), Error::kOk);
  c.stabilize();
  EXPECT_EQ(c.leader(), 3u);
  EXPECT_EQ(c.raft(1).role(), Role::kFollower);
  EXPECT_EQ(c.raft(1).propose("y"), Error::kOk);  // forwarded to the new leader
  c.stabilize();
  EXPECT_EQ(c.data(2), (std::vector<std::string>{"x", "y"}));
}

TEST(Raft_Transfer, ProposalsAreDroppedDuringTransfer) {
  TestCluster c(3);
  c.elect(1);
  c.isolate(3);
  ASSERT_EQ(c.raft(1).transfer_leader(3), Error::kOk);
  EXPECT_EQ(c.raft(1).propose("x"), Error::kTransferInProgress);
  // The transfer is abandoned after an election timeout.
  for (int i = 0; i < 12; ++i)
    c.tick(1);
  c.heal();
  EXPECT_EQ(c.raft(1).propose("x"), Error::kOk);
}

TEST(Raft_Proposals, DroppedWithClearErrors) {
  TestCluster c(3, [](Config& cfg) {
    cfg.max_entry_bytes = 100;
    cfg.max_uncommitted_bytes = 250;
  });
  EXPECT_EQ(c.raft(1).propose("x"), Error::kNoLeader);
  c.elect(1);
  EXPECT_EQ(c.raft(1).propose(std::string(101, 'x')), Error::kEntryTooLarge);
  c.isolate(2);
  c.isolate(3);
  EXPECT_EQ(c.raft(1).propose(std::string(100, 'a')), Error::kOk);
  EXPECT_EQ(c.raft(1).propose(std::string(100, 'b')), Error::kOk);
  EXPECT_EQ(c.raft(1).propose(std::string(100, 'c')), Error::kUncommittedLimit);
  c.heal();
  c.stabilize();
  c.tick_all(2);
  EXPECT_EQ(c.raft(1).propose(std::string(100, 'c')), Error::kOk);
}

// §8 / dissertation §6.4: ReadIndex needs an entry of the current term committed and a
// heartbeat round acknowledged by a quorum.
TEST(Raft_8, ReadIndexConfirmsLeadershipWithQuorum) {
  TestCluster c(3);
  c.elect(1);
  ASSERT_EQ(c.raft(1).propose("x"), Error::kOk);
  c.stabilize();
  ASSERT_EQ(c.raft(1).read_index(42), Error::kOk);
  c.stabilize();
  ASSERT_EQ(c.node(1).reads.size(), 1u);
  EXPECT_EQ(c.node(1).reads[0].context, 42u);
  EXPECT_EQ(c.node(1).reads[0].index, c.raft(1).log().committed());
}

TEST(Raft_8, PartitionedLeaderServesNoReadIndex) {
  TestCluster c(3);
  c.elect(1);
  c.isolate(1);
  ASSERT_EQ(c.raft(1).read_index(7), Error::kOk);
  c.stabilize();
  EXPECT_TRUE(c.node(1).reads.empty());
}

TEST(Raft_8, FollowerReadIndexIsForwardedToLeader) {
  TestCluster c(3);
  c.elect(1);
  ASSERT_EQ(c.raft(2).read_index(9), Error::kOk);
  c.stabilize();
  ASSERT_EQ(c.node(2).reads.size(), 1u);
  EXPECT_EQ(c.node(2).reads[0].context, 9u);
}

TEST(Raft_8, ReadsArrivingTogetherShareOneHeartbeatRound) {
  TestCluster c(3);
  c.elect(1);
  int heartbeats = 0;
  c.set_drop([&](const Message& m) {
    if (m.type == MessageType::kHeartbeat) ++heartbeats;
    return false;
  });
  for (uint64_t i = 0; i < 50; ++i)
    ASSERT_EQ(c.raft(1).read_index(i), Error::kOk);
  c.stabilize();
  EXPECT_EQ(c.node(1).reads.size(), 50u);
  EXPECT_EQ(heartbeats, 2);
}

TEST(Raft_8, ReadWaitsForNoOpOfCurrentTerm) {
  TestCluster c(3);
  // Node 1 wins but its no-op does not commit yet.
  c.set_drop([](const Message& m) { return m.type == MessageType::kApp; });
  c.elect(1);
  ASSERT_EQ(c.raft(1).role(), Role::kLeader);
  ASSERT_EQ(c.raft(1).read_index(5), Error::kOk);
  c.stabilize();
  EXPECT_TRUE(c.node(1).reads.empty());
  c.set_drop(nullptr);
  c.tick_all(2);
  ASSERT_EQ(c.node(1).reads.size(), 1u);
  EXPECT_GE(c.node(1).reads[0].index, 1u);
}

// Lease reads: within the lease the leader answers without a heartbeat round; after asking
// another node to take over it no longer trusts its lease.
// Enough heartbeat round trips for a leader to bound its followers' clock rates (zero-delay
// network: (n + 1) / (n - 1) <= 9/8 from n = 17 ticks).
constexpr int kClockProofTicks = 20;

TEST(Raft_Lease, LeaseReadAnswersWithoutRoundTrip) {
  TestCluster c(3, [](Config& cfg) { cfg.read_only = ReadOnlyOption::kLeaseBased; });
  c.elect(1);
  // A heartbeat round acknowledged by a quorum of followers whose clocks are proven starts
  // the lease.
  c.tick_all(kClockProofTicks);
  ASSERT_TRUE(c.raft(1).lease_valid());
  c.isolate(1);
  ASSERT_EQ(c.raft(1).read_index(1), Error::kOk);
  c.process(1);
  EXPECT_EQ(c.node(1).reads.size(), 1u);
  // The lease runs out before any other node may vote: election - drift ticks.
  for (int i = 0; i < 10; ++i)
    c.tick(1);
  c.process(1);
  EXPECT_FALSE(c.raft(1).lease_valid());
}

TEST(Raft_Lease, TransferDisablesLease) {
  TestCluster c(3, [](Config& cfg) { cfg.read_only = ReadOnlyOption::kLeaseBased; });
  c.elect(1);
  c.tick_all(kClockProofTicks);
  ASSERT_TRUE(c.raft(1).lease_valid());
  c.isolate(2);
  ASSERT_EQ(c.raft(1).transfer_leader(3), Error::kOk);
  c.process(1);
  EXPECT_FALSE(c.raft(1).lease_valid());
}

// A new leader does not trust its lease before heartbeat round trips bound its followers'
// clock rates: reads take a heartbeat round meanwhile. Then the lease holds, and the bound
// shows in the status.
TEST(Raft_Lease, LeaseWaitsUntilFollowerClocksAreMeasured) {
  TestCluster c(3, [](Config& cfg) { cfg.read_only = ReadOnlyOption::kLeaseBased; });
  c.elect(1);
  c.tick_all(2);
  EXPECT_FALSE(c.raft(1).lease_valid());
  c.tick_all(kClockProofTicks);
  EXPECT_TRUE(c.raft(1).lease_valid());
  for (NodeId id : {2, 3}) {
    double bound = c.raft(1).status().progress.at(id).clock_rate_bound;
    EXPECT_GT(bound, 1.0);
    EXPECT_LE(bound, c.raft(1).max_peer_clock_rate());
  }
}

// Clocks drifting beyond the lease's allowance: followers whose ticks run 1.5 times as fast as
// the leader's would vote for a new leader before its lease ran out. The leader measures that
// and refuses the lease (reads take a heartbeat round) rather than trusting it. With one fast
// follower, the other follower and the leader still make a proven quorum.
TEST(Raft_Lease, FollowerClocksRunningTooFastMakeTheLeaseRefused) {
  for (int fast : {1, 2}) {
    TestCluster c(3, [](Config& cfg) { cfg.read_only = ReadOnlyOption::kLeaseBased; });
    c.elect(1);
    std::vector<NodeId> fast_nodes = fast == 1 ? std::vector<NodeId>{2} : std::vector<NodeId>{2, 3};
    for (int t = 0; t < 300; ++t) {
      c.tick_all(1);
      if (t % 2 == 0) {
        for (NodeId id : fast_nodes)
          c.tick(id);
        c.stabilize();
      }
    }
    ASSERT_EQ(c.leader(), 1u);
    double bound = c.raft(1).status().progress.at(2).clock_rate_bound;
    EXPECT_GT(bound, c.raft(1).max_peer_clock_rate()) << "fast followers: " << fast;
    EXPECT_LT(bound, 1.6);
    if (fast == 1) {
      EXPECT_TRUE(c.raft(1).lease_valid()) << "nodes 1 and 3 are a proven quorum";
      continue;
    }
    EXPECT_FALSE(c.raft(1).lease_valid());
    int heartbeats = 0;
    c.set_drop([&](const Message& m) {
      if (m.type == MessageType::kHeartbeat) ++heartbeats;
      return false;
    });
    ASSERT_EQ(c.raft(1).read_index(9), Error::kOk);
    c.stabilize();
    EXPECT_EQ(c.node(1).reads.size(), 1u);
    EXPECT_EQ(heartbeats, 2) << "the read must confirm leadership with a heartbeat round";
  }
}

// §6: a learner receives the log but does not vote; promoted, it counts toward quorums.
TEST(Raft_6, LearnerCatchesUpAndIsPromoted) {
  TestCluster c(3);
  c.elect(1);
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(c.raft(1).propose("x"), Error::kOk);
  c.stabilize();
  c.add_node(4, ConfState{});
  ConfChange add;
  add.changes = {{ConfChangeType::kAddLearner, 4}};
  ASSERT_EQ(c.raft(1).propose_conf_change(add), Error::kOk);
  c.stabilize();
  c.tick_all(2);
  EXPECT_EQ(c.data(4).size(), 5u);
  EXPECT_FALSE(c.raft(4).promotable());
  EXPECT_EQ(c.node(1).conf.learners, std::vector<NodeId>{4});
  ConfChange promote;
  promote.changes = {{ConfChangeType::kAddNode, 4}};
  ASSERT_EQ(c.raft(1).propose_conf_change(promote), Error::kOk);
  c.stabilize();
  EXPECT_EQ(c.node(1).conf.voters, (std::vector<NodeId>{1, 2, 3, 4}));
  EXPECT_TRUE(c.raft(4).promotable());
}

// §7 with §6: a learner added after the latest snapshot, behind the compacted log, would
// refuse that snapshot (it leaves the learner out). The leader sends nothing and asks the driver
// for a newer snapshot instead; once taken, the learner installs it and catches up.
TEST(Raft_7, MemberAddedAfterTheLatestSnapshotGetsANewerOne) {
  TestCluster c(3);
  c.elect(1);
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(c.raft(1).propose("x" + std::to_string(i)), Error::kOk);
  c.stabilize();
  Index applied = c.raft(1).log().applied();
  ASSERT_EQ(c.storage(1).create_snapshot(applied, c.node(1).conf, "old"), Error::kOk);
  ASSERT_EQ(c.storage(1).compact(applied), Error::kOk);
  c.add_node(4, ConfState{});
  ConfChange add;
  add.changes = {{ConfChangeType::kAddLearner, 4}};
  ASSERT_EQ(c.raft(1).propose_conf_change(add), Error::kOk);
  int snaps = 0;
  c.set_drop([&](const Message& m) {
    if (m.type == MessageType::kSnap) ++snaps;
    return false;
  });
  c.stabilize();
  c.tick_all(3);
  EXPECT_EQ(snaps, 0) << "a snapshot without the learner was sent";
  EXPECT_TRUE(c.raft(1).take_snapshot_request());
  EXPECT_FALSE(c.raft(1).take_snapshot_request()) << "the request is reset once taken";
  EXPECT_EQ(c.raft(4).log().last_index(), 0u);

  // The driver takes a snapshot of its applied state, which includes the learner.
  Index now = c.raft(1).log().applied();
  ASSERT_EQ(c.storage(1).create_snapshot(now, c.node(1).conf, "new"), Error::kOk);
  c.tick_all(3);
  EXPECT_EQ(snaps, 1);
  EXPECT_EQ(c.raft(4).log().committed(), c.raft(1).log().committed());
  Snapshot got;
  ASSERT_EQ(c.storage(4).snapshot(&got), Error::kOk);
  EXPECT_EQ(got.data, "new");
  EXPECT_EQ(got.metadata.conf_state.learners, std::vector<NodeId>{4});
}

// §6: only one change at a time; a second waits until the first is applied.
TEST(Raft_6, SecondConfChangeRejectedWhilePending) {
  TestCluster c(3);
  c.elect(1);
  c.isolate(2);
  c.isolate(3);
  ConfChange a;
  a.changes = {{ConfChangeType::kAddLearner, 4}};
  ASSERT_EQ(c.raft(1).propose_conf_change(a), Error::kOk);
  EXPECT_EQ(c.raft(1).propose_conf_change(a), Error::kConfChangePending);
}

// §6 joint consensus: replace the leader and another voter at once; the joint configuration
// is left automatically and the removed leader hands over.
TEST(Raft_6, JointConsensusRemovesLeader) {
  TestCluster c(5, nullptr, {1, 2, 3});
  c.elect(1);
  ConfChange cc;
  cc.changes = {{ConfChangeType::kRemoveNode, 1},
                {ConfChangeType::kRemoveNode, 2},
                {ConfChangeType::kAddNode, 4},
                {ConfChangeType::kAddNode, 5}};
  ASSERT_EQ(c.raft(1).propose_conf_change(cc), Error::kOk);
  c.stabilize();
  for (int i = 0; i < 40 && c.leader() == 1; ++i)
    c.tick_all();
  c.tick_all(30);
  NodeId lead = c.leader();
  ASSERT_NE(lead, kNoNode);
  EXPECT_TRUE(lead == 3 || lead == 4 || lead == 5) << lead;
  EXPECT_EQ(c.node(lead).conf.voters, (std::vector<NodeId>{3, 4, 5}));
  EXPECT_TRUE(c.node(lead).conf.voters_outgoing.empty());
  ASSERT_EQ(c.raft(lead).propose("after"), Error::kOk);
  c.stabilize();
  EXPECT_EQ(c.data(5), std::vector<std::string>{"after"});
}

// §6: a leader that removes itself from a 2-voter group takes no proposals after the removal,
// so the remaining voter's log is as long as its own, gets its vote, and takes over.
TEST(Raft_6, LeaderRemovingItselfFromTwoVotersHandsOver) {
  TestCluster c(2);
  c.elect(1);
  ConfChange cc;
  cc.changes = {{ConfChangeType::kRemoveNode, 1}};
  // Node 2 never hears that the removal committed: it keeps the old configuration {1, 2}.
  c.set_drop([](const Message& m) { return m.from == 1 && m.commit >= 2 && m.to == 2; });
  ASSERT_EQ(c.raft(1).propose_conf_change(cc), Error::kOk);
  EXPECT_EQ(c.raft(1).propose("late"), Error::kNotLeader);
  c.stabilize();
  c.set_drop(nullptr);
  for (int i = 0; i < 60 && c.leader() != 2; ++i)
    c.tick_all();
  EXPECT_NE(c.raft(1).role(), Role::kLeader);
  ASSERT_EQ(c.leader(), 2u);
  ASSERT_EQ(c.raft(2).propose("after"), Error::kOk);
  c.stabilize();
  EXPECT_EQ(c.data(2), std::vector<std::string>{"after"});
}

// A leader removing itself hands over with TimeoutNow; the transferee campaigns as soon as it
// applies the change, without waiting for an election timeout.
TEST(Raft_6, RemovedLeaderHandsOverWithoutElectionTimeout) {
  TestCluster c(3);
  c.elect(1);
  ConfChange cc;
  cc.changes = {{ConfChangeType::kRemoveNode, 1}};
  ASSERT_EQ(c.raft(1).propose_conf_change(cc), Error::kOk);
  c.stabilize();  // no ticks at all
  NodeId lead = c.leader();
  EXPECT_TRUE(lead == 2 || lead == 3) << lead;
  EXPECT_NE(c.raft(1).role(), Role::kLeader);
}

// §7: a follower too far behind a compacted leader gets a snapshot.
TEST(Raft_7, LaggingFollowerReceivesSnapshot) {
  TestCluster c(3);
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < 20; ++i)
    ASSERT_EQ(c.raft(1).propose("x" + std::to_string(i)), Error::kOk);
  c.stabilize();
  Index applied = c.raft(1).log().applied();
  ASSERT_EQ(c.storage(1).create_snapshot(applied, c.node(1).conf, "state"), Error::kOk);
  ASSERT_EQ(c.storage(1).compact(applied), Error::kOk);
  c.heal();
  c.tick_all(3);
  EXPECT_EQ(c.raft(3).log().committed(), c.raft(1).log().committed());
  Snapshot s;
  ASSERT_EQ(c.storage(3).snapshot(&s), Error::kOk);
  EXPECT_EQ(s.metadata.index, applied);
  EXPECT_EQ(s.data, "state");
  ASSERT_EQ(c.raft(1).propose("after"), Error::kOk);
  c.stabilize();
  EXPECT_EQ(c.data(3).back(), "after");
}

// §7: a snapshot the driver reports as failed is sent again after the follower answers a
// heartbeat; once delivered, the follower catches up.
TEST(Raft_7, FailedSnapshotIsRetried) {
  TestCluster c(3);
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(c.raft(1).propose("x"), Error::kOk);
  c.stabilize();
  Index applied = c.raft(1).log().applied();
  ASSERT_EQ(c.storage(1).create_snapshot(applied, c.node(1).conf, "state"), Error::kOk);
  ASSERT_EQ(c.storage(1).compact(applied), Error::kOk);
  c.heal();
  int snaps = 0;
  c.set_drop([&](const Message& m) {
    if (m.type != MessageType::kSnap) return false;
    ++snaps;
    return true;
  });
  c.tick_all(2);
  ASSERT_EQ(snaps, 1);
  EXPECT_EQ(c.raft(1).status().progress.at(3).state, ProgressState::kSnapshot);
  c.raft(1).report_snapshot(3, /*failed=*/true);
  EXPECT_EQ(c.raft(1).status().progress.at(3).state, ProgressState::kProbe);
  c.set_drop(nullptr);
  c.tick_all(3);
  EXPECT_EQ(c.raft(3).log().committed(), c.raft(1).log().committed());
  Snapshot s;
  ASSERT_EQ(c.storage(3).snapshot(&s), Error::kOk);
  EXPECT_EQ(s.metadata.index, applied);
}

// §7: a snapshot whose configuration does not include the recipient is refused (as in etcd):
// installing it would leave the node outside its own configuration.
TEST(Raft_7, SnapshotWithoutRecipientInConfigIsRefused) {
  TestCluster c(3);
  c.elect(1);
  Raft& r = c.raft(3);
  Index committed = r.log().committed();
  Index last = r.log().last_index();
  Message m = make(MessageType::kSnap, 1, 3, c.raft(1).term());
  Snapshot s;
  s.metadata.index = last + 100;
  s.metadata.term = c.raft(1).term();
  s.metadata.conf_state.voters = {1, 2};  // node 3 is missing
  s.data = "state";
  m.snapshot = std::make_shared<Snapshot>(s);
  ASSERT_EQ(r.step(m), Error::kOk);
  ASSERT_TRUE(r.has_ready());
  Ready& rd = r.ready();
  EXPECT_FALSE(rd.snapshot) << "the snapshot was handed out for installation";
  EXPECT_EQ(r.log().last_index(), last);
  EXPECT_EQ(r.log().committed(), committed);
  EXPECT_EQ(r.status().config.voters, (std::vector<NodeId>{1, 2, 3}));
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_EQ(rd.messages[0].type, MessageType::kAppResp);
  EXPECT_EQ(rd.messages[0].index, committed) << "the answer tells the leader where it stands";
  r.advance();

  // The same snapshot naming node 3 as a learner is installed.
  s.metadata.conf_state.learners = {3};
  m.snapshot = std::make_shared<Snapshot>(s);
  ASSERT_EQ(r.step(m), Error::kOk);
  ASSERT_TRUE(r.has_ready());
  Ready& installed = r.ready();
  ASSERT_TRUE(installed.snapshot);
  EXPECT_EQ(installed.snapshot->metadata.index, last + 100);
  EXPECT_EQ(r.log().last_index(), last + 100);
  r.advance();
}

// §6: learners receive the log but neither vote nor count toward a commit quorum.
// A log whose records can read back damaged (a checksum that fails after recovery), as
// storage::Wal's LogStorage answers then.
class DamagedLog final : public LogStorage {
 public:
  explicit DamagedLog(const LogStorage* base) : base_(base) {}
  void damage(Index index) { bad_ = index; }

  HardState hard_state() const override { return base_->hard_state(); }
  ConfState conf_state() const override { return base_->conf_state(); }
  Error entries(Index lo, Index hi, uint64_t max_bytes, std::vector<Entry>* out) const override {
    if (bad_ != 0 && lo <= bad_ && bad_ < hi) return Error::kStorageFailed;
    return base_->entries(lo, hi, max_bytes, out);
  }
  Error term(Index index, Term* out) const override { return base_->term(index, out); }
  Index first_index() const override { return base_->first_index(); }
  Index last_index() const override { return base_->last_index(); }
  Error snapshot(Snapshot* out) const override { return base_->snapshot(out); }

 private:
  const LogStorage* base_;
  Index bad_ = 0;
};

// Committed entries that read back damaged when the core would hand them to the application:
// it stops (no abort, nothing applied, nothing sent) and answers every call with
// kStorageFailed, so the driver can stop the member with a clear error.
TEST(Raft_Storage, CommittedEntriesReadBackDamagedStopTheCore) {
  TestCluster c(3);
  c.elect(1);
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(c.raft(1).propose("x" + std::to_string(i)), Error::kOk);
  c.stabilize();
  Index committed = c.raft(2).log().committed();
  ASSERT_GE(committed, 6u);
  // Node 2 restarts from its log and must apply everything again; entry 4 is damaged.
  DamagedLog log(&c.storage(2));
  log.damage(4);
  Config cfg;
  cfg.id = 2;
  cfg.storage = &log;
  Raft r(cfg);
  ASSERT_TRUE(r.has_ready());
  Ready& rd = r.ready();
  EXPECT_TRUE(r.storage_failed());
  EXPECT_TRUE(rd.committed_entries.empty());
  EXPECT_TRUE(rd.messages.empty());
  r.advance();
  EXPECT_FALSE(r.has_ready());
  for (int i = 0; i < 30; ++i)
    r.tick();
  EXPECT_FALSE(r.has_ready()) << "a stopped core must not campaign";
  EXPECT_EQ(r.propose("y"), Error::kStorageFailed);
  EXPECT_EQ(r.read_index(1), Error::kStorageFailed);
  EXPECT_EQ(r.campaign(), Error::kStorageFailed);
  Message hb;
  hb.type = MessageType::kHeartbeat;
  hb.from = 1;
  hb.to = 2;
  hb.term = c.raft(1).term();
  EXPECT_EQ(r.step(hb), Error::kStorageFailed);
}

// A leader that cannot read back the entries a lagging follower needs stops instead of
// treating them as compacted: a snapshot would paper over a log that changed under it.
TEST(Raft_Storage, LeaderStopsOnDamagedEntriesInsteadOfSendingASnapshot) {
  auto log = std::make_shared<std::unique_ptr<DamagedLog>>();
  TestCluster c(3, [log](Config& cfg) {
    if (cfg.id != 1) return;
    *log = std::make_unique<DamagedLog>(cfg.storage);
    cfg.storage = log->get();
  });
  c.elect(1);
  c.isolate(3);
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(c.raft(1).propose("x" + std::to_string(i)), Error::kOk);
  c.stabilize();
  Index lagging = c.raft(3).log().last_index();
  ASSERT_LT(lagging + 5, c.raft(1).log().last_index());
  (*log)->damage(lagging + 2);
  int snapshots = 0;
  c.set_drop([&](const Message& m) {
    if (m.type == MessageType::kSnap) ++snapshots;
    return false;
  });
  c.heal();
  c.tick_all(5);
  EXPECT_TRUE(c.raft(1).storage_failed());
  EXPECT_EQ(snapshots, 0);
  EXPECT_LT(c.raft(3).log().last_index(), lagging + 2);
  EXPECT_EQ(c.raft(1).propose("after"), Error::kStorageFailed);
}

TEST(Raft_6, LearnerDoesNotCountTowardQuorum) {
  TestCluster c(4, nullptr, {1, 2, 3}, {4});
  c.elect(1);
  c.isolate(2);
  c.isolate(3);
  Index before = c.raft(1).log().committed();
  ASSERT_EQ(c.raft(1).propose("x"), Error::kOk);
  c.stabilize();
  EXPECT_EQ(c.raft(4).log().last_index(), c.raft(1).log().last_index()) << "learner has the entry";
  EXPECT_EQ(c.raft(1).log().committed(), before) << "but its acknowledgement is no quorum";
  EXPECT_FALSE(c.raft(4).promotable());
  c.tick(4, 50);
  EXPECT_EQ(c.raft(4).role(), Role::kFollower) << "a learner never campaigns";
}

// A one-way partition: the leader hears its followers but cannot reach them. They elect a new
// leader, and the old one steps down when it hears the new term.
TEST(Raft_PreVote, OneWayPartitionReplacesMuteLeader) {
  TestCluster c(3);
  c.elect(1);
  c.set_drop([](const Message& m) { return m.from == 1; });
  for (int i = 0; i < 40 && (c.leader() == 1 || c.leader() == kNoNode); ++i)
    c.tick_all();
  NodeId lead = c.leader();
  EXPECT_TRUE(lead == 2 || lead == 3) << lead;
  EXPECT_EQ(c.raft(1).role(), Role::kFollower);
  EXPECT_EQ(c.raft(1).term(), c.raft(lead).term());
}

// A restarted node recovers term, vote and log from storage.
TEST(Raft_Restart, RecoversHardStateAndLog) {
  TestCluster c(3);
  c.elect(1);
  ASSERT_EQ(c.raft(1).propose("x"), Error::kOk);
  c.stabilize();
  Term term = c.raft(2).term();
  Index last = c.raft(2).log().last_index();
  c.restart(2);
  EXPECT_EQ(c.raft(2).term(), term);
  EXPECT_EQ(c.raft(2).log().last_index(), last);
  EXPECT_EQ(c.raft(2).role(), Role::kFollower);
}

// Bad input from a peer gets an error and changes nothing; it never aborts the node.
TEST(Raft_Step, RejectsMalformedPeerMessages) {
  TestCluster c(3);
  c.elect(1);
  Raft& f = c.raft(2);
  Index last = f.log().last_index();
  Index commit = f.log().committed();
  Term term = f.term();
  Message gap = make(MessageType::kApp, 1, 2, term);
  gap.index = last;
  gap.log_term = f.log().last_term();
  gap.entries = {Entry{term, last + 5, EntryType::kNormal, "x"}};
  EXPECT_EQ(f.step(gap), Error::kInvalidMessage);
  Message rewrite = make(MessageType::kApp, 1, 2, term);
  rewrite.index = commit;
  rewrite.log_term = f.log().term_or_zero(commit);
  rewrite.entries = {Entry{term, commit, EntryType::kNormal, "conflict"}};
  EXPECT_EQ(f.step(rewrite), Error::kInvalidMessage);
  Message future = make(MessageType::kApp, 1, 2, term);
  future.index = last;
  future.log_term = f.log().last_term();
  future.entries = {Entry{term + 3, last + 1, EntryType::kNormal, "x"}};
  EXPECT_EQ(f.step(future), Error::kInvalidMessage);
  EXPECT_EQ(f.step(make(MessageType::kVote, 3, 2, 0)), Error::kInvalidMessage);
  EXPECT_EQ(f.step(make(MessageType::kVoteResp, 3, 2, 0)), Error::kInvalidMessage);
  EXPECT_EQ(f.step(make(MessageType::kHeartbeat, 2, 2, term)), Error::kInvalidMessage);
  EXPECT_EQ(f.step(make(MessageType::kHeartbeat, 0, 2, term)), Error::kInvalidMessage);
  EXPECT_EQ(c.raft(1).step(make(MessageType::kAppResp, 1, 1, term)), Error::kInvalidMessage);
  EXPECT_EQ(f.log().last_index(), last);
  EXPECT_EQ(f.log().committed(), commit);
  EXPECT_EQ(f.term(), term);
  c.stabilize();
  EXPECT_EQ(c.leader(), 1u);
}

// A read forwarded twice (the first follower's idea of the leader was stale) is answered to the
// node that asked, not to the one that passed it on.
TEST(Raft_8, ReadForwardedTwiceIsAnsweredToTheAsker) {
  TestCluster c(3);
  c.elect(1);
  Message read;
  read.group = 1;
  read.type = MessageType::kReadIndex;
  read.from = 3;
  read.to = 2;
  read.context = 77;
  ASSERT_EQ(c.raft(2).step(read), Error::kOk);  // node 2 passes it on to the leader
  c.stabilize();
  EXPECT_TRUE(c.node(2).reads.empty());
  ASSERT_EQ(c.node(3).reads.size(), 1u);
  EXPECT_EQ(c.node(3).reads[0].context, 77u);
}

TEST(Raft_Step, RejectsLocalMessagesAndOtherGroups) {
  TestCluster c(3);
  Message hup = make(MessageType::kHup, 2, 1, 0);
  EXPECT_EQ(c.raft(1).step(hup), Error::kStepLocalMessage);
  Message other = make(MessageType::kHeartbeat, 2, 1, 1);
  other.group = 9;
  EXPECT_EQ(c.raft(1).step(other), Error::kWrongGroup);
}

void quiescing(Config& c) {
  c.quiesce = true;
  c.read_only = ReadOnlyOption::kLeaseBased;
}

// A three-member group led by 1 that has gone idle and quiesced.
void elect_and_quiesce(TestCluster& c) {
  c.elect(1);
  c.tick_all(4);
  for (NodeId id = 1; id <= 3; ++id)
    ASSERT_TRUE(c.raft(id).quiesced()) << id;
}

// An idle group quiesces: once every follower holds the leader's whole log, committed and
// applied, the leader asks them to quiesce and then nobody sends anything, tick after tick.
TEST(Raft_Quiesce, AnIdleGroupFallsSilent) {
  TestCluster c(3, quiescing);
  c.elect(1);
  ASSERT_EQ(c.raft(1).propose("x"), Error::kOk);
  c.stabilize();
  c.tick_all(4);
  for (NodeId id = 1; id <= 3; ++id)
    EXPECT_TRUE(c.raft(id).quiesced()) << id;
  for (int i = 0; i < 100; ++i) {
    for (NodeId id = 1; id <= 3; ++id)
      c.tick(id);
    c.process_all();
    ASSERT_TRUE(c.queue().empty()) << "a quiesced group sent a message at tick " << i;
  }
  EXPECT_EQ(c.raft(1).role(), Role::kLeader);
  EXPECT_FALSE(c.raft(1).lease_valid()) << "silence renewed no lease";
  // A proposal wakes the group, and it commits as before.
  ASSERT_EQ(c.raft(1).propose("y"), Error::kOk);
  EXPECT_FALSE(c.raft(1).quiesced());
  c.stabilize();
  for (NodeId id = 1; id <= 3; ++id) {
    EXPECT_FALSE(c.raft(id).quiesced()) << id;
    EXPECT_EQ(c.data(id), (std::vector<std::string>{"x", "y"})) << id;
  }
}

// A leader cut off from its followers while quiesced, woken by its host (the members went
// silent), does not quiesce again without a round its voters answer: it heartbeats, finds no
// quorum, and steps down.
TEST(Raft_Quiesce, ALeaderCutOffDoesNotQuiesceAgainAndStepsDown) {
  TestCluster c(3, quiescing);
  elect_and_quiesce(c);
  if (::testing::Test::HasFatalFailure()) return;
  c.isolate(1);
  c.raft(1).wake();
  for (int i = 0; i < 30 && c.raft(1).role() == Role::kLeader; ++i) {
    c.tick(1);
    c.process(1);
    EXPECT_FALSE(c.raft(1).quiesced()) << "quiesced again without its quorum at tick " << i;
  }
  EXPECT_EQ(c.raft(1).role(), Role::kFollower);
}

// A group with work pending does not quiesce: a follower that lacks entries, a read waiting.
TEST(Raft_Quiesce, NotWhileAFollowerLagsOrAReadWaits) {
  TestCluster c(3, quiescing);
  c.elect(1);
  c.isolate(3);
  ASSERT_EQ(c.raft(1).propose("x"), Error::kOk);
  c.stabilize();
  c.tick_all(6);
  EXPECT_FALSE(c.raft(1).quiesced()) << "follower 3 lacks the entry";
  c.heal();
  c.tick_all(6);
  EXPECT_TRUE(c.raft(1).quiesced());
  // A read wakes the leader; it answers through a heartbeat round (the lease is gone).
  ASSERT_EQ(c.raft(1).read_index(7), Error::kOk);
  EXPECT_FALSE(c.raft(1).quiesced());
  c.stabilize();
  ASSERT_EQ(c.node(1).reads.size(), 1u);
  EXPECT_EQ(c.node(1).reads[0].context, 7u);
}

// A quiesced follower's timers stop: it never campaigns on its own, however long it waits.
// Woken (its host found the leader's member gone), it counts a whole election timeout, then
// campaigns, and the group elects without the old leader.
TEST(Raft_Quiesce, AWokenFollowerElectsAfterTheLeaderIsGone) {
  TestCluster c(3, quiescing);
  elect_and_quiesce(c);
  if (::testing::Test::HasFatalFailure()) return;
  c.isolate(1);
  for (int i = 0; i < 200; ++i) {
    c.tick(2);
    c.tick(3);
    c.stabilize();
  }
  EXPECT_EQ(c.raft(2).role(), Role::kFollower) << "a quiesced follower campaigned";
  c.raft(2).wake();
  c.raft(3).wake();
  for (int i = 0; i < 40 && c.leader() == 1; ++i) {
    c.tick(2);
    c.tick(3);
    c.stabilize();
  }
  NodeId l = c.leader();
  EXPECT_TRUE(l == 2 || l == 3) << l;
  EXPECT_GT(c.raft(l).term(), c.raft(1).term());
}

// A follower that cannot take the request to quiesce (it holds entries beyond the leader's
// commit) answers it, and the answer wakes the leader.
TEST(Raft_Quiesce, AFollowerWithADifferentLogAnswersAndWakesTheLeader) {
  TestCluster c(3, quiescing);
  elect_and_quiesce(c);
  if (::testing::Test::HasFatalFailure()) return;
  Message q = make(MessageType::kHeartbeat, 1, 2, c.raft(1).term());
  q.reject = true;
  q.commit = c.raft(1).log().committed() - 1;  // not the follower's last index
  ASSERT_TRUE(c.raft(2).quiesced());
  ASSERT_EQ(c.raft(2).step(q), Error::kOk);
  EXPECT_FALSE(c.raft(2).quiesced());
  c.stabilize();
  EXPECT_FALSE(c.raft(1).quiesced()) << "the answer did not wake the leader";
}

// Answers to heartbeat rounds sent before the leader quiesced may arrive after it did (rounds
// overlap when answers take longer than a heartbeat interval, as on a member hosting thousands
// of groups). They leave it quiesced: woken by each, it would quiesce again at the next and
// never stay quiet. An answer to the request to quiesce itself (a follower that could not)
// still wakes it.
TEST(Raft_Quiesce, LateAnswersToEarlierRoundsDoNotWakeTheLeader) {
  TestCluster c(3, quiescing);
  elect_and_quiesce(c);
  if (::testing::Test::HasFatalFailure()) return;
  for (NodeId from : {NodeId{2}, NodeId{3}}) {
    Message late = make(MessageType::kHeartbeatResp, from, 1, c.raft(1).term());
    late.context = 1;  // the leader's first round
    ASSERT_EQ(c.raft(1).step(late), Error::kOk);
    EXPECT_TRUE(c.raft(1).quiesced()) << "a late answer from " << from << " woke the leader";
  }
  c.tick_all(20);
  c.process_all();
  EXPECT_TRUE(c.queue().empty());
  Message answer = make(MessageType::kHeartbeatResp, 2, 1, c.raft(1).term());
  ASSERT_EQ(c.raft(1).step(answer), Error::kOk);
  EXPECT_FALSE(c.raft(1).quiesced()) << "the answer to the quiesce request did not wake it";
}

}  // namespace
}  // namespace chorus::raft
