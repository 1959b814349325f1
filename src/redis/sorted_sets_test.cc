// Sorted set commands against Redis 7.0's replies (most cases from its tests/unit/type/zset.tcl
// and tests/unit/scan.tcl), as the state machine runs them over a MemoryRecords store.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "redis/keyspace.h"
#include "redis/memory_records.h"
#include "redis/steps_test.h"

namespace chorus::redis {

namespace {

class SortedSetCommands : public ::testing::Test {
 protected:
  // Every command is its own log entry: a new version base (and random seed) each time.
  Reply run(const std::vector<std::string>& argv) {
    return flat_pairs(execute(records, argv, now, ++index));
  }

  // Runs each step in turn, expecting its reply.
  void play(const std::vector<Step>& steps) {
    play_steps(steps, [this](const std::vector<std::string>& argv) { return run(argv); });
  }

  static Reply err(const std::string& text) { return Reply::error(text); }
  static Reply num(int64_t v) { return Reply::integer_of(v); }
  static Reply names(const std::vector<std::string>& v) {
    std::vector<Reply> out;
    for (const std::string& s : v)
      out.push_back(Reply::bulk(s));
    return Reply::array(std::move(out));
  }
  // member, score, member, score ... with the scores as doubles (RESP2 WITHSCORES).
  static Reply scored(const std::vector<std::string>& v) {
    std::vector<Reply> out;
    for (size_t i = 0; i < v.size(); ++i)
      out.push_back(i % 2 == 1 ? Reply::double_of(v[i]) : Reply::bulk(v[i]));
    return Reply::array(std::move(out));
  }
  // ZMPOP's reply: [key, [[member, score], ...]].
  static Reply popped(const std::string& key, const std::vector<std::string>& v) {
    std::vector<Reply> pairs;
    for (size_t i = 0; i + 1 < v.size(); i += 2)
      pairs.push_back(Reply::array({Reply::bulk(v[i]), Reply::double_of(v[i + 1])}));
    return Reply::array({Reply::bulk(key), Reply::array(std::move(pairs))});
  }
  // ZSCAN's reply: [cursor, [member, score, ...]], all bulk strings.
  static Reply scan(const std::string& cursor, const std::vector<std::string>& v) {
    return Reply::array({Reply::bulk(cursor), names(v)});
  }

