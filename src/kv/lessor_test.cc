#include "kv/lessor.h"

#include <gtest/gtest.h>

namespace chorus::kv {
namespace {

TEST(Lessor, OnlyTheLeaderExpiresLeases) {
  Lessor l;
  l.granted(1, 5, 0);
  EXPECT_TRUE(l.expired(100'000, 10).empty()) << "a follower never expires a lease";
  l.promote(1'000);
  EXPECT_TRUE(l.expired(5'999, 10).empty());
  EXPECT_EQ(l.expired(6'000, 10), std::vector<int64_t>{1});
}

TEST(Lessor, KeepAliveExtendsAndExpiredLeasesCannotBeRenewed) {
  Lessor l;
  l.promote(0);
  l.granted(1, 10, 0);
  l.granted(2, 10, 0);
  EXPECT_EQ(l.renew(1, 9'000), 10);
  EXPECT_EQ(l.remaining_seconds(1, 9'000), 10);
  EXPECT_EQ(l.remaining_seconds(2, 9'000), 1);
  EXPECT_EQ(l.expired(10'000, 10), std::vector<int64_t>{2});
  EXPECT_EQ(l.renew(2, 10'000), -1);
  l.revoked(2);
  EXPECT_TRUE(l.expired(10'000, 10).empty());
  EXPECT_EQ(l.renew(3, 0), -1);
}

TEST(Lessor, ANewLeaderGivesEveryLeaseAFullTTL) {
  Lessor l;
  l.promote(0);
  l.granted(1, 5, 0);
  l.demote();
  EXPECT_EQ(l.renew(1, 1'000), -1) << "keep-alives go to the leader";
  l.promote(100'000);
  EXPECT_TRUE(l.expired(104'999, 10).empty());
  EXPECT_EQ(l.expired(105'000, 10).size(), 1u);
}

}  // namespace
}  // namespace chorus::kv
