// Stream commands against Redis 7.0's replies (most cases from its tests/unit/type/stream.tcl and
// stream-cgroups.tcl), as the state machine runs them over a MemoryRecords store.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "redis/keyspace.h"
#include "redis/memory_records.h"
#include "redis/steps_test.h"

namespace chorus::redis {

namespace {

constexpr int64_t kT0 = 1'700'000'000'000;
const std::string kT0Id = std::to_string(kT0);

class StreamCommands : public ::testing::Test {
 protected:
  // Every command is its own log entry: a new version base each time.
  Reply run(const std::vector<std::string>& argv) { return execute(records, argv, now, ++index); }

  // Runs each step in turn, expecting its reply.
  void play(const std::vector<Step>& steps) {
    play_steps(steps, [this](const std::vector<std::string>& argv) { return run(argv); });
  }

  // Adds entries "1-0" .. "<n>-0", each with field f and value <n>.
  void fill(const std::string& key, int n) {
    for (int j = 1; j <= n; ++j) {
      const std::string id = std::to_string(j) + "-0";
      ASSERT_EQ(run({"xadd", key, id, "f", std::to_string(j)}), Reply::bulk(id));
    }
  }

  int64_t xlen(const std::string& key) { return run({"xlen", key}).integer; }

  // A field of an XINFO map.
  Reply info(const std::vector<std::string>& argv, const std::string& field) {
    const Reply r = run(argv);
    EXPECT_EQ(r.kind, Reply::Kind::kMap) << show(r);
    return field_of(r, field);
  }
  static Reply field_of(const Reply& map, const std::string& field) {
    for (size_t i = 0; i + 1 < map.elements.size(); i += 2)
      if (map.elements[i].str == field) return map.elements[i + 1];
    ADD_FAILURE() << "no field " << field << " in " << show(map);
    return Reply::null();
  }

  static Reply err(const std::string& text) { return Reply::error(text); }
  static Reply num(int64_t v) { return Reply::integer_of(v); }
  static Reply bulk(const std::string& s) { return Reply::bulk(s); }
  static Reply bulks(const std::vector<std::string>& v) {
    std::vector<Reply> out;
    for (const std::string& s : v)
      out.push_back(Reply::bulk(s));
    return Reply::array(std::move(out));
  }
  // An entry: [id, [field, value, ...]].
  static Reply e(const std::string& id, const std::vector<std::string>& fields) {
    return Reply::array({Reply::bulk(id), bulks(fields)});
  }
  static Reply es(std::vector<Reply> entries) { return Reply::array(std::move(entries)); }
  // XREAD's reply for one stream: [[key, entries]].
  static Reply read1(const std::string& key, std::vector<Reply> entries) {
    return Reply::array({Reply::array({Reply::bulk(key), es(std::move(entries))})});
  }
  // XPENDING's extended form: [id, consumer, idle, deliveries].
  static Reply pend(const std::string& id, const std::string& consumer, int64_t idle,
                    int64_t count) {
    return Reply::array({Reply::bulk(id), Reply::bulk(consumer), num(idle), num(count)});
  }
  // The IDs of a range's entries.
  static std::vector<std::string> ids_of(const Reply& r) {
    std::vector<std::string> out;
    for (const Reply& x : r.elements)
      out.push_back(x.elements.empty() ? "?" : x.elements[0].str);
    return out;
  }