  MemoryRecords records;
  int64_t now = 1'700'000'000'000;
  uint64_t index = 0;
};

const Reply kWrongType = Reply::error(errors::kWrongType);
const Reply kSyntax = Reply::error(errors::kSyntax);
const Reply kNotInteger = Reply::error(errors::kNotInteger);
const Reply kNotFloat = Reply::error(errors::kNotFloat);
const Reply kLexError = Reply::error("ERR min or max not valid string range item");
const Reply kScoreError = Reply::error("ERR min or max is not a float");

TEST_F(SortedSetCommands, LexRanges) {
  play({
      {{"zadd", "zset",     "0", "alpha", "0", "bar",   "0", "cool", "0", "down",
        "0",    "elephant", "0", "foo",   "0", "great", "0", "hill", "0", "omega"},
       num(9)},
      // Inclusive, exclusive and open ends, both ways.
      {{"zrangebylex", "zset", "-", "[cool"}, names({"alpha", "bar", "cool"})},
      {{"zrangebylex", "zset", "[bar", "[down"}, names({"bar", "cool", "down"})},
      {{"zrangebylex", "zset", "[g", "+"}, names({"great", "hill", "omega"})},
      {{"zrevrangebylex", "zset", "[cool", "-"}, names({"cool", "bar", "alpha"})},
      {{"zrevrangebylex", "zset", "[down", "[bar"}, names({"down", "cool", "bar"})},
      {{"zrevrangebylex", "zset", "+", "[d"},
       names({"omega", "hill", "great", "foo", "elephant", "down"})},
      {{"zrangebylex", "zset", "-", "(cool"}, names({"alpha", "bar"})},
      {{"zrangebylex", "zset", "(bar", "(down"}, names({"cool"})},
      {{"zrevrangebylex", "zset", "(cool", "-"}, names({"bar", "alpha"})},
      {{"zrevrangebylex", "zset", "+", "(great"}, names({"omega", "hill"})},
      {{"zrangebylex", "zset", "(az", "(b"}, names({})},
      {{"zrangebylex", "zset", "-", "[aaaa"}, names({})},
      {{"zrevrangebylex", "zset", "[elez", "[elex"}, names({})},
      {{"zrevrangebylex", "zset", "(hill", "(omega"}, names({})},
      // ZLEXCOUNT.
      {{"zlexcount", "zset", "[ele", "[h"}, num(3)},
      {{"zlexcount", "zset", "(ele", "(great"}, num(2)},
      {{"zlexcount", "zset", "-", "+"}, num(9)},
      {{"zlexcount", "zset", "+", "-"}, num(0)},
      {{"zlexcount", "zset", "+", "[c"}, num(0)},
      {{"zlexcount", "zset", "[c", "-"}, num(0)},
      {{"zlexcount", "zset", "[bar", "(foo"}, num(4)},
      {{"zlexcount", "zset", "(maxstring", "+"}, num(1)},
      {{"zlexcount", "none", "-", "+"}, num(0)},
      // LIMIT.
      {{"zrangebylex", "zset", "-", "[cool", "LIMIT", "1", "2"}, names({"bar", "cool"})},
      {{"zrangebylex", "zset", "[bar", "[down", "LIMIT", "0", "0"}, names({})},
      {{"zrangebylex", "zset", "[bar", "[down", "LIMIT", "1", "1"}, names({"cool"})},
      {{"zrangebylex", "zset", "[bar", "[down", "LIMIT", "0", "100"},
       names({"bar", "cool", "down"})},
      {{"zrangebylex", "zset", "-", "+", "LIMIT", "-1", "5"}, names({})},
      {{"zrevrangebylex", "zset", "+", "[d", "LIMIT", "0", "4"},
       names({"omega", "hill", "great", "foo"})},
      // ZRANGE's BYLEX.
      {{"zrange", "zset", "[b", "[cool", "BYLEX"}, names({"bar", "cool"})},
      {{"zrange", "zset", "[cool", "[bar", "BYLEX", "REV"}, names({"cool", "bar"})},
      {{"zrange", "zset", "-", "+", "bylex", "limit", "7", "5"}, names({"hill", "omega"})},
      {{"zrange", "zset", "-", "+", "BYLEX", "WITHSCORES"},
       err("ERR syntax error, WITHSCORES not supported in combination with BYLEX")},
      {{"zrangebylex", "zset", "-", "+", "WITHSCORES"},
       err("ERR syntax error, WITHSCORES not supported in combination with BYLEX")},
      // Bad ends.
      {{"zrangebylex", "fooz", "foo", "bar"}, kLexError},
      {{"zrangebylex", "fooz", "[foo", "bar"}, kLexError},
      {{"zrangebylex", "fooz", "foo", "[bar"}, kLexError},
      {{"zrangebylex", "fooz", "+x", "[bar"}, kLexError},
      {{"zrangebylex", "fooz", "-x", "[bar"}, kLexError},
      {{"zrangebylex", "fooz", "", "[bar"}, kLexError},
      {{"zlexcount", "zset", "a", "+"}, kLexError},
      // ZREMRANGEBYLEX.
      {{"zremrangebylex", "zset", "[bar", "(down"}, num(2)},
      {{"zrange", "zset", "0", "-1"},
       names({"alpha", "down", "elephant", "foo", "great", "hill", "omega"})},
      {{"zremrangebylex", "zset", "foo", "bar"}, kLexError},
      {{"zremrangebylex", "none", "-", "+"}, num(0)},
      {{"zremrangebylex", "zset", "(omega", "+"}, num(0)},
      {{"zremrangebylex", "zset", "-", "+"}, num(7)},
      {{"exists", "zset"}, num(0)},
      // Another type.
      {{"set", "str", "v"}, Reply::ok()},
      {{"zrangebylex", "str", "-", "+"}, kWrongType},
      {{"zlexcount", "str", "-", "+"}, kWrongType},
      {{"zlexcount", "str", "a", "+"}, kLexError},  // the range first, as Redis
      {{"zremrangebylex", "str", "-", "+"}, kWrongType},
  });
  EXPECT_TRUE(records.elements.empty());
}

TEST_F(SortedSetCommands, ScoreAndRankRanges) {
  play({
      {{"zadd", "z", "-inf", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "+inf", "g"},
       num(7)},
      // The older commands fix their kind and direction.
      {{"zrevrange", "z", "0", "-1", "BYSCORE"}, kSyntax},
      {{"zrangebyscore", "z", "0", "-1", "REV"}, kSyntax},
      {{"zrevrangebyscore", "z", "0", "-1", "BYLEX"}, kSyntax},
      {{"zrange", "z", "0", "-1", "REV", "REV"}, kSyntax},
      {{"zrange", "z", "0", "-1", "BYSCORE", "BYLEX"}, kSyntax},
      {{"zrange", "z", "0", "-1", "LIMIT", "1"}, kSyntax},
      {{"zrange", "z", "0", "-1", "LIMIT", "1", "2"},
       err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or "
           "BYLEX")},
      {{"zrevrange", "z", "0", "-1", "LIMIT", "1", "2"},
       err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or "
           "BYLEX")},
      {{"zrange", "z", "0", "-1", "LIMIT", "0", "-1"}, names({"a", "b", "c", "d", "e", "f", "g"})},
      {{"zrange", "z", "0", "x"}, kNotInteger},
      {{"zrange", "z", "-100", "1"}, names({"a", "b"})},
      {{"zrange", "z", "1", "2", "REV", "WITHSCORES"}, scored({"f", "5", "e", "4"})},
      {{"zrange", "z", "0", "0", "rev"}, names({"g"})},
      // Score ranges: exclusive ends, infinities, and strtod's reading of an end.
      {{"zrangebyscore", "z", "(-inf", "(2"}, names({"b"})},
      {{"zrangebyscore", "z", "(4", "(+inf"}, names({"f"})},
      {{"zrevrangebyscore", "z", "(+inf", "(4"}, names({"f"})},
      {{"zrangebyscore", "z", "2", "(2"}, names({})},
      {{"zrangebyscore", "z", "", "1"}, names({"b"})},
      {{"zrangebyscore", "z", "(", "1.5"}, names({"b"})},
      {{"zrangebyscore", "z", "str", "1"}, kScoreError},
      {{"zrangebyscore", "z", "1", "NaN"}, kScoreError},
      {{"zrange", "z", "(1", "3", "BYSCORE"}, names({"c", "d"})},
      {{"zrange", "z", "3", "(1", "BYSCORE", "REV"}, names({"d", "c"})},
      // LIMIT: a negative offset picks nothing, a negative count everything left.
      {{"zrangebyscore", "z", "0", "10", "LIMIT", "2", "3"}, names({"d", "e", "f"})},
      {{"zrangebyscore", "z", "0", "10", "LIMIT", "20", "10"}, names({})},
      {{"zrevrangebyscore", "z", "10", "0", "LIMIT", "2", "3"}, names({"d", "c", "b"})},
      {{"zrangebyscore", "z", "-inf", "+inf", "LIMIT", "-1", "3"}, names({})},
      {{"zrangebyscore", "z", "-inf", "+inf", "LIMIT", "5", "-7"}, names({"f", "g"})},
      {{"zrangebyscore", "z", "0", "10", "LIMIT", "x", "2"}, kNotInteger},
      {{"zrangebyscore", "z", "2", "5", "LIMIT", "2", "3", "WITHSCORES"},
       scored({"e", "4", "f", "5"})},
      {{"zrange", "z", "5", "0", "BYSCORE", "REV", "LIMIT", "0", "2", "WITHSCORES"},
       scored({"f", "5", "e", "4"})},
      {{"zrangebyscore", "none", "0", "1"}, names({})},
      // ZCOUNT.
      {{"zcount", "z", "(0", "(3"}, num(2)},
      {{"zcount", "z", "-inf", "+inf"}, num(7)},
      {{"zcount", "z", "(-inf", "(+inf"}, num(5)},
      {{"zcount", "z", "x", "1"}, kScoreError},
      // Removals.
      {{"zremrangebyscore", "z", "1", "NaN"}, kScoreError},
      {{"zremrangebyscore", "z", "(4", "+inf"}, num(2)},
      {{"zremrangebyrank", "z", "10", "-1"}, num(0)},
      {{"zremrangebyrank", "z", "0", "-10"}, num(0)},
      {{"zremrangebyrank", "z", "-2", "-1"}, num(2)},
      {{"zrange", "z", "0", "-1", "WITHSCORES"}, scored({"a", "-inf", "b", "1", "c", "2"})},
      {{"zremrangebyrank", "z", "0", "10"}, num(3)},
      {{"exists", "z"}, num(0)},
  });
}

