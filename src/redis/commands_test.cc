// WATCH's versions, the bit commands, LCS, SORT, COPY, OBJECT, MEMORY USAGE, HSCAN/SSCAN and the
// blocking commands' non-blocking forms, as the state machine runs them over MemoryRecords.
#include <gtest/gtest.h>
#include <set>

#include "redis/keyspace.h"
#include "redis/memory_records.h"

namespace chorus::redis {
namespace {

class Commands : public ::testing::Test {
 protected:
  // Each write as its own log entry (a fresh index), as a group applies them.
  Reply run(std::vector<std::string> argv) {
    return flat_pairs(execute(records, argv, now, ++index));
  }
  std::vector<Reply> ints(std::initializer_list<int64_t> v) {
    std::vector<Reply> out;
    for (int64_t x : v)
      out.push_back(Reply::integer_of(x));
    return out;
  }
  std::vector<Reply> bulks(std::initializer_list<const char*> v) {
    std::vector<Reply> out;
    for (const char* x : v)
      out.push_back(Reply::bulk(x));
    return out;
  }
  MemoryRecords records;
  int64_t now = 1'700'000'000'000;
  uint64_t index = 100;
};

TEST_F(Commands, WatchedVersionsChangeWithEveryWriteDeletionAndExpiry) {
  run({"set", "k", "1"});
  Reply v = run({std::string(kKeyVersions), "k", "absent"});
  ASSERT_EQ(v.elements.size(), 2u);
  EXPECT_EQ(v.elements[0], Reply::integer_of(static_cast<int64_t>(index - 1)));
  EXPECT_EQ(v.elements[1], Reply::integer_of(0));
  auto txn = [&](const std::string& key, int64_t version) {
    return run(transaction_command({{"incr", "n"}}, {{key, static_cast<uint64_t>(version)}}));
  };
  const int64_t at = v.elements[0].integer;
  EXPECT_EQ(txn("k", at), Reply::array(ints({1})));
  EXPECT_EQ(run({"get", "n"}), Reply::bulk("1"));
  run({"append", "k", "x"});
  EXPECT_EQ(txn("k", at), Reply::null_array()) << "written since";
  EXPECT_EQ(run({"get", "n"}), Reply::bulk("1")) << "an aborted transaction runs nothing";
  // Element writes count: LSET on a list.
  run({"rpush", "l", "a"});
  int64_t l = run({std::string(kKeyVersions), "l"}).elements[0].integer;
  run({"lset", "l", "0", "b"});
  EXPECT_EQ(txn("l", l), Reply::null_array());
  // Deleted, and expired.
  int64_t k = run({std::string(kKeyVersions), "k"}).elements[0].integer;
  run({"del", "k"});
  EXPECT_EQ(txn("k", k), Reply::null_array());
  run({"set", "e", "v", "PX", "10"});
  int64_t e = run({std::string(kKeyVersions), "e"}).elements[0].integer;
  now += 20;
  EXPECT_EQ(txn("e", e), Reply::null_array());
  EXPECT_EQ(txn("absent", 0), Reply::array(ints({2})));
}

TEST_F(Commands, Bits) {
  EXPECT_EQ(run({"setbit", "b", "7", "1"}), Reply::integer_of(0));
  EXPECT_EQ(run({"setbit", "b", "7", "0"}), Reply::integer_of(1));
  EXPECT_EQ(run({"setbit", "b", "1", "1"}), Reply::integer_of(0));
  EXPECT_EQ(run({"get", "b"}), Reply::bulk("@"));
  EXPECT_EQ(run({"getbit", "b", "1"}), Reply::integer_of(1));
  EXPECT_EQ(run({"getbit", "b", "100"}), Reply::integer_of(0));
  EXPECT_EQ(run({"setbit", "b", "4294967296", "1"}),
            Reply::error("ERR bit offset is not an integer or out of range"));
  EXPECT_EQ(run({"setbit", "b", "0", "2"}),
            Reply::error("ERR bit is not an integer or out of range"));
  run({"set", "s", "foobar"});
  EXPECT_EQ(run({"bitcount", "s"}), Reply::integer_of(26));
  EXPECT_EQ(run({"bitcount", "s", "1", "1"}), Reply::integer_of(6));
  EXPECT_EQ(run({"bitcount", "s", "5", "30", "BIT"}), Reply::integer_of(17));
  EXPECT_EQ(run({"bitcount", "s", "1"}), Reply::error(errors::kSyntax));
  run({"set", "z", std::string("\xff\xf0\x00", 3)});
  EXPECT_EQ(run({"bitpos", "z", "0"}), Reply::integer_of(12));
  EXPECT_EQ(run({"bitpos", "z", "1", "2"}), Reply::integer_of(-1));
  run({"set", "ones", "\xff"});
  EXPECT_EQ(run({"bitpos", "ones", "0"}), Reply::integer_of(8)) << "as if padded with zeros";
  EXPECT_EQ(run({"bitop", "and", "dest", "s", "z"}), Reply::integer_of(6));
  EXPECT_EQ(run({"bitop", "not", "dest", "s", "z"}),
            Reply::error("ERR BITOP NOT must be called with a single source key."));
  run({"rpush", "l", "x"});
  EXPECT_EQ(run({"getbit", "l", "0"}), Reply::error(errors::kWrongType));
}

TEST_F(Commands, LongestCommonSubsequence) {
  run({"set", "a", "ohmytext"});
  run({"set", "b", "mynewtext"});
  EXPECT_EQ(run({"lcs", "a", "b"}), Reply::bulk("mytext"));
  EXPECT_EQ(run({"lcs", "a", "b", "LEN"}), Reply::integer_of(6));
  Reply idx = run({"lcs", "a", "b", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"});
  ASSERT_EQ(idx.kind, Reply::Kind::kMap);
  EXPECT_EQ(idx.elements[1],
            Reply::array({Reply::array(
                {Reply::array(ints({4, 7})), Reply::array(ints({5, 8})), Reply::integer_of(4)})}));
  EXPECT_EQ(idx.elements[3], Reply::integer_of(6));
  EXPECT_EQ(run({"lcs", "a", "b", "LEN", "IDX"}),
            Reply::error("ERR If you want both the length and indexes, please just use IDX."));
}

TEST_F(Commands, SortCopyObjectAndMemory) {
  run({"rpush", "l", "3", "1", "2"});
  EXPECT_EQ(run({"sort", "l"}), Reply::array(bulks({"1", "2", "3"})));
  EXPECT_EQ(run({"sort", "l", "DESC", "LIMIT", "0", "2"}), Reply::array(bulks({"3", "2"})));
  EXPECT_EQ(run({"sort", "l", "LIMIT", "1", "9223372036854775807"}),
            Reply::array(bulks({"2", "3"})));
  run({"set", "w_1", "30"});
  run({"set", "w_2", "10"});
  run({"set", "w_3", "20"});
  EXPECT_EQ(run({"sort", "l", "BY", "w_*", "GET", "#", "GET", "w_*"}),
            Reply::array(bulks({"2", "10", "3", "20", "1", "30"})));
  EXPECT_EQ(run({"sort", "l", "BY", "nosort"}), Reply::array(bulks({"3", "1", "2"})));
  EXPECT_EQ(run({"sort", "l", "STORE", "out"}), Reply::integer_of(3));
  EXPECT_EQ(run({"lrange", "out", "0", "-1"}), Reply::array(bulks({"1", "2", "3"})));
  run({"sadd", "words", "b", "a"});
  EXPECT_EQ(run({"sort", "words"}),
            Reply::error("ERR One or more scores can't be converted into double"));
  EXPECT_EQ(run({"sort", "words", "ALPHA"}), Reply::array(bulks({"a", "b"})));

  EXPECT_EQ(run({"copy", "l", "l2"}), Reply::integer_of(1));
  EXPECT_EQ(run({"copy", "l", "l2"}), Reply::integer_of(0));
  run({"rpush", "l", "9"});
  EXPECT_EQ(run({"lrange", "l2", "0", "-1"}), Reply::array(bulks({"3", "1", "2"})))
      << "a copy has its own elements";
  EXPECT_EQ(run({"copy", "l", "l2", "REPLACE"}), Reply::integer_of(1));
  EXPECT_EQ(run({"llen", "l2"}), Reply::integer_of(4));
  EXPECT_EQ(run({"copy", "l", "l"}),
            Reply::error("ERR source and destination objects are the same"));
  EXPECT_EQ(run({"copy", "l", "x", "DB", "1"}), Reply::error("ERR DB index is out of range"));

  EXPECT_EQ(run({"object", "encoding", "w_1"}), Reply::bulk("int"));
  EXPECT_EQ(run({"object", "encoding", "l"}), Reply::bulk("quicklist"));
  EXPECT_EQ(run({"object", "refcount", "l"}), Reply::integer_of(1));
  EXPECT_EQ(run({"object", "encoding", "nothing"}), Reply::null());
  Reply used = run({"memory", "usage", "l"});
  ASSERT_EQ(used.kind, Reply::Kind::kInteger);
  EXPECT_GT(used.integer, 4);
  EXPECT_EQ(run({"memory", "usage", "nothing"}), Reply::null());
}

TEST_F(Commands, ElementScansVisitEveryElementOnce) {
  std::vector<std::string> argv = {"sadd", "s"};
  for (int i = 0; i < 500; ++i)
    argv.push_back("member:" + std::to_string(i));
  run(argv);
  std::set<std::string> seen;
  std::string cursor = "0";
  int calls = 0;
  do {
    Reply r = run({"sscan", "s", cursor, "COUNT", "7"});
    ASSERT_EQ(r.elements.size(), 2u);
    cursor = r.elements[0].str;
    for (const Reply& m : r.elements[1].elements)
      seen.insert(m.str);
    ASSERT_LT(++calls, 1000);
  } while (cursor != "0");
  EXPECT_EQ(seen.size(), 500u);
  run({"hset", "h", "f1", "v1", "f2", "v2"});
  EXPECT_EQ(run({"hscan", "h", "0", "MATCH", "*2"}),
            Reply::array({Reply::bulk("0"), Reply::array(bulks({"f2", "v2"}))}));
  EXPECT_EQ(run({"hscan", "h", "x"}), Reply::error("ERR invalid cursor"));
}

TEST_F(Commands, BlockingFormsTakeWhatIsThereOrAnswerANullArray) {
  EXPECT_EQ(run({"blpop", "a", "b", "0"}), Reply::null_array());
  run({"rpush", "b", "x", "y"});
  EXPECT_EQ(run({"blpop", "a", "b", "0"}), Reply::array(bulks({"b", "x"})));
  EXPECT_EQ(run({"brpoplpush", "b", "a", "1.5"}), Reply::bulk("y"));
  EXPECT_EQ(run({"brpoplpush", "b", "a", "1"}), Reply::null());
  EXPECT_EQ(run({"blpop", "a", "-1"}), Reply::error("ERR timeout is negative"));
  EXPECT_EQ(run({"blpop", "a", "x"}), Reply::error("ERR timeout is not a float or out of range"));
  run({"rpush", "m", "1", "2", "3"});
  EXPECT_EQ(run({"blmpop", "0", "2", "none", "m", "RIGHT", "COUNT", "2"}),
            Reply::array({Reply::bulk("m"), Reply::array(bulks({"3", "2"}))}));
  EXPECT_EQ(run({"lmpop", "0", "m", "LEFT"}), Reply::error("ERR numkeys should be greater than 0"));
  run({"set", "str", "v"});
  EXPECT_EQ(run({"blpop", "str", "0"}), Reply::error(errors::kWrongType));
}

}  // namespace
}  // namespace chorus::redis