  MemoryRecords records;
  int64_t now = kT0;
  uint64_t index = 0;
};

const Reply kOk = Reply::ok();
const Reply kNil = Reply::null();
const Reply kNilArray = Reply::null_array();
const Reply kEmpty = Reply::array();
const Reply kWrongType = Reply::error(errors::kWrongType);
const Reply kSyntax = Reply::error(errors::kSyntax);
const Reply kNotInteger = Reply::error(errors::kNotInteger);
const Reply kInvalidId = Reply::error("ERR Invalid stream ID specified as stream command argument");
const Reply kTooSmall = Reply::error(
    "ERR The ID specified in XADD is equal or smaller than the target stream top item");
const Reply kZeroId = Reply::error("ERR The ID specified in XADD must be greater than 0-0");
const std::string kMax = "18446744073709551615";

TEST_F(StreamCommands, AddGeneratesIds) {
  play({
      {{"xadd", "s", "*", "a", "1"}, bulk(kT0Id + "-0")},
      {{"xadd", "s", "*", "a", "2"}, bulk(kT0Id + "-1")},
      {{"xlen", "s"}, num(2)},
      {{"type", "s"}, Reply::status("stream")},
  });
  now = kT0 + 5;
  play({{{"xadd", "s", "*", "b", "3"}, bulk(std::to_string(kT0 + 5) + "-0")}});
  now = kT0 - 100;  // a clock behind the last ID: its sequence goes on
  play({
      {{"xadd", "s", "*", "b", "4"}, bulk(std::to_string(kT0 + 5) + "-1")},
      {{"xrange", "s", "-", "+"},
       es({e(kT0Id + "-0", {"a", "1"}), e(kT0Id + "-1", {"a", "2"}),
           e(std::to_string(kT0 + 5) + "-0", {"b", "3"}),
           e(std::to_string(kT0 + 5) + "-1", {"b", "4"})})},
  });
}

TEST_F(StreamCommands, AddExplicitIds) {
  play({
      {{"xadd", "t", "123-456", "item", "1"}, bulk("123-456")},
      // ms-*: the next sequence of the same ms, or 0 for a later one.
      {{"xadd", "t", "123-*", "item", "2"}, bulk("123-457")},
      {{"xadd", "t", "789-*", "item", "3"}, bulk("789-0")},
      {{"xadd", "t", "42-*", "item", "4"}, kTooSmall},
      {{"xadd", "t", "789-0", "item", "4"}, kTooSmall},
      {{"xadd", "t", "788", "item", "4"}, kTooSmall},
      {{"xadd", "t", "790", "item", "4"}, bulk("790-0")},
      {{"xadd", "u", "1-" + kMax, "a", "b"}, bulk("1-" + kMax)},
      {{"xadd", "u", "1-*", "c", "d"}, kTooSmall},
      {{"xadd", "u", "2-*", "c", "d"}, bulk("2-0")},
      {{"xadd", "v", kMax + "-" + kMax, "a", "b"}, bulk(kMax + "-" + kMax)},
      {{"xadd", "v", "*", "c", "d"},
       err("ERR The stream has exhausted the last possible ID, unable to add more items")},
      {{"xadd", "w", "0-*", "a", "b"}, bulk("0-1")},
      {{"xadd", "z", "0-0", "k", "v"}, kZeroId},
      {{"xadd", "z", "0", "k", "v"}, kZeroId},
      {{"exists", "z"}, num(0)},
      // A future ID with the greatest sequence: * goes to the next ms.
      {{"xadd", "z", "2577343934890-" + kMax, "f", "v"}, bulk("2577343934890-" + kMax)},
      {{"xadd", "z", "*", "f2", "v2"}, bulk("2577343934891-0")},
      {{"xrange", "z", "-", "+"},
       es({e("2577343934890-" + kMax, {"f", "v"}), e("2577343934891-0", {"f2", "v2"})})},
      // Redis's string2ull: leading zeros and '+' pass through strtoull.
      {{"xadd", "y", "007-01", "a", "b"}, bulk("7-1")},
      {{"xadd", "y", "+8", "a", "b"}, bulk("8-0")},
      {{"xadd", "y", "abc", "f", "v"}, kInvalidId},
      {{"xadd", "y", "9-x", "f", "v"}, kInvalidId},
      {{"xadd", "y", "-9", "f", "v"}, kInvalidId},
      {{"xadd", "y", "9--1", "f", "v"}, kInvalidId},
      {{"xadd", "y", "-", "f", "v"}, kInvalidId},
      {{"xadd", "y", "+", "f", "v"}, kInvalidId},
      {{"xadd", "y", "*-1", "f", "v"}, kInvalidId},
      {{"xadd", "y", "18446744073709551616-0", "f", "v"}, kInvalidId},
      {{"xadd", "y", std::string(128, '1'), "f", "v"}, kInvalidId},
  });
}

TEST_F(StreamCommands, AddArgumentsAndTypes) {
  const Reply wrong = err("ERR wrong number of arguments for 'xadd' command");
  play({
      {{"xadd", "s"}, wrong},
      {{"xadd", "s", "*"}, wrong},
      {{"xadd", "s", "*", "field"}, wrong},
      {{"xadd", "s", "*", "f", "v", "g"}, wrong},
      {{"xadd", "s", "MAXLEN", "5", "*", "f"}, wrong},
      {{"xadd", "s", "NOMKSTREAM", "MAXLEN", "5"}, wrong},
      {{"exists", "s"}, num(0)},
      // NOMKSTREAM: no stream made.
      {{"xadd", "s", "NOMKSTREAM", "*", "item", "1"}, kNil},
      {{"exists", "s"}, num(0)},
      {{"xadd", "s", "*", "item", "1"}, bulk(kT0Id + "-0")},
      {{"xadd", "s", "nomkstream", "*", "item", "2"}, bulk(kT0Id + "-1")},
      {{"xlen", "s"}, num(2)},
      // Options after the ID are fields.
      {{"xadd", "s", "*", "MAXLEN", "1"}, bulk(kT0Id + "-2")},
      {{"xlen", "s"}, num(3)},
      {{"set", "str", "x"}, kOk},
      {{"xadd", "str", "*", "f", "v"}, kWrongType},
      {{"xadd", "str", "NOMKSTREAM", "*", "f", "v"}, kWrongType},
      {{"xlen", "str"}, kWrongType},
      {{"xlen", "none"}, num(0)},
  });
}

TEST_F(StreamCommands, TrimOptionsAndErrors) {
  fill("s", 5);
  play({
      {{"xtrim", "s", "MAXLEN", "1", "LIMIT", "30"},
       err("ERR syntax error, LIMIT cannot be used without the special ~ option")},
      {{"xtrim", "s", "LIMIT", "30"},
       err("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy")},
      {{"xadd", "s", "LIMIT", "30", "*", "f", "v"},
       err("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy")},
      {{"xtrim", "s", "LIMIT", "0", "foo"}, kSyntax},
      {{"xtrim", "s", "LIMIT", "0", "MAXLEN"}, kSyntax},
      {{"xtrim", "s", "LIMIT", "0", "LIMIT", "0"},
       err("ERR syntax error, XTRIM must be called with a trimming strategy")},
      {{"xtrim", "s", "foo", "1"}, kSyntax},
      {{"xtrim", "s", "NOMKSTREAM", "1"}, kSyntax},
      {{"xtrim", "s", "MAXLEN", "-1"}, err("ERR The MAXLEN argument must be >= 0.")},
      {{"xtrim", "s", "MAXLEN", "x"}, kNotInteger},
      {{"xtrim", "s", "MAXLEN", "~", "x"}, kNotInteger},
      {{"xtrim", "s", "MAXLEN", "~", "1", "LIMIT", "-1"},
       err("ERR The LIMIT argument must be >= 0.")},
      {{"xtrim", "s", "MAXLEN", "1", "MINID", "0"},
       err("ERR syntax error, MAXLEN and MINID options at the same time are not compatible")},
      {{"xtrim", "s", "MINID", "x"}, kInvalidId},
      {{"xtrim", "s", "MINID", "-"}, kInvalidId},
      {{"xlen", "s"}, num(5)},
      {{"xtrim", "none", "MAXLEN", "1"}, num(0)},
      {{"exists", "none"}, num(0)},
      {{"set", "str", "x"}, kOk},
      {{"xtrim", "str", "MAXLEN", "1"}, kWrongType},
      // MINID trims below the ID; "=" is exact.
      {{"xtrim", "s", "MINID", "=", "3-0"}, num(2)},
      {{"xrange", "s", "-", "+"},
       es({e("3-0", {"f", "3"}), e("4-0", {"f", "4"}), e("5-0", {"f", "5"})})},
      {{"xtrim", "s", "MAXLEN", "=", "1"}, num(2)},
      {{"xrange", "s", "-", "+"}, es({e("5-0", {"f", "5"})})},
      {{"xtrim", "s", "MAXLEN", "1"}, num(0)},
      // MAXLEN 0 makes an empty stream, which stays.
      {{"xadd", "empty", "MAXLEN", "0", "*", "a", "b"}, bulk(kT0Id + "-0")},
      {{"xlen", "empty"}, num(0)},
      {{"exists", "empty"}, num(1)},
      {{"xrange", "empty", "-", "+"}, kEmpty},
  });
}

TEST_F(StreamCommands, AddWithExactMaxLen) {
  for (int j = 0; j < 1000; ++j) {
    if (j % 2 == 0) {
      run({"xadd", "s", "MAXLEN", "5", "*", "xitem", std::to_string(j)});
    } else {
      run({"xadd", "s", "MAXLEN", "=", "5", "*", "yitem", std::to_string(j)});
    }
  }
  EXPECT_EQ(xlen("s"), 5);
  const Reply all = run({"xrange", "s", "-", "+"});
  ASSERT_EQ(all.elements.size(), 5u);
  for (int j = 0; j < 5; ++j)
    EXPECT_EQ(all.elements[static_cast<size_t>(j)].elements[1].elements[1].str,
              std::to_string(995 + j));
}

TEST_F(StreamCommands, ApproximateTrimmingRemovesWholeNodes) {
  // Nodes of 100 entries: MAXLEN ~ 555 keeps six of them.
  for (int j = 0; j < 1000; ++j)
    run({"xadd", "s", "MAXLEN", "~", "555", "*", "xitem", std::to_string(j)});
  EXPECT_EQ(xlen("s"), 600);

  for (int j = 0; j < 1000; ++j)
    run({"xadd", "t", "*", "xitem", std::to_string(j)});
  play({
      {{"xtrim", "t", "MAXLEN", "666"}, num(334)},
      {{"xlen", "t"}, num(666)},
      {{"xtrim", "t", "MAXLEN", "=", "555"}, num(111)},
      {{"xtrim", "t", "MAXLEN", "~", "444"}, num(55)},
      {{"xlen", "t"}, num(500)},
      {{"xtrim", "t", "MAXLEN", "~", "400"}, num(100)},
      {{"xlen", "t"}, num(400)},
      // LIMIT: no more than that many entries go (a node goes whole or not at all).
      {{"xtrim", "t", "MAXLEN", "~", "0", "LIMIT", "150"}, num(100)},
      {{"xtrim", "t", "MAXLEN", "~", "0", "LIMIT", "99"}, num(0)},
      {{"xlen", "t"}, num(300)},
      // LIMIT 0: no limit.
      {{"xtrim", "t", "MAXLEN", "~", "0", "LIMIT", "0"}, num(300)},
      {{"xlen", "t"}, num(0)},
  });

  // Redis's "XADD with LIMIT delete entries no more than limit".
  for (int j = 0; j < 3; ++j)
    run({"xadd", "y", "*", "xitem", "v"});
  run({"xadd", "y", "MAXLEN", "~", "0", "LIMIT", "1", "*", "xitem", "v"});
  EXPECT_EQ(xlen("y"), 4);
  play({{{"xtrim", "y", "MAXLEN", "~", "0", "LIMIT", "1"}, num(0)},
        {{"xtrim", "y", "MAXLEN", "~", "0"}, num(4)}});
}

TEST_F(StreamCommands, MinIdTrimming) {
  // Redis's "XADD with MINID option".
  for (int j = 1; j < 1001; ++j) {
    const std::string minid = j >= 5 ? std::to_string(j - 5) : "1000";
    run({"xadd", "s", "MINID", minid, std::to_string(j), "xitem", std::to_string(j)});
  }
  EXPECT_EQ(xlen("s"), 6);
  EXPECT_EQ(ids_of(run({"xrange", "s", "-", "+"})),
            (std::vector<std::string>{"995-0", "996-0", "997-0", "998-0", "999-0", "1000-0"}));

  fill("t", 250);
  play({
      // ~: the first node (1..100) ends below 150; the second does not.
      {{"xtrim", "t", "MINID", "~", "150"}, num(100)},
      {{"xtrim", "t", "MINID", "150"}, num(49)},
      {{"xrange", "t", "-", "150", "COUNT", "1"}, es({e("150-0", {"f", "150"})})},
      {{"xtrim", "t", "MINID", "~", "240"}, num(51)},
      {{"xlen", "t"}, num(50)},
      {{"xtrim", "t", "MINID", "~", "300"}, num(50)},
      {{"xlen", "t"}, num(0)},
      // Redis's "XTRIM with MINID option, big delta from master record".
      {{"xadd", "u", "1-0", "f", "v"}, bulk("1-0")},
      {{"xadd", "u", "1641544570597-0", "f", "v"}, bulk("1641544570597-0")},
      {{"xadd", "u", "1641544570597-1", "f", "v"}, bulk("1641544570597-1")},
      {{"xtrim", "u", "MINID", "1641544570597-0"}, num(1)},
      {{"xrange", "u", "-", "+"},
       es({e("1641544570597-0", {"f", "v"}), e("1641544570597-1", {"f", "v"})})},
  });
}

TEST_F(StreamCommands, Ranges) {
  for (const char* id : {"1-0", "1-1", "2-0", "2-5", "3-0"})
    run({"xadd", "s", id, "f", id});
  using V = std::vector<std::string>;
  EXPECT_EQ(ids_of(run({"xrange", "s", "-", "+"})), (V{"1-0", "1-1", "2-0", "2-5", "3-0"}));
  // An ID without its sequence: ms-0 as a start, ms-<max> as an end.
  EXPECT_EQ(ids_of(run({"xrange", "s", "2", "2"})), (V{"2-0", "2-5"}));
  EXPECT_EQ(ids_of(run({"xrange", "s", "1", "1-0"})), (V{"1-0"}));
  EXPECT_EQ(ids_of(run({"xrevrange", "s", "2", "-"})), (V{"2-5", "2-0", "1-1", "1-0"}));
  EXPECT_EQ(ids_of(run({"xrevrange", "s", "+", "2-1"})), (V{"3-0", "2-5"}));
  // "(" leaves the end out.
  EXPECT_EQ(ids_of(run({"xrange", "s", "(1", "+"})), (V{"1-1", "2-0", "2-5", "3-0"}));
  EXPECT_EQ(ids_of(run({"xrange", "s", "-", "(2"})), (V{"1-0", "1-1", "2-0", "2-5"}));
  EXPECT_EQ(ids_of(run({"xrange", "s", "(1-1", "(3-0"})), (V{"2-0", "2-5"}));
  EXPECT_EQ(ids_of(run({"xrevrange", "s", "(3-0", "(1-1"})), (V{"2-5", "2-0"}));
  EXPECT_EQ(ids_of(run({"xrange", "s", "3", "1"})), V{});
  play({
      {{"xrange", "s", "-", "+", "COUNT", "2"},
       es({e("1-0", {"f", "1-0"}), e("1-1", {"f", "1-1"})})},
      {{"xrevrange", "s", "+", "-", "count", "2"},
       es({e("3-0", {"f", "3-0"}), e("2-5", {"f", "2-5"})})},
      {{"xrange", "s", "-", "+", "COUNT", "0"}, kNilArray},
      {{"xrange", "s", "-", "+", "COUNT", "-5"}, kNilArray},
      {{"xrange", "s", "-", "+", "COUNT", "1", "COUNT", "3"},
       es({e("1-0", {"f", "1-0"}), e("1-1", {"f", "1-1"}), e("2-0", {"f", "2-0"})})},
      {{"xrange", "s", "-", "+", "COUNT"}, kSyntax},
      {{"xrange", "s", "-", "+", "LIMIT", "1"}, kSyntax},
      {{"xrange", "s", "-", "+", "COUNT", "x"}, kNotInteger},
      {{"xrange", "s", "x", "+"}, kInvalidId},
      {{"xrange", "s", "-", "1-x"}, kInvalidId},
      {{"xrange", "none", "-", "+"}, kEmpty},
      {{"xrange", "none", "-", "+", "COUNT", "0"}, kEmpty},
      {{"xrevrange", "none", "+", "-"}, kEmpty},
      {{"set", "str", "x"}, kOk},
      {{"xrange", "str", "-", "+"}, kWrongType},
      {{"xrange", "str", "x", "+"}, kInvalidId},  // the IDs first, as Redis
  });
}

TEST_F(StreamCommands, ExclusiveRangeEdges) {
  // Redis's "XRANGE exclusive ranges".
  const std::vector<std::string> ids = {"0-1",
                                        "0-" + kMax,
                                        "1-0",
                                        "42-0",
                                        "42-42",
                                        kMax + "-18446744073709551614",
                                        kMax + "-" + kMax};
  for (const std::string& id : ids)
    ASSERT_EQ(run({"xadd", "vip", id, "foo", "bar"}), bulk(id));
  EXPECT_EQ(run({"xrange", "vip", "-", "+"}).elements.size(), 7u);
  EXPECT_EQ(run({"xrange", "vip", "(0-1", "+"}).elements.size(), 6u);
  EXPECT_EQ(run({"xrange", "vip", "-", "(" + ids.back()}).elements.size(), 6u);
  EXPECT_EQ(ids_of(run({"xrange", "vip", "(0-1", "(1-0"})), std::vector<std::string>{ids[1]});
  EXPECT_EQ(ids_of(run({"xrange", "vip", "(1-0", "(42-42"})), std::vector<std::string>{"42-0"});
  EXPECT_EQ(ids_of(run({"xrevrange", "vip", "+", "(" + ids[5]})), std::vector<std::string>{ids[6]});
  play({
      {{"xrange", "vip", "(-", "+"}, kInvalidId},
      {{"xrange", "vip", "-", "(+"}, kInvalidId},
      {{"xrange", "vip", "(" + kMax + "-" + kMax, "+"},
       err("ERR invalid start ID for the interval")},
      {{"xrange", "vip", "-", "(0-0"}, err("ERR invalid end ID for the interval")},
      {{"xrange", "vip", "(", "+"}, kInvalidId},
  });
}

TEST_F(StreamCommands, ReverseRangesMatchForwardOnesAcrossNodes) {
  fill("s", 350);
  for (int j : {1, 2, 100, 101, 150, 199, 200, 201, 300, 349, 350})
    ASSERT_EQ(run({"xdel", "s", std::to_string(j) + "-0"}), num(1));
  std::vector<std::string> all = ids_of(run({"xrange", "s", "-", "+"}));
  ASSERT_EQ(all.size(), 339u);
  std::vector<std::string> reversed(all.rbegin(), all.rend());
  EXPECT_EQ(ids_of(run({"xrevrange", "s", "+", "-"})), reversed);
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    const auto a = static_cast<int>(rng() % 360), b = static_cast<int>(rng() % 360);
    const std::string start = std::to_string(std::min(a, b)), end = std::to_string(std::max(a, b));
    const size_t count = rng() % 150;
    std::vector<std::string> fwd = ids_of(run({"xrange", "s", start, end}));
    std::vector<std::string> want(fwd.rbegin(), fwd.rend());
    if (count > 0 && want.size() > count) want.resize(count);
    const Reply got = count > 0
                          ? run({"xrevrange", "s", end, start, "COUNT", std::to_string(count)})
                          : run({"xrevrange", "s", end, start});
    EXPECT_EQ(ids_of(got), want) << start << " " << end << " " << count;
  }
}

// Random adds, deletes and trims against a model of the entries; ranges both ways must agree
// with it, and approximate trims may only keep more (the oldest entries go first).
TEST_F(StreamCommands, RandomOperationsMatchAModel) {
  std::mt19937 rng(3);
  std::map<std::pair<uint64_t, uint64_t>, std::string> model;
  uint64_t ms = 1, seq = 0;
  auto text = [](const std::pair<uint64_t, uint64_t>& id) {
    return std::to_string(id.first) + "-" + std::to_string(id.second);
  };
  auto model_ids = [&](std::pair<uint64_t, uint64_t> lo, std::pair<uint64_t, uint64_t> hi) {
    std::vector<std::string> out;
    for (auto it = model.lower_bound(lo); it != model.end() && it->first <= hi; ++it)
      out.push_back(text(it->first));
    return out;
  };
  for (int round = 0; round < 3000; ++round) {
    const unsigned op = rng() % 100;
    if (op < 60) {
      if (rng() % 3 == 0) {
        ++ms;
        seq = 0;
      } else {
        ++seq;
      }
      const std::string id = text({ms, seq});
      ASSERT_EQ(run({"xadd", "s", id, "v", id}), bulk(id));
      model[{ms, seq}] = id;
    } else if (op < 75 && !model.empty()) {
      auto it = model.begin();
      std::advance(it, static_cast<long>(rng() % model.size()));
      ASSERT_EQ(run({"xdel", "s", text(it->first), "0-1"}), num(1));
      model.erase(it);
    } else if (op < 80) {
      const size_t keep = model.size() - std::min<size_t>(model.size(), rng() % 40);
      const Reply r = run({"xtrim", "s", "MAXLEN", "=", std::to_string(keep)});
      ASSERT_EQ(r, num(static_cast<int64_t>(model.size() - keep)));
      while (model.size() > keep)
        model.erase(model.begin());
    } else if (op < 85 && !model.empty()) {
      auto it = model.begin();
      std::advance(it, static_cast<long>(rng() % model.size()));
      const std::pair<uint64_t, uint64_t> minid = it->first;
      ASSERT_EQ(run({"xtrim", "s", "MINID", text(minid)}),
                num(static_cast<int64_t>(std::distance(model.begin(), it))));
      model.erase(model.begin(), model.lower_bound(minid));
    } else if (op < 90) {
      // Approximate: at least the threshold stays, and only the oldest entries go.
      const auto keep = static_cast<int64_t>(model.size() / 2);
      const int64_t went = run({"xtrim", "s", "MAXLEN", "~", std::to_string(keep)}).integer;
      ASSERT_GE(went, 0);
      ASSERT_GE(static_cast<int64_t>(model.size()) - went, keep);
      for (int64_t j = 0; j < went; ++j)
        model.erase(model.begin());
    } else {
      const uint64_t a = rng() % (ms + 2), b = rng() % (ms + 2);
      const std::pair<uint64_t, uint64_t> lo{std::min(a, b), 0}, hi{std::max(a, b), ~0ull};
      const std::vector<std::string> want = model_ids(lo, hi);
      ASSERT_EQ(ids_of(run({"xrange", "s", std::to_string(lo.first), std::to_string(hi.first)})),
                want);
      std::vector<std::string> back(want.rbegin(), want.rend());
      const size_t count = 1 + rng() % 30;
      if (back.size() > count) back.resize(count);
      ASSERT_EQ(ids_of(run({"xrevrange", "s", std::to_string(hi.first), std::to_string(lo.first),
                            "COUNT", std::to_string(count)})),
                back);
    }
    ASSERT_EQ(xlen("s"), static_cast<int64_t>(model.size())) << round;
  }
  EXPECT_EQ(ids_of(run({"xrange", "s", "-", "+"})), model_ids({0, 0}, {~0ull, ~0ull}));
  // The records: the metadata, the entries, and the nodes XINFO counts.
  const int64_t nodes = info({"xinfo", "stream", "s"}, "radix-tree-keys").integer;
  EXPECT_EQ(records.elements.size(), 1 + model.size() + static_cast<size_t>(nodes));
  EXPECT_EQ(info({"xinfo", "stream", "s"}, "recorded-first-entry-id"),
            bulk(model.empty() ? "0-0" : text(model.begin()->first)));
}

TEST_F(StreamCommands, DeleteAndTheIdsItRecords) {
  fill("x", 5);
  play({
      {{"xdel", "x", "2-0"}, num(1)},
      {{"xdel", "x", "2-0"}, num(0)},
      {{"xdel", "x", "3-0", "abc"}, kInvalidId},  // nothing goes
      {{"xlen", "x"}, num(4)},
      {{"xdel", "x", "1-0", "9-0", "1-0"}, num(1)},
      {{"xdel", "none", "1-0"}, num(0)},
      {{"xdel", "none", "abc"}, num(0)},
      {{"set", "str", "v"}, kOk},
      {{"xdel", "str", "1-0"}, kWrongType},
  });
  EXPECT_EQ(info({"xinfo", "stream", "x"}, "max-deleted-entry-id"), bulk("2-0"));
  EXPECT_EQ(info({"xinfo", "stream", "x"}, "recorded-first-entry-id"), bulk("3-0"));
  EXPECT_EQ(info({"xinfo", "stream", "x"}, "entries-added"), num(5));
  play({{{"xtrim", "x", "MAXLEN", "=", "2"}, num(1)}});
  EXPECT_EQ(info({"xinfo", "stream", "x"}, "recorded-first-entry-id"), bulk("4-0"));
  // The last entries go: the stream stays, empty, with its last ID.
  play({
      {{"xdel", "x", "4-0", "5-0"}, num(2)},
      {{"xlen", "x"}, num(0)},
      {{"exists", "x"}, num(1)},
      {{"xadd", "x", "5-0", "f", "v"}, kTooSmall},
      {{"xadd", "x", "5-1", "f", "v"}, bulk("5-1")},
  });
  EXPECT_EQ(info({"xinfo", "stream", "x"}, "recorded-first-entry-id"), bulk("5-1"));
  EXPECT_EQ(info({"xinfo", "stream", "x"}, "max-deleted-entry-id"), bulk("5-0"));
}

TEST_F(StreamCommands, DeletingEverythingLeavesOnlyTheMetadata) {
  // Redis's "XDEL fuzz test": enough entries for over 20 nodes, deleted in random order.
  int x = 0;
  std::vector<std::string> ids;
  while (x == 0 || info({"xinfo", "stream", "s"}, "radix-tree-keys").integer <= 20) {
    ids.push_back(run({"xadd", "s", "*", "item", std::to_string(x)}).str);
    ++x;
  }
  EXPECT_EQ(xlen("s"), x);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(11));
  for (const std::string& id : ids) {
    ASSERT_EQ(run({"xdel", "s", id}), num(1)) << id;
    --x;
    ASSERT_EQ(xlen("s"), x);
    if (x % 100 == 0) {
      ASSERT_EQ(run({"xrange", "s", "-", "+"}).elements.size(), static_cast<size_t>(x));
    }
  }
  EXPECT_EQ(info({"xinfo", "stream", "s"}, "radix-tree-keys"), num(0));
  EXPECT_EQ(records.elements.size(), 1u);  // the metadata
  EXPECT_EQ(run({"del", "s"}), num(1));
  EXPECT_TRUE(records.elements.empty());
}

