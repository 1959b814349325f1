#include "kv/group_store.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "redis/keyspace.h"
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

std::string command(std::vector<std::string> argv, int64_t now_ms = 1'000'000) {
  return encode_group_op(GroupOp{GroupOp::Kind::kCommand, "", redis::encode_command(now_ms, argv)});
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

// A snapshot of one group moves its whole state to another member's store, replacing what that
// store held for the group and nothing else, durably; damaged exports are refused.
TEST(GroupStoreTest, AnExportedGroupInstallsInPlaceOfTheOldStateAndNothingElse) {
  TempDir dir("chorus-groups");
  std::string data;
  {
    auto a = open(dir.path() + "/a");
    std::string v1 = put("k1", "one");
    std::string v2 = put("k2", std::string(1000, 'x'));
    ASSERT_TRUE(a->apply({{5, 1, 1, v1}, {5, 2, 2, v2}, {6, 1, 1, v1}}).is_ok());
    ASSERT_TRUE(a->export_group(5, 1 << 20, &data).is_ok());
    std::string small;
    EXPECT_FALSE(a->export_group(5, 500, &small).is_ok()) << "larger than allowed";
  }
  ASSERT_TRUE(GroupStore::valid_export(data));
  EXPECT_EQ(GroupStore::export_index(data), 2u);
  EXPECT_EQ(GroupStore::export_index("x"), 0u);
  for (size_t i = 0; i < data.size(); i += 7)
    EXPECT_FALSE(GroupStore::valid_export(data.substr(0, i))) << i;
  {
    auto b = open(dir.path() + "/b");
    std::string old = put("stale", "gone after install");
    std::string other = put("k1", "group 4 keeps it");
    ASSERT_TRUE(b->apply({{5, 1, 1, old}, {4, 1, 1, other}}).is_ok());
    EXPECT_FALSE(b->install(5, data.substr(0, data.size() - 1)).is_ok());
    EXPECT_EQ(value(*b, 5, "stale"), "gone after install") << "a refused install changes nothing";
    ASSERT_TRUE(b->install(5, data).is_ok());
    EXPECT_EQ(value(*b, 5, "k1"), "one");
    EXPECT_EQ(value(*b, 5, "k2"), std::string(1000, 'x'));
    EXPECT_EQ(value(*b, 5, "stale"), "<none>");
    EXPECT_EQ(value(*b, 4, "k1"), "group 4 keeps it");
    EXPECT_EQ(b->applied_index(5), 2u);
    EXPECT_EQ(b->installed_index(5), 2u);
    EXPECT_EQ(b->installed_index(4), 0u);
    // Entries the snapshot covers are skipped; later ones apply.
    std::string older = put("k1", "older");
    std::string later = put("k3", "three");
    ASSERT_TRUE(b->apply({{5, 2, 2, older}, {5, 3, 2, later}}).is_ok());
    EXPECT_EQ(value(*b, 5, "k1"), "one");
    EXPECT_EQ(value(*b, 5, "k3"), "three");
  }
  // The install was durable without a flush: it survives reopening (the later apply, whose
  // RocksDB WAL is off, is replayed from the Raft log in a real member).
  auto b = open(dir.path() + "/b");
  EXPECT_EQ(value(*b, 5, "k1"), "one");
  EXPECT_GE(b->applied_index(5), 2u);
  EXPECT_EQ(b->installed_index(5), 2u);
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

namespace chorus::kv {
namespace {

TEST(GroupStoreRedisTest, CommandsOfOneWriteSeeEachOtherAndReplyInOrder) {
  TempDir dir("chorus-groups");
  auto s = open(dir.path());
  std::string a = command({"incr", "n"});
  std::string b = command({"incrby", "n", "5"});
  std::string c = command({"set", "n", "x", "GET"});
  std::string d = command({"incr", "n"});
  std::string other = command({"incr", "n"});
  std::string bad = encode_group_op(GroupOp{GroupOp::Kind::kCommand, "", "junk"});
  std::vector<std::optional<redis::Reply>> replies;
  ASSERT_TRUE(s->apply({{2, 1, 1, a},
                        {2, 2, 1, b},
                        {3, 1, 1, other},
                        {2, 3, 1, c},
                        {2, 4, 1, d},
                        {2, 5, 1, put("n", "plain")},
                        {2, 6, 1, bad}},
                       &replies)
                  .is_ok());
  ASSERT_EQ(replies.size(), 7u);
  EXPECT_EQ(replies[0], redis::Reply::integer_of(1));
  EXPECT_EQ(replies[1], redis::Reply::integer_of(6));
  EXPECT_EQ(replies[2], redis::Reply::integer_of(1));  // group 3 has its own keys
  EXPECT_EQ(replies[3], redis::Reply::bulk("6"));
  EXPECT_EQ(replies[4], redis::Reply::error(redis::errors::kNotInteger));
  EXPECT_FALSE(replies[5].has_value());  // a Groups API put: no reply, another key space
  EXPECT_EQ(replies[6], redis::Reply::error("ERR malformed command entry"));
  EXPECT_EQ(s->read_command(2, {"get", "n"}, 1'000'000), redis::Reply::bulk("x"));
  EXPECT_EQ(value(*s, 2, "n"), "plain");
  // Replayed after a restart: skipped, with no reply.
  ASSERT_TRUE(s->apply({{2, 4, 1, d}}, &replies).is_ok());
  EXPECT_FALSE(replies[0].has_value());
  EXPECT_EQ(s->read_command(2, {"get", "n"}, 1'000'000), redis::Reply::bulk("x"));
}

TEST(GroupStoreRedisTest, ScansMergeTheBatchsWritesWithTheStore) {
  TempDir dir("chorus-groups");
  auto s = open(dir.path());
  std::string first = command({"rpush", "l", "a", "b", "c"});
  std::string hash = command({"hset", "h", "f1", "1", "f3", "3"});
  ASSERT_TRUE(s->apply({{2, 1, 1, first}, {2, 2, 1, hash}}).is_ok());
  std::vector<std::optional<redis::Reply>> replies;
  std::string pop = command({"lpop", "l"});
  std::string push = command({"rpush", "l", "d"});
  std::string range = command({"lrange", "l", "0", "-1"});
  std::string hset = command({"hset", "h", "f2", "2", "f1", "one"});
  std::string hdel = command({"hdel", "h", "f3"});
  std::string all = command({"hgetall", "h"});
  ASSERT_TRUE(s->apply({{2, 3, 1, pop},
                        {2, 4, 1, push},
                        {2, 5, 1, range},
                        {2, 6, 1, hset},
                        {2, 7, 1, hdel},
                        {2, 8, 1, all}},
                       &replies)
                  .is_ok());
  EXPECT_EQ(replies[2], redis::Reply::array({redis::Reply::bulk("b"), redis::Reply::bulk("c"),
                                             redis::Reply::bulk("d")}));
  EXPECT_EQ(replies[5], redis::Reply::map({redis::Reply::bulk("f1"), redis::Reply::bulk("one"),
                                           redis::Reply::bulk("f2"), redis::Reply::bulk("2")}));
  // And the same once written.
  EXPECT_EQ(s->read_command(2, {"lrange", "l", "0", "-1"}, 0), *replies[2]);
  EXPECT_EQ(s->read_command(2, {"hgetall", "h"}, 0), *replies[5]);
  // A deleted collection's elements are gone from the store, in the same write.
  std::string del = command({"del", "l", "h"});
  std::string again = command({"rpush", "l", "x"});
  std::string range2 = command({"lrange", "l", "0", "-1"});
  ASSERT_TRUE(s->apply({{2, 9, 1, del}, {2, 10, 1, again}, {2, 11, 1, range2}}, &replies).is_ok());
  EXPECT_EQ(replies[0], redis::Reply::integer_of(2));
  EXPECT_EQ(replies[2], redis::Reply::array({redis::Reply::bulk("x")}));
  std::string exported;
  ASSERT_TRUE(s->export_group(2, 1 << 20, &exported).is_ok());
  auto to = open(dir.path() + "/b");
  ASSERT_TRUE(to->install(2, exported).is_ok());
  EXPECT_EQ(to->read_command(2, {"lrange", "l", "0", "-1"}, 0), *replies[2]);
  EXPECT_EQ(to->read_command(2, {"exists", "h"}, 0), redis::Reply::integer_of(0));
  // Only the live list's one element (and its key record) travel.
  EXPECT_EQ(GroupStore::export_index(exported), 11u);
  EXPECT_EQ(std::count(exported.begin(), exported.end(), 'x'), 1);
}

TEST(GroupStoreRedisTest, FlushallEmptiesOnlyItsGroupAndLaterCommandsSeeIt) {
  TempDir dir("chorus-groups");
  auto s = open(dir.path());
  std::string a = command({"set", "a", "1"});
  std::string h = command({"hset", "h", "f", "v"});
  std::string other = command({"set", "a", "kept"});
  ASSERT_TRUE(s->apply({{2, 1, 1, a}, {2, 2, 1, h}, {3, 1, 1, other}}).is_ok());
  std::vector<std::optional<redis::Reply>> replies;
  std::string set_before = command({"set", "b", "1"});
  std::string flush = command({"flushall"});
  std::string get = command({"get", "a"});
  std::string all = command({"hgetall", "h"});
  std::string set_after = command({"set", "c", "1"});
  ASSERT_TRUE(s->apply({{2, 3, 1, set_before},
                        {2, 4, 1, flush},
                        {2, 5, 1, get},
                        {2, 6, 1, all},
                        {2, 7, 1, set_after}},
                       &replies)
                  .is_ok());
  EXPECT_EQ(replies[1], redis::Reply::ok());
  EXPECT_EQ(replies[2], redis::Reply::null());
  EXPECT_EQ(replies[3], redis::Reply::map());
  std::vector<GroupStore::RedisKey> keys;
  bool more = true;
  ASSERT_TRUE(s->redis_keys(2, "", 100, 0, 0, &keys, &more).is_ok());
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].key, "c");
  EXPECT_STREQ(keys[0].type, "string");
  EXPECT_FALSE(more);
  EXPECT_EQ(s->read_command(3, {"get", "a"}, 0), redis::Reply::bulk("kept"));
}

TEST(GroupStoreRedisTest, KeyListingsEndBetweenPrefixes) {
  TempDir dir("chorus-groups");
  auto s = open(dir.path());
  std::vector<GroupEntry> entries;
  std::vector<std::string> ops;
  for (const char* k : {"aa1", "aa2", "aa3", "ab", "b"})
    ops.push_back(command({"set", k, "v"}));
  ops.push_back(command({"set", "gone", "v", "PX", "5"}));
  for (size_t i = 0; i < ops.size(); ++i)
    entries.push_back({2, i + 1, 1, ops[i]});
  ASSERT_TRUE(s->apply(entries).is_ok());
  std::vector<GroupStore::RedisKey> keys;
  bool more = false;
  // Two asked, but "aa3" shares "aa" with the second: it comes too.
  ASSERT_TRUE(s->redis_keys(2, "", 2, 2, 2'000'000, &keys, &more).is_ok());
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[2].key, "aa3");
  EXPECT_TRUE(more);
  ASSERT_TRUE(s->redis_keys(2, "ab", 10, 2, 2'000'000, &keys, &more).is_ok());
  ASSERT_EQ(keys.size(), 2u);  // the expired key is left out
  EXPECT_EQ(keys[1].key, "b");
  EXPECT_FALSE(more);
}

TEST(GroupStoreRedisTest, ExpiryFollowsTheTimeInTheEntry) {
  TempDir dir("chorus-groups");
  auto s = open(dir.path());
  std::string set = command({"set", "k", "v", "PX", "100"}, 5'000);
  std::string late = command({"setnx", "k", "w"}, 5'100);
  std::vector<std::optional<redis::Reply>> replies;
  ASSERT_TRUE(s->apply({{2, 1, 1, set}, {2, 2, 1, late}}, &replies).is_ok());
  EXPECT_EQ(replies[1], redis::Reply::integer_of(1));
  EXPECT_EQ(s->read_command(2, {"pttl", "k"}, 5'100), redis::Reply::integer_of(-1));
}

TEST(GroupStoreRedisTest, SnapshotsCarryRedisRecordsAndKeysAlike) {
  TempDir dir("chorus-groups");
  auto from = open(dir.path() + "/a");
  std::string k = put("plain", "1");
  std::string r = command({"set", "plain", "redis"});
  ASSERT_TRUE(from->apply({{4, 1, 1, k}, {4, 2, 1, r}}).is_ok());
  std::string exported;
  ASSERT_TRUE(from->export_group(4, 1 << 20, &exported).is_ok());
  ASSERT_TRUE(GroupStore::valid_export(exported));
  auto to = open(dir.path() + "/b");
  std::string stale = command({"set", "stale", "x"});
  ASSERT_TRUE(to->apply({{4, 1, 1, stale}}).is_ok());
  ASSERT_TRUE(to->install(4, exported).is_ok());
  EXPECT_EQ(value(*to, 4, "plain"), "1");
  EXPECT_EQ(to->read_command(4, {"get", "plain"}, 0), redis::Reply::bulk("redis"));
  EXPECT_EQ(to->read_command(4, {"exists", "stale"}, 0), redis::Reply::integer_of(0));
  EXPECT_EQ(to->applied_index(4), 2u);
  // A damaged kind letter is refused.
  std::string bad = exported;
  size_t at = bad.find("rplain");
  ASSERT_NE(at, std::string::npos);
  bad[at] = 'x';
  EXPECT_FALSE(GroupStore::valid_export(bad));
}

}  // namespace
}  // namespace chorus::kv
