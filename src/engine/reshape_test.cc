#include "engine/reshape.h"

#include <gtest/gtest.h>

#include <string>

namespace chorus::engine {
namespace {

using raft::ConfChangeType;

raft::ConfState conf(std::vector<raft::NodeId> voters, std::vector<raft::NodeId> learners = {},
                     std::vector<raft::NodeId> outgoing = {}) {
  raft::ConfState c;
  c.voters = std::move(voters);
  c.learners = std::move(learners);
  c.voters_outgoing = std::move(outgoing);
  return c;
}

std::string describe(const ReshapeStep& s) {
  std::string out;
  if (s.change) {
    const char* kind = s.change->type == ConfChangeType::kAddLearner ? "learner "
                       : s.change->type == ConfChangeType::kAddNode  ? "promote "
                                                                     : "remove ";
    out += kind + std::to_string(s.change->node);
  }
  if (s.transfer_to != raft::kNoNode) out += "transfer " + std::to_string(s.transfer_to);
  for (raft::NodeId m : s.report_gone)
    out += (out.empty() ? "" : " ") + std::string("gone ") + std::to_string(m);
  if (s.waiting) out += out.empty() ? "waiting" : " waiting";
  if (s.joint) out += out.empty() ? "joint" : " joint";
  return out.empty() ? "settled" : out;
}

TEST(PlanReshape, OneStepAtATimeInAnOrderThatKeepsTheReplicasAskedFor) {
  struct Case {
    const char* name;
    ReshapeInput in;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"matches", {1, {1, 2, 3}, {}, {}, conf({1, 2, 3}), 10, {{2, 10}, {3, 10}}}, "settled"},
      {"a member to add joins as a learner first",
       {1, {1, 2, 4}, {3}, {}, conf({1, 2, 3}), 10, {{2, 10}, {3, 10}}},
       "learner 4"},
      {"a learner behind the commit holds everything back",
       {1, {1, 2, 4}, {3}, {}, conf({1, 2, 3}, {4}), 10, {{2, 10}, {3, 10}, {4, 7}}},
       "waiting"},
      {"a learner without progress is behind",
       {1, {1, 2, 4}, {3}, {}, conf({1, 2, 3}, {4}), 10, {{2, 10}, {3, 10}}},
       "waiting"},
      {"a learner holding the commit is promoted",
       {1, {1, 2, 4}, {3}, {}, conf({1, 2, 3}, {4}), 10, {{2, 10}, {3, 10}, {4, 10}}},
       "promote 4"},
      {"then the member that left is removed",
       {1, {1, 2, 4}, {3}, {}, conf({1, 2, 3, 4}), 10, {{2, 10}, {3, 10}, {4, 10}}},
       "remove 3"},
      {"then its removal is reported",
       {1, {1, 2, 4}, {3}, {}, conf({1, 2, 4}), 10, {{2, 10}, {4, 10}}},
       "gone 3"},
      {"a reported removal is settled",
       {1, {1, 2, 4}, {3}, {3}, conf({1, 2, 4}), 10, {{2, 10}, {4, 10}}},
       "settled"},
      {"a learner no longer asked for is removed",
       {1, {1, 2}, {5}, {}, conf({1, 2}, {5}), 10, {{2, 10}, {5, 3}}},
       "remove 5"},
      {"the leader that is to go goes last, handing over to a voter that stays",
       {1, {2, 3}, {1, 4}, {}, conf({1, 2, 3, 4}), 10, {{2, 10}, {3, 10}, {4, 10}}},
       "remove 4"},
      {"and then hands over",
       {1, {2, 3}, {1}, {}, conf({1, 2, 3}), 10, {{2, 10}, {3, 10}}},
       "transfer 3"},
      {"a joint configuration settles first",
       {1, {1, 2, 4}, {3}, {}, conf({1, 2, 4}, {}, {1, 2, 3}), 10, {}},
       "joint"},
      {"several missing members join one at a time",
       {1, {1, 2, 3, 4, 5}, {}, {}, conf({1, 2, 3}), 10, {{2, 10}, {3, 10}}},
       "learner 4"},
  };
  for (const Case& c : cases)
    EXPECT_EQ(describe(plan_reshape(c.in)), c.want) << c.name;
}

TEST(PlanReshape, TheLeadersSideComesFromItsStatus) {
  raft::Status st;
  st.id = 2;
  st.hard_state.commit = 40;
  st.config = conf({1, 2}, {3});
  st.progress[1].match = 40;
  st.progress[3].match = 12;
  ReshapeInput in = reshape_input(st);
  EXPECT_EQ(in.self, 2u);
  EXPECT_EQ(in.commit, 40u);
  EXPECT_EQ(in.config, st.config);
  EXPECT_EQ(in.match, (std::map<raft::NodeId, raft::Index>{{1, 40}, {3, 12}}));
  in.wanted = {1, 2, 3};
  EXPECT_EQ(describe(plan_reshape(in)), "waiting");
}

// Following the plan, step by step, moves a group from {1, 2, 3} to {2, 4, 5} (the leader, 1,
// among those leaving) without ever having fewer voters than it started with, until the
// leader hands over.
TEST(PlanReshape, FollowingThePlanMovesAGroupWithoutLosingAVoter) {
  ReshapeInput in{1, {2, 4, 5}, {1, 3}, {}, conf({1, 2, 3}), 10, {{2, 10}, {3, 10}}};
  int steps = 0;
  for (; steps < 20; ++steps) {
    ReshapeStep s = plan_reshape(in);
    ASSERT_FALSE(s.joint);
    if (s.transfer_to != raft::kNoNode) break;
    ASSERT_TRUE(s.change.has_value()) << describe(s);
    raft::ConfState& c = in.config;
    const raft::NodeId m = s.change->node;
    switch (s.change->type) {
      case ConfChangeType::kAddLearner:
        c.learners.push_back(m);
        in.match[m] = 10;  // caught up by a snapshot
        break;
      case ConfChangeType::kAddNode:
        std::erase(c.learners, m);
        c.voters.push_back(m);
        break;
      case ConfChangeType::kRemoveNode:
        std::erase(c.voters, m);
        std::erase(c.learners, m);
        break;
    }
    EXPECT_GE(c.voters.size(), 3u) << describe(s);
  }
  ReshapeStep last = plan_reshape(in);
  EXPECT_TRUE(last.transfer_to == 2 || last.transfer_to == 4 || last.transfer_to == 5)
      << last.transfer_to;
  std::vector<raft::NodeId> voters = in.config.voters;
  std::sort(voters.begin(), voters.end());
  EXPECT_EQ(voters, (std::vector<raft::NodeId>{1, 2, 4, 5}));
  EXPECT_EQ(steps, 5) << "two learners, two promotions, one removal";
  // The new leader (one that stays) removes 1, then reports it.
  in.self = last.transfer_to;
  ReshapeStep next = plan_reshape(in);
  ASSERT_TRUE(next.change.has_value());
  EXPECT_EQ(next.change->type, ConfChangeType::kRemoveNode);
  EXPECT_EQ(next.change->node, 1u);
  std::erase(in.config.voters, raft::NodeId{1});
  EXPECT_EQ(describe(plan_reshape(in)), "gone 1 gone 3");
  in.gone = {1, 3};
  EXPECT_TRUE(plan_reshape(in).settled());
}

}  // namespace
}  // namespace chorus::engine