TEST_F(SortedSetCommands, RangeStore) {
  const Reply limit_error =
      err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
  play({
      {{"zadd", "z1", "1", "a", "2", "b", "3", "c", "4", "d"}, num(4)},
      {{"zrangestore", "z2", "z1", "0", "-1"}, num(4)},
      {{"zrange", "z2", "0", "-1", "withscores"}, scored({"a", "1", "b", "2", "c", "3", "d", "4"})},
      {{"zrangestore", "z2", "z1", "1", "2"}, num(2)},
      {{"zrange", "z2", "0", "-1", "withscores"}, scored({"b", "2", "c", "3"})},
      {{"zrangestore", "z2", "z1", "[b", "[c", "BYLEX"}, num(2)},
      {{"zrange", "z2", "0", "-1", "withscores"}, scored({"b", "2", "c", "3"})},
      {{"zrangestore", "z2", "z1", "1", "2", "BYSCORE"}, num(2)},
      {{"zrange", "z2", "0", "-1", "withscores"}, scored({"a", "1", "b", "2"})},
      {{"zrangestore", "z2", "z1", "0", "5", "BYSCORE", "LIMIT", "0", "2"}, num(2)},
      {{"zrange", "z2", "0", "-1", "withscores"}, scored({"a", "1", "b", "2"})},
      {{"zrangestore", "z2", "z1", "5", "0", "BYSCORE", "REV", "LIMIT", "0", "2"}, num(2)},
      {{"zrange", "z2", "0", "-1", "withscores"}, scored({"c", "3", "d", "4"})},
      // An empty result removes the destination.
      {{"zrangestore", "z2", "missing", "0", "-1"}, num(0)},
      {{"exists", "z2"}, num(0)},
      {{"zadd", "z2", "1", "a"}, num(1)},
      {{"zrangestore", "z2", "z1", "5", "6"}, num(0)},
      {{"exists", "z2"}, num(0)},
      {{"zadd", "z2", "1", "a"}, num(1)},
      {{"zrangestore", "z2", "z1", "[f", "[g", "BYLEX"}, num(0)},
      {{"exists", "z2"}, num(0)},
      // A source of another type leaves the destination alone.
      {{"zadd", "z2", "1", "a"}, num(1)},
      {{"set", "foo", "bar"}, Reply::ok()},
      {{"zrangestore", "z2", "foo", "0", "-1"}, kWrongType},
      {{"zrange", "z2", "0", "-1"}, names({"a"})},
      // Syntax.
      {{"zrangestore", "z2", "z1", "0", "-1", "limit", "1", "2"}, limit_error},
      {{"zrangestore", "z2", "z1", "0", "-1", "WITHSCORES"}, kSyntax},
      {{"zrangestore", "z2", "z1", "0"},
       err("ERR wrong number of arguments for 'zrangestore' command")},
      // The destination is replaced whatever it held, TTL included; it may be the source.
      {{"pexpire", "foo", "100000"}, num(1)},
      {{"zrangestore", "foo", "z1", "0", "0"}, num(1)},
      {{"pttl", "foo"}, num(-1)},
      {{"zrange", "foo", "0", "-1", "WITHSCORES"}, scored({"a", "1"})},
      {{"zrangestore", "z1", "z1", "1", "2"}, num(2)},
      {{"zrange", "z1", "0", "-1"}, names({"b", "c"})},
  });
}

