// Time-ordered call and return events of one partition, in a list the search edits in place.
#ifndef CHORUS_CHECK_EVENTS_H_
#define CHORUS_CHECK_EVENTS_H_

#include <cstdint>
#include <limits>
#include <vector>

namespace chorus::check::internal {

inline constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

struct Interval {
  uint64_t call = 0;
  uint64_t ret = 0;  // kNever when the outcome is unknown.
};

struct Event {
  uint32_t op = 0;  // Index of the operation within the partition.
  bool is_call = false;
  // For a call: the index of its return event, or kNone when the outcome is unknown.
  uint32_t match = kNone;
};

// Sorts the calls and returns of `ops` by time. On equal times calls come first, which makes
// operations that touch at a single instant concurrent. Operations of unknown outcome get no
// return event: they never force a backtrack and may stay unlinearized.
std::vector<Event> make_events(const std::vector<Interval>& ops);

// Doubly linked list over event indices [0, size). A removed node keeps its own links, so nodes
// removed in LIFO order are restored in O(1) by relinking their neighbours (dancing links).
class EventList {
 public:
  explicit EventList(uint32_t size);

  uint32_t first() const { return next_[head_]; }
  uint32_t next(uint32_t node) const { return next_[node]; }  // kNone past the last node.

  void remove(uint32_t node);
  void restore(uint32_t node);

 private:
  uint32_t head_;  // Sentinel, stored after the real nodes.
  std::vector<uint32_t> prev_;
  std::vector<uint32_t> next_;
};

}  // namespace chorus::check::internal

#endif  // CHORUS_CHECK_EVENTS_H_
