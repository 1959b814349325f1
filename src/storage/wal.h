// The write-ahead log: one per node, shared by every Raft group on it. Records of all groups go
// into numbered, preallocated segment files; a batch is written with one write and made durable
// with one fdatasync (see GroupCommitter for batching across callers).
//
// The Wal also serves each group's log to the Raft core through raft::LogStorage: recent entries
// from a bounded in-memory cache, older ones read back from the segment files.
//
// Failure policy (docs/ARCHITECTURE.md): a failed write or sync leaves the file in a state the
// node cannot know, so the Wal refuses every later write and the node must stop. Running out of
// space makes it read-only. A damaged record before the tail fails open() with the file and
// offset; a torn tail (a write cut short by a crash) is cut off and the prefix recovered.
//
// Threads: write(), sync() and compact() are called from one writer thread; the read side
// (group(), LogStorage calls) may be used from others.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "raft/log_storage.h"
#include "storage/file.h"
#include "storage/wal_format.h"

namespace chorus::storage {

struct WalOptions {
  uint64_t segment_bytes = 64ull << 20;
  // Entries of each group kept in memory; older ones are read from the files when needed.
  uint64_t cache_bytes_per_group = 16ull << 20;
};

// Records to write together. Encoded as they are added, so writing is one copy to the file.
class WalBatch {
 public:
  void set_hard_state(raft::GroupId group, const raft::HardState& hs);
  void append(raft::GroupId group, const std::vector<raft::Entry>& entries);
  // A snapshot received from the leader: replaces the group's whole log.
  void apply_snapshot(raft::GroupId group, const raft::Snapshot& snapshot);
  // Adds every record of `other` after this batch's.
  void merge(const WalBatch& other) { encoded_ += other.encoded_; }

  bool empty() const { return encoded_.empty(); }
  size_t bytes() const { return encoded_.size(); }
  void clear() { encoded_.clear(); }
  const std::string& encoded() const { return encoded_; }

 private:
  std::string encoded_;
};

class Wal {
 public:
  // Opens (or creates) the log in `dir`, recovering every group's state.
  static Status open(FileSystem* fs, const std::string& dir, const WalOptions& options,
                     std::unique_ptr<Wal>* out);
  ~Wal();
  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;

  // Creates a group with its initial configuration (durably). Fails if it already exists.
  Status bootstrap(raft::GroupId group, const raft::ConfState& initial);
  // Writes a batch; its effects are visible to readers at once, durable after sync().
  Status write(const WalBatch& batch);
  Status sync();
  Status commit(const WalBatch& batch) {
    CHORUS_RETURN_IF_ERROR(write(batch));
    return sync();
  }
  // Records a snapshot of the application at `snapshot.metadata.index` and drops the group's
  // entries up to `compact_to` (<= that index), durably. Segments no group needs any more are
  // deleted.
  Status compact(raft::GroupId group, const raft::Snapshot& snapshot, raft::Index compact_to);

  // The Raft core's view of a group's log, or nullptr if the group does not exist. Valid for
  // the life of the Wal.
  const raft::LogStorage* group(raft::GroupId group) const;
  std::vector<raft::GroupId> groups() const;

  // Set once a write or sync failed (kIoError) or the disk filled (kNoSpace).
  Status health() const;
  size_t segment_count() const;
  std::vector<std::string> segment_names() const;
  const std::string& dir() const { return dir_; }

  struct GroupLog;  // per-group state, defined in wal.cc

 private:
  struct Segment;
  class Recovery;
  Wal(FileSystem* fs, std::string dir, const WalOptions& options);

  Status apply_record(const RecordView& rec, uint64_t segment, uint64_t offset);
  Status write_locked(std::string_view encoded);
  Status rotate_locked();
  Status create_segment_locked(uint64_t sequence);
  Status release_segments_locked();
  Status fail_locked(Status st);
  GroupLog& group_locked(raft::GroupId group);
  Status read_entry_locked(const GroupLog& g, raft::Index index, raft::Entry* out) const;
  friend class WalGroupStorage;

  FileSystem* fs_;
  std::string dir_;
  WalOptions options_;
  mutable std::mutex mu_;
  std::map<raft::GroupId, std::unique_ptr<GroupLog>> groups_;
  std::deque<std::unique_ptr<Segment>> segments_;
  std::unique_ptr<WritableFile> writer_;
  uint64_t write_offset_ = 0;
  uint64_t allocated_ = 0;
  uint64_t head_end_ = 0;
  bool recovering_ = true;  // where the current segment's header and group metadata end
  Status health_;
  mutable std::map<raft::GroupId, std::unique_ptr<raft::LogStorage>> views_;
};

// The name of segment `sequence`: 16 hex digits and ".wal".
std::string segment_name(uint64_t sequence);

}  // namespace chorus::storage
