// The simulator is itself tested: runs replay exactly, a correct cluster passes, and each
// deliberately broken variant of the protocol or driver is caught within a seed budget.
#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <vector>

#include "sim/cluster.h"

namespace chorus::sim {
namespace {

TEST(Simulator, SameSeedGivesSameTrace) {
  SimOptions o;
  o.seed = 7;
  o.steps = 600;
  SimResult a = run_simulation(o);
  SimResult b = run_simulation(o);
  EXPECT_TRUE(a.ok) << a.failure;
  EXPECT_EQ(a.trace_hash, b.trace_hash);
  EXPECT_EQ(a.events, b.events);
  o.seed = 8;
  EXPECT_NE(run_simulation(o).trace_hash, a.trace_hash);
}

TEST(Simulator, CorrectClusterPassesUnderAllFaults) {
  for (int nodes : {3, 5, 7}) {
    for (uint64_t seed = 1; seed <= 5; ++seed) {
      SimOptions o;
      o.seed = seed;
      o.nodes = nodes;
      o.steps = 1000;
      SimResult r = run_simulation(o);
      EXPECT_TRUE(r.ok) << "nodes " << nodes << " seed " << seed << ": " << r.failure;
      EXPECT_GT(r.ops_ok, 0u);
      EXPECT_EQ(r.linearizability, "ok");
    }
  }
}

// Runs seeds 1..count on `nodes` nodes with `groups` groups, expects every one to pass, and
// hands each result to `observe`; stops early once `observe` returns false.
template <typename Observe>
void run_seeds(int nodes, uint64_t count, Observe observe, int groups = 1) {
  for (uint64_t seed = 1; seed <= count; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.nodes = nodes;
    o.groups = groups;
    SimResult r = run_simulation(o);
    ASSERT_TRUE(r.ok) << "nodes " << nodes << " groups " << groups << " seed " << seed << ": "
                      << r.failure;
    if (!observe(r)) return;
  }
}

// Seeds where a member added back after its leader's last snapshot was offered only that
// snapshot, whose configuration leaves it out, and refused it forever: the leader now asks the
// driver for a newer snapshot instead, and the member catches up.
TEST(Simulator, MemberAddedAfterTheLatestSnapshotCatchesUp) {
  int requested = 0;
  run_seeds(5, 60, [&](const SimResult& r) {
    if (r.snapshots_requested > 0) ++requested;
    return requested < 3;
  });
  EXPECT_EQ(requested, 3) << "too few seeds reached a snapshot request to test it";
}

// Large snapshots stream for up to seconds; partitions, crashes and resets cut some midway. The
// leader hears of each failure and tries again, and every seed still passes every check.
TEST(Simulator, SnapshotStreamsCutMidwayAreRetried) {
  uint64_t cut = 0;
  uint64_t installed_after_cut = 0;
  run_seeds(3, 80, [&](const SimResult& r) {
    cut += r.snapshot_transfers_cut;
    if (r.snapshot_transfers_cut > 0) installed_after_cut += r.snapshots_installed;
    return true;
  });
  EXPECT_GT(cut, 0u) << "no seed cut a snapshot stream: the fault is not exercised";
  EXPECT_GT(installed_after_cut, 0u) << "no seed with a cut stream installed a snapshot at all";
}

// A node whose disk fills stops on ENOSPC (its Wal may hold a partial batch) and starts again
// through recovery once there is space; nothing acknowledged is lost.
TEST(Simulator, NodesStoppedByAFullDiskComeBack) {
  uint64_t stops = 0;
  run_seeds(5, 60, [&](const SimResult& r) {
    stops += r.disk_full_stops;
    return true;
  });
  EXPECT_GT(stops, 0u) << "no node ran out of space: the fault is not exercised";
}

// A byte of a member's log changes on its disk. The member finds it reading the entry back (and
// stops) or at its next start (and refuses to start); the operator removes it and adds a new
// member on an empty disk, which catches up and is promoted. Every check holds throughout.
TEST(Simulator, AMemberWithADamagedLogIsReplacedByANewOne) {
  SimResult total;
  run_seeds(5, 200, [&](const SimResult& r) {
    total.logs_damaged += r.logs_damaged;
    total.damage_found_at_start += r.damage_found_at_start;
    total.members_replaced += r.members_replaced;
    return true;
  });
  EXPECT_GT(total.logs_damaged, 0u);
  EXPECT_GT(total.damage_found_at_start, 0u) << "no damaged log was found: not exercised";
  // Every member that refused to start was replaced before the run ended.
  EXPECT_EQ(total.members_replaced, total.damage_found_at_start);
}

// Clocks drifting beyond the lease's allowance with lease reads on: leaders bound their
// followers' clock rates from heartbeat round trips, find some too fast and refuse the lease
// (reads take a heartbeat round), and every history stays linearizable. In every seed the
// simulation checks each bound against the true rates (Check::kClockBound).
TEST(Simulator, ClocksBeyondTheLeaseAllowanceMakeTheLeaseRefused) {
  int beyond = 0;
  int refused = 0;
  run_seeds(3, 150, [&](const SimResult& r) {
    if (r.lease_reads && r.max_drift > kLeaseSafeDrift) ++beyond;
    if (r.lease_refused_for_drift && r.max_drift > kLeaseSafeDrift) ++refused;
    return true;
  });
  EXPECT_GT(beyond, 10);
  EXPECT_GT(refused, 3) << "of " << beyond << " seeds with clocks beyond the allowance";
}

// Several groups over five members, three replicas each: every group elects, commits and
// answers, each group changes its membership on its own (replicas move between members), and
// every check holds per group, on one shared log per member.
TEST(Simulator, ManyGroupsOnSharedLogsPassUnderAllFaults) {
  SimResult total;
  run_seeds(
      5, 40,
      [&](const SimResult& r) {
        EXPECT_EQ(r.linearizability, "ok");
        EXPECT_EQ(r.committed_by_group.size(), 4u);
        for (size_t g = 0; g < r.committed_by_group.size(); ++g)
          EXPECT_GT(r.committed_by_group[g], 0u) << "group " << g + 1;
        total.conf_changes += r.conf_changes;
        total.replicas_moved += r.replicas_moved;
        total.snapshots_installed += r.snapshots_installed;
        total.planned_moves += r.planned_moves;
        return true;
      },
      4);
  EXPECT_GT(total.planned_moves, 0u) << "the planner never completed a replica move";
  EXPECT_GT(total.conf_changes, 10u);
  EXPECT_GT(total.replicas_moved, 0u) << "no group ever gained a voter it did not start with";
  EXPECT_GT(total.snapshots_installed, 0u);
}

// The same seed and options give the same run with several groups too.
TEST(Simulator, ManyGroupsReplayExactly) {
  SimOptions o;
  o.seed = 11;
  o.nodes = 3;
  o.groups = 8;
  o.steps = 800;
  SimResult a = run_simulation(o);
  SimResult b = run_simulation(o);
  EXPECT_TRUE(a.ok) << a.failure;
  EXPECT_EQ(a.trace_hash, b.trace_hash);
  EXPECT_EQ(a.committed_by_group, b.committed_by_group);
}

// Idle groups quiesce (their leaders ask, their timers stop), and a group whose quiesced
// leader's member goes down wakes through member liveness and elects a new leader; every check
// holds throughout, lease reads included.
TEST(Simulator, QuiescedGroupsWakeAndElectWhenTheirLeadersMemberDies) {
  SimResult total;
  int quiescing = 0;
  run_seeds(
      5, 60,
      [&](const SimResult& r) {
        if (r.quiesce) ++quiescing;
        total.quiescences += r.quiescences;
        total.reelected_after_quiesced_leader_down += r.reelected_after_quiesced_leader_down;
        return true;
      },
      4);
  EXPECT_GT(quiescing, 10);
  EXPECT_GT(total.quiescences, 100u);
  EXPECT_GT(total.reelected_after_quiesced_leader_down, 5u);
}

struct MutationCase {
  Mutation mutation;
  int nodes;
  uint64_t seed_budget;
  // The checks built to catch this defect: a seed failing for any other reason (a liveness
  // timeout, a storage error) would mean the variant broke something else, not that the
  // checker meant for it works.
  std::vector<Check> meant;
  int groups = 1;
};

// Names the case in test output instead of dumping its bytes.
void PrintTo(const MutationCase& c, std::ostream* os) {
  *os << to_string(c.mutation);
  if (c.groups > 1) *os << " with " << c.groups << " groups";
}

class MutationIsCaught : public ::testing::TestWithParam<MutationCase> {};

TEST_P(MutationIsCaught, WithinSeedBudget) {
  const MutationCase& c = GetParam();
  uint64_t caught_at = 0;
  SimResult caught;
  for (uint64_t seed = 1; seed <= c.seed_budget && caught_at == 0; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.nodes = c.nodes;
    o.mutation = c.mutation;
    o.groups = c.groups;
    SimResult r = run_simulation(o);
    if (!r.ok) {
      caught_at = seed;
      caught = std::move(r);
    }
  }
  ASSERT_NE(caught_at, 0u) << to_string(c.mutation) << " survived " << c.seed_budget << " seeds";
  std::printf("%s caught at seed %llu by %s: %s\n", to_string(c.mutation),
              static_cast<unsigned long long>(caught_at), to_string(caught.check),
              caught.failure.c_str());
  EXPECT_NE(std::find(c.meant.begin(), c.meant.end(), caught.check), c.meant.end())
      << to_string(c.mutation) << " was caught at seed " << caught_at << " by the "
      << to_string(caught.check) << " check, not by one meant for it: " << caught.failure;
}

INSTANTIATE_TEST_SUITE_P(
    Mutations, MutationIsCaught,
    ::testing::Values(
        MutationCase{Mutation::kCommitPreviousTerm, 5, 400, {Check::kCommitLocked}},
        MutationCase{Mutation::kVoteNotPersisted, 5, 800, {Check::kElectionSafety}},
        MutationCase{Mutation::kAckBeforeDurable,
                     5,
                     400,
                     {Check::kCompletenessAtRisk, Check::kCommitLocked}},
        // Three nodes: a client picking a member at random reaches a deposed
        // leader more often, which is what this defect needs to show.
        MutationCase{Mutation::kReadWithoutReadIndex, 3, 800, {Check::kLinearizability}},
        // Why a damaged member must come back under a new id: with its old one,
        // its forgotten acknowledgements let a node without committed entries
        // be elected.
        MutationCase{
            Mutation::kRejoinEmptyUnderOldId,
            3,
            400,
            {Check::kCompletenessAtRisk, Check::kLeaderCompleteness, Check::kStateMachineSafety,
             Check::kCommitLocked, Check::kElectionSafety, Check::kLostWrite}},
        // With several groups on each member's log, each group's checks still
        // catch a defect of the core or of the driver.
        MutationCase{Mutation::kCommitPreviousTerm, 5, 400, {Check::kCommitLocked}, 4},
        MutationCase{Mutation::kVoteNotPersisted, 5, 800, {Check::kElectionSafety}, 4},
        MutationCase{Mutation::kAckBeforeDurable,
                     5,
                     400,
                     {Check::kCompletenessAtRisk, Check::kCommitLocked},
                     4},
        // Silence must not extend a lease: a quiesced replica's clock keeps counting, which
        // the leaders' clock bounds are checked against, as the history is.
        MutationCase{Mutation::kQuiescedClockStops,
                     5,
                     50,
                     {Check::kClockBound, Check::kLinearizability},
                     4}),
    [](const ::testing::TestParamInfo<MutationCase>& param_info) {
      std::string name = to_string(param_info.param.mutation);
      if (param_info.param.groups > 1)
        name += "_" + std::to_string(param_info.param.groups) + "_groups";
      for (char& ch : name) {
        if (ch == '-') ch = '_';
      }
      return name;
    });

}  // namespace
}  // namespace chorus::sim
