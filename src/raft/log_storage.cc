#include "raft/log_storage.h"

#include <cassert>
#include <cstdio>
#include <cstdlib>

namespace chorus::raft {

MemoryLogStorage::MemoryLogStorage() : entries_(1) {}

MemoryLogStorage::MemoryLogStorage(const ConfState& initial) : entries_(1) {
  snapshot_.metadata.conf_state = initial;
}

Error MemoryLogStorage::entries(Index lo, Index hi, uint64_t max_bytes,
                                std::vector<Entry>* out) const {
  if (lo <= offset()) return Error::kCompacted;
  if (hi > last_index() + 1) return Error::kUnavailable;
  uint64_t bytes = 0;
  for (Index i = lo; i < hi; ++i) {
    const Entry& e = entries_[i - offset()];
    bytes += e.size_bytes();
    if (i > lo && bytes > max_bytes) break;
    out->push_back(e);
  }
  return Error::kOk;
}

Error MemoryLogStorage::term(Index index, Term* out) const {
  if (index < offset()) return Error::kCompacted;
  if (index - offset() >= entries_.size()) return Error::kUnavailable;
  *out = entries_[index - offset()].term;
  return Error::kOk;
}

Error MemoryLogStorage::snapshot(Snapshot* out) const {
  *out = snapshot_;
  return Error::kOk;
}

void MemoryLogStorage::append(const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  Index first = first_index();
  Index last = entries.back().index;
  if (last < first) return;  // wholly compacted already
  size_t skip = 0;
  if (entries.front().index < first) skip = first - entries.front().index;
  Index start = entries[skip].index;
  if (start > last_index() + 1) {
    std::fprintf(stderr, "raft storage: append at %llu leaves a gap after %llu\n",
                 static_cast<unsigned long long>(start),
                 static_cast<unsigned long long>(last_index()));
    std::abort();
  }
  entries_.resize(start - offset());
  entries_.insert(entries_.end(), entries.begin() + static_cast<std::ptrdiff_t>(skip),
                  entries.end());
}

Error MemoryLogStorage::apply_snapshot(const Snapshot& snapshot) {
  if (snapshot.metadata.index < snapshot_.metadata.index) return Error::kCompacted;
  snapshot_ = snapshot;
  entries_.assign(1, Entry{});
  entries_[0].index = snapshot.metadata.index;
  entries_[0].term = snapshot.metadata.term;
  return Error::kOk;
}

Error MemoryLogStorage::create_snapshot(Index index, const ConfState& conf_state,
                                        std::string data) {
  if (index <= snapshot_.metadata.index) return Error::kCompacted;
  if (index > last_index()) return Error::kUnavailable;
  snapshot_.metadata.index = index;
  snapshot_.metadata.term = entries_[index - offset()].term;
  snapshot_.metadata.conf_state = conf_state;
  snapshot_.data = std::move(data);
  return Error::kOk;
}

Error MemoryLogStorage::compact(Index index) {
  if (index <= offset()) return Error::kCompacted;
  if (index > last_index()) return Error::kUnavailable;
  size_t n = index - offset();
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(n));
  entries_[0].data.clear();
  entries_[0].type = EntryType::kNormal;
  return Error::kOk;
}

}  // namespace chorus::raft
