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
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "raft/log_storage.h"
#include "storage/file.h"
#include "storage/wal_format.h"

namespace chorus::storage {

struct WalOptions {
  uint64_t segment_bytes = 64ull << 20;
  // Entries kept in memory, all groups together; older ones are read from the files when
  // needed. Over the budget, the groups that cached least recently give theirs up first.
  uint64_t cache_bytes = 16ull << 20;
};

// Records to write together. Encoded as they are added, so writing is one copy to the file.
// One group's compaction (Wal::compact).
struct WalCompaction {
  raft::GroupId group = 0;
  raft::Snapshot snapshot;
  raft::Index compact_to = 0;
};

class WalBatch {
 public:
  void set_hard_state(raft::GroupId group, const raft::HardState& hs);
  void append(raft::GroupId group, std::span<const raft::Entry> entries);
  void append(raft::GroupId group, const std::vector<raft::Entry>& entries) {
    append(group, std::span<const raft::Entry>(entries));
  }
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

// The first record recovery cannot accept. `file` is a segment name inside the log's directory.
struct WalDamage {
  std::string file;
  uint64_t offset = 0;
  std::string reason;
};

// What a read-only scan of a log found (Wal::verify). Counts cover the records before the damage.
struct WalReport {
  struct Segment {
    std::string name;
    uint64_t file_bytes = 0;
    bool scanned = false;  // false for segments after the damage
    uint64_t records = 0;
    uint64_t end = 0;         // where its valid records end
    uint64_t torn_bytes = 0;  // last segment only: a torn write after `end` that open() clears
  };
  struct Group {
    uint64_t entries = 0;      // entry records (including ones later replaced or compacted)
    uint64_t hard_states = 0;  // hard state records
    uint64_t snapshots = 0;    // snapshot markers (bootstrap, compactions, installed snapshots)
    bool removed = false;      // the group's removal is its latest record
    // The state recovery reaches: what the group keeps if the log is cut at the damage.
    raft::Index first_index = 0;
    raft::Index last_index = 0;
    raft::HardState hard_state;
    raft::Index snapshot_index = 0;
  };
  std::string dir;
  std::vector<Segment> segments;
  std::map<raft::GroupId, Group> groups;
  std::vector<std::string> leftover_files;  // interrupted segment creations open() deletes
  std::optional<WalDamage> damage;
  // What truncate_at_damage removes (or removed): segments deleted, bytes cleared in the
  // damaged segment from the damage offset to its end.
  std::vector<std::string> cut_segments;
  uint64_t cut_bytes = 0;

  bool clean() const { return !damage.has_value(); }
  std::string to_string() const;
};

class Wal {
 public:
  // Opens (or creates) the log in `dir`, recovering every group's state.
  static Status open(FileSystem* fs, const std::string& dir, const WalOptions& options,
                     std::unique_ptr<Wal>* out);
  // Scans the log in `dir` exactly as open() recovers it, without changing anything, and
  // describes it in `out`. Damage is reported in `out->damage`, not as an error; an error means
  // the files could not be read at all.
  static Status verify(FileSystem* fs, const std::string& dir, WalReport* out);
  // Cuts the log at its first damaged record so open() succeeds again: later segments are
  // deleted, then the damaged segment is cleared from the damage offset to its end. The node
  // loses every record from the damage on, possibly including acknowledged entries and its
  // vote: restart it only if its peers hold a quorum without it and it can catch up from them
  // (docs/OPERATIONS.md, "A damaged write-ahead log"). Does nothing to a clean log. `out`
  // describes the log before the cut and what was cut.
  static Status truncate_at_damage(FileSystem* fs, const std::string& dir, WalReport* out);
  ~Wal();
  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;