TEST_F(StreamCommands, Read) {
  fill("s", 3);
  play({
      {{"xread", "COUNT", "1", "STREAMS", "s", "0-0"}, read1("s", {e("1-0", {"f", "1"})})},
      {{"xread", "STREAMS", "s", "1"}, read1("s", {e("2-0", {"f", "2"}), e("3-0", {"f", "3"})})},
      {{"xread", "COUNT", "-1", "STREAMS", "s", "2-0"}, read1("s", {e("3-0", {"f", "3"})})},
      {{"xread", "STREAMS", "s1", "s2", "0-0", "0-0"}, kNilArray},
      {{"xread", "STREAMS", "none", "s", "0-0", "2"}, read1("s", {e("3-0", {"f", "3"})})},
      // $: after the last ID, so nothing without waiting; BLOCK does not block here.
      {{"xread", "STREAMS", "s", "$"}, kNilArray},
      {{"xread", "BLOCK", "0", "STREAMS", "s", "$"}, kNilArray},
      {{"xread", "BLOCK", "100", "COUNT", "1", "STREAMS", "s", "0"},
       read1("s", {e("1-0", {"f", "1"})})},
      {{"xread", "STREAMS", "s", "s", "2", "1"},
       Reply::array({Reply::array({bulk("s"), es({e("3-0", {"f", "3"})})}),
                     Reply::array({bulk("s"), es({e("2-0", {"f", "2"}), e("3-0", {"f", "3"})})})})},
      // Errors.
      {{"xread", "STREAMS", "s"}, err("ERR wrong number of arguments for 'xread' command")},
      {{"xread", "STREAMS", "s", "t", "0"},
       err("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be "
           "specified.")},
      {{"xread", "COUNT", "x", "STREAMS", "s", "0"}, kNotInteger},
      {{"xread", "BLOCK", "x", "STREAMS", "s", "0"},
       err("ERR timeout is not an integer or out of range")},
      {{"xread", "BLOCK", "1.5", "STREAMS", "s", "0"},
       err("ERR timeout is not an integer or out of range")},
      {{"xread", "BLOCK", "-1", "STREAMS", "s", "0"}, err("ERR timeout is negative")},
      {{"xread", "GROUP", "g", "c", "STREAMS", "s", "0"},
       err("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.")},
      {{"xread", "NOACK", "STREAMS", "s", "0"},
       err("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.")},
      {{"xread", "STREAMS", "s", ">"},
       err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> "
           "<consumer> option.")},
      {{"xread", "COUNT", "1", "s", "0"}, kSyntax},
      {{"xread", "COUNT", "1", "BLOCK", "1"}, kSyntax},
      {{"xread", "STREAMS", "s", "abc"}, kInvalidId},
      {{"xread", "STREAMS", "s", "-"}, kInvalidId},
      {{"set", "str", "v"}, kOk},
      {{"xread", "STREAMS", "s", "str", "0", "0"}, kWrongType},
  });
  // Redis's "XREAD streamID edge (no-blocking)".
  play({
      {{"xadd", "x", "1-1", "f", "v"}, bulk("1-1")},
      {{"xadd", "x", "1-" + kMax, "f", "v"}, bulk("1-" + kMax)},
      {{"xadd", "x", "2-1", "f", "v"}, bulk("2-1")},
      {{"xread", "BLOCK", "0", "STREAMS", "x", "1-" + kMax}, read1("x", {e("2-1", {"f", "v"})})},
      // Entries after the ID were deleted: nothing (not an empty list).
      {{"xdel", "x", "2-1"}, num(1)},
      {{"xread", "STREAMS", "x", "1-" + kMax}, kNilArray},
  });
}

