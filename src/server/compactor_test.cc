#include "server/compactor.h"

#include <gtest/gtest.h>

namespace chorus::server {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = CompactionPlan::Clock;

TEST(Compaction, RetentionIsParsedAsEtcdDoes) {
  struct Case {
    CompactionMode mode;
    const char* text;
    bool ok;
    int64_t value;
  };
  const Case cases[] = {
      {CompactionMode::kPeriodic, "0", true, 0},
      {CompactionMode::kPeriodic, "1", true, 3'600'000},  // a bare number is hours
      {CompactionMode::kPeriodic, "30m", true, 1'800'000},
      {CompactionMode::kPeriodic, "1h30m", true, 5'400'000},
      {CompactionMode::kPeriodic, "10s", true, 10'000},
      {CompactionMode::kPeriodic, "ten", false, 0},
      {CompactionMode::kPeriodic, "5d", false, 0},
      {CompactionMode::kRevision, "1000", true, 1000},
      {CompactionMode::kRevision, "1h", false, 0},
      {CompactionMode::kRevision, "-5", false, 0},
  };
  for (const Case& c : cases) {
    int64_t v = -1;
    std::string why;
    EXPECT_EQ(parse_compaction_retention(c.mode, c.text, &v, &why), c.ok) << c.text << " " << why;
    if (c.ok) {
      EXPECT_EQ(v, c.value) << c.text;
    }
  }
}

TEST(Compaction, PeriodicKeepsAtLeastTheRetentionOfHistory) {
  CompactionPlan plan(CompactionMode::kPeriodic, 100'000);  // 100 s
  EXPECT_EQ(plan.interval(), milliseconds(10'000));
  Clock::time_point t0{};
  // One sample every 10 s, 7 revisions each: nothing is 100 s old before t0 + 100 s.
  std::vector<std::optional<int64_t>> got;
  for (int i = 0; i <= 13; ++i)
    got.push_back(plan.observe(t0 + seconds(10 * i), 1 + 7 * i));
  for (int i = 0; i < 10; ++i)
    EXPECT_FALSE(got[i].has_value()) << i;
  // At 100 s, the revision of t0; then each later sample's, 100 s on.
  EXPECT_EQ(got[10], 1);
  EXPECT_EQ(got[11], 8);
  EXPECT_EQ(got[13], 22);
  // An idle store (same revision) is not compacted again.
  CompactionPlan idle(CompactionMode::kPeriodic, 10'000);
  EXPECT_EQ(idle.interval(), milliseconds(1000));  // at least a second
  for (int i = 0; i <= 10; ++i)
    (void)idle.observe(t0 + seconds(i), 5);
  EXPECT_FALSE(idle.observe(t0 + seconds(11), 5).has_value());
  EXPECT_FALSE(idle.observe(t0 + seconds(30), 5).has_value());
}

TEST(Compaction, RevisionKeepsTheLastN) {
  CompactionPlan plan(CompactionMode::kRevision, 1000);
  EXPECT_EQ(plan.interval(), milliseconds(300'000));
  Clock::time_point t0{};
  EXPECT_FALSE(plan.observe(t0, 500).has_value());  // fewer than N revisions yet
  EXPECT_EQ(plan.observe(t0 + seconds(300), 1500), 500);
  EXPECT_FALSE(plan.observe(t0 + seconds(600), 1500).has_value()) << "nothing new";
  EXPECT_EQ(plan.observe(t0 + seconds(900), 4000), 3000);
  CompactionPlan off(CompactionMode::kRevision, 0);
  EXPECT_FALSE(off.observe(t0, 1'000'000).has_value());
}

}  // namespace
}  // namespace chorus::server
