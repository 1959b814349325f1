#include "raft/inflights.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace chorus::raft {

Inflights::Inflights(size_t max_messages, uint64_t max_bytes)
    : max_messages_(max_messages), max_bytes_(max_bytes) {}

void Inflights::add(Index last_index, uint64_t bytes) {
  if (full()) {
    std::fprintf(stderr, "raft: inflights overflow\n");
    std::abort();
  }
  if (count_ == buffer_.size()) {
    // Grow lazily: most followers never need the whole window.
    size_t want = std::min(max_messages_, std::max<size_t>(buffer_.size() * 2, 4));
    std::vector<Slot> grown(want);
    for (size_t i = 0; i < count_; ++i)
      grown[i] = buffer_[(start_ + i) % buffer_.size()];
    buffer_ = std::move(grown);
    start_ = 0;
  }
  size_t pos = (start_ + count_) % buffer_.size();
  buffer_[pos] = Slot{last_index, bytes};
  ++count_;
  bytes_ += bytes;
}

void Inflights::free_le(Index index) {
  while (count_ > 0 && buffer_[start_].index <= index) {
    bytes_ -= buffer_[start_].bytes;
    start_ = (start_ + 1) % buffer_.size();
    --count_;
  }
  if (count_ == 0) start_ = 0;
}

void Inflights::free_first_one() {
  if (count_ == 0) return;
  free_le(buffer_[start_].index);
}

bool Inflights::full() const {
  return count_ >= max_messages_ || (max_bytes_ != 0 && bytes_ >= max_bytes_);
}

void Inflights::reset() {
  start_ = 0;
  count_ = 0;
  bytes_ = 0;
}

}  // namespace chorus::raft
