// Snapshots of the state machine and their place in the Raft log.
//
// Taking one (any node): once the log has grown `snapshot_entries` past the last snapshot, the
// store writes a RocksDB checkpoint into `<snap_dir>/<index>`, then the Wal records the snapshot
// and compacts the log, keeping `catch_up_entries` so slightly slow followers still get entries
// instead of a whole snapshot. Only then may older checkpoints go.
//
// Installing one (a follower far behind): the checkpoint's files arrive as chunks through a
// storage::SnapshotReceiver, are verified, and replace the store's directory while the store is
// closed; the store reopens on them. Only after that does the Wal record the snapshot: a crash
// in between leaves a store ahead of the log, which is safe (the entries it skips on replay are
// committed, so the same ones the snapshot holds), never a log that has dropped entries the
// store has not applied.
#pragma once

#include <memory>
#include <string>

#include "kv/mvcc.h"
#include "raft/types.h"
#include "storage/file.h"
#include "storage/snapshot_stream.h"

namespace chorus::kv {

struct SnapshotPolicy {
  // etcd's --snapshot-count: applied entries between snapshots.
  uint64_t snapshot_entries = 100'000;
  // Entries kept in the log behind a snapshot for followers that lag a little.
  uint64_t catch_up_entries = 5'000;
};

bool snapshot_due(raft::Index applied, raft::Index last_snapshot, const SnapshotPolicy& policy);
// The log index to compact to once a snapshot at `snapshot_index` is durable.
raft::Index compact_index(raft::Index snapshot_index, const SnapshotPolicy& policy);

// What raft::Snapshot::data holds for a state machine snapshot: enough to find and check the
// checkpoint, which itself travels as chunks.
struct SnapshotDescriptor {
  raft::Index index = 0;
  int64_t revision = 0;
  bool operator==(const SnapshotDescriptor&) const = default;
};
std::string encode_snapshot_descriptor(const SnapshotDescriptor& d);
bool decode_snapshot_descriptor(std::string_view bytes, SnapshotDescriptor* out);

// Writes a checkpoint of `store` into `<snap_dir>/<applied index>` and fills `out` (index,
// term, configuration `conf`, descriptor). Older checkpoints stay until prune_snapshots().
storage::Status take_snapshot(MvccStore* store, storage::FileSystem* fs,
                              const std::string& snap_dir, const raft::ConfState& conf,
                              raft::Snapshot* out);
// Removes every checkpoint but `keep`'s. Called once the Wal has recorded the snapshot at
// `keep`, so the log's snapshot marker always names a checkpoint that exists.
storage::Status prune_snapshots(storage::FileSystem* fs, const std::string& snap_dir,
                                raft::Index keep);
// The directory holding the checkpoint of a snapshot taken by take_snapshot.
std::string snapshot_dir(const std::string& snap_dir, raft::Index index);

// Opens the store in `<parent>/<name>` at node start, after completing or rolling back a
// snapshot installation that a crash interrupted (storage::SnapshotReceiver::recover).
storage::Status open_store(storage::FileSystem* fs, const std::string& parent,
                           const std::string& name, const MvccOptions& options,
                           std::unique_ptr<MvccStore>* out);

// Closes `*store`, installs the completed transfer in `receiver` as the store's directory
// (`<parent>/<name>` given to the receiver) and reopens the store there. On failure the store
// stays closed and the node must stop.
storage::Status install_snapshot(std::unique_ptr<MvccStore>* store,
                                 storage::SnapshotReceiver* receiver, const std::string& store_dir,
                                 const MvccOptions& options);

}  // namespace chorus::kv