TEST_F(StreamCommands, SetId) {
  play({
      {{"xadd", "mystream", "MAXLEN", "0", "*", "a", "b"}, bulk(kT0Id + "-0")},
      {{"xsetid", "mystream", "200-0"}, kOk},
  });
  EXPECT_EQ(info({"xinfo", "stream", "mystream"}, "last-generated-id"), bulk("200-0"));
  EXPECT_EQ(info({"xinfo", "stream", "mystream"}, "entries-added"), num(1));
  play({
      {{"xadd", "mystream", "*", "a", "b"}, bulk(kT0Id + "-0")},
      {{"xsetid", "mystream", "1-1"},
       err("ERR The ID specified in XSETID is smaller than the target stream top item")},
      {{"xsetid", "stream", "1-1"}, err("ERR no such key")},
      {{"xsetid", "stream", "1-1", "0"}, kSyntax},
      {{"xsetid", "stream", "1-1", "0-0"}, kSyntax},
      {{"xsetid", "stream", "1-1", "ENTRIESADDED"}, kSyntax},
      {{"xsetid", "stream", "1-1", "ENTRIESADDED", "-1", "MAXDELETEDID", "0-0"},
       err("ERR entries_added must be positive")},
      {{"xsetid", "stream", "1-1", "ENTRIESADDED", "x"}, kNotInteger},
      {{"xsetid", "stream", "+"}, kInvalidId},
      {{"xsetid", "stream", "1-1", "MAXDELETEDID", "x"}, kInvalidId},
      {{"xadd", "x", "1-0", "a", "b"}, bulk("1-0")},
      {{"xsetid", "x", "1-0", "ENTRIESADDED", "1", "MAXDELETEDID", "2-0"},
       err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id")},
      {{"xsetid", "x", "1-0", "ENTRIESADDED", "0", "MAXDELETEDID", "0-0"},
       err("ERR The entries_added specified in XSETID is smaller than the target stream "
           "length")},
      {{"xsetid", "x", "5-0", "ENTRIESADDED", "10", "MAXDELETEDID", "3-0"}, kOk},
      {{"xadd", "x", "5-*", "c", "d"}, bulk("5-1")},
      {{"set", "str", "v"}, kOk},
      {{"xsetid", "str", "1-1"}, kWrongType},
  });
  EXPECT_EQ(info({"xinfo", "stream", "x"}, "entries-added"), num(11));
  EXPECT_EQ(info({"xinfo", "stream", "x"}, "max-deleted-entry-id"), bulk("3-0"));
  // The last ID may go back as far as the last entry left.
  play({
      {{"xadd", "y", "1-0", "f", "v"}, bulk("1-0")},
      {{"xadd", "y", "2-0", "f", "v"}, bulk("2-0")},
      {{"xdel", "y", "2-0"}, num(1)},
      {{"xsetid", "y", "1-5"}, kOk},
      {{"xadd", "y", "1-6", "f", "w"}, bulk("1-6")},
      {{"xrange", "y", "-", "+"}, es({e("1-0", {"f", "v"}), e("1-6", {"f", "w"})})},
      {{"xrevrange", "y", "+", "-"}, es({e("1-6", {"f", "w"}), e("1-0", {"f", "v"})})},
      {{"xtrim", "y", "MAXLEN", "0"}, num(2)},
      {{"xlen", "y"}, num(0)},
  });
}

TEST_F(StreamCommands, GroupsCreateAndRead) {
  play({
      {{"xadd", "mystream", "1-0", "foo", "bar"}, bulk("1-0")},
      {{"xgroup", "CREATE", "mystream", "mygroup", "$"}, kOk},
      {{"xgroup", "CREATE", "mystream", "mygroup", "$"},
       err("BUSYGROUP Consumer Group name already exists")},
      {{"del", "mystream"}, num(1)},
      {{"xgroup", "CREATE", "mystream", "mygroup", "$"},
       err("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may "
           "want to use the MKSTREAM option to create an empty stream automatically.")},
      {{"xgroup", "CREATE", "mystream", "mygroup", "$", "MKSTREAM"}, kOk},
      {{"xlen", "mystream"}, num(0)},
      {{"xadd", "mystream", "2-0", "a", "1"}, bulk("2-0")},
      {{"xadd", "mystream", "3-0", "b", "2"}, bulk("3-0")},
      {{"xreadgroup", "GROUP", "mygroup", "consumer-1", "STREAMS", "mystream", ">"},
       read1("mystream", {e("2-0", {"a", "1"}), e("3-0", {"b", "2"})})},
      {{"xadd", "mystream", "4-0", "c", "3"}, bulk("4-0")},
      {{"xadd", "mystream", "5-0", "d", "4"}, bulk("5-0")},
      {{"xreadgroup", "GROUP", "mygroup", "consumer-2", "STREAMS", "mystream", ">"},
       read1("mystream", {e("4-0", {"c", "3"}), e("5-0", {"d", "4"})})},
      {{"xreadgroup", "GROUP", "mygroup", "consumer-2", "STREAMS", "mystream", ">"}, kNilArray},
  });
  now = kT0 + 20;
  play({
      // The history of each consumer: its own pending entries, delivered again.
      {{"xreadgroup", "GROUP", "mygroup", "consumer-1", "COUNT", "10", "STREAMS", "mystream", "0"},
       read1("mystream", {e("2-0", {"a", "1"}), e("3-0", {"b", "2"})})},
      {{"xreadgroup", "GROUP", "mygroup", "consumer-2", "COUNT", "1", "STREAMS", "mystream", "0"},
       read1("mystream", {e("4-0", {"c", "3"})})},
      {{"xreadgroup", "GROUP", "mygroup", "consumer-2", "STREAMS", "mystream", "4-0"},
       read1("mystream", {e("5-0", {"d", "4"})})},
      {{"xreadgroup", "GROUP", "mygroup", "consumer-3", "STREAMS", "mystream", "0"},
       read1("mystream", {})},
  });
  now = kT0 + 30;
  play({
      {{"xpending", "mystream", "mygroup", "-", "+", "10"},
       es({pend("2-0", "consumer-1", 10, 2), pend("3-0", "consumer-1", 10, 2),
           pend("4-0", "consumer-2", 10, 2), pend("5-0", "consumer-2", 10, 2)})},
      {{"xpending", "mystream", "mygroup", "-", "+", "10", "consumer-1"},
       es({pend("2-0", "consumer-1", 10, 2), pend("3-0", "consumer-1", 10, 2)})},
      {{"xpending", "mystream", "mygroup", "-", "+", "10", "consumer-3"}, kEmpty},
      {{"xpending", "mystream", "mygroup", "-", "+", "10", "nobody"}, kEmpty},
      {{"xpending", "mystream", "mygroup"},
       Reply::array({num(4), bulk("2-0"), bulk("5-0"),
                     Reply::array({bulks({"consumer-1", "2"}), bulks({"consumer-2", "2"})})})},
      {{"xpending", "mystream", "mygroup", "IDLE", "99999999", "-", "+", "10", "consumer-1"},
       kEmpty},
      {{"xpending", "mystream", "mygroup", "IDLE", "10", "-", "+", "10"},
       es({pend("2-0", "consumer-1", 10, 2), pend("3-0", "consumer-1", 10, 2),
           pend("4-0", "consumer-2", 10, 2), pend("5-0", "consumer-2", 10, 2)})},
      {{"xpending", "mystream", "mygroup", "(2-0", "(5-0", "10"},
       es({pend("3-0", "consumer-1", 10, 2), pend("4-0", "consumer-2", 10, 2)})},
      {{"xpending", "mystream", "mygroup", "-", "+", "1"}, es({pend("2-0", "consumer-1", 10, 2)})},
      {{"xpending", "mystream", "mygroup", "-", "+", "0"}, kEmpty},
      {{"xpending", "mystream", "mygroup", "+", "-", "10"}, kEmpty},
      // XACK.
      {{"xack", "mystream", "mygroup", "2-0"}, num(1)},
      {{"xack", "mystream", "mygroup", "2-0"}, num(0)},
      {{"xack", "mystream", "mygroup", "2-0", "3-0"}, num(1)},
      {{"xack", "mystream", "mygroup", "4-0", "invalid-id"}, kInvalidId},
      {{"xack", "mystream", "nogroup", "invalid-id"}, num(0)},
      {{"xack", "nokey", "mygroup", "4-0"}, num(0)},
      {{"xpending", "mystream", "mygroup"},
       Reply::array(
           {num(2), bulk("4-0"), bulk("5-0"), Reply::array({bulks({"consumer-2", "2"})})})},
      {{"xack", "mystream", "mygroup", "4-0", "5-0", "6-0"}, num(2)},
      {{"xpending", "mystream", "mygroup"}, Reply::array({num(0), kNil, kNil, kNilArray})},
  });
}

TEST_F(StreamCommands, GroupReadsAfterSetIdAndDeletes) {
  // Redis's "PEL NACK reassignment after XGROUP SETID event".
  fill("events", 4);
  play({
      {{"xgroup", "create", "events", "g1", "$"}, kOk},
      {{"xadd", "events", "5-0", "f", "5"}, bulk("5-0")},
      {{"xreadgroup", "group", "g1", "c1", "streams", "events", ">"},
       read1("events", {e("5-0", {"f", "5"})})},
      {{"xgroup", "setid", "events", "g1", "-"}, kOk},
      {{"xreadgroup", "group", "g1", "c2", "count", "10", "streams", "events", ">"},
       read1("events", {e("1-0", {"f", "1"}), e("2-0", {"f", "2"}), e("3-0", {"f", "3"}),
                        e("4-0", {"f", "4"}), e("5-0", {"f", "5"})})},
      {{"xpending", "events", "g1"},
       Reply::array({num(5), bulk("1-0"), bulk("5-0"), Reply::array({bulks({"c2", "5"})})})},
      {{"xreadgroup", "group", "g1", "c1", "streams", "events", "0"}, read1("events", {})},
  });
  // Redis's "XREADGROUP history reporting of deleted entries. Bug #5570".
  play({
      {{"xgroup", "CREATE", "mystream", "mygroup", "$", "MKSTREAM"}, kOk},
      {{"xadd", "mystream", "1", "field1", "A"}, bulk("1-0")},
      {{"xreadgroup", "GROUP", "mygroup", "myconsumer", "STREAMS", "mystream", ">"},
       read1("mystream", {e("1-0", {"field1", "A"})})},
      {{"xadd", "mystream", "MAXLEN", "1", "2", "field1", "B"}, bulk("2-0")},
      {{"xreadgroup", "GROUP", "mygroup", "myconsumer", "STREAMS", "mystream", ">"},
       read1("mystream", {e("2-0", {"field1", "B"})})},
      {{"xreadgroup", "GROUP", "mygroup", "myconsumer", "STREAMS", "mystream", "0-1"},
       read1("mystream", {Reply::array({bulk("1-0"), kNilArray}), e("2-0", {"field1", "B"})})},
  });
  // Redis's "Blocking XREADGROUP will not reply with an empty array" and "... will ignore BLOCK
  // if ID is not >".
  play({
      {{"del", "mystream"}, num(1)},
      {{"xgroup", "CREATE", "mystream", "mygroup", "$", "MKSTREAM"}, kOk},
      {{"xadd", "mystream", "666", "f", "v"}, bulk("666-0")},
      {{"xreadgroup", "GROUP", "mygroup", "Alice", "BLOCK", "10", "STREAMS", "mystream", ">"},
       read1("mystream", {e("666-0", {"f", "v"})})},
      {{"xadd", "mystream", "667", "f2", "v2"}, bulk("667-0")},
      {{"xdel", "mystream", "667"}, num(1)},
      {{"xreadgroup", "GROUP", "mygroup", "Alice", "BLOCK", "10", "STREAMS", "mystream", ">"},
       kNilArray},
      {{"xreadgroup", "GROUP", "mygroup", "Bob", "BLOCK", "0", "STREAMS", "mystream", "600"},
       read1("mystream", {})},
      {{"xreadgroup", "GROUP", "mygroup", "Alice", "BLOCK", "0", "STREAMS", "mystream", "600"},
       read1("mystream", {e("666-0", {"f", "v"})})},
      {{"xreadgroup", "GROUP", "mygroup", "Alice", "BLOCK", "0", "STREAMS", "mystream", "666"},
       read1("mystream", {})},
  });
}

TEST_F(StreamCommands, GroupReadErrorsAndNoAck) {
  play({
      {{"xadd", "s", "1-0", "f", "v"}, bulk("1-0")},
      {{"xadd", "s", "2-0", "f", "v"}, bulk("2-0")},
      {{"xreadgroup", "GROUP", "g", "c", "STREAMS", "s", ">"},
       err("NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option")},
      {{"xreadgroup", "GROUP", "g", "c", "STREAMS", "none", ">"},
       err("NOGROUP No such key 'none' or consumer group 'g' in XREADGROUP with GROUP option")},
      {{"xgroup", "CREATE", "s", "g", "0"}, kOk},
      {{"xreadgroup", "GROUP", "g", "c", "STREAMS", "s", "$"},
       err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the "
           "history of this consumer by specifying a proper ID, or use the > ID to get new "
           "messages. The $ ID would just return an empty result set.")},
      {{"xreadgroup", "COUNT", "1", "NOACK", "STREAMS", "s", ">"},
       err("ERR Missing GROUP option for XREADGROUP")},
      {{"xreadgroup", "GROUP", "g", "c", "STREAMS", "s", "s", ">"},
       err("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be "
           "specified.")},
      {{"xreadgroup", "GROUP", "g", "c", "STREAMS", "s", "abc"}, kInvalidId},
      {{"xreadgroup", "GROUP", "g", "STREAMS", "s", ">"},
       err("ERR wrong number of arguments for 'xreadgroup' command")},
      {{"set", "str", "v"}, kOk},
      {{"xreadgroup", "GROUP", "g", "c", "STREAMS", "str", ">"}, kWrongType},
      // NOACK: delivered, the group moves on, but nothing is pending; the consumer is made.
      {{"xreadgroup", "GROUP", "g", "c", "COUNT", "1", "NOACK", "STREAMS", "s", ">"},
       read1("s", {e("1-0", {"f", "v"})})},
      {{"xpending", "s", "g"}, Reply::array({num(0), kNil, kNil, kNilArray})},
      {{"xreadgroup", "GROUP", "g", "d", "STREAMS", "s", ">"}, read1("s", {e("2-0", {"f", "v"})})},
  });
  const Reply groups = run({"xinfo", "groups", "s"});
  ASSERT_EQ(groups.elements.size(), 1u);
  EXPECT_EQ(field_of(groups.elements[0], "consumers"), num(2));
  EXPECT_EQ(field_of(groups.elements[0], "pending"), num(1));
  EXPECT_EQ(field_of(groups.elements[0], "last-delivered-id"), bulk("2-0"));
  // Two keys, one with nothing new: only the other one answers.
  play({
      {{"xgroup", "CREATE", "t", "g", "$", "MKSTREAM"}, kOk},
      {{"xadd", "s", "3-0", "f", "v"}, bulk("3-0")},
      {{"xreadgroup", "GROUP", "g", "c", "STREAMS", "t", "s", ">", ">"},
       read1("s", {e("3-0", {"f", "v"})})},
      {{"xreadgroup", "GROUP", "g", "c", "STREAMS", "t", "s", ">", ">"}, kNilArray},
      // The same key twice: the second read sees what the first delivered.
      {{"xadd", "s", "4-0", "f", "v"}, bulk("4-0")},
      {{"xreadgroup", "GROUP", "g", "c", "STREAMS", "s", "s", ">", ">"},
       read1("s", {e("4-0", {"f", "v"})})},
  });
}

