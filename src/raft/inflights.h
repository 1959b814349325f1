// Flow control: the append messages in flight to one follower.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "raft/types.h"

namespace chorus::raft {

// A sliding window of append messages in flight to one follower, bounded both in messages and in
// bytes so that a slow follower cannot make the leader buffer unbounded data.
class Inflights {
 public:
  Inflights(size_t max_messages, uint64_t max_bytes);
  void add(Index last_index, uint64_t bytes);
  // Frees every message whose last index is <= `index` (acknowledged).
  void free_le(Index index);
  void free_first_one();
  bool full() const;
  size_t count() const { return count_; }
  uint64_t bytes() const { return bytes_; }
  void reset();

 private:
  struct Slot {
    Index index = 0;
    uint64_t bytes = 0;
  };
  std::vector<Slot> buffer_;
  size_t start_ = 0;
  size_t count_ = 0;
  uint64_t bytes_ = 0;
  size_t max_messages_;
  uint64_t max_bytes_;
};

}  // namespace chorus::raft