TEST_F(SortedSetCommands, UnionInterDiff) {
  play({
      {{"zadd", "zseta", "1", "a", "2", "b", "3", "c"}, num(3)},
      {{"zadd", "zsetb", "1", "b", "2", "c", "3", "d"}, num(3)},
      {{"zunionstore", "zsetc", "2", "zseta", "zsetb"}, num(4)},
      {{"zrange", "zsetc", "0", "-1", "withscores"},
       scored({"a", "1", "b", "3", "d", "3", "c", "5"})},
      {{"zunion", "2", "zseta", "zsetb"}, names({"a", "b", "d", "c"})},
      {{"zunion", "2", "zseta", "zsetb", "weights", "2", "3", "withscores"},
       scored({"a", "2", "b", "7", "d", "9", "c", "12"})},
      {{"zinter", "2", "zseta", "zsetb", "weights", "2", "3", "withscores"},
       scored({"b", "7", "c", "12"})},
      {{"zunion", "2", "zseta", "zsetb", "aggregate", "min", "withscores"},
       scored({"a", "1", "b", "1", "c", "2", "d", "3"})},
      {{"zunion", "2", "zseta", "zsetb", "AGGREGATE", "MAX", "WITHSCORES"},
       scored({"a", "1", "b", "2", "c", "3", "d", "3"})},
      {{"zinter", "2", "zseta", "zsetb", "aggregate", "max", "withscores"},
       scored({"b", "2", "c", "3"})},
      {{"zinterstore", "zsetc", "2", "zseta", "zsetb"}, num(2)},
      {{"zrange", "zsetc", "0", "-1", "withscores"}, scored({"b", "3", "c", "5"})},
      {{"zinterstore", "zsetc", "2", "zseta", "zsetb", "weights", "2", "3"}, num(2)},
      {{"zrange", "zsetc", "0", "-1", "withscores"}, scored({"b", "7", "c", "12"})},
      {{"zdiff", "2", "zseta", "zsetb", "withscores"}, scored({"a", "1"})},
      {{"zdiffstore", "zsetc", "2", "zseta", "zsetb"}, num(1)},
      {{"zrange", "zsetc", "0", "-1", "withscores"}, scored({"a", "1"})},
      {{"zdiffstore", "zsetc", "2", "zseta", "zseta"}, num(0)},
      {{"exists", "zsetc"}, num(0)},
      {{"zintercard", "2", "zseta", "zsetb"}, num(2)},
      {{"zintercard", "2", "zseta", "zsetb", "limit", "0"}, num(2)},
      {{"zintercard", "2", "zseta", "zsetb", "LIMIT", "1"}, num(1)},
      {{"zintercard", "2", "zseta", "zsetb", "limit", "10"}, num(2)},
      // Absent inputs are empty sets; an empty result removes the destination.
      {{"zunion", "1", "none"}, names({})},
      {{"zinter", "2", "zseta", "none", "withscores"}, names({})},
      {{"zdiff", "2", "zseta", "none", "withscores"}, scored({"a", "1", "b", "2", "c", "3"})},
      {{"zintercard", "1", "none"}, num(0)},
      {{"zunionstore", "out", "1", "none"}, num(0)},
      {{"exists", "out"}, num(0)},
      {{"zadd", "out", "1", "x"}, num(1)},
      {{"zinterstore", "out", "2", "zseta", "none"}, num(0)},
      {{"exists", "out"}, num(0)},
      // Plain sets score 1.
      {{"sadd", "seta", "a", "b", "c"}, num(3)},
      {{"zunionstore", "zsetc", "2", "seta", "zsetb", "weights", "2", "3"}, num(4)},
      {{"zrange", "zsetc", "0", "-1", "withscores"},
       scored({"a", "2", "b", "5", "c", "8", "d", "9"})},
      {{"zinterstore", "zsetc", "2", "seta", "zsetb", "weights", "2", "3"}, num(2)},
      {{"zrange", "zsetc", "0", "-1", "withscores"}, scored({"b", "5", "c", "8"})},
      {{"zdiffstore", "zsetc", "2", "seta", "zsetb"}, num(1)},
      {{"zrange", "zsetc", "0", "-1", "withscores"}, scored({"a", "1"})},
      {{"sadd", "set1", "a"}, num(1)},
      {{"sadd", "set2", "10"}, num(1)},
      {{"zinterstore", "set3", "2", "set1", "set2"}, num(0)},
      {{"sadd", "one", "100", "101", "102", "103"}, num(4)},
      {{"sadd", "two", "100", "200", "201", "202"}, num(4)},
      {{"zadd", "three", "1", "500", "1", "501", "1", "502", "1", "503", "1", "100"}, num(5)},
      {{"zinterstore", "to_here", "3", "one", "two", "three", "WEIGHTS", "0", "0", "1"}, num(1)},
      {{"zrange", "to_here", "0", "-1", "withscores"}, scored({"100", "1"})},
      // Integer members sort as strings among equal scores.
      {{"zadd", "zsetd", "1", "1", "2", "2", "3", "3"}, num(3)},
      {{"zadd", "zsetf", "1", "1", "3", "3", "4", "4"}, num(3)},
      {{"zunion", "2", "zsetd", "zsetf", "withscores"},
       scored({"1", "2", "2", "2", "4", "4", "3", "6"})},
      {{"zinter", "2", "zsetd", "zsetf", "withscores"}, scored({"1", "2", "3", "6"})},
      {{"zdiff", "2", "zsetd", "zsetf", "withscores"}, scored({"2", "2"})},
      // Infinities: inf + -inf is 0, as is -inf times a weight of 0.
      {{"zadd", "inf1", "+inf", "key"}, num(1)},
      {{"zadd", "inf2", "-inf", "key"}, num(1)},
      {{"zunion", "2", "inf1", "inf2", "withscores"}, scored({"key", "0"})},
      {{"zinter", "2", "inf1", "inf2", "withscores"}, scored({"key", "0"})},
      {{"zinter", "2", "inf1", "inf2", "aggregate", "min", "withscores"}, scored({"key", "-inf"})},
      {{"zunion", "2", "inf1", "inf1", "withscores"}, scored({"key", "inf"})},
      {{"zunion", "1", "inf2", "weights", "0", "withscores"}, scored({"key", "0"})},
      {{"zunionstore", "inf3", "2", "inf1", "inf2", "weights", "nan", "nan"},
       err("ERR weight value is not a float")},
      {{"zinter", "2", "inf1", "inf2", "weights", "1", "x"},
       err("ERR weight value is not a float")},
      // numkeys, and the options each command takes.
      {{"zunion", "0", "k"}, err("ERR at least 1 input key is needed for 'zunion' command")},
      {{"ZUNIONSTORE", "d", "0", "k"},
       err("ERR at least 1 input key is needed for 'zunionstore' command")},
      {{"zinter", "-1", "k"}, err("ERR at least 1 input key is needed for 'zinter' command")},
      {{"zdiffstore", "d", "0", "k"},
       err("ERR at least 1 input key is needed for 'zdiffstore' command")},
      {{"zintercard", "0", "k"},
       err("ERR at least 1 input key is needed for 'zintercard' command")},
      {{"zunion", "x", "k"}, kNotInteger},
      {{"zunion", "3", "zseta", "zsetb"}, kSyntax},
      {{"zunion", "2", "zseta", "zsetb", "weights", "1"}, kSyntax},
      {{"zunion", "2", "zseta", "zsetb", "aggregate", "avg"}, kSyntax},
      {{"zunion", "2", "zseta", "zsetb", "aggregate"}, kSyntax},
      {{"zunionstore", "foo", "2", "zsetd", "zsetf", "withscores"}, kSyntax},
      {{"zinterstore", "foo", "2", "zsetd", "zsetf", "withscores"}, kSyntax},
      {{"zdiffstore", "foo", "2", "zsetd", "zsetf", "withscores"}, kSyntax},
      {{"zdiff", "2", "zseta", "zsetb", "weights", "1", "1"}, kSyntax},
      {{"zdiff", "2", "zseta", "zsetb", "aggregate", "min"}, kSyntax},
      {{"zintercard", "1", "zseta", "zseta"}, kSyntax},
      {{"zintercard", "1", "zseta", "bar_arg"}, kSyntax},
      {{"zintercard", "1", "zseta", "LIMIT"}, kSyntax},
      {{"zintercard", "1", "zseta", "withscores"}, kSyntax},
      {{"zintercard", "1", "zseta", "LIMIT", "-1"}, err("ERR LIMIT can't be negative")},
      {{"zintercard", "1", "zseta", "LIMIT", "a"}, err("ERR LIMIT can't be negative")},
      // Other types, checked before the options.
      {{"set", "str", "v"}, Reply::ok()},
      {{"rpush", "list", "x"}, num(1)},
      {{"zunion", "2", "zseta", "str"}, kWrongType},
      {{"zunion", "2", "str", "zseta", "bad_option"}, kWrongType},
      {{"zinter", "2", "zseta", "list"}, kWrongType},
      {{"zintercard", "2", "zseta", "list"}, kWrongType},
      {{"zdiffstore", "out", "2", "zseta", "str"}, kWrongType},
      // A destination of another type is replaced.
      {{"zunionstore", "str", "1", "zseta"}, num(3)},
      {{"type", "str"}, Reply::status("zset")},
  });
}