TEST_F(StreamCommands, Claim) {
  // Redis's "XCLAIM can claim PEL items from another consumer", with the clock moved instead
  // of waiting.
  fill("mystream", 3);
  play({
      {{"xgroup", "CREATE", "mystream", "mygroup", "0"}, kOk},
      {{"xreadgroup", "GROUP", "mygroup", "consumer1", "count", "1", "STREAMS", "mystream", ">"},
       read1("mystream", {e("1-0", {"f", "1"})})},
      {{"xpending", "mystream", "mygroup", "-", "+", "10", "consumer2"}, kEmpty},
  });
  now = kT0 + 200;
  play({
      // Not idle long enough.
      {{"xclaim", "mystream", "mygroup", "consumer2", "1000", "1-0"}, kEmpty},
      {{"xclaim", "mystream", "mygroup", "consumer2", "10", "1-0"}, es({e("1-0", {"f", "1"})})},
      {{"xpending", "mystream", "mygroup", "-", "+", "10"}, es({pend("1-0", "consumer2", 0, 2)})},
      {{"xpending", "mystream", "mygroup", "-", "+", "10", "consumer1"}, kEmpty},
      {{"xreadgroup", "GROUP", "mygroup", "consumer1", "count", "2", "STREAMS", "mystream", ">"},
       read1("mystream", {e("2-0", {"f", "2"}), e("3-0", {"f", "3"})})},
  });
  now = kT0 + 400;
  play({
      // A deleted entry is not claimed, and leaves the PEL.
      {{"xdel", "mystream", "2-0"}, num(1)},
      {{"xclaim", "mystream", "mygroup", "consumer2", "10", "2-0"}, kEmpty},
      {{"xpending", "mystream", "mygroup", "-", "+", "10"},
       es({pend("1-0", "consumer2", 200, 2), pend("3-0", "consumer1", 200, 1)})},
      // JUSTID: the IDs, and the delivery count stays.
      {{"xclaim", "mystream", "mygroup", "consumer3", "10", "1-0", "JUSTID"}, bulks({"1-0"})},
      {{"xpending", "mystream", "mygroup", "-", "+", "10"},
       es({pend("1-0", "consumer3", 0, 2), pend("3-0", "consumer1", 200, 1)})},
      // IDLE, RETRYCOUNT; the same consumer again.
      {{"xclaim", "mystream", "mygroup", "consumer3", "0", "1-0", "3-0", "IDLE", "50", "RETRYCOUNT",
        "7"},
       es({e("1-0", {"f", "1"}), e("3-0", {"f", "3"})})},
      {{"xpending", "mystream", "mygroup", "-", "+", "10"},
       es({pend("1-0", "consumer3", 50, 7), pend("3-0", "consumer3", 50, 7)})},
      // TIME, and a time ahead of now counts as now.
      {{"xclaim", "mystream", "mygroup", "consumer1", "0", "1-0", "TIME", std::to_string(kT0 + 100),
        "JUSTID"},
       bulks({"1-0"})},
      {{"xclaim", "mystream", "mygroup", "consumer1", "0", "3-0", "TIME",
        std::to_string(kT0 + 9999), "JUSTID"},
       bulks({"3-0"})},
      {{"xpending", "mystream", "mygroup", "-", "+", "10"},
       es({pend("1-0", "consumer1", 300, 7), pend("3-0", "consumer1", 0, 7)})},
      // FORCE: an entry nobody has pending goes into the PEL.
      {{"xadd", "mystream", "4-0", "f", "4"}, bulk("4-0")},
      {{"xclaim", "mystream", "mygroup", "consumer2", "1000000", "4-0"}, kEmpty},
      {{"xclaim", "mystream", "mygroup", "consumer2", "1000000", "4-0", "9-0", "FORCE"},
       es({e("4-0", {"f", "4"})})},
      {{"xpending", "mystream", "mygroup", "4", "+", "10"}, es({pend("4-0", "consumer2", 0, 2)})},
      // LASTID moves the group's last delivered ID forward only.
      {{"xclaim", "mystream", "mygroup", "consumer2", "0", "LASTID", "3-0"}, kEmpty},
      {{"xreadgroup", "GROUP", "mygroup", "c", "STREAMS", "mystream", ">"},
       read1("mystream", {e("4-0", {"f", "4"})})},
      {{"xclaim", "mystream", "mygroup", "consumer2", "0", "LASTID", "1-0"}, kEmpty},
      {{"xreadgroup", "GROUP", "mygroup", "c", "STREAMS", "mystream", ">"}, kNilArray},
      // Errors.
      {{"xclaim", "mystream", "mygroup", "c", "x", "1-0"},
       err("ERR Invalid min-idle-time argument for XCLAIM")},
      {{"xclaim", "mystream", "mygroup", "c", "0", "1-0", "IDLE", "x"},
       err("ERR Invalid IDLE option argument for XCLAIM")},
      {{"xclaim", "mystream", "mygroup", "c", "0", "1-0", "TIME", "x"},
       err("ERR Invalid TIME option argument for XCLAIM")},
      {{"xclaim", "mystream", "mygroup", "c", "0", "1-0", "RETRYCOUNT", "x"},
       err("ERR Invalid RETRYCOUNT option argument for XCLAIM")},
      {{"xclaim", "mystream", "mygroup", "c", "0", "1-0", "LASTID", "x"}, kInvalidId},
      {{"xclaim", "mystream", "mygroup", "c", "0", "1-0", "foo"},
       err("ERR Unrecognized XCLAIM option 'foo'")},
      {{"xclaim", "mystream", "mygroup", "c", "0", "1-0", "IDLE"},
       err("ERR Unrecognized XCLAIM option 'IDLE'")},
      {{"xclaim", "mystream", "nogroup", "c", "0", "1-0"},
       err("NOGROUP No such key 'mystream' or consumer group 'nogroup'")},
      {{"xclaim", "nokey", "g", "c", "0", "1-0"},
       err("NOGROUP No such key 'nokey' or consumer group 'g'")},
  });
}

TEST_F(StreamCommands, ClaimWithDeletesAndTrimming) {
  // Redis's "XCLAIM with XDEL" and "XCLAIM with trimming".
  fill("x", 3);
  play({
      {{"xgroup", "CREATE", "x", "grp", "0"}, kOk},
      {{"xreadgroup", "GROUP", "grp", "Alice", "STREAMS", "x", ">"},
       read1("x", {e("1-0", {"f", "1"}), e("2-0", {"f", "2"}), e("3-0", {"f", "3"})})},
      {{"xdel", "x", "2-0"}, num(1)},
      {{"xclaim", "x", "grp", "Bob", "0", "1-0", "2-0", "3-0"},
       es({e("1-0", {"f", "1"}), e("3-0", {"f", "3"})})},
      {{"xpending", "x", "grp", "-", "+", "10", "Alice"}, kEmpty},
      {{"del", "x"}, num(1)},
  });
  fill("x", 3);
  play({
      {{"xgroup", "CREATE", "x", "grp", "0"}, kOk},
      {{"xreadgroup", "GROUP", "grp", "Alice", "STREAMS", "x", ">"},
       read1("x", {e("1-0", {"f", "1"}), e("2-0", {"f", "2"}), e("3-0", {"f", "3"})})},
      {{"xtrim", "x", "MAXLEN", "1"}, num(2)},
      {{"xclaim", "x", "grp", "Bob", "0", "1-0", "2-0", "3-0"}, es({e("3-0", {"f", "3"})})},
      {{"xpending", "x", "grp", "-", "+", "10", "Alice"}, kEmpty},
  });
}

