#include "kv/snapshots.h"

#include <cinttypes>
#include <cstdio>

#include "base/coding.h"

namespace chorus::kv {

using storage::Status;

namespace {
constexpr uint64_t kDescriptorMagic = 0x50414e534b524843ULL;  // "CHRKSNAP" read backwards
}

bool snapshot_due(raft::Index applied, raft::Index last_snapshot, const SnapshotPolicy& policy) {
  return applied > last_snapshot && applied - last_snapshot >= policy.snapshot_entries;
}

raft::Index compact_index(raft::Index snapshot_index, const SnapshotPolicy& policy) {
  return snapshot_index > policy.catch_up_entries ? snapshot_index - policy.catch_up_entries : 0;
}

std::string encode_snapshot_descriptor(const SnapshotDescriptor& d) {
  std::string out;
  base::put_u64(&out, kDescriptorMagic);
  base::put_u64(&out, d.index);
  base::put_u64(&out, static_cast<uint64_t>(d.revision));
  return out;
}

bool decode_snapshot_descriptor(std::string_view bytes, SnapshotDescriptor* out) {
  base::Reader r(bytes);
  uint64_t magic = 0;
  return r.u64(&magic) && magic == kDescriptorMagic && r.u64(&out->index) &&
         r.i64(&out->revision) && r.done();
}

std::string snapshot_dir(const std::string& snap_dir, raft::Index index) {
  char name[32];
  std::snprintf(name, sizeof(name), "%016" PRIx64, index);
  return storage::join_path(snap_dir, name);
}

Status take_snapshot(MvccStore* store, storage::FileSystem* fs, const std::string& snap_dir,
                     const raft::ConfState& conf, raft::Snapshot* out) {
  CHORUS_RETURN_IF_ERROR(fs->create_dir(snap_dir));
  raft::Index index = store->applied_index();
  std::string dir = snapshot_dir(snap_dir, index);
  if (fs->exists(dir)) CHORUS_RETURN_IF_ERROR(fs->remove_dir(dir));
  // The store does not change while the checkpoint is cut: apply runs on the calling thread.
  out->metadata.index = index;
  out->metadata.term = store->applied_term();
  out->metadata.conf_state = conf;
  out->data = encode_snapshot_descriptor({index, store->revision()});
  CHORUS_RETURN_IF_ERROR(store->checkpoint(dir));
  return fs->sync_dir(snap_dir);
}

Status prune_snapshots(storage::FileSystem* fs, const std::string& snap_dir, raft::Index keep) {
  std::string kept = snapshot_dir(snap_dir, keep);
  std::vector<std::string> names;
  CHORUS_RETURN_IF_ERROR(fs->list_dir(snap_dir, &names));
  for (const std::string& name : names) {
    std::string path = storage::join_path(snap_dir, name);
    if (path != kept) CHORUS_RETURN_IF_ERROR(fs->remove_dir(path));
  }
  return fs->sync_dir(snap_dir);
}

Status open_store(storage::FileSystem* fs, const std::string& parent, const std::string& name,
                  const MvccOptions& options, std::unique_ptr<MvccStore>* out) {
  CHORUS_RETURN_IF_ERROR(storage::SnapshotReceiver::recover(fs, parent, name));
  return MvccStore::open(storage::join_path(parent, name), options, out);
}

Status install_snapshot(std::unique_ptr<MvccStore>* store, storage::SnapshotReceiver* receiver,
                        const std::string& store_dir, const MvccOptions& options) {
  if (!receiver->complete()) return Status::invalid_argument("snapshot transfer is not complete");
  store->reset();
  CHORUS_RETURN_IF_ERROR(receiver->finish());
  return MvccStore::open(store_dir, options, store);
}

}  // namespace chorus::kv
