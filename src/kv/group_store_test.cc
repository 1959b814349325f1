#include "kv/group_store.h"

#include <gtest/gtest.h>

#include "storage/testing.h"

namespace chorus::kv {
namespace {

using storage::testing::TempDir;

std::string put(const std::string& key, const std::string& value) {
  return encode_group_op(GroupOp{GroupOp::Kind::kPut, key, value});
}
std::string del(const std::string& key) {
  return encode_group_op(GroupOp{GroupOp::Kind::kDelete, key, ""});
}

std::unique_ptr<GroupStore> open(const std::string& dir) {
  std::unique_ptr<GroupStore> s;
  storage::Status st = GroupStore::open(dir, &s);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return s;
}

std::string value(const GroupStore& s, raft::GroupId g, const std::string& key) {
  std::string v;
  storage::Status st = s.get(g, key, &v);
  if (st.code() == storage::Status::Code::kNotFound) return "<none>";
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return v;
}

TEST(GroupOpTest, RoundTripsAndRefusesEveryTruncationAndTrailingBytes) {
  for (const GroupOp& op :
       {GroupOp{GroupOp::Kind::kPut, "key", std::string("v\0x", 3)},
        GroupOp{GroupOp::Kind::kPut, "", ""}, GroupOp{GroupOp::Kind::kDelete, "gone", ""}}) {
    std::string enc = encode_group_op(op);
    ASSERT_EQ(decode_group_op(enc), op);
    for (size_t i = 0; i < enc.size(); ++i)
      EXPECT_FALSE(decode_group_op(enc.substr(0, i)).has_value()) << i;
    EXPECT_FALSE(decode_group_op(enc + "x").has_value());
  }
  std::string bad_kind = put("k", "v");
  bad_kind[1] = 9;
  EXPECT_FALSE(decode_group_op(bad_kind).has_value());
  std::string bad_version = put("k", "v");
  bad_version[0] = 0;
  EXPECT_FALSE(decode_group_op(bad_version).has_value());
}

TEST(GroupStoreTest, GroupsAreSeparateAndOneWriteCarriesThemAll) {
  TempDir dir("chorus-groups");
  auto s = open(dir.path());
  std::string a = put("k", "in-2");
  std::string b = put("k", "in-3");
  std::string c = put("other", "x");
  ASSERT_TRUE(s->apply({{2, 1, 1, a}, {3, 1, 1, b}, {2, 2, 1, c}, {3, 2, 1, ""}}).is_ok());
  EXPECT_EQ(value(*s, 2, "k"), "in-2");
  EXPECT_EQ(value(*s, 3, "k"), "in-3");
  EXPECT_EQ(value(*s, 2, "other"), "x");
  EXPECT_EQ(value(*s, 3, "other"), "<none>");
  EXPECT_EQ(s->applied_index(2), 2u);
  EXPECT_EQ(s->applied_index(3), 2u);  // an empty entry is applied too
  EXPECT_EQ(s->applied_index(4), 0u);
  EXPECT_EQ(s->groups(), 2u);

  std::string d = del("k");
  ASSERT_TRUE(s->apply({{2, 3, 2, d}}).is_ok());
  EXPECT_EQ(value(*s, 2, "k"), "<none>");
  EXPECT_EQ(value(*s, 3, "k"), "in-3");
}

TEST(GroupStoreTest, ReplayedEntriesAreSkippedAndStateSurvivesReopen) {
  TempDir dir("chorus-groups");
  {
    auto s = open(dir.path());
    std::string v1 = put("k", "1");
    std::string v2 = put("k", "2");
    ASSERT_TRUE(s->apply({{7, 1, 1, v1}, {7, 2, 1, v2}}).is_ok());
  }
  auto s = open(dir.path());
  EXPECT_EQ(s->applied_index(7), 2u);
  EXPECT_EQ(value(*s, 7, "k"), "2");
  // A restart replays from the log: entries already held change nothing.
  std::string old = put("k", "1");
  std::string next = put("k", "3");
  ASSERT_TRUE(s->apply({{7, 1, 1, old}, {7, 2, 1, old}, {7, 3, 1, next}}).is_ok());
  EXPECT_EQ(value(*s, 7, "k"), "3");
  EXPECT_EQ(s->applied_index(7), 3u);
  ASSERT_TRUE(s->apply({{7, 3, 1, old}}).is_ok());
  EXPECT_EQ(value(*s, 7, "k"), "3");
}

TEST(GroupStoreTest, ADroppedGroupLosesEverythingAndItsNeighboursNothing) {
  TempDir dir("chorus-groups");
  {
    auto s = open(dir.path());
    std::string v = put("k", "v");
    ASSERT_TRUE(s->apply({{2, 1, 1, v}, {3, 1, 1, v}, {4, 1, 1, v}}).is_ok());
    ASSERT_TRUE(s->apply({{UINT64_MAX, 1, 1, v}}).is_ok());
    ASSERT_TRUE(s->drop(3).is_ok());
    ASSERT_TRUE(s->drop(3).is_ok()) << "dropping again changes nothing";
    ASSERT_TRUE(s->drop(99).is_ok()) << "a group that holds nothing";
    EXPECT_EQ(value(*s, 3, "k"), "<none>");
    EXPECT_EQ(s->applied_index(3), 0u);
    EXPECT_EQ(value(*s, 2, "k"), "v");
    EXPECT_EQ(value(*s, 4, "k"), "v");
    ASSERT_TRUE(s->drop(UINT64_MAX).is_ok());
    EXPECT_EQ(value(*s, UINT64_MAX, "k"), "<none>");
    EXPECT_EQ(s->groups(), 2u);
    ASSERT_TRUE(s->flush().is_ok());
  }
  auto s = open(dir.path());
  EXPECT_EQ(s->groups(), 2u);
  EXPECT_EQ(s->applied_index(3), 0u);
  EXPECT_EQ(s->applied_index(4), 1u);
  EXPECT_EQ(value(*s, 3, "k"), "<none>");
}

TEST(GroupStoreTest, AnUndecodableEntryIsSkippedButCountsAsApplied) {
  TempDir dir("chorus-groups");
  auto s = open(dir.path());
  ASSERT_TRUE(s->apply({{2, 1, 1, "garbage"}}).is_ok());
  EXPECT_EQ(s->applied_index(2), 1u);
  EXPECT_EQ(value(*s, 2, "garbage"), "<none>");
}

}  // namespace
}  // namespace chorus::kv
