#include "redis/keyspace.h"

#include <gtest/gtest.h>

#include "redis/memory_records.h"

namespace chorus::redis {
namespace {

class Keyspace : public ::testing::Test {
 protected:
  Reply run(std::vector<std::string> argv) { return execute(records, argv, now); }
  MemoryRecords records;
  int64_t now = 1'700'000'000'000;
};

TEST_F(Keyspace, SetAndGet) {
  EXPECT_EQ(run({"get", "k"}), Reply::null());
  EXPECT_EQ(run({"set", "k", "v"}), Reply::ok());
  EXPECT_EQ(run({"get", "k"}), Reply::bulk("v"));
  EXPECT_EQ(run({"set", "k", "w", "NX"}), Reply::null());
  EXPECT_EQ(run({"set", "k", "w", "xx", "get"}), Reply::bulk("v"));
  EXPECT_EQ(run({"set", "other", "w", "XX"}), Reply::null());
  EXPECT_EQ(run({"set", "k", "w", "NX", "XX"}), Reply::error(errors::kSyntax));
  EXPECT_EQ(run({"set", "k", "w", "EX"}), Reply::error(errors::kSyntax));
  EXPECT_EQ(run({"set", "k", "w", "EX", "0"}),
            Reply::error("ERR invalid expire time in 'set' command"));
  EXPECT_EQ(run({"set", "k", "w", "EX", "x"}), Reply::error(errors::kNotInteger));
  EXPECT_EQ(run({"set", "k", "w", "EX", "10", "PX", "10"}), Reply::error(errors::kSyntax));
  EXPECT_EQ(run({"set", "k"}), Reply::error("ERR wrong number of arguments for 'set' command"));
  EXPECT_EQ(run({"SET", "k", "x"}), Reply::ok());
  EXPECT_EQ(run({"getdel", "k"}), Reply::bulk("x"));
  EXPECT_EQ(run({"exists", "k"}), Reply::integer_of(0));
}

TEST_F(Keyspace, ExpiryIsJudgedAtTheGivenTime) {
  EXPECT_EQ(run({"set", "k", "v", "PX", "1500"}), Reply::ok());
  EXPECT_EQ(run({"pttl", "k"}), Reply::integer_of(1500));
  EXPECT_EQ(run({"ttl", "k"}), Reply::integer_of(2));
  EXPECT_EQ(run({"pexpiretime", "k"}), Reply::integer_of(now + 1500));
  now += 1499;
  EXPECT_EQ(run({"get", "k"}), Reply::bulk("v"));
  now += 1;
  EXPECT_EQ(run({"get", "k"}), Reply::null());
  EXPECT_EQ(run({"ttl", "k"}), Reply::integer_of(-2));
  // A write over an expired key starts afresh.
  EXPECT_EQ(run({"incr", "k"}), Reply::integer_of(1));
  EXPECT_EQ(run({"ttl", "k"}), Reply::integer_of(-1));
  // SET keeps the TTL only with KEEPTTL.
  EXPECT_EQ(run({"expire", "k", "100"}), Reply::integer_of(1));
  EXPECT_EQ(run({"set", "k", "a", "KEEPTTL"}), Reply::ok());
  EXPECT_EQ(run({"ttl", "k"}), Reply::integer_of(100));
  EXPECT_EQ(run({"set", "k", "b"}), Reply::ok());
  EXPECT_EQ(run({"ttl", "k"}), Reply::integer_of(-1));
  // An absolute time in the past deletes at once.
  EXPECT_EQ(run({"set", "k", "b", "PXAT", std::to_string(now - 1)}), Reply::ok());
  EXPECT_EQ(run({"exists", "k"}), Reply::integer_of(0));
  EXPECT_TRUE(records.records.empty());
}

TEST_F(Keyspace, ExpireOptions) {
  EXPECT_EQ(run({"expire", "none", "10"}), Reply::integer_of(0));
  run({"set", "k", "v"});
  EXPECT_EQ(run({"expire", "k", "10", "XX"}), Reply::integer_of(0));
  EXPECT_EQ(run({"expire", "k", "10", "GT"}), Reply::integer_of(0));
  EXPECT_EQ(run({"expire", "k", "10", "LT"}), Reply::integer_of(1));
  EXPECT_EQ(run({"expire", "k", "20", "NX"}), Reply::integer_of(0));
  EXPECT_EQ(run({"expire", "k", "20", "GT"}), Reply::integer_of(1));
  EXPECT_EQ(run({"ttl", "k"}), Reply::integer_of(20));
  EXPECT_EQ(run({"expire", "k", "20", "NX", "XX"}),
            Reply::error("ERR NX and XX, GT or LT options at the same time are not compatible"));
  EXPECT_EQ(run({"expire", "k", "20", "GT", "LT"}),
            Reply::error("ERR GT and LT options at the same time are not compatible"));
  EXPECT_EQ(run({"expire", "k", "9223372036854775807"}),
            Reply::error("ERR invalid expire time in 'expire' command"));
  EXPECT_EQ(run({"persist", "k"}), Reply::integer_of(1));
  EXPECT_EQ(run({"persist", "k"}), Reply::integer_of(0));
  EXPECT_EQ(run({"pexpire", "k", "-1"}), Reply::integer_of(1));
  EXPECT_EQ(run({"exists", "k"}), Reply::integer_of(0));
}

TEST_F(Keyspace, Counters) {
  EXPECT_EQ(run({"incr", "n"}), Reply::integer_of(1));
  EXPECT_EQ(run({"incrby", "n", "41"}), Reply::integer_of(42));
  EXPECT_EQ(run({"decrby", "n", "2"}), Reply::integer_of(40));
  EXPECT_EQ(run({"decr", "n"}), Reply::integer_of(39));
  EXPECT_EQ(run({"incrby", "n", "9223372036854775807"}), Reply::error(errors::kOverflow));
  run({"set", "s", "01"});
  EXPECT_EQ(run({"incr", "s"}), Reply::error(errors::kNotInteger));
  run({"set", "s", " 1"});
  EXPECT_EQ(run({"incr", "s"}), Reply::error(errors::kNotInteger));
  EXPECT_EQ(run({"incrby", "n", "1.5"}), Reply::error(errors::kNotInteger));
  EXPECT_EQ(run({"incrbyfloat", "f", "10.5"}), Reply::bulk("10.5"));
  EXPECT_EQ(run({"incrbyfloat", "f", "5.0e3"}), Reply::bulk("5010.5"));
  EXPECT_EQ(run({"incrbyfloat", "f", "-5010.5"}), Reply::bulk("0"));
  EXPECT_EQ(run({"incrbyfloat", "g", "0.1"}), Reply::bulk("0.1"));
  EXPECT_EQ(run({"incrbyfloat", "f", "abc"}), Reply::error(errors::kNotFloat));
  EXPECT_EQ(run({"incrbyfloat", "f", "nan"}), Reply::error(errors::kNotFloat));
  // The TTL stays through INCR.
  run({"set", "t", "1", "EX", "50"});
  EXPECT_EQ(run({"incr", "t"}), Reply::integer_of(2));
  EXPECT_EQ(run({"ttl", "t"}), Reply::integer_of(50));
}

TEST_F(Keyspace, RangesAndAppends) {
  EXPECT_EQ(run({"append", "s", "Hello"}), Reply::integer_of(5));
  EXPECT_EQ(run({"append", "s", " World"}), Reply::integer_of(11));
  EXPECT_EQ(run({"strlen", "s"}), Reply::integer_of(11));
  EXPECT_EQ(run({"getrange", "s", "0", "4"}), Reply::bulk("Hello"));
  EXPECT_EQ(run({"getrange", "s", "-5", "-1"}), Reply::bulk("World"));
  EXPECT_EQ(run({"getrange", "s", "5", "3"}), Reply::bulk(""));
  EXPECT_EQ(run({"getrange", "s", "0", "100"}), Reply::bulk("Hello World"));
  EXPECT_EQ(run({"getrange", "missing", "0", "1"}), Reply::bulk(""));
  EXPECT_EQ(run({"setrange", "s", "6", "Redis"}), Reply::integer_of(11));
  EXPECT_EQ(run({"get", "s"}), Reply::bulk("Hello Redis"));
  EXPECT_EQ(run({"setrange", "z", "3", "x"}), Reply::integer_of(4));
  EXPECT_EQ(run({"get", "z"}), Reply::bulk(std::string("\0\0\0x", 4)));
  EXPECT_EQ(run({"setrange", "none", "3", ""}), Reply::integer_of(0));
  EXPECT_EQ(run({"exists", "none"}), Reply::integer_of(0));
  EXPECT_EQ(run({"setrange", "s", "-1", "x"}), Reply::error(errors::kOffsetRange));
  EXPECT_EQ(run({"setrange", "s", "536870911", "xy"}), Reply::error(errors::kStringTooLong));
}

TEST_F(Keyspace, MultiKeyCommands) {
  EXPECT_EQ(run({"mset", "a", "1", "b", "2"}), Reply::ok());
  EXPECT_EQ(run({"mset", "a", "1", "b"}),
            Reply::error("ERR wrong number of arguments for 'mset' command"));
  EXPECT_EQ(run({"mget", "a", "x", "b"}),
            Reply::array({Reply::bulk("1"), Reply::null(), Reply::bulk("2")}));
  EXPECT_EQ(run({"msetnx", "c", "3", "a", "9"}), Reply::integer_of(0));
  EXPECT_EQ(run({"exists", "c"}), Reply::integer_of(0));
  EXPECT_EQ(run({"msetnx", "c", "3", "d", "4"}), Reply::integer_of(1));
  EXPECT_EQ(run({"exists", "a", "a", "x", "c"}), Reply::integer_of(3));
  EXPECT_EQ(run({"del", "a", "x", "c"}), Reply::integer_of(2));
  EXPECT_EQ(run({"setnx", "b", "5"}), Reply::integer_of(0));
  EXPECT_EQ(run({"setnx", "e", "5"}), Reply::integer_of(1));
  EXPECT_EQ(run({"getset", "e", "6"}), Reply::bulk("5"));
  EXPECT_EQ(run({"type", "e"}), Reply::status("string"));
  EXPECT_EQ(run({"type", "nothing"}), Reply::status("none"));
}

TEST_F(Keyspace, RenameAndGetex) {
  run({"set", "a", "1", "EX", "30"});
  EXPECT_EQ(run({"rename", "a", "b"}), Reply::ok());
  EXPECT_EQ(run({"ttl", "b"}), Reply::integer_of(30));
  EXPECT_EQ(run({"rename", "a", "b"}), Reply::error(errors::kNoSuchKey));
  run({"set", "c", "3"});
  EXPECT_EQ(run({"renamenx", "b", "c"}), Reply::integer_of(0));
  EXPECT_EQ(run({"renamenx", "b", "d"}), Reply::integer_of(1));
  EXPECT_EQ(run({"getex", "d", "PERSIST"}), Reply::bulk("1"));
  EXPECT_EQ(run({"ttl", "d"}), Reply::integer_of(-1));
  EXPECT_EQ(run({"getex", "d", "EX", "5"}), Reply::bulk("1"));
  EXPECT_EQ(run({"ttl", "d"}), Reply::integer_of(5));
  EXPECT_EQ(run({"getex", "d", "EX", "5", "PERSIST"}), Reply::error(errors::kSyntax));
  EXPECT_EQ(run({"setex", "e", "0", "v"}),
            Reply::error("ERR invalid expire time in 'setex' command"));
  EXPECT_EQ(run({"psetex", "e", "100", "v"}), Reply::ok());
  EXPECT_EQ(run({"pttl", "e"}), Reply::integer_of(100));
}

TEST_F(Keyspace, CommandsTravelThroughTheLogUnchanged) {
  std::vector<std::string> argv = {"set", std::string("k\0ey", 4), "", "PX", "5"};
  int64_t at = 0;
  std::vector<std::string> back;
  ASSERT_TRUE(decode_command(encode_command(now, argv), &at, &back));
  EXPECT_EQ(at, now);
  EXPECT_EQ(back, argv);
  std::string bytes = encode_command(now, argv);
  for (size_t cut = 0; cut < bytes.size(); ++cut)
    EXPECT_FALSE(decode_command(std::string_view(bytes).substr(0, cut), &at, &back)) << cut;
}

TEST(Glob, MatchesAsRedisDoes) {
  struct Case {
    const char* pattern;
    const char* text;
    bool match;
  };
  for (const Case& c : std::vector<Case>{{"*", "", true},
                                         {"*", "anything", true},
                                         {"h?llo", "hello", true},
                                         {"h?llo", "hllo", false},
                                         {"h*llo", "heeeello", true},
                                         {"h[ae]llo", "hallo", true},
                                         {"h[ae]llo", "hillo", false},
                                         {"h[^e]llo", "hallo", true},
                                         {"h[^e]llo", "hello", false},
                                         {"h[a-b]llo", "hbllo", true},
                                         {"h[b-a]llo", "hallo", true},
                                         {"h\\*llo", "h*llo", true},
                                         {"h\\*llo", "hxllo", false},
                                         {"*a*b*", "xxaxxbxx", true},
                                         {"*a*b", "xxaxxbxxb", true},
                                         {"user:*", "user:1", true},
                                         {"user:*", "usr:1", false},
                                         {"a**", "a", true},
                                         {"[", "x", false},
                                         {"ab", "abc", false}}) {
    EXPECT_EQ(glob_match(c.pattern, c.text), c.match) << c.pattern << " / " << c.text;
  }
}

TEST_F(Keyspace, ParsingFollowsRedis) {
  int64_t v = 0;
  EXPECT_TRUE(parse_int64("-9223372036854775808", &v));
  EXPECT_FALSE(parse_int64("9223372036854775808", &v));
  EXPECT_FALSE(parse_int64("+1", &v));
  EXPECT_FALSE(parse_int64("-0", &v));
  EXPECT_FALSE(parse_int64("", &v));
  EXPECT_TRUE(parse_int64("0", &v));
  EXPECT_EQ(format_long_double(3.0L), "3");
  EXPECT_EQ(format_long_double(-0.5L), "-0.5");
  const CommandSpec* mset = find_command("MSET");
  ASSERT_NE(mset, nullptr);
  std::vector<std::string> argv = {"mset", "a", "1", "b", "2"};
  EXPECT_EQ(command_keys(*mset, argv), (std::vector<std::string_view>{"a", "b"}));
  EXPECT_EQ(find_command("nosuch"), nullptr);
}

}  // namespace
}  // namespace chorus::redis

