#include "server/group_directory.h"

#include <gtest/gtest.h>

namespace chorus::server {
namespace {

using Op = GroupChange::Op;

std::vector<GroupDescriptor> all(const GroupDirectory& d) {
  std::vector<GroupDescriptor> out;
  d.for_each([&out](const GroupDescriptor& g) { out.push_back(g); });
  return out;
}

RpcError apply(GroupDirectory& d, GroupChange c, GroupDescriptor* result = nullptr) {
  GroupDescriptor ignored;
  return d.apply(c, result != nullptr ? result : &ignored);
}

TEST(GroupDirectoryTest, InitialGroupsAreARangeUntilOneChanges) {
  GroupDirectory d;
  ASSERT_TRUE(apply(d, {Op::kCreateInitial, 0, {3, 1, 2}, 10000}).ok());
  EXPECT_EQ(apply(d, {Op::kCreateInitial, 0, {1, 2, 3}, 5}).code, RpcCode::kFailedPrecondition)
      << "once only";
  std::optional<GroupDescriptor> g7 = d.find(7);
  ASSERT_TRUE(g7.has_value());
  EXPECT_EQ(g7->replicas, initial_placement(7, {1, 2, 3}));
  EXPECT_EQ(g7->founders, g7->replicas);
  EXPECT_FALSE(d.find(1).has_value());
  EXPECT_FALSE(d.find(10002).has_value());
  EXPECT_EQ(all(d).size(), 10000u);

  // Changing one makes it a descriptor of its own; the others stay in the range.
  GroupDescriptor moved;
  ASSERT_TRUE(apply(d, {Op::kAddReplica, 7, {9}, 0}, &moved).ok());
  EXPECT_EQ(moved.replicas.back(), 9u);
  EXPECT_EQ(d.find(7)->replicas.size(), 4u);
  ServerState st;
  d.save(&st);
  EXPECT_EQ(st.groups.size(), 1u) << "only the changed group is held apart";
  EXPECT_EQ(st.initial_groups, 10000u);

  ASSERT_TRUE(apply(d, {Op::kDelete, 8, {}, 0}).ok());
  EXPECT_FALSE(d.find(8).has_value());
  EXPECT_TRUE(d.deleted(8));
  std::vector<GroupDescriptor> groups = all(d);
  ASSERT_EQ(groups.size(), 9999u);
  for (size_t i = 1; i < groups.size(); ++i)
    ASSERT_LT(groups[i - 1].id, groups[i].id) << "in id order";

  // The next free id follows the range; the state carries everything over.
  GroupDescriptor made;
  ASSERT_TRUE(apply(d, {Op::kCreate, 0, {1}, 0}, &made).ok());
  EXPECT_EQ(made.id, 10002u);
  d.save(&st);
  GroupDirectory copy;
  copy.restore(st);
  EXPECT_EQ(all(copy), all(d));
  EXPECT_TRUE(copy.deleted(8));
  ASSERT_TRUE(apply(copy, {Op::kCreate, 0, {2}, 0}, &made).ok());
  EXPECT_EQ(made.id, 10003u);
}

TEST(GroupDirectoryTest, ChangesAreJudgedFromTheDirectoryAlone) {
  GroupDirectory d;
  GroupDescriptor g;
  ASSERT_TRUE(apply(d, {Op::kCreate, 5, {1, 2}, 0}, &g).ok());
  EXPECT_EQ(g, (GroupDescriptor{5, {1, 2}, {1, 2}, {}, {}}));
  struct Case {
    const char* name;
    GroupChange change;
    RpcCode want;
  };
  const std::vector<Case> cases = {
      {"an id in use", {Op::kCreate, 5, {3}, 0}, RpcCode::kAlreadyExists},
      {"the etcd group's id", {Op::kCreate, 1, {3}, 0}, RpcCode::kInvalidArgument},
      {"no replicas", {Op::kCreate, 6, {}, 0}, RpcCode::kInvalidArgument},
      {"a replica twice", {Op::kCreate, 6, {3, 3}, 0}, RpcCode::kInvalidArgument},
      {"member 0", {Op::kCreate, 6, {0}, 0}, RpcCode::kInvalidArgument},
      {"adding a replica it has", {Op::kAddReplica, 5, {2}, 0}, RpcCode::kAlreadyExists},
      {"adding to no group", {Op::kAddReplica, 9, {2}, 0}, RpcCode::kNotFound},
      {"two members at once", {Op::kAddReplica, 5, {3, 4}, 0}, RpcCode::kInvalidArgument},
      {"removing one it lacks", {Op::kRemoveReplica, 5, {4}, 0}, RpcCode::kNotFound},
      {"deleting no group", {Op::kDelete, 9, {}, 0}, RpcCode::kNotFound},
      {"gone without leaving", {Op::kReplicaGone, 5, {1}, 0}, RpcCode::kFailedPrecondition},
  };
  for (const Case& c : cases)
    EXPECT_EQ(apply(d, c.change).code, c.want) << c.name;

  ASSERT_TRUE(apply(d, {Op::kRemoveReplica, 5, {1}, 0}, &g).ok());
  EXPECT_EQ(g, (GroupDescriptor{5, {2}, {1, 2}, {1}, {}}));
  EXPECT_EQ(apply(d, {Op::kRemoveReplica, 5, {2}, 0}).code, RpcCode::kFailedPrecondition)
      << "the last replica stays";
  EXPECT_EQ(apply(d, {Op::kAddReplica, 5, {1}, 0}).code, RpcCode::kFailedPrecondition)
      << "a member does not return";
  ASSERT_TRUE(apply(d, {Op::kReplicaGone, 5, {1}, 0}, &g).ok());
  ASSERT_TRUE(apply(d, {Op::kReplicaGone, 5, {1}, 0}, &g).ok()) << "reported twice, kept once";
  EXPECT_EQ(g.gone, (std::vector<uint64_t>{1}));
  for (uint64_t m = 10; g.replicas.size() < kMaxGroupReplicas; ++m)
    ASSERT_TRUE(apply(d, {Op::kAddReplica, 5, {m}, 0}, &g).ok());
  EXPECT_EQ(apply(d, {Op::kAddReplica, 5, {999}, 0}).code, RpcCode::kFailedPrecondition);
  ASSERT_TRUE(apply(d, {Op::kDelete, 5, {}, 0}).ok());
  EXPECT_EQ(apply(d, {Op::kCreate, 5, {1}, 0}).code, RpcCode::kAlreadyExists)
      << "ids of deleted groups are not reused";
}

}  // namespace
}  // namespace chorus::server
