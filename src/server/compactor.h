// etcd's auto-compaction (--auto-compaction-mode, --auto-compaction-retention): the leader
// compacts the key history on its own so it does not grow without end.
//
//   periodic, retention R (a duration; a bare number is hours, as in etcd): keep at least the
//     last R of history. The revision is sampled every R/10 (at most every hour, at least every
//     second); once a sample is R old, the store is compacted to it.
//   revision, retention N: every five minutes, compact to the current revision minus N.
//
// The decision (CompactionPlan) is pure, with time passed in; AutoCompactor runs it on its own
// thread (chorus-compact) on the leader only, and proposes the compaction through the log like
// any client's, so every member compacts at the same revision.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "base/periodic.h"
#include "server/config.h"

namespace chorus::server {

class CompactionPlan {
 public:
  using Clock = std::chrono::steady_clock;
  CompactionPlan(CompactionMode mode, int64_t retention);

  // How often observe() wants to be called.
  std::chrono::milliseconds interval() const { return interval_; }
  // The current revision at `now`; returns the revision to compact to, if one is due (never the
  // same twice, never below an earlier one). Samples taken while not leading still count: the
  // history kept is measured in time, whoever led.
  std::optional<int64_t> observe(Clock::time_point now, int64_t revision);

 private:
  CompactionMode mode_;
  int64_t retention_;
  std::chrono::milliseconds interval_;
  std::deque<std::pair<Clock::time_point, int64_t>> samples_;  // periodic
  int64_t last_ = 0;
};

class AutoCompactor {
 public:
  struct Hooks {
    std::function<bool()> is_leader;
    std::function<int64_t()> revision;
    // Proposes a compaction to `revision`; `done(ok, why)` from any thread.
    std::function<void(int64_t revision, std::function<void(bool, const std::string&)> done)>
        compact;
  };
  AutoCompactor(CompactionMode mode, int64_t retention, Hooks hooks);
  ~AutoCompactor();  // stops and joins
  AutoCompactor(const AutoCompactor&) = delete;
  AutoCompactor& operator=(const AutoCompactor&) = delete;

 private:
  void run();

  CompactionPlan plan_;
  Hooks hooks_;
  base::PeriodicThread thread_;  // last (chorus-compact)
};

}  // namespace chorus::server
