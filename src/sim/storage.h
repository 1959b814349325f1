// Simulated stable storage: every node persists through the real write-ahead log (storage::Wal)
// on its own in-memory disk (storage::FaultFileSystem). What a node wrote is visible to it at
// once; a power cut loses what was not synced, except that a torn prefix of the unsynced writes
// may survive, and the node comes back with whatever Wal recovery makes of its files.
//
// A member hosts several groups on its one log, as chorusd's engine does; a round's records of
// every group go down in one batch.
//
// Beside the Wal runs a model of what recovery may return: each group's synced state (updated on
// every sync) and the records written since, in write order across groups. After a crash the
// recovered state of every group must equal its synced state plus the same prefix of those
// records, the last whole record at most: a recovery that loses a synced record, brings back one
// never written, or keeps a later record of one group while losing an earlier one of another, is
// caught where it happens. (A surviving unsynced suffix may replace synced entries; Raft allows
// it, as those writes were the node's own and nothing acknowledged them.)
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "raft/log_storage.h"
#include "storage/fault_fs.h"
#include "storage/wal.h"

namespace chorus::sim {

class SimStorage {
 public:
  // A new member: an empty disk, a fresh Wal and every group bootstrapped with its initial
  // configuration. Aborts if that fails, as nothing has been injected yet.
  SimStorage(const std::map<raft::GroupId, raft::ConfState>& groups,
             const storage::WalOptions& options);
  ~SimStorage();
  SimStorage(const SimStorage&) = delete;
  SimStorage& operator=(const SimStorage&) = delete;

  // A group's log as its core reads it: everything written, synced or not. A new object after
  // every recovery, so a core must be rebuilt after crash().
  const raft::LogStorage* view(raft::GroupId group) const;
  // While the node is down: the state a group will restart from, as Wal recovery returned it
  // (the model's synced state while recovery waits for space or refused a damaged log).
  const raft::LogStorage& durable(raft::GroupId group) const;

  // What one group's part of a batch holds, for the model.
  struct GroupWrite {
    raft::GroupId group = 0;
    const raft::Snapshot* snapshot = nullptr;
    const std::vector<raft::Entry>* entries = nullptr;
    const raft::HardState* hard_state = nullptr;
  };
  // One round's batch of every group with work, as the engine built it (each group's records
  // in the order the core requires: snapshot, entries, hard state), written as one Wal write;
  // `writes` lists what it holds, in the same order. Visible at once, durable after sync().
  [[nodiscard]] storage::Status write(const storage::WalBatch& batch,
                                      const std::vector<GroupWrite>& writes);
  [[nodiscard]] storage::Status sync();
  // Records the application's snapshot of `group` at `index` and drops its entries up to
  // `compact_to` (Wal::compact, which also makes every earlier write durable). Does nothing
  // when the log holds no entry `index` or a snapshot at or past it exists.
  [[nodiscard]] storage::Status snapshot_and_compact(raft::GroupId group, raft::Index index,
                                                     const raft::ConfState& cs, std::string data,
                                                     raft::Index compact_to);

  bool has_unsynced() const { return !pending_.empty(); }
  // After `skip` more syncs succeed, the disk's next sync (of a file or a directory: a rotation
  // or a compaction syncs several) fails with an I/O error. One failure at most is armed.
  void fail_sync_after(uint64_t skip);
  // Disarms an injected failure the operation did not reach; says whether one was reached.
  bool clear_injected_failure();
  size_t segment_count() const { return wal_->segment_count(); }

  // The disk fills up: writes that need more than `slack` bytes beyond what the files hold now
  // fail with ENOSPC until free_disk().
  void fill_disk(uint64_t slack);
  void free_disk();
  bool disk_full() const { return disk_full_; }
  // True after a crash whose recovery could not run because the disk was full: the node cannot
  // start until reopen() succeeds.
  bool needs_reopen() const { return wal_ == nullptr; }
  // The medium damages one byte of an older Wal segment (never the newest, whose tail recovery
  // may legitimately cut), persistently. False if the log has a single segment.
  bool damage(uint64_t seed);
  // True while the damaged segment is still on the disk (compaction may delete it unread).
  bool damaged();
  // The damaged segment's file name, which a read failure or a refused recovery must name.
  const std::string& damaged_segment() const { return damaged_segment_; }
  // Recovery refused the damaged log: this disk can never start the node again.
  bool lost() const { return !lost_reason_.empty(); }
  const std::string& lost_reason() const { return lost_reason_; }
  // Why the running Wal answered kStorageFailed (Wal::read_failure), or "".
  std::string read_failure() const { return wal_ != nullptr ? wal_->read_failure() : ""; }
  // Retries recovery after crash() found the disk full. Returns what recovery got wrong, or an
  // empty string (needs_reopen() tells whether the disk let it run).
  [[nodiscard]] std::string reopen();

  // The node's process ends and the node recovers its Wal as a restart does (Wal::open). With
  // `power_cut` the disk first loses what was not synced, a torn prefix of it kept (chosen from
  // `seed`); without, the files keep everything written, as after a process exit whose page
  // cache survives. Returns what recovery got wrong, or an empty string.
  [[nodiscard]] std::string crash(bool power_cut, uint64_t seed);

 private:
  struct Compaction {
    raft::Snapshot snapshot;
    raft::Index compact_to;
  };
  // What the Wal records, in write order across groups: a vector of entries stands for one
  // record per entry.
  using Record =
      std::variant<raft::HardState, std::vector<raft::Entry>, raft::Snapshot, Compaction>;
  struct Pending {
    raft::GroupId group = 0;
    Record record;
  };

  static void apply(raft::MemoryLogStorage* s, const Record& r);
  void sync_model();
  // Opens the Wal; on ENOSPC with the disk full leaves wal_ empty and returns "".
  std::string open_wal();
  bool explained_by_damage(const std::string& error) const;
  // Opens the Wal and checks what it recovered against the model.
  std::string recover();

  class FailingFileSystem;

  storage::FaultFileSystem fs_;
  bool disk_full_ = false;
  std::string damaged_segment_;  // its name; empty: nothing damaged
  std::string lost_reason_;
  std::unique_ptr<FailingFileSystem> failing_;  // fs_ with injected sync failures
  storage::WalOptions options_;
  std::unique_ptr<storage::Wal> wal_;
  // The model: each group's synced state, and the records written after it.
  std::map<raft::GroupId, raft::MemoryLogStorage> synced_;
  std::vector<Pending> pending_;
};

}  // namespace chorus::sim
