#include "redis/resp.h"

#include <gtest/gtest.h>

#include "redis/slot.h"

namespace chorus::redis {
namespace {

using Result = RequestParser::Result;

std::vector<std::string> parse_one(std::string_view buf, Result want = Result::kCommand) {
  RequestParser p;
  size_t pos = 0;
  std::vector<std::string> argv;
  std::string error;
  EXPECT_EQ(p.next(buf, &pos, &argv, &error), want) << error;
  return argv;
}

std::string parse_error(std::string_view buf, size_t max_bulk = 512u << 20) {
  RequestParser p(max_bulk);
  size_t pos = 0;
  std::vector<std::string> argv;
  std::string error;
  EXPECT_EQ(p.next(buf, &pos, &argv, &error), Result::kError);
  EXPECT_EQ(pos, 0u);
  return error;
}

TEST(Resp, ParsesMultibulkCommands) {
  EXPECT_EQ(parse_one("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva\r\nl\r\n"),
            (std::vector<std::string>{"SET", "k", "va\r\nl"}));
  EXPECT_EQ(parse_one("*1\r\n$0\r\n\r\n"), (std::vector<std::string>{""}));
}

TEST(Resp, PipelinedCommandsComeOneAtATime) {
  std::string buf = "*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$3\r\nGET\r\n$1\r\nx\r\n";
  RequestParser p;
  size_t pos = 0;
  std::vector<std::string> argv;
  std::string error;
  ASSERT_EQ(p.next(buf, &pos, &argv, &error), Result::kCommand);
  EXPECT_EQ(argv, (std::vector<std::string>{"PING"}));
  ASSERT_EQ(p.next(buf, &pos, &argv, &error), Result::kCommand);
  EXPECT_EQ(argv, (std::vector<std::string>{"ECHO", "hi"}));
  ASSERT_EQ(p.next(buf, &pos, &argv, &error), Result::kCommand);
  EXPECT_EQ(argv, (std::vector<std::string>{"GET", "x"}));
  EXPECT_EQ(pos, buf.size());
  EXPECT_EQ(p.next(buf, &pos, &argv, &error), Result::kNeedMore);
}

TEST(Resp, EveryCutOfACommandWaitsForTheRest) {
  const std::string whole = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$10\r\n0123456789\r\n";
  for (size_t cut = 0; cut < whole.size(); ++cut) {
    RequestParser p;
    size_t pos = 0;
    std::vector<std::string> argv;
    std::string error;
    EXPECT_EQ(p.next(std::string_view(whole).substr(0, cut), &pos, &argv, &error),
              Result::kNeedMore)
        << cut;
    EXPECT_EQ(pos, 0u);
  }
  EXPECT_EQ(parse_one(whole).size(), 3u);
}

TEST(Resp, InlineCommandsSplitAsRedisDoes) {
  EXPECT_EQ(parse_one("set  k \"a b\\x41\\n\" 'it\\'s'\r\n"),
            (std::vector<std::string>{"set", "k", "a bA\n", "it's"}));
  EXPECT_EQ(parse_one("PING\n"), (std::vector<std::string>{"PING"}));
  EXPECT_TRUE(parse_one("   \r\n").empty());
  parse_one("PING", Result::kNeedMore);
}

TEST(Resp, BadFramingGetsRedisErrorText) {
  EXPECT_EQ(parse_error("*x\r\n"), "Protocol error: invalid multibulk length");
  EXPECT_EQ(parse_error("*2000000\r\n"), "Protocol error: invalid multibulk length");
  EXPECT_EQ(parse_error("*1\r\n+PING\r\n"), "Protocol error: expected '$', got '+'");
  EXPECT_EQ(parse_error("*1\r\n$-1\r\n"), "Protocol error: invalid bulk length");
  EXPECT_EQ(parse_error("*1\r\n$abc\r\n"), "Protocol error: invalid bulk length");
  EXPECT_EQ(parse_error("*1\r\n$2000\r\n", 1000), "Protocol error: invalid bulk length");
  EXPECT_EQ(parse_error("set k \"open\r\n"), "Protocol error: unbalanced quotes in request");
  EXPECT_EQ(parse_error("set k \"a\"b\r\n"), "Protocol error: unbalanced quotes in request");
  EXPECT_EQ(parse_error(std::string(kMaxInlineBytes + 1, 'a')),
            "Protocol error: too big inline request");
  EXPECT_EQ(parse_error("*" + std::string(kMaxInlineBytes + 1, '1')),
            "Protocol error: too big mbulk count string");
  EXPECT_EQ(parse_error("*1\r\n$" + std::string(kMaxInlineBytes + 1, '1')),
            "Protocol error: too big bulk count string");
}

TEST(Resp, EmptyMultibulkIsSkipped) {
  RequestParser p;
  std::string buf = "*0\r\n*-1\r\n";
  size_t pos = 0;
  std::vector<std::string> argv;
  std::string error;
  EXPECT_EQ(p.next(buf, &pos, &argv, &error), Result::kCommand);
  EXPECT_TRUE(argv.empty());
  EXPECT_EQ(p.next(buf, &pos, &argv, &error), Result::kCommand);
  EXPECT_TRUE(argv.empty());
  EXPECT_EQ(pos, buf.size());
}

std::string enc(const Reply& r, int protocol) {
  std::string out;
  encode(r, protocol, &out);
  return out;
}

TEST(Resp, RepliesInBothProtocols) {
  EXPECT_EQ(enc(Reply::ok(), 2), "+OK\r\n");
  EXPECT_EQ(enc(Reply::error("ERR bad\r\nthing"), 2), "-ERR bad  thing\r\n");
  EXPECT_EQ(enc(Reply::integer_of(-7), 2), ":-7\r\n");
  EXPECT_EQ(enc(Reply::bulk("hi"), 2), "$2\r\nhi\r\n");
  EXPECT_EQ(enc(Reply::null(), 2), "$-1\r\n");
  EXPECT_EQ(enc(Reply::null(), 3), "_\r\n");
  EXPECT_EQ(enc(Reply::null_array(), 2), "*-1\r\n");
  EXPECT_EQ(enc(Reply::array({Reply::bulk("a"), Reply::null()}), 2), "*2\r\n$1\r\na\r\n$-1\r\n");
  EXPECT_EQ(enc(Reply::double_of("1.5"), 2), "$3\r\n1.5\r\n");
  EXPECT_EQ(enc(Reply::double_of("1.5"), 3), ",1.5\r\n");
  Reply m = Reply::map({Reply::bulk("k"), Reply::integer_of(1)});
  EXPECT_EQ(enc(m, 2), "*2\r\n$1\r\nk\r\n:1\r\n");
  EXPECT_EQ(enc(m, 3), "%1\r\n$1\r\nk\r\n:1\r\n");
  // WITHSCORES: flat in RESP2, pairs in RESP3.
  Reply pairs = Reply::pairs(
      {Reply::bulk("a"), Reply::double_of("1"), Reply::bulk("b"), Reply::double_of("2")});
  EXPECT_EQ(enc(pairs, 2), "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n");
  EXPECT_EQ(enc(pairs, 3), "*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2\r\n");
  // Pub/sub messages: arrays in RESP2, pushes in RESP3.
  Reply push = Reply::push({Reply::bulk("message"), Reply::bulk("c"), Reply::bulk("m")});
  EXPECT_EQ(enc(push, 2).substr(0, 4), "*3\r\n");
  EXPECT_EQ(enc(push, 3).substr(0, 4), ">3\r\n");
}

TEST(Slot, MatchesRedisCluster) {
  EXPECT_EQ(crc16("123456789"), 0x31C3);
  EXPECT_EQ(key_slot("foo"), 12182u);
  EXPECT_EQ(key_slot("bar"), 5061u);
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("user1000"));
  EXPECT_EQ(hash_tag("foo{}{bar}"), "foo{}{bar}");
  EXPECT_EQ(hash_tag("foo{{bar}}zap"), "{bar");
  EXPECT_EQ(hash_tag("foo{bar}{zap}"), "bar");
}

}  // namespace
}  // namespace chorus::redis
