#include "server/auth_tokens.h"

#include <gtest/gtest.h>

#include <set>

#include "server/password.h"

namespace chorus::server {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(TokenTable, ATokenLivesItsTtlPastItsLastUse) {
  TokenTable t(seconds(10));
  AuthClock::time_point t0{};
  t.add("tok", "alice", t0);
  EXPECT_EQ(t.user("tok", t0 + seconds(9)), "alice");
  // The use at 9 s moved its end to 19 s.
  EXPECT_EQ(t.user("tok", t0 + seconds(18)), "alice");
  EXPECT_EQ(t.user("tok", t0 + seconds(29)), std::nullopt);
  EXPECT_EQ(t.size(), 0u) << "an expired token is forgotten";
  EXPECT_EQ(t.user("other", t0), std::nullopt);
}

TEST(TokenTable, DroppingAUserOrEverythingEndsTheirTokens) {
  TokenTable t(seconds(100));
  AuthClock::time_point t0{};
  t.add("a1", "alice", t0);
  t.add("a2", "alice", t0);
  t.add("b1", "bob", t0);
  t.drop_user("alice");
  EXPECT_EQ(t.user("a1", t0), std::nullopt);
  EXPECT_EQ(t.user("a2", t0), std::nullopt);
  EXPECT_EQ(t.user("b1", t0), "bob");
  t.clear();
  EXPECT_EQ(t.user("b1", t0), std::nullopt);
}

TEST(TokenTable, StaysWithinItsBoundExpiredFirst) {
  TokenTable t(seconds(100), 10);
  AuthClock::time_point t0{};
  for (int i = 0; i < 5; ++i)
    t.add("old" + std::to_string(i), "u", t0);
  for (int i = 0; i < 5; ++i)
    t.add("new" + std::to_string(i), "u", t0 + seconds(150));
  // Full: the next login makes room by dropping the five expired ones.
  t.add("last", "u", t0 + seconds(150));
  EXPECT_EQ(t.size(), 6u);
  EXPECT_EQ(t.user("new0", t0 + seconds(150)), "u");
  // Full of live tokens: the ones closest to expiring go.
  for (int i = 0; i < 20; ++i)
    t.add("more" + std::to_string(i), "u", t0 + seconds(160 + i));
  EXPECT_LE(t.size(), 10u);
  EXPECT_EQ(t.user("more19", t0 + seconds(180)), "u");
}

TEST(LoginThrottle, WaitsGrowAfterAFewFailuresAndASuccessClearsThem) {
  LoginThrottle th;
  AuthClock::time_point t0{};
  for (int i = 0; i < LoginThrottle::kFreeFailures; ++i) {
    EXPECT_TRUE(th.allowed("alice", t0));
    th.failed("alice", t0);
  }
  EXPECT_FALSE(th.allowed("alice", t0 + milliseconds(99)));
  EXPECT_TRUE(th.allowed("alice", t0 + milliseconds(100)));
  th.failed("alice", t0 + milliseconds(100));
  EXPECT_FALSE(th.allowed("alice", t0 + milliseconds(299)));
  EXPECT_TRUE(th.allowed("alice", t0 + milliseconds(300)));
  EXPECT_TRUE(th.allowed("bob", t0)) << "another name is not held back";
  th.succeeded("alice");
  EXPECT_TRUE(th.allowed("alice", t0));
  EXPECT_EQ(LoginThrottle::wait(100), milliseconds(10'000));
}

TEST(LoginThrottle, TracksBoundedNames) {
  LoginThrottle th(4);
  AuthClock::time_point t0{};
  for (int i = 0; i < 50; ++i) {
    for (int k = 0; k < LoginThrottle::kFreeFailures; ++k)
      th.failed("user" + std::to_string(i), t0);
    EXPECT_LE(th.size(), 4u) << "after user" << i;
  }
  // The last one is still held back.
  EXPECT_FALSE(th.allowed("user49", t0));
}

TEST(Password, HashesCheckAndNeverHoldTheClearText) {
  std::string h = hash_password("s3cret", kMinBcryptCost);
  ASSERT_FALSE(h.empty());
  EXPECT_TRUE(h.starts_with("$2b$04$")) << h;
  EXPECT_EQ(h.find("s3cret"), std::string::npos);
  EXPECT_NE(hash_password("s3cret", kMinBcryptCost), h) << "each hash has its own salt";
  EXPECT_TRUE(check_password("s3cret", h, kMinBcryptCost));
  EXPECT_FALSE(check_password("s3cret!", h, kMinBcryptCost));
  EXPECT_FALSE(check_password("", h, kMinBcryptCost));
  // No hash (an unknown user, or one without a password) never matches.
  EXPECT_FALSE(check_password("", "", kMinBcryptCost));
  EXPECT_FALSE(check_password("x", "garbage", kMinBcryptCost));
  EXPECT_TRUE(hash_password("x", 3).empty()) << "a cost bcrypt does not take";
}

TEST(Password, SimpleTokensAreUnpredictableAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string t = make_simple_token();
    ASSERT_GE(t.size(), 24u);
    EXPECT_TRUE(seen.insert(t).second);
    EXPECT_EQ(t.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"), 22u);
  }
}

}  // namespace
}  // namespace chorus::server
