// The simulator is itself tested: runs replay exactly, a correct cluster passes, and each
// deliberately broken variant of the protocol or driver is caught within a seed budget.
#include <gtest/gtest.h>

#include <ostream>

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

struct MutationCase {
  Mutation mutation;
  int nodes;
  uint64_t seed_budget;
};

// Names the case in test output instead of dumping its bytes.
void PrintTo(const MutationCase& c, std::ostream* os) {
  *os << to_string(c.mutation);
}

class MutationIsCaught : public ::testing::TestWithParam<MutationCase> {};

TEST_P(MutationIsCaught, WithinSeedBudget) {
  const MutationCase& c = GetParam();
  uint64_t caught_at = 0;
  std::string violation;
  for (uint64_t seed = 1; seed <= c.seed_budget && caught_at == 0; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.nodes = c.nodes;
    o.mutation = c.mutation;
    SimResult r = run_simulation(o);
    if (!r.ok) {
      caught_at = seed;
      violation = r.failure;
    }
  }
  ASSERT_NE(caught_at, 0u) << to_string(c.mutation) << " survived " << c.seed_budget << " seeds";
  std::printf("%s caught at seed %llu: %s\n", to_string(c.mutation),
              static_cast<unsigned long long>(caught_at), violation.c_str());
}

INSTANTIATE_TEST_SUITE_P(Mutations, MutationIsCaught,
                         ::testing::Values(MutationCase{Mutation::kCommitPreviousTerm, 5, 400},
                                           MutationCase{Mutation::kVoteNotPersisted, 5, 400},
                                           MutationCase{Mutation::kAckBeforeDurable, 5, 400},
                                           MutationCase{Mutation::kReadWithoutReadIndex, 5, 400}),
                         [](const ::testing::TestParamInfo<MutationCase>& param_info) {
                           std::string name = to_string(param_info.param.mutation);
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace chorus::sim
