#include "raft/quorum.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace chorus::raft {
namespace {

constexpr auto kWon = VoteResult::kWon;
constexpr auto kLost = VoteResult::kLost;
constexpr auto kPending = VoteResult::kPending;

std::function<Index(NodeId)> values(const std::map<NodeId, Index>& m) {
  return [m](NodeId id) -> Index {
    auto it = m.find(id);
    return it == m.end() ? 0 : it->second;
  };
}

TEST(Quorum, MajorityCommittedTable) {
  struct Case {
    std::string name;
    MajorityConfig config;
    std::map<NodeId, Index> values;  // voters not listed hold 0
    Index want;
  };
  MajorityConfig seventeen;
  std::map<NodeId, Index> seventeen_values;
  for (NodeId id = 1; id <= 17; ++id) {
    seventeen.push_back(id);
    seventeen_values[id] = 100 + id;  // the 9th largest is 109
  }
  const std::vector<Case> cases = {
      {"no voters: no limit", {}, {}, kNoLimit},
      {"one voter", {1}, {{1, 5}}, 5},
      {"one voter at zero", {1}, {}, 0},
      {"two voters need both", {1, 2}, {{1, 5}, {2, 3}}, 3},
      {"three voters, the middle", {1, 2, 3}, {{1, 5}, {2, 3}, {3, 1}}, 3},
      {"three voters, order does not matter", {1, 2, 3}, {{1, 1}, {2, 5}, {3, 3}}, 3},
      {"three voters, one ahead", {1, 2, 3}, {{1, 5}}, 0},
      {"three voters, two equal", {1, 2, 3}, {{1, 4}, {2, 4}, {3, 9}}, 4},
      {"four voters need three", {1, 2, 3, 4}, {{1, 4}, {2, 3}, {3, 2}, {4, 1}}, 2},
      {"five voters need three", {1, 2, 3, 4, 5}, {{1, 5}, {2, 4}, {3, 3}, {4, 2}, {5, 1}}, 3},
      {"more voters than the stack buffer", seventeen, seventeen_values, 109},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(majority_committed(c.config, values(c.values)), c.want);
  }
}

TEST(Quorum, MajorityVoteTable) {
  struct Case {
    std::string name;
    MajorityConfig config;
    std::map<NodeId, bool> votes;
    VoteResult want;
  };
  const std::vector<Case> cases = {
      {"no voters win", {}, {}, kWon},
      {"one voter, no answer", {1}, {}, kPending},
      {"one voter, yes", {1}, {{1, true}}, kWon},
      {"one voter, no", {1}, {{1, false}}, kLost},
      {"three, no answers", {1, 2, 3}, {}, kPending},
      {"three, one yes", {1, 2, 3}, {{1, true}}, kPending},
      {"three, two yes", {1, 2, 3}, {{1, true}, {2, true}}, kWon},
      {"three, one each way", {1, 2, 3}, {{1, true}, {2, false}}, kPending},
      {"three, two no", {1, 2, 3}, {{1, false}, {2, false}}, kLost},
      {"three, yes no no", {1, 2, 3}, {{1, true}, {2, false}, {3, false}}, kLost},
      {"four, two yes", {1, 2, 3, 4}, {{1, true}, {2, true}}, kPending},
      {"four, three yes", {1, 2, 3, 4}, {{1, true}, {2, true}, {3, true}}, kWon},
      {"four, two no", {1, 2, 3, 4}, {{1, false}, {2, false}}, kLost},
      {"votes of non-voters do not count", {1, 2, 3}, {{4, true}, {5, true}, {1, true}}, kPending},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(majority_vote(c.config, c.votes), c.want);
  }
}

TEST(Quorum, JointConfigTable) {
  struct Case {
    std::string name;
    JointConfig config;
    std::map<NodeId, Index> match;
    Index committed;
    std::map<NodeId, bool> votes;
    VoteResult vote;
  };
  const std::vector<Case> cases = {
      {"not joint: the incoming side alone",
       {{1, 2, 3}, {}},
       {{1, 7}, {2, 5}, {3, 1}},
       5,
       {{1, true}, {2, true}},
       kWon},
      {"joint: the lower of the two sides",
       {{1, 2, 3}, {3, 4, 5}},
       {{1, 9}, {2, 9}, {3, 4}, {4, 2}, {5, 1}},
       2,
       {{1, true}, {2, true}},
       kPending},
      {"joint: both sides won",
       {{1, 2, 3}, {3, 4, 5}},
       {{1, 9}, {2, 9}, {3, 9}, {4, 9}, {5, 1}},
       9,
       {{1, true}, {3, true}, {4, true}},
       kWon},
      {"joint: one side lost",
       {{1, 2, 3}, {3, 4, 5}},
       {},
       0,
       {{1, true}, {2, true}, {4, false}, {5, false}},
       kLost},
      {"joint: lost beats pending",
       {{1, 2, 3}, {3, 4, 5}},
       {},
       0,
       {{1, false}, {2, false}, {4, true}},
       kLost},
      {"joint: a shared voter counts on both sides",
       {{1, 2}, {2, 3}},
       {{2, 6}, {1, 6}, {3, 0}},
       0,
       {{1, true}, {2, true}, {3, true}},
       kWon},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(c.config.committed(values(c.match)), c.committed);
    EXPECT_EQ(c.config.vote(c.votes), c.vote);
  }
}

TEST(Quorum, JointConfigContainsEitherSide) {
  JointConfig joint{{1, 2}, {2, 3}};
  EXPECT_TRUE(joint.joint());
  EXPECT_TRUE(joint.contains(1));
  EXPECT_TRUE(joint.contains(3));
  EXPECT_FALSE(joint.contains(4));
  JointConfig simple{{1, 2}, {}};
  EXPECT_FALSE(simple.joint());
  EXPECT_FALSE(simple.contains(3));
}

}  // namespace
}  // namespace chorus::raft