TEST_F(StreamCommands, AutoClaim) {
  // Redis's "XAUTOCLAIM can claim PEL items from another consumer".
  fill("mystream", 4);
  play({
      {{"xgroup", "CREATE", "mystream", "mygroup", "0"}, kOk},
      {{"xreadgroup", "GROUP", "mygroup", "consumer1", "count", "1", "STREAMS", "mystream", ">"},
       read1("mystream", {e("1-0", {"f", "1"})})},
  });
  now = kT0 + 200;
  play({
      {{"xautoclaim", "mystream", "mygroup", "consumer2", "10", "-", "COUNT", "1"},
       Reply::array({bulk("0-0"), es({e("1-0", {"f", "1"})}), kEmpty})},
      {{"xreadgroup", "GROUP", "mygroup", "consumer1", "count", "3", "STREAMS", "mystream", ">"},
       read1("mystream", {e("2-0", {"f", "2"}), e("3-0", {"f", "3"}), e("4-0", {"f", "4"})})},
  });
  now = kT0 + 400;
  play({
      {{"xdel", "mystream", "2-0"}, num(1)},
      // 1-0 and 3-0 claimed, 2-0 deleted: COUNT 3 reached, the cursor is 4-0.
      {{"xautoclaim", "mystream", "mygroup", "consumer2", "10", "-", "COUNT", "3"},
       Reply::array(
           {bulk("4-0"), es({e("1-0", {"f", "1"}), e("3-0", {"f", "3"})}), bulks({"2-0"})})},
  });
  now = kT0 + 600;
  play({
      {{"xdel", "mystream", "4-0"}, num(1)},
      {{"xautoclaim", "mystream", "mygroup", "consumer2", "10", "-", "JUSTID"},
       Reply::array({bulk("0-0"), bulks({"1-0", "3-0"}), bulks({"4-0"})})},
      // JUSTID left the delivery counts: 1-0 was claimed twice before.
      {{"xpending", "mystream", "mygroup", "-", "+", "10"},
       es({pend("1-0", "consumer2", 0, 3), pend("3-0", "consumer2", 0, 2)})},
      {{"xautoclaim", "mystream", "mygroup", "consumer3", "10", "(1-0"},
       Reply::array({bulk("0-0"), kEmpty, kEmpty})},
      {{"xautoclaim", "mystream", "mygroup", "c", "1", "1", "COUNT", "0"},
       err("ERR COUNT must be > 0")},
      {{"xautoclaim", "mystream", "mygroup", "c", "1", "1", "COUNT", "8070450532247928833"},
       err("ERR COUNT must be > 0")},
      {{"xautoclaim", "mystream", "mygroup", "c", "1", "1", "COUNT", "x"},
       err("ERR COUNT must be > 0")},
      {{"xautoclaim", "mystream", "mygroup", "c", "x", "1"},
       err("ERR Invalid min-idle-time argument for XAUTOCLAIM")},
      {{"xautoclaim", "mystream", "mygroup", "c", "1", "x"}, kInvalidId},
      {{"xautoclaim", "mystream", "mygroup", "c", "1", "(" + kMax + "-" + kMax},
       err("ERR invalid start ID for the interval")},
      {{"xautoclaim", "mystream", "mygroup", "c", "1", "1", "FOO"}, kSyntax},
      {{"xautoclaim", "mystream", "nogroup", "c", "1", "1"},
       err("NOGROUP No such key 'mystream' or consumer group 'nogroup'")},
  });
}

TEST_F(StreamCommands, AutoClaimAsAnIterator) {
  fill("mystream", 5);
  play({
      {{"xgroup", "CREATE", "mystream", "mygroup", "0"}, kOk},
      {{"xreadgroup", "GROUP", "mygroup", "consumer1", "count", "90", "STREAMS", "mystream", ">"},
       read1("mystream", {e("1-0", {"f", "1"}), e("2-0", {"f", "2"}), e("3-0", {"f", "3"}),
                          e("4-0", {"f", "4"}), e("5-0", {"f", "5"})})},
  });
  now = kT0 + 200;
  play({
      {{"xautoclaim", "mystream", "mygroup", "consumer2", "10", "-", "COUNT", "2"},
       Reply::array({bulk("3-0"), es({e("1-0", {"f", "1"}), e("2-0", {"f", "2"})}), kEmpty})},
      {{"xautoclaim", "mystream", "mygroup", "consumer2", "10", "3-0", "COUNT", "2"},
       Reply::array({bulk("5-0"), es({e("3-0", {"f", "3"}), e("4-0", {"f", "4"})}), kEmpty})},
      {{"xautoclaim", "mystream", "mygroup", "consumer2", "10", "5-0", "COUNT", "1"},
       Reply::array({bulk("0-0"), es({e("5-0", {"f", "5"})}), kEmpty})},
  });
  // Redis's "XAUTOCLAIM with XDEL and count", and the attempts bound (10 per COUNT).
  fill("x", 3);
  play({
      {{"xgroup", "CREATE", "x", "grp", "0"}, kOk},
      {{"xreadgroup", "GROUP", "grp", "Alice", "STREAMS", "x", ">"},
       read1("x", {e("1-0", {"f", "1"}), e("2-0", {"f", "2"}), e("3-0", {"f", "3"})})},
      {{"xdel", "x", "1-0"}, num(1)},
      {{"xdel", "x", "2-0"}, num(1)},
      {{"xautoclaim", "x", "grp", "Bob", "0", "0-0", "COUNT", "1"},
       Reply::array({bulk("2-0"), kEmpty, bulks({"1-0"})})},
      {{"xautoclaim", "x", "grp", "Bob", "0", "2-0", "COUNT", "1"},
       Reply::array({bulk("3-0"), kEmpty, bulks({"2-0"})})},
      {{"xautoclaim", "x", "grp", "Bob", "0", "3-0", "COUNT", "1"},
       Reply::array({bulk("0-0"), es({e("3-0", {"f", "3"})}), kEmpty})},
      {{"xpending", "x", "grp", "-", "+", "10", "Alice"}, kEmpty},
  });
  fill("y", 12);
  const Reply all = run({"xrange", "y", "-", "+"});
  play({
      {{"xgroup", "CREATE", "y", "grp", "0"}, kOk},
      {{"xreadgroup", "GROUP", "grp", "Alice", "COUNT", "12", "STREAMS", "y", ">"},
       read1("y", all.elements)},
      // None idle enough: COUNT 1 allows 10 attempts, so the cursor stops at the 11th.
      {{"xautoclaim", "y", "grp", "Bob", "1000", "-", "COUNT", "1"},
       Reply::array({bulk("11-0"), kEmpty, kEmpty})},
  });
}

TEST_F(StreamCommands, GroupAdministration) {
  play({
      {{"xgroup", "CREATE", "s", "g", "$", "MKSTREAM"}, kOk},
      {{"xadd", "s", "1-0", "f", "v"}, bulk("1-0")},
      {{"xadd", "s", "2-0", "f", "v"}, bulk("2-0")},
      {{"xgroup", "CREATECONSUMER", "s", "g", "Alice"}, num(1)},
      {{"xgroup", "CREATECONSUMER", "s", "g", "Alice"}, num(0)},
      {{"xreadgroup", "GROUP", "g", "Bob", "STREAMS", "s", ">"},
       read1("s", {e("1-0", {"f", "v"}), e("2-0", {"f", "v"})})},
      {{"xgroup", "DELCONSUMER", "s", "g", "Alice"}, num(0)},
      {{"xgroup", "DELCONSUMER", "s", "g", "Alice"}, num(0)},
      {{"xgroup", "DELCONSUMER", "s", "g", "Bob"}, num(2)},
      {{"xpending", "s", "g"}, Reply::array({num(0), kNil, kNil, kNilArray})},
      {{"xinfo", "consumers", "s", "g"}, kEmpty},
      // SETID, with $ and ENTRIESREAD.
      {{"xgroup", "SETID", "s", "g", "0", "ENTRIESREAD", "0"}, kOk},
      {{"xreadgroup", "GROUP", "g", "Carol", "COUNT", "1", "STREAMS", "s", ">"},
       read1("s", {e("1-0", {"f", "v"})})},
      {{"xgroup", "SETID", "s", "g", "$"}, kOk},
      {{"xreadgroup", "GROUP", "g", "Carol", "STREAMS", "s", ">"}, kNilArray},
      {{"xgroup", "CREATE", "s", "g2", "1-0", "ENTRIESREAD", "1"}, kOk},
      {{"xgroup", "CREATE", "s", "g3", "+"}, kInvalidId},
      {{"xgroup", "CREATE", "s", "g3", "x"}, kInvalidId},
      {{"xgroup", "SETID", "s", "g2", "x"}, kInvalidId},
      {{"xgroup", "CREATE", "s", "g3", "0", "ENTRIESREAD", "-2"},
       err("ERR value for ENTRIESREAD must be positive or -1")},
      {{"xgroup", "CREATE", "s", "g3", "0", "ENTRIESREAD", "x"}, kNotInteger},
      {{"xgroup", "CREATE", "s", "g3", "0", "FOO"},
       err("ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP.")},
      {{"xgroup", "SETID", "s", "g", "0", "MKSTREAM"},
       err("ERR unknown subcommand or wrong number of arguments for 'SETID'. Try XGROUP HELP.")},
      {{"xgroup", "SETID", "s", "nog", "0"},
       err("NOGROUP No such consumer group 'nog' for key name 's'")},
      {{"xgroup", "CREATECONSUMER", "s", "nog", "c"},
       err("NOGROUP No such consumer group 'nog' for key name 's'")},
      {{"xgroup", "DELCONSUMER", "s", "nog", "c"},
       err("NOGROUP No such consumer group 'nog' for key name 's'")},
      {{"xgroup", "SETID", "none", "g", "0"},
       err("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may "
           "want to use the MKSTREAM option to create an empty stream automatically.")},
      {{"xgroup", "FOO", "s", "g"}, err("ERR unknown subcommand 'FOO'. Try XGROUP HELP.")},
      {{"xgroup", "help", "xxx"}, err("ERR wrong number of arguments for 'xgroup|help' command")},
      {{"xgroup", "create", "s", "g"},
       err("ERR wrong number of arguments for 'xgroup|create' command")},
      {{"xgroup", "destroy", "s", "g", "x"},
       err("ERR wrong number of arguments for 'xgroup|destroy' command")},
      {{"set", "str", "v"}, kOk},
      {{"xgroup", "CREATE", "str", "g", "$", "MKSTREAM"}, kWrongType},
      // DESTROY: the group's records go.
      {{"xreadgroup", "GROUP", "g2", "Dan", "STREAMS", "s", ">"},
       read1("s", {e("2-0", {"f", "v"})})},
      {{"xgroup", "DESTROY", "s", "g2"}, num(1)},
      {{"xgroup", "DESTROY", "s", "g2"}, num(0)},
      {{"xgroup", "DESTROY", "none", "g2"},
       err("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may "
           "want to use the MKSTREAM option to create an empty stream automatically.")},
      {{"xgroup", "CREATE", "s", "g2", "0"}, kOk},
      {{"xpending", "s", "g2"}, Reply::array({num(0), kNil, kNil, kNilArray})},
      {{"xinfo", "consumers", "s", "g2"}, kEmpty},
  });
  const Reply help = run({"xgroup", "HELP"});
  ASSERT_EQ(help.kind, Reply::Kind::kArray);
  EXPECT_EQ(help.elements[0],
            Reply::status("XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"));
  EXPECT_EQ(help.elements.back(), Reply::status("    Prints this help."));
  // Destroying every group leaves the stream's own records only.
  play({{{"xgroup", "DESTROY", "s", "g"}, num(1)}, {{"xgroup", "DESTROY", "s", "g2"}, num(1)}});
  EXPECT_EQ(records.elements.size(), 4u);  // metadata, a node, two entries
}