namespace chorus::redis {
namespace {

TEST(Transaction, RunsEveryCommandInTurnAsOne) {
  MemoryRecords records;
  Reply r = execute(records,
                    transaction_command({{"set", "a", "1"},
                                         {"incr", "a"},
                                         {"hset", "a", "f", "v"},
                                         {"rpush", "l", "x", "y"},
                                         {"lrange", "l", "0", "-1"},
                                         {"get", "a"}}),
                    1000, 7);
  EXPECT_EQ(r,
            Reply::array({Reply::ok(), Reply::integer_of(2), Reply::error(errors::kWrongType),
                          Reply::integer_of(2), Reply::array({Reply::bulk("x"), Reply::bulk("y")}),
                          Reply::bulk("2")}));
  // The transaction's name is not a command a client can send alone.
  EXPECT_EQ(find_command(kTransaction), nullptr);
  std::vector<std::string> nested = transaction_command({{"get", "a"}});
  EXPECT_EQ(execute(records, transaction_command({nested}), 1000, 8),
            Reply::array({Reply::error("ERR malformed transaction")}));
}

}  // namespace
}  // namespace chorus::redis

namespace chorus::redis {
namespace {

TEST(ExpireSweep, RemovesOnlyWhatIsStillExpired) {
  MemoryRecords records;
  execute(records, {"set", "a", "1", "PX", "10"}, 1000, 1);
  execute(records, {"rpush", "l", "x", "y"}, 1000, 2);
  execute(records, {"pexpire", "l", "10"}, 1000, 3);
  execute(records, {"set", "b", "1", "PX", "10"}, 1000, 4);
  execute(records, {"set", "c", "1"}, 1000, 5);
  // b was written again after the sweep saw it expired.
  execute(records, {"set", "b", "2"}, 1020, 6);
  EXPECT_EQ(execute(records, {std::string(kExpireSweep), "a", "l", "b", "c", "none"}, 1030, 7),
            Reply::integer_of(2));
  EXPECT_EQ(records.records.size(), 2u);
  EXPECT_TRUE(records.elements.empty());
  EXPECT_EQ(execute(records, {"get", "b"}, 1030), Reply::bulk("2"));
  EXPECT_EQ(find_command(kExpireSweep), nullptr);
}

}  // namespace
}  // namespace chorus::redis
