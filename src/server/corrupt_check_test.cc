#include "server/corrupt_check.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <string>

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

TEST(CorruptCheck, AMemberThatStopsAnsweringIsTrackedUntilItAnswersAgain) {
  bool three_answers = true;
  CorruptionChecker::Hooks hooks;
  hooks.is_leader = [] { return true; };
  hooks.local_hash = [](KvHash* out) {
    *out = KvHash{7, 100, 10};
    return true;
  };
  hooks.peer_hashes = [&](int64_t) {
    MemberHash silent;
    silent.member = 3;
    silent.error = "unreachable";
    return std::vector<MemberHash>{answer(2, 7, 100, 10),
                                   three_answers ? answer(3, 7, 100, 10) : silent};
  };
  std::vector<uint64_t> raised;
  hooks.raise = [&](uint64_t member) { raised.push_back(member); };
  hooks.catch_up = [] { return true; };
  CorruptionChecker checker(1, std::chrono::hours(1), hooks);
  checker.check_once();
  EXPECT_TRUE(checker.unanswered().empty());
  three_answers = false;
  checker.check_once();
  checker.check_once();
  EXPECT_EQ(checker.unanswered(), std::set<uint64_t>{3});
  EXPECT_TRUE(raised.empty()) << "a member that gives no hash is not judged";
  three_answers = true;
  checker.check_once();
  EXPECT_TRUE(checker.unanswered().empty());
}

TEST(HashResponder, AnswersOneRequestAtATimeAndRefusesOthersMeanwhile) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  HashResponder responder([&](int64_t revision, KvHash* out, std::string* error) {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return release; });
    if (revision > 50) {
      *error = "mvcc: required revision is a future revision";
      return false;
    }
    *out = KvHash{static_cast<uint32_t>(revision), 50, 1};
    return true;
  });
  std::promise<std::pair<bool, KvHash>> first;
  responder.submit(40, [&](bool ok, const KvHash& h, const std::string&) {
    first.set_value({ok, h});
  });
  // While the first is hashed, another is refused at once, on the caller's thread.
  bool second_ok = true;
  std::string second_error;
  responder.submit(41, [&](bool ok, const KvHash&, const std::string& error) {
    second_ok = ok;
    second_error = error;
  });
  EXPECT_FALSE(second_ok);
  EXPECT_NE(second_error.find("busy"), std::string::npos) << second_error;
  {
    std::lock_guard<std::mutex> lk(mu);
    release = true;
  }
  cv.notify_all();
  auto [ok, hash] = first.get_future().get();
  EXPECT_TRUE(ok);
  EXPECT_EQ(hash.hash, 40u);
  EXPECT_EQ(hash.revision, 50);
  // Free again: the next request is hashed, and a failure comes back with its reason.
  std::promise<std::string> third;
  responder.submit(60, [&](bool ok3, const KvHash&, const std::string& error) {
    third.set_value(ok3 ? "" : error);
  });
  EXPECT_NE(third.get_future().get().find("future revision"), std::string::npos);
}

}  // namespace
}  // namespace chorus::server
