// Depth-first search for a linearization of one partition (Wing & Gong, with Lowe's cache, as in
// Porcupine).
#ifndef CHORUS_CHECK_SEARCH_H_
#define CHORUS_CHECK_SEARCH_H_

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <unordered_set>
#include <utility>
#include <vector>

#include "check/bitset.h"
#include "check/events.h"
#include "check/model.h"
#include "check/types.h"

namespace chorus::check::internal {

template <LinearizabilityModel Model>
class PartitionSearch {
 public:
  using State = typename Model::State;
  using Op = ModelOperation<Model>;

  // `ops` must outlive the search.
  explicit PartitionSearch(std::vector<const Op*> ops) : ops_(std::move(ops)) {}

  // Searches until every operation with a known return is linearized (kOk), no order works
  // (kIllegal), or `*steps` reaches `max_steps` (kUnknown). `*steps` is shared across partitions.
  CheckResult run(uint64_t max_steps, uint64_t* steps);

  // Partition-local indices of the deepest linearization reached, in order.
  const std::vector<uint32_t>& longest() const { return longest_; }

 private:
  struct Frame {
    uint32_t call;  // Event index of the linearized call.
    State before;
  };

  // Lowe's observation: reaching the same set of linearized operations with the same state
  // means the rest of the search is identical, so each such pair is explored once.
  struct CacheEntry {
    Bitset linearized;
    State state;
    friend bool operator==(const CacheEntry&, const CacheEntry&) = default;
  };
  struct CacheHash {
    size_t operator()(const CacheEntry& e) const {
      return hash_combine(e.linearized.hash(), Model::hash(e.state));
    }
  };

  void note_push(const std::vector<Frame>& stack, const std::vector<Event>& events);
  void note_pop(size_t depth) { longest_shared_ = std::min(longest_shared_, depth); }

  std::vector<const Op*> ops_;
  std::vector<uint32_t> longest_;
  // Length of the prefix `longest_` shares with the current stack, so that recording a new
  // deepest point copies only what changed since.
  size_t longest_shared_ = 0;
};

template <LinearizabilityModel Model>
CheckResult PartitionSearch<Model>::run(uint64_t max_steps, uint64_t* steps) {
  std::vector<Interval> intervals;
  intervals.reserve(ops_.size());
  size_t pending_known = 0;
  for (const Op* op : ops_) {
    intervals.push_back({op->call_time, op->return_time});
    if (op->return_time != kNever) {
      ++pending_known;
    }
  }
  const std::vector<Event> events = make_events(intervals);
  EventList list(static_cast<uint32_t>(events.size()));
  Bitset linearized(ops_.size());
  std::unordered_set<CacheEntry, CacheHash> cache;
  std::vector<Frame> stack;
  State state = Model::init();

  uint32_t node = list.first();
  // Unknown-outcome operations may stay unlinearized, so success does not need an empty list.
  while (pending_known > 0) {
    if (*steps >= max_steps) {
      return CheckResult::kUnknown;
    }
    ++*steps;
    // A pending known operation keeps its return event listed, and the walk stops there.
    assert(node != kNone);
    const Event& event = events[node];

    if (event.is_call) {
      State next{};
      if (apply_operation<Model>(*ops_[event.op], state, &next)) {
        linearized.set(event.op);
        auto [it, inserted] = cache.insert(CacheEntry{linearized, std::move(next)});
        if (inserted) {
          stack.push_back(Frame{node, std::move(state)});
          state = it->state;
          list.remove(node);
          if (event.match != kNone) {
            list.remove(event.match);
            --pending_known;
          }
          note_push(stack, events);
          // Linearizing an operation can enable calls skipped earlier, so rescan from the start.
          node = list.first();
          continue;
        }
        linearized.clear(event.op);
      }
      node = list.next(node);
      continue;
    }

    // This operation returned before any pending call could be linearized in the current
    // order: undo the most recent choice and try the call after it instead.
    if (stack.empty()) {
      return CheckResult::kIllegal;
    }
    Frame& top = stack.back();
    const Event& undone = events[top.call];
    if (undone.match != kNone) {
      list.restore(undone.match);
      ++pending_known;
    }
    list.restore(top.call);
    linearized.clear(undone.op);
    state = std::move(top.before);
    node = list.next(top.call);
    stack.pop_back();
    note_pop(stack.size());
  }
  return CheckResult::kOk;
}

template <LinearizabilityModel Model>
void PartitionSearch<Model>::note_push(const std::vector<Frame>& stack,
                                       const std::vector<Event>& events) {
  const size_t depth = stack.size();
  if (depth <= longest_.size()) {
    return;
  }
  longest_.resize(depth);
  for (size_t i = longest_shared_; i < depth; ++i) {
    longest_[i] = events[stack[i].call].op;
  }
  longest_shared_ = depth;
}

}  // namespace chorus::check::internal

#endif  // CHORUS_CHECK_SEARCH_H_
