#include "server/corrupt_check.h"

#include <gtest/gtest.h>

namespace chorus::server {
namespace {

MemberHash answer(uint64_t member, uint32_t hash, int64_t revision, int64_t compact) {
  return MemberHash{member, true, KvHash{hash, revision, compact}, ""};
}

TEST(CorruptCheck, InitialComparesHashesAtTheSameCompaction) {
  const KvHash mine{7, 100, 10};
  struct Case {
    const char* what;
    MemberHash peer;
    bool mismatch;
  };
  const Case cases[] = {
      {"same hash", answer(2, 7, 120, 10), false},
      {"other hash, same compaction", answer(2, 8, 120, 10), true},
      {"other hash, other compaction: not comparable", answer(2, 8, 120, 20), false},
      {"no answer", MemberHash{2, false, {}, "unreachable"}, false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(initial_mismatches(mine, {c.peer}).size(), c.mismatch ? 1u : 0u) << c.what;
  }
}

TEST(CorruptCheck, PeriodicFollowsEtcdsRules) {
  const uint64_t self = 1;
  const KvHash before{7, 100, 10};
  struct Case {
    const char* what;
    KvHash after;
    MemberHash peer;
    std::vector<uint64_t> alarmed;
  };
  const std::vector<Case> cases = {
      {"all agree", before, answer(2, 7, 100, 10), {}},
      {"a follower behind, same hash at the leader's revision", before, answer(2, 7, 90, 10), {}},
      {"a follower's other hash", before, answer(2, 9, 100, 10), {2}},
      {"a follower ahead of its leader", before, answer(2, 7, 101, 10), {2}},
      {"a follower compacted further", before, answer(2, 5, 100, 11), {2}},
      {"compacted in between on both: not comparable",
       KvHash{6, 100, 12},
       answer(2, 5, 100, 12),
       {}},
      {"the leader's own history changed at one revision",
       KvHash{8, 100, 10},
       answer(2, 7, 100, 10),
       {1}},
      {"a follower that did not answer", before, MemberHash{2, false, {}, "future revision"}, {}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(periodic_mismatches(self, before, c.after, {c.peer}), c.alarmed) << c.what;
  }
}

TEST(CorruptCheck, ThePassRunsOnTheLeaderOnlyAndRaisesOncePerMember) {
  bool leader = false;
  std::vector<int64_t> asked_at;
  std::vector<uint64_t> raised;
  CorruptionChecker::Hooks hooks;
  hooks.is_leader = [&] { return leader; };
  hooks.local_hash = [](KvHash* out) {
    *out = KvHash{7, 100, 10};
    return true;
  };
  hooks.peer_hashes = [&](int64_t revision) {
    asked_at.push_back(revision);
    return std::vector<MemberHash>{answer(2, 7, 100, 10), answer(3, 9, 100, 10),
                                   answer(4, 9, 100, 10)};
  };
  hooks.raise = [&](uint64_t member) { raised.push_back(member); };
  bool caught_up = true;
  hooks.catch_up = [&] { return caught_up; };
  CorruptionChecker checker(1, std::chrono::hours(1), hooks);
  checker.check_once();
  EXPECT_TRUE(asked_at.empty()) << "a follower asked the others";
  leader = true;
  checker.check_once();
  EXPECT_EQ(asked_at, std::vector<int64_t>{100}) << "the followers are asked at its revision";
  EXPECT_EQ(raised, (std::vector<uint64_t>{3, 4}));
  raised.clear();
  caught_up = false;
  checker.check_once();
  EXPECT_TRUE(raised.empty()) << "no verdict while the leader may be behind its followers";
}

}  // namespace
}  // namespace chorus::server
