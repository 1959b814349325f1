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

TEST(Lessor, CheckpointsCarryTheTimeLeftToTheNextLeader) {
  Lessor leader;
  Lessor follower;
  leader.promote(0);
  for (Lessor* l : {&leader, &follower}) {
    l->granted(1, 60, 0);  // longer than the interval: checkpointed
    l->granted(2, 5, 0);   // shorter: never
  }
  const int64_t interval = 10'000;
  EXPECT_TRUE(leader.due_checkpoints(0, interval, 100).empty()) << "first one interval out";
  EXPECT_TRUE(follower.due_checkpoints(20'000, interval, 100).empty()) << "the leader's job";
  auto due = leader.due_checkpoints(10'000, interval, 100);
  ASSERT_EQ(due, (std::vector<std::pair<int64_t, int64_t>>{{1, 50'000}}));
  EXPECT_TRUE(leader.due_checkpoints(15'000, interval, 100).empty()) << "once per interval";
  for (Lessor* l : {&leader, &follower})
    l->checkpointed(1, 50'000);  // applied on every replica
  // The follower takes over at 30 s: lease 1 has its checkpointed 50 s left, not a full 60.
  // Lease 2, never checkpointed, gets its full 5 s.
  follower.promote(30'000);
  EXPECT_EQ(follower.expired(79'999, 10), std::vector<int64_t>{2});
  EXPECT_EQ(follower.expired(80'000, 10), (std::vector<int64_t>{2, 1}));
}

TEST(Lessor, AKeepAliveSeesTheCheckpointItMustClear) {
  Lessor l;
  l.promote(0);
  l.granted(1, 60, 0);
  EXPECT_FALSE(l.has_checkpoint(1));
  (void)l.due_checkpoints(0, 10'000, 100);
  ASSERT_EQ(l.due_checkpoints(10'000, 10'000, 100).size(), 1u);
  l.checkpointed(1, 50'000);
  EXPECT_TRUE(l.has_checkpoint(1)) << "the keep-alive must clear it before answering";
  EXPECT_EQ(l.renew(1, 12'000), 60);
  l.checkpointed(1, 0);  // the clear, applied
  EXPECT_FALSE(l.has_checkpoint(1));
  l.demote();
  l.promote(20'000);
  EXPECT_TRUE(l.expired(79'999, 10).empty()) << "a full TTL once the checkpoint is cleared";
}

}  // namespace
}  // namespace chorus::kv
