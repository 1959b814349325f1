#include "raft/confchange.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace chorus::raft {
namespace {

constexpr auto kAdd = ConfChangeType::kAddNode;
constexpr auto kRemove = ConfChangeType::kRemoveNode;
constexpr auto kLearner = ConfChangeType::kAddLearner;

// A tracker holding the configuration `cs`, built the way a restart builds it.
ProgressTracker tracker_of(const ConfState& cs) {
  ProgressTracker t(4, 0);
  ConfChanger changer(t, 10);
  TrackerConfig cfg;
  std::map<NodeId, Progress> prs;
  EXPECT_EQ(changer.restore(cs, &cfg, &prs), Error::kOk);
  t.config = cfg;
  t.progress = std::move(prs);
  return t;
}

ConfState voters(std::vector<NodeId> ids) {
  ConfState cs;
  cs.voters = std::move(ids);
  return cs;
}

ConfState joint(std::vector<NodeId> in, std::vector<NodeId> out, std::vector<NodeId> learners = {},
                std::vector<NodeId> learners_next = {}) {
  ConfState cs;
  cs.voters = std::move(in);
  cs.voters_outgoing = std::move(out);
  cs.learners = std::move(learners);
  cs.learners_next = std::move(learners_next);
  cs.auto_leave = true;
  return cs;
}

ConfState with_learners(ConfState cs, std::vector<NodeId> learners) {
  cs.learners = std::move(learners);
  return cs;
}

enum class How { kSimple, kEnterJoint, kLeaveJoint };

struct ChangeCase {
  std::string name;
  ConfState from;
  How how;
  std::vector<ConfChangeSingle> changes;
  Error err;
  ConfState want;  // when err is kOk
};

TEST(ConfChange, Table) {
  constexpr auto kSimple = How::kSimple;
  constexpr auto kEnter = How::kEnterJoint;
  constexpr auto kLeave = How::kLeaveJoint;
  constexpr auto kOk = Error::kOk;
  constexpr auto kBad = Error::kInvalidConfChange;
  const std::vector<ChangeCase> cases = {
      {"add a voter", voters({1, 2, 3}), kSimple, {{kAdd, 4}}, kOk, voters({1, 2, 3, 4})},
      {"add a voter twice is one voter",
       voters({1, 2}),
       kSimple,
       {{kAdd, 3}, {kAdd, 3}},
       kOk,
       voters({1, 2, 3})},
      {"adding an existing voter changes nothing",
       voters({1, 2}),
       kSimple,
       {{kAdd, 2}},
       kOk,
       voters({1, 2})},
      {"remove a voter", voters({1, 2, 3}), kSimple, {{kRemove, 3}}, kOk, voters({1, 2})},
      {"removing an unknown node changes nothing",
       voters({1, 2}),
       kSimple,
       {{kRemove, 9}},
       kOk,
       voters({1, 2})},
      {"two voters at once need joint consensus",
       voters({1, 2, 3}),
       kSimple,
       {{kAdd, 4}, {kAdd, 5}},
       kBad,
       {}},
      {"replacing a voter needs joint consensus",
       voters({1, 2, 3}),
       kSimple,
       {{kAdd, 4}, {kRemove, 3}},
       kBad,
       {}},
      {"the last voter cannot go", voters({1}), kSimple, {{kRemove, 1}}, kBad, {}},
      {"node 0 is no node", voters({1, 2}), kSimple, {{kAdd, 0}}, kBad, {}},
      {"add a learner",
       voters({1, 2, 3}),
       kSimple,
       {{kLearner, 4}},
       kOk,
       with_learners(voters({1, 2, 3}), {4})},
      {"promote a learner",
       with_learners(voters({1, 2, 3}), {4}),
       kSimple,
       {{kAdd, 4}},
       kOk,
       voters({1, 2, 3, 4})},
      {"demote a voter",
       voters({1, 2, 3}),
       kSimple,
       {{kLearner, 3}},
       kOk,
       with_learners(voters({1, 2}), {3})},
      {"remove a learner",
       with_learners(voters({1, 2}), {4}),
       kSimple,
       {{kRemove, 4}},
       kOk,
       voters({1, 2})},
      {"a simple change while joint", joint({1, 2, 4}, {1, 2, 3}), kSimple, {{kAdd, 5}}, kBad, {}},
      {"enter joint: replace a voter",
       voters({1, 2, 3}),
       kEnter,
       {{kAdd, 4}, {kRemove, 3}},
       kOk,
       joint({1, 2, 4}, {1, 2, 3})},
      {"enter joint: demote a voter",
       voters({1, 2, 3}),
       kEnter,
       {{kLearner, 3}},
       kOk,
       joint({1, 2}, {1, 2, 3}, {}, {3})},
      {"enter joint: add a learner",
       voters({1, 2, 3}),
       kEnter,
       {{kLearner, 4}},
       kOk,
       joint({1, 2, 3}, {1, 2, 3}, {4})},
      {"enter joint twice", joint({1, 2, 4}, {1, 2, 3}), kEnter, {{kAdd, 5}}, kBad, {}},
      {"enter joint with no voter left",
       voters({1, 2}),
       kEnter,
       {{kRemove, 1}, {kRemove, 2}},
       kBad,
       {}},
      {"leave joint", joint({1, 2, 4}, {1, 2, 3}), kLeave, {}, kOk, voters({1, 2, 4})},
      {"leave joint: the demoted become learners",
       joint({1, 2}, {1, 2, 3}, {}, {3}),
       kLeave,
       {},
       kOk,
       with_learners(voters({1, 2}), {3})},
      {"leave joint when not joint", voters({1, 2, 3}), kLeave, {}, kBad, {}},
  };
  for (const ChangeCase& c : cases) {
    SCOPED_TRACE(c.name);
    ProgressTracker t = tracker_of(c.from);
    ConfChanger changer(t, 10);
    TrackerConfig cfg;
    std::map<NodeId, Progress> prs;
    Error err = c.how == How::kSimple       ? changer.simple(c.changes, &cfg, &prs)
                : c.how == How::kEnterJoint ? changer.enter_joint(true, c.changes, &cfg, &prs)
                                            : changer.leave_joint(&cfg, &prs);
    ASSERT_EQ(err, c.err);
    if (err != Error::kOk) continue;
    EXPECT_EQ(cfg.to_conf_state(), c.want);
    // Every member of the new configuration has a progress, of the right kind, and no one else.
    ConfState got = cfg.to_conf_state();
    size_t members = 0;
    for (const auto& [id, pr] : prs) {
      EXPECT_TRUE(got.includes(id)) << id;
      bool learner = std::find(got.learners.begin(), got.learners.end(), id) != got.learners.end();
      EXPECT_EQ(pr.is_learner, learner) << id;
      ++members;
    }
    std::set<NodeId> all(got.voters.begin(), got.voters.end());
    all.insert(got.voters_outgoing.begin(), got.voters_outgoing.end());
    all.insert(got.learners.begin(), got.learners.end());
    all.insert(got.learners_next.begin(), got.learners_next.end());
    EXPECT_EQ(members, all.size());
  }
}

TEST(ConfChange, AddedMembersStartActiveAtTheLastIndex) {
  ProgressTracker t = tracker_of(voters({1, 2, 3}));
  ConfChanger changer(t, 42);
  TrackerConfig cfg;
  std::map<NodeId, Progress> prs;
  ASSERT_EQ(changer.simple({{kAdd, 4}}, &cfg, &prs), Error::kOk);
  const Progress& pr = prs.at(4);
  EXPECT_EQ(pr.match, 0u);
  EXPECT_EQ(pr.next, 42u);
  // Active, so that adding it cannot make check-quorum step the leader down at once.
  EXPECT_TRUE(pr.recent_active);
}

TEST(ConfChange, ExistingProgressIsKept) {
  ProgressTracker t = tracker_of(voters({1, 2, 3}));
  t.progress.at(2).match = 17;
  ConfChanger changer(t, 20);
  TrackerConfig cfg;
  std::map<NodeId, Progress> prs;
  ASSERT_EQ(changer.enter_joint(false, {{kAdd, 4}, {kRemove, 3}}, &cfg, &prs), Error::kOk);
  EXPECT_EQ(prs.at(2).match, 17u);
  EXPECT_TRUE(prs.count(3));  // an outgoing voter keeps its progress until the joint state ends
  EXPECT_FALSE(cfg.auto_leave);
}

TEST(ConfChange, RestoreTable) {
  struct Case {
    std::string name;
    ConfState cs;
    Error err;
  };
  const std::vector<Case> cases = {
      {"empty: a member that joins later", {}, Error::kOk},
      {"voters", voters({1, 2, 3}), Error::kOk},
      {"voters and learners", with_learners(voters({1, 2}), {3}), Error::kOk},
      {"joint with a demotion", joint({1, 2}, {1, 2, 3}, {}, {3}), Error::kOk},
      {"a learner that is also a voter", with_learners(voters({1, 2}), {2}),
       Error::kInvalidConfChange},
      {"a demotion outside joint consensus", joint({1, 2}, {}, {}, {3}), Error::kInvalidConfChange},
      {"a demotion of a node not outgoing", joint({1, 2}, {1, 2}, {}, {3}),
       Error::kInvalidConfChange},
      {"a demotion of an incoming voter", joint({1, 2}, {1, 2}, {}, {2}),
       Error::kInvalidConfChange},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ProgressTracker t(4, 0);
    ConfChanger changer(t, 5);
    TrackerConfig cfg;
    std::map<NodeId, Progress> prs;
    EXPECT_EQ(changer.restore(c.cs, &cfg, &prs), c.err);
    if (c.err == Error::kOk) {
      ConfState want = c.cs;
      want.auto_leave = c.cs.auto_leave && !c.cs.voters_outgoing.empty();
      EXPECT_EQ(cfg.to_conf_state(), want);
    }
  }
}

}  // namespace
}  // namespace chorus::raft