TEST_F(SortedSetCommands, RandomMembers) {
  play({
      {{"zrandmember", "z"}, Reply::null()},
      {{"zrandmember", "z", "5"}, names({})},
      {{"zadd", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e"}, num(5)},
      {{"zrandmember", "z", "0"}, names({})},
      {{"zrandmember", "z", "5"}, names({"a", "b", "c", "d", "e"})},
      {{"zrandmember", "z", "10", "WITHSCORES"},
       scored({"a", "1", "b", "2", "c", "3", "d", "4", "e", "5"})},
      {{"zrandmember", "z", "x"}, kNotInteger},
      {{"zrandmember", "z", "-9223372036854775808"},
       err("ERR value is out of range, value must between -9223372036854775807 and "
           "9223372036854775807")},
      {{"zrandmember", "z", "-9223372036854770000", "withscores"},
       err("ERR value is out of range")},
      {{"zrandmember", "z", "1", "foo"}, kSyntax},
      {{"zrandmember", "z", "1", "withscores", "x"}, kSyntax},
      {{"set", "s", "v"}, Reply::ok()},
      {{"zrandmember", "s"}, kWrongType},
      {{"zrandmember", "s", "1"}, kWrongType},
  });
  const std::map<std::string, std::string> scores = {
      {"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}, {"e", "5"}};
  // Repeats allowed: every pick a member, with its own score.
  Reply r = run({"zrandmember", "z", "-20", "withscores"});
  ASSERT_EQ(r.elements.size(), 40u);
  for (size_t i = 0; i < r.elements.size(); i += 2) {
    ASSERT_TRUE(scores.contains(r.elements[i].str)) << r.elements[i].str;
    EXPECT_EQ(r.elements[i + 1], Reply::double_of(scores.at(r.elements[i].str)));
  }
  // Distinct picks.
  for (const char* n : {"1", "2", "4"}) {
    Reply d = run({"zrandmember", "z", n});
    std::set<std::string> seen;
    for (const Reply& e : d.elements)
      seen.insert(e.str);
    EXPECT_EQ(d.elements.size(), static_cast<size_t>(std::stoi(n)));
    EXPECT_EQ(seen.size(), d.elements.size());
  }
  // The same entry picks alike on every replica; entries apart pick every member in time.
  MemoryRecords copy = records;
  EXPECT_EQ(execute(records, {"zrandmember", "z", "-7"}, now, 77),
            execute(copy, {"zrandmember", "z", "-7"}, now, 77));
  EXPECT_EQ(execute(records, {"zrandmember", "z"}, now + 5),
            execute(copy, {"zrandmember", "z"}, now + 5));
  std::map<std::string, int> picks;
  for (int i = 0; i < 500; ++i)
    ++picks[execute(records, {"zrandmember", "z"}, now + i).str];
  EXPECT_EQ(picks.size(), 5u);
  for (const auto& [m, n] : picks)
    EXPECT_GT(n, 50) << m;  // 100 expected each
}

TEST_F(SortedSetCommands, MultiKeyAndBlockingPops) {
  play({
      // ZMPOP's arguments.
      {{"zmpop"}, err("ERR wrong number of arguments for 'zmpop' command")},
      {{"zmpop", "1", "k"}, err("ERR wrong number of arguments for 'zmpop' command")},
      {{"zmpop", "0", "k", "MIN"}, err("ERR numkeys should be greater than 0")},
      {{"zmpop", "a", "k", "MIN"}, err("ERR numkeys should be greater than 0")},
      {{"zmpop", "-1", "k", "MAX"}, err("ERR numkeys should be greater than 0")},
      {{"zmpop", "5", "k", "MAX"}, kSyntax},
      {{"zmpop", "1", "k", "bad_where"}, kSyntax},
      {{"zmpop", "1", "k", "MIN", "bar_arg"}, kSyntax},
      {{"zmpop", "1", "k", "MAX", "MIN"}, kSyntax},
      {{"zmpop", "1", "k", "COUNT"}, kSyntax},
      {{"zmpop", "1", "k", "MAX", "COUNT", "1", "COUNT", "2"}, kSyntax},
      {{"zmpop", "2", "k", "k2", "bad_arg"}, kSyntax},
      {{"zmpop", "1", "k", "MIN", "COUNT", "0"}, err("ERR count should be greater than 0")},
      {{"zmpop", "1", "k", "MAX", "COUNT", "a"}, err("ERR count should be greater than 0")},
      {{"zmpop", "2", "k", "k2", "MAX", "COUNT", "-1"}, err("ERR count should be greater than 0")},
      // Pops from the first non-empty key.
      {{"zmpop", "2", "k", "k2", "MIN"}, Reply::null_array()},
      {{"zadd", "z", "-1", "a", "1", "b", "2", "c"}, num(3)},
      {{"zmpop", "2", "none", "z", "min"}, popped("z", {"a", "-1"})},
      {{"zmpop", "1", "z", "MAX", "COUNT", "10"}, popped("z", {"c", "2", "b", "1"})},
      {{"exists", "z"}, num(0)},
      // Another type stops the search only before a sorted set.
      {{"set", "str", "bar"}, Reply::ok()},
      {{"zmpop", "1", "str", "MIN"}, kWrongType},
      {{"zmpop", "2", "none", "str", "MAX", "COUNT", "1"}, kWrongType},
      {{"zadd", "z", "7", "x"}, num(1)},
      {{"zmpop", "2", "z", "str", "MIN"}, popped("z", {"x", "7"})},
      // ZPOPMIN's count.
      {{"zpopmin", "str", "-1"}, err("ERR value is out of range, must be positive")},
      {{"zpopmin", "str", "0"}, kWrongType},
      {{"zadd", "z", "1", "a", "2", "b"}, num(2)},
      {{"zpopmax", "z", "0"}, names({})},
      {{"zcard", "z"}, num(2)},
      // BZPOPMIN and BZPOPMAX: the timeout first, then as ZPOPMIN with the key named.
      {{"zadd", "z1", "0", "a", "1", "b", "2", "c"}, num(3)},
      {{"zadd", "z2", "3", "d", "4", "e", "5", "f"}, num(3)},
      {{"bzpopmin", "z1", "z2", "5"},
       Reply::array({Reply::bulk("z1"), Reply::bulk("a"), Reply::double_of("0")})},
      {{"bzpopmax", "z1", "z2", "0.5"},
       Reply::array({Reply::bulk("z1"), Reply::bulk("c"), Reply::double_of("2")})},
      {{"bzpopmax", "none", "z2", "0"},
       Reply::array({Reply::bulk("z2"), Reply::bulk("f"), Reply::double_of("5")})},
      {{"bzpopmin", "none", "none2", "1"}, Reply::null_array()},
      {{"bzpopmin", "z1", "str", "0"},
       Reply::array({Reply::bulk("z1"), Reply::bulk("b"), Reply::double_of("1")})},
      {{"bzpopmin", "none", "str", "0"}, kWrongType},
      {{"bzpopmin", "str", "x"}, err("ERR timeout is not a float or out of range")},
      {{"bzpopmin", "z2", "-1"}, err("ERR timeout is negative")},
      {{"bzpopmax", "z2", "inf"}, err("ERR timeout is out of range")},
      {{"bzpopmin", "z2"}, err("ERR wrong number of arguments for 'bzpopmin' command")},
      // BZMPOP: its numkeys, direction and COUNT before the timeout.
      {{"bzmpop", "0", "2", "none", "z2", "MIN"}, popped("z2", {"d", "3"})},
      {{"bzmpop", "0", "1", "z2", "MAX", "COUNT", "5"}, popped("z2", {"e", "4"})},
      {{"bzmpop", "0.01", "2", "z2", "none", "MIN", "COUNT", "2"}, Reply::null_array()},
      {{"bzmpop", "0", "1", "str", "MIN"}, kWrongType},
      {{"bzmpop", "0", "1"}, err("ERR wrong number of arguments for 'bzmpop' command")},
      {{"bzmpop", "1", "0", "k", "MIN"}, err("ERR numkeys should be greater than 0")},
      {{"bzmpop", "x", "0", "k", "MIN"}, err("ERR numkeys should be greater than 0")},
      {{"bzmpop", "x", "1", "k", "bad_where"}, kSyntax},
      {{"bzmpop", "1", "1", "k", "MIN", "COUNT", "0"}, err("ERR count should be greater than 0")},
      {{"bzmpop", "x", "1", "k", "MIN"}, err("ERR timeout is not a float or out of range")},
      {{"bzmpop", "-0.5", "1", "k", "MIN"}, err("ERR timeout is negative")},
  });
  // Inside MULTI they run without blocking too.
  Reply r =
      execute(records,
              transaction_command({{"bzpopmin", "none", "0"}, {"bzmpop", "0", "1", "none", "MAX"}}),
              now, ++index);
  EXPECT_EQ(r, Reply::array({Reply::null_array(), Reply::null_array()}));
}

TEST_F(SortedSetCommands, CommandsNameTheirKeys) {
  struct KeysCase {
    std::vector<std::string> argv;
    std::vector<std::string_view> keys;
  };
  const std::vector<KeysCase> cases = {
      {{"zrangestore", "dst", "src", "0", "-1"}, {"dst", "src"}},
      {{"bzpopmin", "a", "b", "0"}, {"a", "b"}},
      {{"bzpopmax", "a", "1.5"}, {"a"}},
      {{"zmpop", "2", "a", "b", "MIN", "COUNT", "3"}, {"a", "b"}},
      {{"bzmpop", "0", "1", "a", "MAX"}, {"a"}},
      {{"zunionstore", "d", "2", "a", "b", "WEIGHTS", "1", "2"}, {"d", "a", "b"}},
      {{"zdiff", "1", "a", "WITHSCORES"}, {"a"}},
      {{"zintercard", "2", "a", "b", "LIMIT", "1"}, {"a", "b"}},
      {{"zscan", "a", "0", "MATCH", "x*"}, {"a"}},
      {{"zrangebylex", "a", "-", "+"}, {"a"}},
  };
  for (const KeysCase& c : cases) {
    const CommandSpec* spec = find_command(c.argv[0]);
    ASSERT_NE(spec, nullptr) << c.argv[0];
    EXPECT_TRUE(arity_ok(*spec, c.argv.size())) << c.argv[0];
    EXPECT_EQ(command_keys(*spec, c.argv), c.keys) << c.argv[0];
  }
  for (const char* name : {"bzpopmin", "bzpopmax", "bzmpop"})
    EXPECT_EQ(find_command(name)->flags, static_cast<uint32_t>(kWrite | kBlocking)) << name;
  for (const char* name :
       {"zrangestore", "zunionstore", "zinterstore", "zdiffstore", "zmpop", "zremrangebylex"})
    EXPECT_EQ(find_command(name)->flags, static_cast<uint32_t>(kWrite)) << name;
  for (const char* name : {"zrangebylex", "zrevrangebylex", "zlexcount", "zunion", "zinter",
                           "zdiff", "zintercard", "zrandmember", "zscan"})
    EXPECT_EQ(find_command(name)->flags, static_cast<uint32_t>(kReadOnly)) << name;
}

TEST_F(SortedSetCommands, ScanOfASmallSetAnswersAtOnce) {
  play({
      {{"zscan", "none", "0"}, scan("0", {})},
      {{"zscan", "none", "0", "COUNT", "0"}, scan("0", {})},
      {{"zadd", "m", "1", "foo", "2", "fab", "3", "fiz", "10", "foobar", "-2.5", "1"}, num(5)},
      {{"zscan", "m", "0"},
       scan("0", {"1", "-2.5", "fab", "2", "fiz", "3", "foo", "1", "foobar", "10"})},
      {{"zscan", "m", "0", "MATCH", "foo*", "COUNT", "10000"},
       scan("0", {"foo", "1", "foobar", "10"})},
      {{"zscan", "m", "123", "match", "*1*"}, scan("0", {"1", "-2.5"})},
      {{"zscan", "m", "x"}, err("ERR invalid cursor")},
      {{"zscan", "m", " 1"}, err("ERR invalid cursor")},
      {{"zscan", "m", "1x"}, err("ERR invalid cursor")},
      {{"zscan", "m", "99999999999999999999999"}, err("ERR invalid cursor")},
      {{"zscan", "m", "0", "COUNT", "0"}, kSyntax},
      {{"zscan", "m", "0", "COUNT", "x"}, kNotInteger},
      {{"zscan", "m", "0", "MATCH"}, kSyntax},
      {{"zscan", "m", "0", "TYPE", "zset"}, kSyntax},
      {{"set", "str", "v"}, Reply::ok()},
      {{"zscan", "str", "0"}, kWrongType},
      {{"zscan", "str", "x"}, err("ERR invalid cursor")},
      // Scores as %.17g: a subnormal one stays itself (Redis's issue #2175).
      {{"zadd", "tiny", "9.8813129168249309e-323", "x"}, num(1)},
      {{"zscan", "tiny", "0"}, scan("0", {"x", "9.8813129168249309e-323"})},
  });
}

TEST_F(SortedSetCommands, ScanPagesThroughALargeSetUnderWrites) {
  std::vector<std::string> add = {"zadd", "big"};
  for (int j = 0; j < 1000; ++j) {
    add.push_back(std::to_string(j));
    add.push_back("key:" + std::to_string(j));
  }
  ASSERT_EQ(run(add), Reply::integer_of(1000));

  // Every page is about COUNT members, the cursor fits 52 bits, and each member comes once.
  std::map<std::string, std::string> seen;
  std::string cursor = "0";
  int calls = 0;
  do {
    Reply r = run({"zscan", "big", cursor});
    ASSERT_EQ(r.elements.size(), 2u);
    cursor = r.elements[0].str;
    EXPECT_LT(std::stoull(cursor), uint64_t{1} << 52);
    const std::vector<Reply>& items = r.elements[1].elements;
    EXPECT_LE(items.size(), 2u * 12);
    for (size_t i = 0; i + 1 < items.size(); i += 2)
      EXPECT_TRUE(seen.emplace(items[i].str, items[i + 1].str).second) << items[i].str;
    ASSERT_LT(++calls, 1000);
  } while (cursor != "0");
  EXPECT_GE(calls, 90);
  ASSERT_EQ(seen.size(), 1000u);
  for (const auto& [m, score] : seen)
    EXPECT_EQ("key:" + score, m);

  // MATCH with COUNT.
  std::set<std::string> matched;
  cursor = "0";
  do {
    Reply r = run({"zscan", "big", cursor, "MATCH", "key:1??", "COUNT", "7"});
    cursor = r.elements[0].str;
    for (size_t i = 0; i < r.elements[1].elements.size(); i += 2)
      matched.insert(r.elements[1].elements[i].str);
  } while (cursor != "0");
  EXPECT_EQ(matched.size(), 100u);

  // Members removed and added between calls: every member there throughout still comes.
  std::set<std::string> removed, returned;
  cursor = "0";
  int step = 0;
  do {
    Reply r = run({"zscan", "big", cursor, "COUNT", "25"});
    cursor = r.elements[0].str;
    for (size_t i = 0; i < r.elements[1].elements.size(); i += 2)
      returned.insert(r.elements[1].elements[i].str);
    for (int j = 0; j < 10; ++j) {
      const std::string gone = "key:" + std::to_string((step * 37 + j * 101) % 1000);
      if (run({"zrem", "big", gone}) == Reply::integer_of(1)) removed.insert(gone);
      run({"zadd", "big", "5", "new:" + std::to_string(step) + ":" + std::to_string(j)});
    }
    ++step;
  } while (cursor != "0");
  EXPECT_GT(removed.size(), 100u);
  for (int j = 0; j < 1000; ++j) {
    const std::string m = "key:" + std::to_string(j);
    EXPECT_TRUE(removed.contains(m) || returned.contains(m)) << m;
  }

  // Any integer is a cursor: the members from there on.
  Reply r = run({"zscan", "big", "2251799813685248", "COUNT", "5"});
  ASSERT_EQ(r.elements.size(), 2u);
  const uint64_t next = std::stoull(r.elements[0].str);
  EXPECT_TRUE(next == 0 || next > (uint64_t{1} << 51));
}

TEST_F(SortedSetCommands, ScoresParseAsRedisDoes) {
  play({
      {{"zadd", "z", "1e400", "a"}, kNotFloat},
      {{"zadd", "z", "-1e400", "a"}, kNotFloat},
      {{"zadd", "z", "1e-400", "a"}, kNotFloat},
      {{"zadd", "z", "", "a"}, kNotFloat},
      {{"zadd", "z", " 1", "a"}, kNotFloat},
      {{"zadd", "z", "nan", "a"}, kNotFloat},
      {{"zadd", "z", "9.8813129168249309e-323", "a"}, num(1)},
      {{"zscore", "z", "a"}, Reply::double_of("9.8813129168249309e-323")},
      {{"zadd", "z",
        "179769313486231570814527423731704356798070567525844996598917476803157260780028538760589"
        "558632766878171540458953514382464234321326889464182768467546703537516986049910576551282"
        "076245490090389328944075868508455133942304583236903222948165808559332123348274797826204"
        "144723168738177180919299881250404026184124858368.00000000000000000",
        "dblmax"},
       num(1)},
      {{"zscore", "z", "dblmax"}, Reply::double_of("1.7976931348623157e+308")},
      {{"zincrby", "z", "+inf", "i"}, Reply::double_of("inf")},
      {{"zincrby", "z", "-inf", "i"}, err("ERR resulting score is not a number (NaN)")},
  });
}

TEST_F(SortedSetCommands, AZaddThatChangesNothingWritesNothing) {
  ASSERT_EQ(run({"zadd", "z", "1", "a"}), num(1));
  const std::string before = records.records.at("z");
  const size_t elements = records.elements.size();
  play({
      {{"zadd", "z", "XX", "1", "none"}, num(0)},
      {{"zadd", "z", "NX", "5", "a"}, num(0)},
      {{"zadd", "z", "GT", "CH", "0", "a"}, num(0)},
      {{"zadd", "z", "1", "a"}, num(0)},
      {{"zadd", "z", "INCR", "0", "a"}, Reply::double_of("1")},
      {{"zadd", "new", "XX", "1", "a"}, num(0)},
      {{"exists", "new"}, num(0)},
  });
  EXPECT_EQ(records.records.at("z"), before);
  EXPECT_EQ(records.elements.size(), elements);
}

}  // namespace
}  // namespace chorus::redis