TEST_F(StreamCommands, InfoStreamAndFull) {
  // Redis's "XINFO FULL output".
  play({
      {{"xadd", "x", "100", "a", "1"}, bulk("100-0")},
      {{"xadd", "x", "101", "b", "1"}, bulk("101-0")},
      {{"xadd", "x", "102", "c", "1"}, bulk("102-0")},
      {{"xadd", "x", "103", "e", "1"}, bulk("103-0")},
      {{"xadd", "x", "104", "f", "1"}, bulk("104-0")},
  });
  play({
      {{"xgroup", "CREATE", "x", "g1", "0"}, kOk},
      {{"xgroup", "CREATE", "x", "g2", "0"}, kOk},
      {{"xreadgroup", "GROUP", "g1", "Alice", "COUNT", "1", "STREAMS", "x", ">"},
       read1("x", {e("100-0", {"a", "1"})})},
      {{"xreadgroup", "GROUP", "g1", "Bob", "COUNT", "1", "STREAMS", "x", ">"},
       read1("x", {e("101-0", {"b", "1"})})},
      {{"xreadgroup", "GROUP", "g1", "Bob", "NOACK", "COUNT", "1", "STREAMS", "x", ">"},
       read1("x", {e("102-0", {"c", "1"})})},
      {{"xreadgroup", "GROUP", "g2", "Charlie", "COUNT", "4", "STREAMS", "x", ">"},
       read1("x", {e("100-0", {"a", "1"}), e("101-0", {"b", "1"}), e("102-0", {"c", "1"}),
                   e("103-0", {"e", "1"})})},
      {{"xdel", "x", "103"}, num(1)},
  });
  auto consumer = [&](const std::string& name, std::vector<Reply> pending) {
    const auto n = static_cast<int64_t>(pending.size());
    return Reply::map({bulk("name"), bulk(name), bulk("seen-time"), num(kT0), bulk("pel-count"),
                       num(n), bulk("pending"), Reply::array(std::move(pending))});
  };
  auto own = [&](const std::string& id) { return Reply::array({bulk(id), num(kT0), num(1)}); };
  auto pel = [&](const std::string& id, const std::string& who) {
    return Reply::array({bulk(id), bulk(who), num(kT0), num(1)});
  };
  const Reply g1 = Reply::map(
      {bulk("name"), bulk("g1"), bulk("last-delivered-id"), bulk("102-0"), bulk("entries-read"),
       num(3), bulk("lag"), kNil, bulk("pel-count"), num(2), bulk("pending"),
       Reply::array({pel("100-0", "Alice"), pel("101-0", "Bob")}), bulk("consumers"),
       Reply::array({consumer("Alice", {own("100-0")}), consumer("Bob", {own("101-0")})})});
  // A deleted entry at or after a group's last delivered one: its lag is not known.
  const Reply g2 = Reply::map(
      {bulk("name"), bulk("g2"), bulk("last-delivered-id"), bulk("103-0"), bulk("entries-read"),
       num(4), bulk("lag"), kNil, bulk("pel-count"), num(4), bulk("pending"),
       Reply::array({pel("100-0", "Charlie"), pel("101-0", "Charlie"), pel("102-0", "Charlie"),
                     pel("103-0", "Charlie")}),
       bulk("consumers"),
       Reply::array(
           {consumer("Charlie", {own("100-0"), own("101-0"), own("102-0"), own("103-0")})})});
  const Reply entries = es({e("100-0", {"a", "1"}), e("101-0", {"b", "1"}), e("102-0", {"c", "1"}),
                            e("104-0", {"f", "1"})});
  const Reply full =
      Reply::map({bulk("length"), num(4), bulk("radix-tree-keys"), num(1), bulk("radix-tree-nodes"),
                  num(2), bulk("last-generated-id"), bulk("104-0"), bulk("max-deleted-entry-id"),
                  bulk("103-0"), bulk("entries-added"), num(5), bulk("recorded-first-entry-id"),
                  bulk("100-0"), bulk("entries"), entries, bulk("groups"), Reply::array({g1, g2})});
  play({{{"xinfo", "STREAM", "x", "FULL"}, full}});
  const Reply one = run({"xinfo", "STREAM", "x", "FULL", "COUNT", "1"});
  EXPECT_EQ(one.elements.size(), 18u);
  EXPECT_EQ(field_of(one, "entries"), es({e("100-0", {"a", "1"})}));
  const Reply g2_one = field_of(one, "groups").elements[1];
  EXPECT_EQ(field_of(g2_one, "pending"), Reply::array({pel("100-0", "Charlie")}));
  // COUNT 0: everything.
  EXPECT_EQ(run({"xinfo", "STREAM", "x", "FULL", "COUNT", "0"}), full);
  play({
      {{"xinfo", "STREAM", "x"},
       Reply::map({bulk("length"),
                   num(4),
                   bulk("radix-tree-keys"),
                   num(1),
                   bulk("radix-tree-nodes"),
                   num(2),
                   bulk("last-generated-id"),
                   bulk("104-0"),
                   bulk("max-deleted-entry-id"),
                   bulk("103-0"),
                   bulk("entries-added"),
                   num(5),
                   bulk("recorded-first-entry-id"),
                   bulk("100-0"),
                   bulk("groups"),
                   num(2),
                   bulk("first-entry"),
                   e("100-0", {"a", "1"}),
                   bulk("last-entry"),
                   e("104-0", {"f", "1"})})},
      {{"xinfo", "STREAM", "x", "FULL", "COUNT"},
       err("ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP.")},
      {{"xinfo", "stream", "x", "FOO"},
       err("ERR unknown subcommand or wrong number of arguments for 'stream'. Try XINFO HELP.")},
      {{"xinfo", "STREAM", "x", "FULL", "COUNT", "x"}, kNotInteger},
      {{"xinfo", "STREAM", "none"}, err("ERR no such key")},
      {{"xinfo", "STREAM"}, err("ERR wrong number of arguments for 'xinfo|stream' command")},
      {{"xinfo", "help", "xxx"}, err("ERR wrong number of arguments for 'xinfo|help' command")},
      {{"xinfo", "FOO", "x"}, err("ERR unknown subcommand 'FOO'. Try XINFO HELP.")},
      {{"xinfo", "CONSUMERS", "x", "nog"},
       err("NOGROUP No such consumer group 'nog' for key name 'x'")},
      {{"set", "str", "v"}, kOk},
      {{"xinfo", "STREAM", "str"}, kWrongType},
      // An empty stream.
      {{"xadd", "empty", "MAXLEN", "0", "5-0", "a", "b"}, bulk("5-0")},
      {{"xinfo", "STREAM", "empty"},
       Reply::map({bulk("length"),
                   num(0),
                   bulk("radix-tree-keys"),
                   num(0),
                   bulk("radix-tree-nodes"),
                   num(1),
                   bulk("last-generated-id"),
                   bulk("5-0"),
                   bulk("max-deleted-entry-id"),
                   bulk("0-0"),
                   bulk("entries-added"),
                   num(1),
                   bulk("recorded-first-entry-id"),
                   bulk("0-0"),
                   bulk("groups"),
                   num(0),
                   bulk("first-entry"),
                   kNil,
                   bulk("last-entry"),
                   kNil})},
  });
}

TEST_F(StreamCommands, InfoGroupsAndConsumers) {
  fill("s", 2);
  play({
      {{"xgroup", "CREATE", "s", "mygroup", "$"}, kOk},
      {{"xadd", "s", "3-0", "f", "v"}, bulk("3-0")},
      {{"xreadgroup", "GROUP", "mygroup", "Alice", "STREAMS", "s", ">"},
       read1("s", {e("3-0", {"f", "v"})})},
  });
  now = kT0 + 50;
  play({
      {{"xgroup", "CREATECONSUMER", "s", "mygroup", "Bob"}, num(1)},
      {{"xinfo", "GROUPS", "s"},
       Reply::array({Reply::map({bulk("name"), bulk("mygroup"), bulk("consumers"), num(2),
                                 bulk("pending"), num(1), bulk("last-delivered-id"), bulk("3-0"),
                                 bulk("entries-read"), num(3), bulk("lag"), num(0)})})},
  });
  now = kT0 + 80;
  play({
      {{"xinfo", "CONSUMERS", "s", "mygroup"},
       Reply::array({Reply::map({bulk("name"), bulk("Alice"), bulk("pending"), num(1), bulk("idle"),
                                 num(80)}),
                     Reply::map({bulk("name"), bulk("Bob"), bulk("pending"), num(0), bulk("idle"),
                                 num(30)})})},
      {{"xinfo", "GROUPS", "none"}, err("ERR no such key")},
      {{"xinfo", "GROUPS", "s", "x"},
       err("ERR wrong number of arguments for 'xinfo|groups' command")},
  });
  // A stream without groups.
  play({{{"xadd", "t", "1-0", "f", "v"}, bulk("1-0")}, {{"xinfo", "GROUPS", "t"}, kEmpty}});
}

TEST_F(StreamCommands, GroupReadCounterAndLag) {
  auto group_field = [&](size_t n, const std::string& field) {
    return field_of(info({"xinfo", "STREAM", "x", "FULL"}, "groups").elements.at(n), field);
  };
  // Redis's "Consumer group read counter and lag in empty streams".
  play({{{"xgroup", "CREATE", "x", "g1", "0", "MKSTREAM"}, kOk}});
  EXPECT_EQ(info({"xinfo", "STREAM", "x", "FULL"}, "entries-added"), num(0));
  EXPECT_EQ(group_field(0, "entries-read"), kNil);
  EXPECT_EQ(group_field(0, "lag"), num(0));
  play({{{"xadd", "x", "1-0", "data", "a"}, bulk("1-0")}, {{"xdel", "x", "1-0"}, num(1)}});
  EXPECT_EQ(info({"xinfo", "STREAM", "x", "FULL"}, "max-deleted-entry-id"), bulk("1-0"));
  EXPECT_EQ(group_field(0, "entries-read"), kNil);
  EXPECT_EQ(group_field(0, "lag"), num(0));

  // "Consumer group read counter and lag sanity".
  run({"del", "x"});
  fill("x", 5);
  play({{{"xgroup", "CREATE", "x", "g1", "0"}, kOk}});
  EXPECT_EQ(group_field(0, "entries-read"), kNil);
  EXPECT_EQ(group_field(0, "lag"), num(5));
  run({"xreadgroup", "GROUP", "g1", "c11", "COUNT", "1", "STREAMS", "x", ">"});
  EXPECT_EQ(group_field(0, "entries-read"), num(1));
  EXPECT_EQ(group_field(0, "lag"), num(4));
  run({"xreadgroup", "GROUP", "g1", "c12", "COUNT", "10", "STREAMS", "x", ">"});
  EXPECT_EQ(group_field(0, "entries-read"), num(5));
  EXPECT_EQ(group_field(0, "lag"), num(0));
  run({"xadd", "x", "6-0", "data", "f"});
  EXPECT_EQ(group_field(0, "entries-read"), num(5));
  EXPECT_EQ(group_field(0, "lag"), num(1));

  // "Consumer group lag with XDELs".
  run({"del", "x"});
  fill("x", 5);
  play({{{"xdel", "x", "3-0"}, num(1)},
        {{"xgroup", "CREATE", "x", "g1", "0"}, kOk},
        {{"xgroup", "CREATE", "x", "g2", "0"}, kOk}});
  EXPECT_EQ(group_field(0, "entries-read"), kNil);
  EXPECT_EQ(group_field(0, "lag"), kNil);
  for (int j = 0; j < 3; ++j) {
    run({"xreadgroup", "GROUP", "g1", "c11", "COUNT", "1", "STREAMS", "x", ">"});
    EXPECT_EQ(group_field(0, "entries-read"), kNil);
    EXPECT_EQ(group_field(0, "lag"), kNil);
  }
  run({"xreadgroup", "GROUP", "g1", "c11", "COUNT", "1", "STREAMS", "x", ">"});
  EXPECT_EQ(group_field(0, "entries-read"), num(5));
  EXPECT_EQ(group_field(0, "lag"), num(0));
  run({"xadd", "x", "6-0", "data", "f"});
  EXPECT_EQ(group_field(0, "entries-read"), num(5));
  EXPECT_EQ(group_field(0, "lag"), num(1));
  run({"xtrim", "x", "MINID", "=", "3-0"});
  EXPECT_EQ(group_field(0, "entries-read"), num(5));
  EXPECT_EQ(group_field(0, "lag"), num(1));
  EXPECT_EQ(group_field(1, "entries-read"), kNil);
  EXPECT_EQ(group_field(1, "lag"), num(3));
  run({"xtrim", "x", "MINID", "=", "5-0"});
  EXPECT_EQ(group_field(0, "entries-read"), num(5));
  EXPECT_EQ(group_field(0, "lag"), num(1));
  EXPECT_EQ(group_field(1, "entries-read"), kNil);
  EXPECT_EQ(group_field(1, "lag"), num(2));
}

