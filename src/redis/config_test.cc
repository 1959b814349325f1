#include "redis/config.h"

#include <gtest/gtest.h>

namespace chorus::redis {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

TEST(ServerConfig, GetMatchesGlobsAndAliasesShareOneValue) {
  ServerConfig c(1024);
  EXPECT_EQ(c.get({"appendonly"}), (Pairs{{"appendonly", "yes"}}));
  EXPECT_EQ(c.get({"proto-max-bulk-len"}), (Pairs{{"proto-max-bulk-len", "1024"}}));
  EXPECT_EQ(c.set({"hash-max-ziplist-entries", "32"}).kind, Reply::Kind::kStatus);
  EXPECT_EQ(c.get({"hash-max-listpack-entries", "HASH-MAX-ZIPLIST-ENTRIES"}),
            (Pairs{{"hash-max-listpack-entries", "32"}, {"hash-max-ziplist-entries", "32"}}));
  Pairs zset = c.get({"zset-max-*-entries"});
  EXPECT_EQ(zset.size(), 2u);
  EXPECT_TRUE(c.get({"no-such-parameter"}).empty());
}

TEST(ServerConfig, SetChecksEveryValueBeforeChangingAny) {
  ServerConfig c(1024);
  Reply r = c.set({"zset-max-listpack-value", "16", "set-max-intset-entries", "lots"});
  ASSERT_EQ(r.kind, Reply::Kind::kError);
  EXPECT_EQ(r.str,
            "ERR CONFIG SET failed (possibly related to argument 'set-max-intset-entries') - "
            "argument couldn't be parsed into an integer");
  EXPECT_EQ(c.get({"zset-max-listpack-value"}), (Pairs{{"zset-max-listpack-value", "64"}}));

  r = c.set({"no-such-parameter", "1"});
  EXPECT_EQ(r.str,
            "ERR Unknown option or number of arguments for CONFIG SET - 'no-such-parameter'");
  r = c.set({"list-max-listpack-size", "-6"});
  EXPECT_EQ(r.kind, Reply::Kind::kError);
  r = c.set({"lazyfree-lazy-user-del", "maybe"});
  EXPECT_EQ(r.kind, Reply::Kind::kError);
  EXPECT_EQ(c.set({"lazyfree-lazy-user-del", "YES"}).kind, Reply::Kind::kStatus);
  EXPECT_EQ(c.get({"lazyfree-lazy-user-del"}), (Pairs{{"lazyfree-lazy-user-del", "yes"}}));
}

TEST(ServerConfig, ReportedParametersOnlyTakeTheirOwnValue) {
  ServerConfig c(1024);
  EXPECT_EQ(c.set({"appendonly", "yes"}).kind, Reply::Kind::kStatus);
  EXPECT_EQ(c.set({"appendfsync", "always", "save", ""}).kind, Reply::Kind::kStatus);
  Reply r = c.set({"appendonly", "no"});
  ASSERT_EQ(r.kind, Reply::Kind::kError);
  EXPECT_NE(r.str.find("'appendonly'"), std::string::npos);
  EXPECT_EQ(c.set({"databases", "16"}).kind, Reply::Kind::kError);
  EXPECT_EQ(c.get({"appendonly"}), (Pairs{{"appendonly", "yes"}}));
}

}  // namespace
}  // namespace chorus::redis
