#include <gtest/gtest.h>

#include "redis/keyspace.h"
#include "redis/memory_records.h"

namespace chorus::redis {
namespace {

class Collections : public ::testing::Test {
 protected:
  // Every command is a write of its own entry: a new version base each time.
  Reply run(std::vector<std::string> argv) {
    return flat_pairs(execute(records, argv, now, ++index));
  }
  static Reply bulks(std::vector<std::string> v) {
    std::vector<Reply> out;
    for (auto& s : v)
      out.push_back(Reply::bulk(std::move(s)));
    return Reply::array(std::move(out));
  }
  static Reply set(std::vector<std::string> v) {
    Reply r = bulks(std::move(v));
    r.kind = Reply::Kind::kSet;
    return r;
  }
  MemoryRecords records;
  int64_t now = 1'700'000'000'000;
  uint64_t index = 0;
};

TEST_F(Collections, Hashes) {
  EXPECT_EQ(run({"hset", "h", "a", "1", "b", "2"}), Reply::integer_of(2));
  EXPECT_EQ(run({"hset", "h", "a", "9", "c", "3"}), Reply::integer_of(1));
  EXPECT_EQ(run({"hset", "h", "a"}),
            Reply::error("ERR wrong number of arguments for 'hset' command"));
  EXPECT_EQ(run({"hget", "h", "a"}), Reply::bulk("9"));
  EXPECT_EQ(run({"hget", "h", "z"}), Reply::null());
  EXPECT_EQ(run({"hlen", "h"}), Reply::integer_of(3));
  EXPECT_EQ(run({"hmget", "h", "b", "z"}), Reply::array({Reply::bulk("2"), Reply::null()}));
  EXPECT_EQ(run({"hgetall", "h"}).elements.size(), 6u);
  EXPECT_EQ(run({"hgetall", "h"}).kind, Reply::Kind::kMap);
  EXPECT_EQ(run({"hkeys", "h"}), bulks({"a", "b", "c"}));
  EXPECT_EQ(run({"hvals", "h"}), bulks({"9", "2", "3"}));
  EXPECT_EQ(run({"hsetnx", "h", "a", "x"}), Reply::integer_of(0));
  EXPECT_EQ(run({"hsetnx", "h", "d", "x"}), Reply::integer_of(1));
  EXPECT_EQ(run({"hexists", "h", "d"}), Reply::integer_of(1));
  EXPECT_EQ(run({"hstrlen", "h", "d"}), Reply::integer_of(1));
  EXPECT_EQ(run({"hincrby", "h", "a", "5"}), Reply::integer_of(14));
  EXPECT_EQ(run({"hincrby", "h", "d", "5"}), Reply::error("ERR hash value is not an integer"));
  EXPECT_EQ(run({"hincrbyfloat", "h", "f", "1.5"}), Reply::bulk("1.5"));
  EXPECT_EQ(run({"hdel", "h", "a", "b", "z"}), Reply::integer_of(2));
  EXPECT_EQ(run({"type", "h"}), Reply::status("hash"));
  EXPECT_EQ(run({"get", "h"}), Reply::error(errors::kWrongType));
  EXPECT_EQ(run({"hget", "nohash", "a"}), Reply::null());
  run({"set", "s", "v"});
  EXPECT_EQ(run({"hset", "s", "a", "1"}), Reply::error(errors::kWrongType));
  // The last field's deletion deletes the key, and its elements with it.
  EXPECT_EQ(run({"hdel", "h", "c", "d", "f"}), Reply::integer_of(3));
  EXPECT_EQ(run({"exists", "h"}), Reply::integer_of(0));
  EXPECT_TRUE(records.elements.empty());
}

TEST_F(Collections, DeletingOrReplacingACollectionDropsItsElements) {
  run({"hset", "h", "a", "1", "b", "2"});
  run({"sadd", "s", "x", "y"});
  run({"rpush", "l", "1", "2", "3"});
  EXPECT_EQ(records.elements.size(), 7u);
  EXPECT_EQ(run({"del", "h"}), Reply::integer_of(1));
  EXPECT_EQ(records.elements.size(), 5u);
  EXPECT_EQ(run({"set", "s", "now a string"}), Reply::ok());
  EXPECT_EQ(records.elements.size(), 3u);
  // RENAME moves the record; the elements stay with it.
  EXPECT_EQ(run({"rename", "l", "l2"}), Reply::ok());
  EXPECT_EQ(run({"lrange", "l2", "0", "-1"}), bulks({"1", "2", "3"}));
  // Over another collection: that one's elements go.
  run({"sadd", "t", "m"});
  EXPECT_EQ(run({"rename", "t", "l2"}), Reply::ok());
  EXPECT_EQ(run({"smembers", "l2"}), set({"m"}));
  EXPECT_EQ(records.elements.size(), 1u);
  // An expired collection's elements go when a write takes its key.
  run({"sadd", "e", "1", "2"});
  run({"pexpire", "e", "10"});
  now += 10;
  EXPECT_EQ(run({"sadd", "e", "3"}), Reply::integer_of(1));
  EXPECT_EQ(run({"smembers", "e"}), set({"3"}));
  EXPECT_EQ(records.elements.size(), 2u);
}

TEST_F(Collections, Sets) {
  EXPECT_EQ(run({"sadd", "s", "a", "b", "c", "a"}), Reply::integer_of(3));
  EXPECT_EQ(run({"scard", "s"}), Reply::integer_of(3));
  EXPECT_EQ(run({"sismember", "s", "b"}), Reply::integer_of(1));
  EXPECT_EQ(run({"smismember", "s", "b", "z"}),
            Reply::array({Reply::integer_of(1), Reply::integer_of(0)}));
  EXPECT_EQ(run({"srem", "s", "b", "z"}), Reply::integer_of(1));
  EXPECT_EQ(run({"smembers", "s"}), set({"a", "c"}));
  run({"sadd", "t", "c", "d"});
  EXPECT_EQ(run({"sinter", "s", "t"}), set({"c"}));
  EXPECT_EQ(run({"sunion", "s", "t"}), set({"a", "c", "d"}));
  EXPECT_EQ(run({"sdiff", "s", "t"}), set({"a"}));
  EXPECT_EQ(run({"sintercard", "2", "s", "t"}), Reply::integer_of(1));
  EXPECT_EQ(run({"sunionstore", "u", "s", "t"}), Reply::integer_of(3));
  EXPECT_EQ(run({"smembers", "u"}), set({"a", "c", "d"}));
  EXPECT_EQ(run({"smove", "u", "t", "a"}), Reply::integer_of(1));
  EXPECT_EQ(run({"smembers", "t"}), set({"a", "c", "d"}));
  EXPECT_EQ(run({"scard", "u"}), Reply::integer_of(2));
  // SPOP takes members until none is left; every replica picks alike (same entry, same pick).
  MemoryRecords copy = records;
  Reply popped = run({"spop", "t"});
  Reply again = execute(copy, {"spop", "t"}, now, index);
  EXPECT_EQ(popped, again);
  EXPECT_EQ(run({"scard", "t"}), Reply::integer_of(2));
  EXPECT_EQ(run({"spop", "t", "5"}).elements.size(), 2u);
  EXPECT_EQ(run({"exists", "t"}), Reply::integer_of(0));
  EXPECT_EQ(run({"spop", "t"}), Reply::null());
  EXPECT_EQ(run({"srandmember", "u", "-5"}).elements.size(), 5u);
  EXPECT_EQ(run({"srandmember", "u", "5"}).elements.size(), 2u);
}

TEST_F(Collections, Lists) {
  EXPECT_EQ(run({"rpush", "l", "b", "c"}), Reply::integer_of(2));
  EXPECT_EQ(run({"lpush", "l", "a", "z"}), Reply::integer_of(4));
  EXPECT_EQ(run({"lrange", "l", "0", "-1"}), bulks({"z", "a", "b", "c"}));
  EXPECT_EQ(run({"lrange", "l", "-2", "100"}), bulks({"b", "c"}));
  EXPECT_EQ(run({"lrange", "l", "3", "1"}), bulks({}));
  EXPECT_EQ(run({"lindex", "l", "-1"}), Reply::bulk("c"));
  EXPECT_EQ(run({"lindex", "l", "9"}), Reply::null());
  EXPECT_EQ(run({"lpop", "l"}), Reply::bulk("z"));
  EXPECT_EQ(run({"rpop", "l", "2"}), bulks({"c", "b"}));
  EXPECT_EQ(run({"llen", "l"}), Reply::integer_of(1));
  EXPECT_EQ(run({"lset", "l", "0", "A"}), Reply::ok());
  EXPECT_EQ(run({"lset", "l", "5", "A"}), Reply::error("ERR index out of range"));
  EXPECT_EQ(run({"lset", "none", "0", "A"}), Reply::error(errors::kNoSuchKey));
  EXPECT_EQ(run({"rpop", "l"}), Reply::bulk("A"));
  EXPECT_EQ(run({"exists", "l"}), Reply::integer_of(0));
  EXPECT_EQ(run({"lpop", "l"}), Reply::null());
  EXPECT_EQ(run({"lpop", "l", "2"}), Reply::null_array());
  EXPECT_EQ(run({"lpushx", "l", "x"}), Reply::integer_of(0));
  run({"rpush", "m", "1", "2", "1", "3", "1"});
  EXPECT_EQ(run({"lrem", "m", "-2", "1"}), Reply::integer_of(2));
  EXPECT_EQ(run({"lrange", "m", "0", "-1"}), bulks({"1", "2", "3"}));
  EXPECT_EQ(run({"linsert", "m", "BEFORE", "3", "2.5"}), Reply::integer_of(4));
  EXPECT_EQ(run({"linsert", "m", "after", "9", "x"}), Reply::integer_of(-1));
  EXPECT_EQ(run({"lrange", "m", "0", "-1"}), bulks({"1", "2", "2.5", "3"}));
  EXPECT_EQ(run({"lpos", "m", "2.5"}), Reply::integer_of(2));
  EXPECT_EQ(run({"lpos", "m", "7"}), Reply::null());
  EXPECT_EQ(run({"ltrim", "m", "1", "-2"}), Reply::ok());
  EXPECT_EQ(run({"lrange", "m", "0", "-1"}), bulks({"2", "2.5"}));
  EXPECT_EQ(run({"lmove", "m", "n", "LEFT", "RIGHT"}), Reply::bulk("2"));
  EXPECT_EQ(run({"rpoplpush", "m", "n"}), Reply::bulk("2.5"));
  EXPECT_EQ(run({"lrange", "n", "0", "-1"}), bulks({"2.5", "2"}));
  EXPECT_EQ(run({"rpoplpush", "n", "n"}), Reply::bulk("2"));
  EXPECT_EQ(run({"lrange", "n", "0", "-1"}), bulks({"2", "2.5"}));
  EXPECT_EQ(run({"exists", "m"}), Reply::integer_of(0));
  EXPECT_EQ(run({"ltrim", "n", "5", "9"}), Reply::ok());
  EXPECT_EQ(run({"exists", "n"}), Reply::integer_of(0));
  EXPECT_TRUE(records.elements.empty());
}

TEST_F(Collections, KeysOfSintercardAreCountedByNumkeys) {
  const CommandSpec* spec = find_command("sintercard");
  ASSERT_NE(spec, nullptr);
  std::vector<std::string> argv = {"sintercard", "2", "a", "b", "LIMIT", "1"};
  EXPECT_EQ(command_keys(*spec, argv), (std::vector<std::string_view>{"a", "b"}));
}

}  // namespace
}  // namespace chorus::redis