TEST_F(StreamCommands, PendingErrors) {
  fill("s", 1);
  play({
      {{"xgroup", "CREATE", "s", "g", "0"}, kOk},
      {{"xpending", "s", "g", "-", "+"}, kSyntax},
      {{"xpending", "s", "g", "-"}, kSyntax},
      {{"xpending", "s", "g", "IDLE", "5", "-", "+"}, kSyntax},
      {{"xpending", "s", "g", "-", "+", "10", "c", "x", "y", "z"}, kSyntax},
      {{"xpending", "s", "g", "IDLE", "x", "-", "+", "10"}, kNotInteger},
      {{"xpending", "s", "g", "-", "+", "x"}, kNotInteger},
      {{"xpending", "s", "g", "x", "+", "10"}, kInvalidId},
      {{"xpending", "s", "g", "(" + kMax + "-" + kMax, "+", "10"},
       err("ERR invalid start ID for the interval")},
      {{"xpending", "s", "g", "-", "(0-0", "10"}, err("ERR invalid end ID for the interval")},
      {{"xpending", "s", "nog"}, err("NOGROUP No such key 's' or consumer group 'nog'")},
      {{"xpending", "none", "g", "-", "+", "10"},
       err("NOGROUP No such key 'none' or consumer group 'g'")},
      {{"set", "str", "v"}, kOk},
      {{"xpending", "str", "g"}, kWrongType},
      {{"xack", "str", "g", "1-0"}, kWrongType},
  });
}

TEST_F(StreamCommands, LastIdsAndReadiness) {
  const std::string ready = "\x01xready";
  fill("s", 2);
  play({
      {{"\x01xlastids", "s", "none", "s"}, bulks({"2-0", "0-0", "2-0"})},
      {{ready, "xread", "STREAMS", "s", "2-0"}, num(0)},
      {{ready, "xread", "STREAMS", "s", "1-0"}, num(1)},
      {{ready, "XREAD", "COUNT", "1", "BLOCK", "0", "STREAMS", "none", "s", "0", "2"}, num(0)},
      {{ready, "xread", "STREAMS", "s", "$"}, num(0)},
      {{ready, "xread", "STREAMS", "none", "0"}, num(0)},
      // A malformed command runs (and says what is wrong).
      {{ready, "xread", "STREAMS", "s"}, num(1)},
      {{ready, "xread", "STREAMS", "s", "abc"}, num(1)},
      {{ready, "xread", "STREAMS", "none", "abc"}, num(1)},
      {{ready, "xread", "STREAMS", "s", ">"}, num(1)},
      {{ready, "get", "s"}, err("ERR \\x01xready takes an XREAD or XREADGROUP command")},
      {{"set", "str", "v"}, kOk},
      {{"\x01xlastids", "str"}, bulks({"0-0"})},
      // XREAD keeps waiting on a key of another type, as Redis's does.
      {{ready, "xread", "STREAMS", "str", "0"}, num(0)},
      {{"xadd", "s", "3-0", "f", "v"}, bulk("3-0")},
      {{ready, "xread", "STREAMS", "s", "2-0"}, num(1)},
      // XREADGROUP: new entries past the group's last delivered one.
      {{"xgroup", "CREATE", "s", "g", "$"}, kOk},
      {{ready, "xreadgroup", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"}, num(0)},
      {{"xadd", "s", "4-0", "f", "v"}, bulk("4-0")},
      {{"xdel", "s", "4-0"}, num(1)},
      {{ready, "xreadgroup", "GROUP", "g", "c", "STREAMS", "s", ">"}, num(0)},
      {{"xadd", "s", "5-0", "f", "v"}, bulk("5-0")},
      {{ready, "xreadgroup", "GROUP", "g", "c", "STREAMS", "s", ">"}, num(1)},
      {{ready, "xreadgroup", "GROUP", "g", "c", "STREAMS", "s", "0"}, num(1)},
      {{ready, "xreadgroup", "GROUP", "nog", "c", "STREAMS", "s", ">"}, num(1)},
      {{ready, "xreadgroup", "GROUP", "g", "c", "STREAMS", "none", ">"}, num(1)},
      {{ready, "xreadgroup", "GROUP", "g", "c", "STREAMS", "str", ">"}, num(1)},
      {{ready, "xreadgroup", "GROUP", "g", "c", "STREAMS", "s", "$"}, num(1)},
  });
  // It writes nothing.
  const auto before = records.records;
  const auto elements_before = records.elements;
  run({ready, "xreadgroup", "GROUP", "g", "c", "STREAMS", "s", ">"});
  run({"\x01xlastids", "s"});
  EXPECT_EQ(records.records, before);
  EXPECT_EQ(records.elements, elements_before);
  // The group's destruction wakes its readers, which then answer NOGROUP.
  play({
      {{"xreadgroup", "GROUP", "g", "c", "STREAMS", "s", ">"}, read1("s", {e("5-0", {"f", "v"})})},
      {{ready, "xreadgroup", "GROUP", "g", "c", "STREAMS", "s", ">"}, num(0)},
      {{"xgroup", "DESTROY", "s", "g"}, num(1)},
      {{ready, "xreadgroup", "GROUP", "g", "c", "STREAMS", "s", ">"}, num(1)},
  });
}

TEST_F(StreamCommands, CommandTableAndKeys) {
  for (const char* name :
       {"xadd", "xdel", "xtrim", "xsetid", "xreadgroup", "xgroup", "xack", "xclaim", "xautoclaim"})
    EXPECT_EQ(find_command(name)->flags, static_cast<uint32_t>(kWrite)) << name;
  for (const char* name :
       {"xlen", "xrange", "xrevrange", "xread", "xpending", "xinfo", "\x01xlastids", "\x01xready"})
    EXPECT_EQ(find_command(name)->flags, static_cast<uint32_t>(kReadOnly)) << name;
  using V = std::vector<std::string_view>;
  const std::vector<std::string> xread = {"xread", "COUNT", "1", "STREAMS", "a", "b", "0", "$"};
  EXPECT_EQ(command_keys(*find_command("xread"), xread), (V{"a", "b"}));
  const std::vector<std::string> xreadgroup = {"xreadgroup", "GROUP", "g", "c",
                                               "STREAMS",    "k",     ">"};
  EXPECT_EQ(command_keys(*find_command("xreadgroup"), xreadgroup), (V{"k"}));
  EXPECT_EQ(command_keys(*find_command("xgroup"), {"xgroup", "CREATE", "k", "g", "$"}), (V{"k"}));
  EXPECT_EQ(command_keys(*find_command("xinfo"), {"xinfo", "STREAM", "k"}), (V{"k"}));
  EXPECT_EQ(command_keys(*find_command("\x01xlastids"), {"\x01xlastids", "a", "b"}), (V{"a", "b"}));
  EXPECT_TRUE(command_keys(*find_command("\x01xready"), {"\x01xready", "xread"}).empty());
}

TEST_F(StreamCommands, KeysCommandsOnStreams) {
  fill("s", 3);
  play({
      {{"xgroup", "CREATE", "s", "g", "0"}, kOk},
      {{"xreadgroup", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "s", ">"},
       read1("s", {e("1-0", {"f", "1"})})},
      {{"copy", "s", "t"}, num(1)},
      {{"rename", "s", "u"}, kOk},
      {{"xrange", "u", "-", "+"},
       es({e("1-0", {"f", "1"}), e("2-0", {"f", "2"}), e("3-0", {"f", "3"})})},
      {{"xpending", "t", "g", "-", "+", "10"}, es({pend("1-0", "c", 0, 1)})},
      {{"xreadgroup", "GROUP", "g", "c", "STREAMS", "t", ">"},
       read1("t", {e("2-0", {"f", "2"}), e("3-0", {"f", "3"})})},
      // The copy is its own: the original's group did not move.
      {{"xreadgroup", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "u", ">"},
       read1("u", {e("2-0", {"f", "2"})})},
      {{"pexpire", "u", "10"}, num(1)},
  });
  now = kT0 + 10;
  play({
      {{"exists", "u"}, num(0)},
      {{"xlen", "u"}, num(0)},
      {{"xadd", "u", "1-0", "f", "new"}, bulk("1-0")},
      {{"xinfo", "GROUPS", "u"}, kEmpty},
      {{"del", "t", "u"}, num(2)},
  });
  EXPECT_TRUE(records.elements.empty());
  EXPECT_TRUE(records.records.empty());
}

// WATCH's version of a stream changes as Redis touches the key: when entries come or go (or
// the stream is made), not for group reads and changes.
TEST_F(StreamCommands, WatchVersionsFollowEntries) {
  auto version = [&] {
    return execute(records, {std::string(kKeyVersions), "s"}, now).elements.at(0).integer;
  };
  run({"xgroup", "CREATE", "s", "g", "$", "MKSTREAM"});
  int64_t v = version();
  EXPECT_GT(v, 0);
  for (const std::vector<std::string>& quiet :
       std::vector<std::vector<std::string>>{{"xgroup", "CREATE", "s", "g2", "0"},
                                             {"xgroup", "CREATECONSUMER", "s", "g", "c"},
                                             {"xsetid", "s", "5-0"},
                                             {"xdel", "s", "1-0"},
                                             {"xtrim", "s", "MAXLEN", "10"}}) {
    run(quiet);
    EXPECT_EQ(version(), v) << quiet[0] << " " << quiet[1];
  }
  run({"xadd", "s", "6-0", "f", "v"});
  EXPECT_NE(version(), v);
  v = version();
  for (const std::vector<std::string>& quiet :
       std::vector<std::vector<std::string>>{{"xreadgroup", "GROUP", "g", "c", "STREAMS", "s", ">"},
                                             {"xclaim", "s", "g", "d", "0", "6-0"},
                                             {"xautoclaim", "s", "g", "c", "0", "0"},
                                             {"xack", "s", "g", "6-0"},
                                             {"xgroup", "DESTROY", "s", "g2"}}) {
    run(quiet);
    EXPECT_EQ(version(), v) << quiet[0];
  }
  run({"xdel", "s", "6-0"});
  EXPECT_NE(version(), v);
}

TEST_F(StreamCommands, TransactionAddsIncrementalIds) {
  const Reply r = execute(records,
                          transaction_command({{"xadd", "s", "*", "item", "1"},
                                               {"xadd", "s", "*", "item", "2"},
                                               {"xadd", "s", "*", "item", "3"},
                                               {"xlen", "s"}}),
                          now, ++index);
  EXPECT_EQ(r, Reply::array({bulk(kT0Id + "-0"), bulk(kT0Id + "-1"), bulk(kT0Id + "-2"), num(3)}));
}

}  // namespace

}  // namespace chorus::redis
