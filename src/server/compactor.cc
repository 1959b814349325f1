#include "server/compactor.h"

#include <algorithm>

#include "server/log.h"

namespace chorus::server {
namespace {

using std::chrono::milliseconds;

// etcd's revision compactor looks every five minutes.
constexpr milliseconds kRevisionInterval(5 * 60 * 1000);

}  // namespace

CompactionPlan::CompactionPlan(CompactionMode mode, int64_t retention)
    : mode_(mode), retention_(retention) {
  if (mode == CompactionMode::kRevision) {
    interval_ = kRevisionInterval;
  } else {
    interval_ =
        std::clamp(milliseconds(retention / 10), milliseconds(1000), milliseconds(3'600'000));
  }
}

std::optional<int64_t> CompactionPlan::observe(Clock::time_point now, int64_t revision) {
  if (retention_ <= 0) return std::nullopt;
  int64_t target = 0;
  if (mode_ == CompactionMode::kRevision) {
    target = revision - retention_;
  } else {
    samples_.emplace_back(now, revision);
    auto old_enough = [&](const auto& s) { return now - s.first >= milliseconds(retention_); };
    // Keep one sample at least R old (the newest such): everything after it is kept.
    while (samples_.size() > 1 && old_enough(samples_[1]))
      samples_.pop_front();
    if (!old_enough(samples_.front())) return std::nullopt;
    target = samples_.front().second;
  }
  if (target <= last_ || target <= 0) return std::nullopt;
  last_ = target;
  return target;
}

AutoCompactor::AutoCompactor(CompactionMode mode, int64_t retention, Hooks hooks)
    : plan_(mode, retention),
      hooks_(std::move(hooks)),
      thread_("chorus-compact", plan_.interval(), [this] { run(); }) {}

AutoCompactor::~AutoCompactor() = default;

// One look, on the compactor's thread.
void AutoCompactor::run() {
  std::optional<int64_t> target = plan_.observe(CompactionPlan::Clock::now(), hooks_.revision());
  if (!target || !hooks_.is_leader()) return;
  int64_t rev = *target;
  hooks_.compact(rev, [rev](bool ok, const std::string& why) {
    if (ok) {
      log(LogLevel::kInfo, "compacted the key history (auto-compaction)",
          {{"revision", std::to_string(rev)}});
    } else {
      log(LogLevel::kWarn, "auto-compaction failed",
          {{"revision", std::to_string(rev)}, {"error", why}});
    }
  });
}

}  // namespace chorus::server