namespace chorus::redis {
namespace {

class SortedSets : public ::testing::Test {
 protected:
  Reply run(std::vector<std::string> argv) {
    return flat_pairs(execute(records, argv, now, ++index));
  }
  static Reply flat(std::vector<std::string> v) {
    std::vector<Reply> out;
    for (size_t i = 0; i < v.size(); ++i)
      out.push_back(i % 2 == 1 && v[i][0] != '_' ? Reply::double_of(v[i]) : Reply::bulk(v[i]));
    return Reply::array(std::move(out));
  }
  static Reply names(std::vector<std::string> v) {
    std::vector<Reply> out;
    for (auto& s : v)
      out.push_back(Reply::bulk(s));
    return Reply::array(std::move(out));
  }
  MemoryRecords records;
  int64_t now = 1'700'000'000'000;
  uint64_t index = 0;
};

TEST_F(SortedSets, AddScoreAndRanges) {
  EXPECT_EQ(run({"zadd", "z", "1", "a", "2", "b", "-3.5", "c"}), Reply::integer_of(3));
  EXPECT_EQ(run({"zadd", "z", "5", "a", "2", "b"}), Reply::integer_of(0));
  EXPECT_EQ(run({"zadd", "z", "CH", "6", "a", "9", "d"}), Reply::integer_of(2));
  EXPECT_EQ(run({"zscore", "z", "a"}), Reply::double_of("6"));
  EXPECT_EQ(run({"zscore", "z", "c"}), Reply::double_of("-3.5"));
  EXPECT_EQ(run({"zcard", "z"}), Reply::integer_of(4));
  EXPECT_EQ(run({"zrange", "z", "0", "-1"}), names({"c", "b", "a", "d"}));
  EXPECT_EQ(run({"zrange", "z", "0", "1", "WITHSCORES"}), flat({"c", "-3.5", "b", "2"}));
  EXPECT_EQ(run({"zrevrange", "z", "0", "0"}), names({"d"}));
  EXPECT_EQ(run({"zrangebyscore", "z", "(2", "+inf"}), names({"a", "d"}));
  EXPECT_EQ(run({"zrangebyscore", "z", "-inf", "+inf", "LIMIT", "1", "2"}), names({"b", "a"}));
  EXPECT_EQ(run({"zrevrangebyscore", "z", "6", "2"}), names({"a", "b"}));
  EXPECT_EQ(run({"zrange", "z", "6", "2", "BYSCORE", "REV"}), names({"a", "b"}));
  EXPECT_EQ(run({"zcount", "z", "2", "(9"}), Reply::integer_of(2));
  EXPECT_EQ(run({"zrank", "z", "a"}), Reply::integer_of(2));
  EXPECT_EQ(run({"zrevrank", "z", "a"}), Reply::integer_of(1));
  EXPECT_EQ(run({"zrank", "z", "none"}), Reply::null());
  EXPECT_EQ(run({"zincrby", "z", "-10", "d"}), Reply::double_of("-1"));
  EXPECT_EQ(run({"zrange", "z", "0", "-1"}), names({"c", "d", "b", "a"}));
  EXPECT_EQ(run({"zadd", "z", "XX", "GT", "CH", "0", "a", "100", "b"}), Reply::integer_of(1));
  EXPECT_EQ(run({"zadd", "z", "NX", "GT", "1", "a"}),
            Reply::error("ERR GT, LT, and/or NX options at the same time are not compatible"));
  EXPECT_EQ(run({"zadd", "z", "1", "a", "2"}), Reply::error(errors::kSyntax));
  EXPECT_EQ(run({"zadd", "z", "x", "a"}), Reply::error(errors::kNotFloat));
  EXPECT_EQ(run({"zadd", "z", "NX", "INCR", "1", "a"}), Reply::null());
  EXPECT_EQ(run({"zmscore", "z", "a", "none"}),
            Reply::array({Reply::double_of("6"), Reply::null()}));
  EXPECT_EQ(run({"type", "z"}), Reply::status("zset"));
}

TEST_F(SortedSets, PopsAndRemovals) {
  run({"zadd", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e"});
  EXPECT_EQ(run({"zpopmin", "z"}), flat({"a", "1"}));
  EXPECT_EQ(run({"zpopmax", "z", "2"}), flat({"e", "5", "d", "4"}));
  EXPECT_EQ(run({"zrem", "z", "b", "none"}), Reply::integer_of(1));
  EXPECT_EQ(run({"zcard", "z"}), Reply::integer_of(1));
  run({"zadd", "y", "1", "a", "2", "b", "3", "c", "4", "d"});
  EXPECT_EQ(run({"zremrangebyrank", "y", "0", "1"}), Reply::integer_of(2));
  EXPECT_EQ(run({"zremrangebyscore", "y", "(3", "inf"}), Reply::integer_of(1));
  EXPECT_EQ(run({"zrange", "y", "0", "-1", "WITHSCORES"}), flat({"c", "3"}));
  EXPECT_EQ(run({"zpopmin", "y", "5"}), flat({"c", "3"}));
  EXPECT_EQ(run({"exists", "y"}), Reply::integer_of(0));
  EXPECT_EQ(run({"zpopmin", "y"}), Reply::array());
  // Negative scores, zero and infinities keep their order.
  run({"zadd", "o", "0", "zero", "-0", "zero2", "-inf", "lo", "inf", "hi", "-1e300", "neg"});
  EXPECT_EQ(run({"zrange", "o", "0", "-1"}), names({"lo", "neg", "zero", "zero2", "hi"}));
  EXPECT_EQ(run({"zscore", "o", "hi"}), Reply::double_of("inf"));
}

}  // namespace
}  // namespace chorus::redis

namespace chorus::redis {
namespace {

TEST(CollectionVersions, ATransactionOfManyNewCollectionsKeepsThemApart) {
  MemoryRecords records;
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < 300; ++i)
    cmds.push_back({"sadd", "{t}" + std::to_string(i), "m" + std::to_string(i)});
  cmds.push_back({"del", "{t}257"});
  cmds.push_back({"smembers", "{t}1"});
  cmds.push_back({"spop", "{t}2"});
  cmds.push_back({"srandmember", "{t}3"});
  Reply r = execute(records, transaction_command(cmds), 1000, 5);
  ASSERT_EQ(r.elements.size(), 304u);
  EXPECT_EQ(r.elements[300], Reply::integer_of(1));
  EXPECT_EQ(r.elements[301], Reply::set_of({Reply::bulk("m1")}));
  EXPECT_EQ(r.elements[302], Reply::bulk("m2"));
  EXPECT_EQ(r.elements[303], Reply::bulk("m3"));
  // The next entry's collections do not meet this one's either.
  execute(records, {"sadd", "next", "x"}, 1000, 6);
  EXPECT_EQ(execute(records, {"smembers", "{t}299"}, 1000), Reply::set_of({Reply::bulk("m299")}));
  EXPECT_EQ(execute(records, {"smembers", "next"}, 1000), Reply::set_of({Reply::bulk("x")}));
}

TEST(CollectionEdges, RotationKeepsTheListAndItsTtlAndExtremeCountsAreRefused) {
  MemoryRecords records;
  execute(records, {"rpush", "l", "a"}, 1000, 1);
  execute(records, {"pexpire", "l", "5000"}, 1000, 2);
  EXPECT_EQ(execute(records, {"rpoplpush", "l", "l"}, 1000, 3), Reply::bulk("a"));
  EXPECT_EQ(execute(records, {"pttl", "l"}, 1000), Reply::integer_of(5000));
  EXPECT_EQ(execute(records, {"lrange", "l", "0", "-1"}, 1000), Reply::array({Reply::bulk("a")}));
  execute(records, {"sadd", "s", "x"}, 1000, 4);
  EXPECT_EQ(execute(records, {"srandmember", "s", "-9223372036854775808"}, 1000),
            Reply::error("ERR value is out of range, must be positive"));
  EXPECT_EQ(execute(records, {"lrem", "l", "-9223372036854775808", "a"}, 1000, 5),
            Reply::integer_of(1));
  // SMOVE from a missing key answers 0 before looking at the destination's type.
  execute(records, {"set", "str", "v"}, 1000, 6);
  EXPECT_EQ(execute(records, {"smove", "none", "str", "x"}, 1000, 7), Reply::integer_of(0));
  EXPECT_EQ(execute(records, {"lmove", "none", "str", "LEFT", "LEFT"}, 1000, 8), Reply::null());
  // A string grows to 16 MiB at most.
  EXPECT_EQ(execute(records, {"setrange", "big", std::to_string(16 << 20), "x"}, 1000, 9),
            Reply::error(errors::kStringTooLong));
}

}  // namespace
}  // namespace chorus::redis
