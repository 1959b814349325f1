// Simulated stable storage: what a node wrote is visible to it at once, but only what it synced
// survives a crash. Unsynced writes are lost whole on a crash, as after a power cut.
#pragma once

#include <variant>
#include <vector>

#include "raft/log_storage.h"

namespace chorus::sim {

class SimStorage {
 public:
  explicit SimStorage(const raft::ConfState& initial) : live_(initial), durable_(initial) {}

  const raft::LogStorage* view() const { return &live_; }
  const raft::MemoryLogStorage& live() const { return live_; }
  const raft::MemoryLogStorage& durable() const { return durable_; }

  void set_hard_state(const raft::HardState& hs) { write(SetHardState{hs}); }
  void append(const std::vector<raft::Entry>& entries) {
    if (!entries.empty()) write(Append{entries});
  }
  void apply_snapshot(const raft::Snapshot& s) { write(ApplySnapshot{s}); }
  // Records the application's snapshot and drops log entries before `compact_to`.
  void snapshot_and_compact(raft::Index index, const raft::ConfState& cs, std::string data,
                            raft::Index compact_to) {
    write(CreateSnapshot{index, cs, std::move(data), compact_to});
  }

  bool has_unsynced() const { return !pending_.empty(); }
  void sync();
  void crash();

 private:
  struct SetHardState {
    raft::HardState hs;
  };
  struct Append {
    std::vector<raft::Entry> entries;
  };
  struct ApplySnapshot {
    raft::Snapshot snapshot;
  };
  struct CreateSnapshot {
    raft::Index index;
    raft::ConfState conf_state;
    std::string data;
    raft::Index compact_to;
  };
  using Op = std::variant<SetHardState, Append, ApplySnapshot, CreateSnapshot>;

  static void apply(raft::MemoryLogStorage* s, const Op& op);
  void write(Op op) {
    apply(&live_, op);
    pending_.push_back(std::move(op));
  }

  raft::MemoryLogStorage live_;
  raft::MemoryLogStorage durable_;
  std::vector<Op> pending_;
};

}  // namespace chorus::sim
