#include "check/events.h"

#include <algorithm>
#include <cstddef>
#include <tuple>

#include "check/types.h"

namespace chorus::check::internal {

std::vector<Event> make_events(const std::vector<Interval>& ops) {
  struct Stamped {
    uint64_t time;
    bool is_return;  // false < true puts calls first on equal times.
    uint32_t op;
  };
  std::vector<Stamped> stamped;
  stamped.reserve(2 * ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    const auto op = static_cast<uint32_t>(i);
    stamped.push_back({ops[i].call, false, op});
    if (ops[i].ret != kNever) {
      stamped.push_back({ops[i].ret, true, op});
    }
  }
  // The op index breaks the remaining ties so the search order, and with it the step count and
  // the reported prefix, is a function of the history alone.
  std::sort(stamped.begin(), stamped.end(), [](const Stamped& a, const Stamped& b) {
    return std::tie(a.time, a.is_return, a.op) < std::tie(b.time, b.is_return, b.op);
  });

  std::vector<Event> events(stamped.size());
  std::vector<uint32_t> call_of(ops.size(), kNone);
  for (size_t i = 0; i < stamped.size(); ++i) {
    const auto index = static_cast<uint32_t>(i);
    events[i].op = stamped[i].op;
    events[i].is_call = !stamped[i].is_return;
    if (events[i].is_call) {
      call_of[stamped[i].op] = index;
    } else {
      events[call_of[stamped[i].op]].match = index;
    }
  }
  return events;
}

EventList::EventList(uint32_t size) : head_(size), prev_(size + 1), next_(size + 1) {
  for (uint32_t i = 0; i < size; ++i) {
    prev_[i] = i == 0 ? head_ : i - 1;
    next_[i] = i + 1 == size ? kNone : i + 1;
  }
  prev_[head_] = kNone;
  next_[head_] = size == 0 ? kNone : 0;
}

void EventList::remove(uint32_t node) {
  next_[prev_[node]] = next_[node];
  if (next_[node] != kNone) {
    prev_[next_[node]] = prev_[node];
  }
}

void EventList::restore(uint32_t node) {
  next_[prev_[node]] = node;
  if (next_[node] != kNone) {
    prev_[next_[node]] = node;
  }
}

}  // namespace chorus::check::internal
