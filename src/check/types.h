// Vocabulary of the linearizability checker: recorded operations, options and results.
#ifndef CHORUS_CHECK_TYPES_H_
#define CHORUS_CHECK_TYPES_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace chorus::check {

// Return time of an operation whose outcome was never observed (the client gave up or crashed).
// Such an operation may or may not have taken effect, and if it did, at any point after its call.
inline constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

// One client operation as observed from outside the system. Times are in any monotonic unit
// shared by all clients; only their order matters. An operation returning at time t and another
// called at the same t are treated as concurrent, since their real order is unknown.
template <typename Input, typename Output>
struct Operation {
  uint64_t client_id = 0;
  uint64_t call_time = 0;
  // kNever when the outcome is unknown; `output` is then ignored.
  uint64_t return_time = kNever;
  Input input{};
  Output output{};
};

enum class CheckResult {
  kOk,       // Every partition has a linearization.
  kIllegal,  // Some partition has none (or the history is malformed).
  kUnknown,  // The step budget ran out before an answer was found.
};

const char* to_string(CheckResult result);

struct CheckOptions {
  // Bound on search steps summed over all partitions. It is counted in steps rather than wall
  // time so that a verdict never depends on machine load and a failing seed replays exactly.
  uint64_t max_steps = 50'000'000;
};

struct CheckReport {
  CheckResult result = CheckResult::kOk;
  // Human-readable reason for kIllegal or kUnknown; empty for kOk.
  std::string explanation;
  // The partition that was found illegal or exhausted the budget.
  std::string partition;
  // For kIllegal: history indices of the longest linearizable prefix found in `partition`, in
  // linearization order, and the operation that could not be linearized after it. Both are empty
  // for a malformed history.
  std::vector<size_t> longest_prefix;
  std::optional<size_t> failed_op;
  // Search steps spent, comparable against CheckOptions::max_steps.
  uint64_t steps = 0;

  bool ok() const { return result == CheckResult::kOk; }
};

}  // namespace chorus::check

#endif  // CHORUS_CHECK_TYPES_H_
