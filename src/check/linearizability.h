// Linearizability checker for recorded client histories.
//
// Usage:
//   std::vector<chorus::check::KvOperation> history = ...;
//   chorus::check::CheckReport report = chorus::check::check_linearizable<KvModel>(history);
//   EXPECT_TRUE(report.ok()) << report.explanation;
//
// The history is split by Model::partition_key and each part is searched on its own, which keeps
// the exponential search confined to operations that can actually interfere.
#ifndef CHORUS_CHECK_LINEARIZABILITY_H_
#define CHORUS_CHECK_LINEARIZABILITY_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "check/model.h"
#include "check/search.h"
#include "check/types.h"

namespace chorus::check {

namespace internal {

// "#3 client 2 [10, 20] " with "inf)" for an unknown return.
std::string describe_header(size_t index, uint64_t client_id, uint64_t call_time,
                            uint64_t return_time);

// How many operations an explanation lists before eliding the rest; a partition can hold
// thousands, and the last steps before the failure are the ones worth reading.
inline constexpr size_t kMaxListedOps = 40;

template <LinearizabilityModel Model>
std::string describe_operation(const std::vector<ModelOperation<Model>>& history, size_t index) {
  const ModelOperation<Model>& op = history[index];
  std::string out = describe_header(index, op.client_id, op.call_time, op.return_time);
  out += Model::describe_input(op.input);
  out += " -> ";
  out += op.return_time == kNever ? std::string("? (outcome unknown)")
                                  : Model::describe_output(op.input, op.output);
  return out;
}

// Fills the kIllegal part of `report` for a partition whose members are `members` (history
// indices in history order) and whose deepest linearization was `longest` (member indices).
template <LinearizabilityModel Model>
void explain_illegal(const std::vector<ModelOperation<Model>>& history,
                     const std::vector<size_t>& members, const std::vector<uint32_t>& longest,
                     CheckReport* report) {
  std::vector<bool> done(members.size(), false);
  for (uint32_t m : longest) {
    done[m] = true;
    report->longest_prefix.push_back(members[m]);
  }
  // The operation blocking progress is the first to return among those not yet linearized: the
  // search can defer every other pending operation past the prefix, but not that one.
  std::optional<size_t> failed;
  for (size_t m = 0; m < members.size(); ++m) {
    const uint64_t ret = history[members[m]].return_time;
    if (done[m] || ret == kNever) {
      continue;
    }
    if (!failed || ret < history[members[*failed]].return_time) {
      failed = m;
    }
  }

  std::string& text = report->explanation;
  text = "not linearizable: partition \"" + report->partition + "\" (" +
         std::to_string(members.size()) + " operations)\n";
  text += "longest linearizable prefix: " + std::to_string(longest.size()) + " operations\n";
  typename Model::State state = Model::init();
  for (size_t i = 0; i < longest.size(); ++i) {
    typename Model::State next{};
    const bool applied = apply_operation<Model>(history[members[longest[i]]], state, &next);
    state = std::move(next);
    if (i + kMaxListedOps < longest.size()) {
      continue;
    }
    text += "  " + describe_operation<Model>(history, members[longest[i]]);
    text += applied ? "  => " + Model::describe_state(state) : std::string("  => (replay failed)");
    text += "\n";
  }
  if (longest.size() > kMaxListedOps) {
    text +=
        "  (" + std::to_string(longest.size() - kMaxListedOps) + " earlier operations not shown)\n";
  }
  text += "state after prefix: " + Model::describe_state(state) + "\n";
  if (!failed) {
    return;  // Unreachable: the search succeeds once every known operation is placed.
  }

  const ModelOperation<Model>& blocked = history[members[*failed]];
  report->failed_op = members[*failed];
  text += "cannot linearize: " + describe_operation<Model>(history, members[*failed]) + "\n";
  text += "nor any other operation called before it returned:\n";
  size_t listed = 0;
  for (size_t m = 0; m < members.size(); ++m) {
    if (done[m] || m == *failed || history[members[m]].call_time > blocked.return_time) {
      continue;
    }
    if (++listed > kMaxListedOps) {
      text += "  ...\n";
      break;
    }
    text += "  " + describe_operation<Model>(history, members[m]) + "\n";
  }
  if (listed == 0) {
    text += "  (none)\n";
  }
}

}  // namespace internal

// Checks whether `history` is linearizable with respect to Model. Partitions are checked in
// key order and the first illegal one is reported; `options.max_steps` bounds the total work.
// A history with an operation returning before its call is reported as kIllegal (malformed).
template <LinearizabilityModel Model>
CheckReport check_linearizable(const std::vector<ModelOperation<Model>>& history,
                               const CheckOptions& options = {}) {
  CheckReport report;
  for (size_t i = 0; i < history.size(); ++i) {
    if (history[i].return_time < history[i].call_time) {
      report.result = CheckResult::kIllegal;
      report.explanation = "malformed history: " + internal::describe_operation<Model>(history, i) +
                           " returns before it is called\n";
      return report;
    }
  }

  // An ordered map keeps the visiting order, and so every report, deterministic.
  std::map<std::string, std::vector<size_t>> partitions;
  for (size_t i = 0; i < history.size(); ++i) {
    partitions[Model::partition_key(history[i].input)].push_back(i);
  }

  size_t checked = 0;
  for (const auto& [key, members] : partitions) {
    std::vector<const ModelOperation<Model>*> ops;
    ops.reserve(members.size());
    for (size_t i : members) {
      ops.push_back(&history[i]);
    }
    internal::PartitionSearch<Model> search(std::move(ops));
    const CheckResult result = search.run(options.max_steps, &report.steps);
    if (result == CheckResult::kOk) {
      ++checked;
      continue;
    }
    report.result = result;
    report.partition = key;
    if (result == CheckResult::kIllegal) {
      internal::explain_illegal<Model>(history, members, search.longest(), &report);
    } else {
      report.explanation = "step budget of " + std::to_string(options.max_steps) +
                           " exhausted in partition \"" + key + "\" (" +
                           std::to_string(members.size()) + " operations) after " +
                           std::to_string(checked) + " of " + std::to_string(partitions.size()) +
                           " partitions were found linearizable\n";
    }
    return report;
  }
  return report;
}

}  // namespace chorus::check

#endif  // CHORUS_CHECK_LINEARIZABILITY_H_
