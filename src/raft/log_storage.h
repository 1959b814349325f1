// The read side of stable storage as the core sees it. The driver writes (entries from Ready,
// hard state, snapshots) to its own implementation; the core only reads through this interface,
// so the core itself never touches a file.
#pragma once

#include <vector>

#include "raft/types.h"

namespace chorus::raft {

class LogStorage {
 public:
  virtual ~LogStorage() = default;

  // State recovered at start: the last persisted hard state and the configuration of the last
  // snapshot (entries after it replay configuration changes as they are applied).
  virtual HardState hard_state() const = 0;
  virtual ConfState conf_state() const = 0;

  // Entries in [lo, hi), at least one if any exists, at most `max_bytes` beyond the first.
  [[nodiscard]] virtual Error entries(Index lo, Index hi, uint64_t max_bytes,
                                      std::vector<Entry>* out) const = 0;
  // Term of entry `index`; first_index()-1 (the snapshot's index) is always available.
  [[nodiscard]] virtual Error term(Index index, Term* out) const = 0;
  virtual Index first_index() const = 0;
  virtual Index last_index() const = 0;
  [[nodiscard]] virtual Error snapshot(Snapshot* out) const = 0;
};

// An in-memory LogStorage: for tests, the simulator and benchmarks. The driver calls the mutators.
class MemoryLogStorage final : public LogStorage {
 public:
  MemoryLogStorage();
  // Bootstraps a new group with the given initial configuration at index 0.
  explicit MemoryLogStorage(const ConfState& initial);

  HardState hard_state() const override { return hard_state_; }
  ConfState conf_state() const override { return snapshot_.metadata.conf_state; }
  [[nodiscard]] Error entries(Index lo, Index hi, uint64_t max_bytes,
                              std::vector<Entry>* out) const override;
  [[nodiscard]] Error term(Index index, Term* out) const override;
  Index first_index() const override { return offset() + 1; }
  Index last_index() const override { return offset() + entries_.size() - 1; }
  [[nodiscard]] Error snapshot(Snapshot* out) const override;

  void set_hard_state(const HardState& hs) { hard_state_ = hs; }
  // Appends entries, replacing any conflicting suffix. Entries must be contiguous and must not
  // leave a gap after last_index().
  void append(const std::vector<Entry>& entries);
  // Replaces the whole log with a snapshot received from the leader.
  [[nodiscard]] Error apply_snapshot(const Snapshot& snapshot);
  // Records a snapshot of the application's state at `index` (<= last_index()).
  [[nodiscard]] Error create_snapshot(Index index, const ConfState& conf_state, std::string data);
  // Discards entries before `index`; entry `index` stays as the new dummy entry.
  [[nodiscard]] Error compact(Index index);

 private:
  Index offset() const { return entries_.front().index; }

  HardState hard_state_;
  Snapshot snapshot_;
  // entries_[0] is a dummy holding the index and term of the last compacted entry.
  std::vector<Entry> entries_;
};

}  // namespace chorus::raft