  // Creates a group with its initial configuration (durably). Fails if it already exists.
  Status bootstrap(raft::GroupId group, const raft::ConfState& initial);
  // Creates many groups at once: one write and one fdatasync for all. Fails, creating none, if
  // any of them exists already or appears twice.
  // With `start` > 0 each log starts after a snapshot at index and term `start` (and no hard
  // state yet: the replica has voted for nobody): a replica that joins such a group later, with
  // an empty log, can only be caught up by a snapshot, which brings the configuration too.
  Status bootstrap(const std::vector<std::pair<raft::GroupId, raft::ConfState>>& groups,
                   raft::Index start = 0);
  // Forgets a group (removed from this member): a removal record, durable before this returns;
  // the group's log, state and cache are gone, and segments only it needed are released. The
  // caller must hold no view of the group (group()) any more. Ids are not reused after this.
  Status remove(raft::GroupId group);
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
  // Many groups' compactions in one write and one fdatasync. Fails, compacting none, if any is
  // invalid (an unknown group, one listed twice, a snapshot past the log).
  Status compact(const std::vector<WalCompaction>& list);

  // The Raft core's view of a group's log, or nullptr if the group does not exist. Valid for
  // the life of the Wal.
  const raft::LogStorage* group(raft::GroupId group) const;
  std::vector<raft::GroupId> groups() const;

  // What open() repaired while recovering, one sentence each, for the caller to log: a hard
  // state whose commit index pointed past the recovered log (a torn batch) is clamped to the
  // log's end. Entries past the end were never synced here, so were never acknowledged by this
  // member; the commit index itself is not durable state in Raft and is learned again.
  const std::vector<std::string>& recovery_warnings() const { return recovery_warnings_; }
  // The first entry a group's LogStorage could not read back (a damaged record found after
  // recovery; the LogStorage then answered raft::Error::kStorageFailed), or "".
  std::string read_failure() const {
    std::lock_guard lock(mu_);
    return read_failure_;
  }

  // Set once a write or sync failed (kIoError) or the disk filled (kNoSpace).
  Status health() const;
  // The entry cache: bytes held for all groups, and entries held for one.
  uint64_t cache_bytes() const;
  size_t cached_entries(raft::GroupId group) const;
  size_t segment_count() const;
  std::vector<std::string> segment_names() const;
  const std::string& dir() const { return dir_; }

  struct GroupLog;  // per-group state, defined in wal.cc

 private:
  struct Segment;
  class Recovery;
  Wal(FileSystem* fs, std::string dir, const WalOptions& options);

  static Status list_segments(FileSystem* fs, const std::string& dir,
                              std::vector<uint64_t>* sequences,
                              std::vector<std::string>* leftovers);
  Status apply_record(const RecordView& rec, uint64_t segment, uint64_t offset);
  // With `state_first`, the state of groups new to the current segment goes before their
  // records (state_prefix_locked).
  Status write_locked(std::string_view encoded, bool state_first = true);
  Status rotate_locked();
  Status create_segment_locked(uint64_t sequence);
  Status release_segments_locked();
  // Accounts a change of `g`'s cache (it held `before` bytes; `pushed`: an entry was added)
  // and evicts down to the budget.
  void cache_changed_locked(raft::GroupId id, GroupLog& g, uint64_t before, bool pushed);
  // The state records (snapshot marker, hard state) of every group with a record in `encoded`
  // that has none in the current segment yet: written before them, so that any segment a group
  // writes to starts its part with the group's whole state.
  std::string state_prefix_locked(std::string_view encoded) const;
  void append_state_locked(raft::GroupId id, const GroupLog& g, std::string* out) const;
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
  uint64_t head_end_ = 0;  // where the current segment's header ends
  bool rotated_ = false;   // a segment was created since the last release_segments_locked
  uint64_t cache_total_ = 0;
  uint64_t cache_clock_ = 0;
  std::set<std::pair<uint64_t, raft::GroupId>> cache_lru_;  // (cache_used, group), cached groups
  bool recovering_ = true;
  std::vector<std::string> recovery_warnings_;
  mutable std::string read_failure_;  // guarded by mu_
  Status health_;
  mutable std::map<raft::GroupId, std::unique_ptr<raft::LogStorage>> views_;
};

// The name of segment `sequence`: 16 hex digits and ".wal".
std::string segment_name(uint64_t sequence);

}  // namespace chorus::storage
