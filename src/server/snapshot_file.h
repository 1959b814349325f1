// Backup files: what `etcdctl snapshot save` writes when it talks to chorusd, and how a new
// cluster is started from one.
//
// Format (written by the Maintenance.Snapshot stream, src/server/api_server.cc):
//   repeated: u32 length, then one encoded storage::SnapshotChunk of that length (a RocksDB
//             checkpoint of the store, file by file, each chunk CRC32C-checked)
//   u32 0     the end of the chunks
//   zeros     up to a multiple of 512 bytes
//   32 bytes  SHA-256 of everything before it (the trailer etcd's clients check)
//
// Restoring follows etcd's rule: a backup seeds a new cluster. Every member is restored from the
// same file into an empty data directory and then started with --initial-cluster-state new; the
// keys, their revisions and the leases come back, the membership is the new one from the flags.
#pragma once

#include <cstdint>
#include <string>

#include "storage/file.h"
#include "storage/snapshot_stream.h"

namespace chorus::server {

// A chunk is at most a megabyte of data plus its header; a length far beyond is damage.
inline constexpr uint32_t kMaxBackupChunkBytes = 64u << 20;

// The writer's side of the format, for the Snapshot stream: one framed chunk, and the end
// marker with the padding that follows `written` bytes of framed chunks (the SHA-256 of
// everything written comes after it).
void append_backup_chunk(std::string* out, std::string_view encoded_chunk);
void append_backup_end(std::string* out, uint64_t written);

// Checks the file's SHA-256 trailer and framing, then hands each chunk to `receiver`, which
// must be complete at the end. A damaged or truncated file is refused with what is wrong.
storage::Status read_snapshot_file(storage::FileSystem* fs, const std::string& path,
                                   storage::SnapshotReceiver* receiver);

struct SnapshotFileInfo {
  int64_t revision = 0;
  int64_t compact_revision = 0;
  uint64_t keys = 0;    // live keys at the revision
  uint64_t leases = 0;  // leases held
  uint64_t file_bytes = 0;
};

// Restores `path` into `data_dir` (absent or empty): the store in <data_dir>/member/kv with its
// log position reset, so the new cluster's log starts from the beginning on top of it.
storage::Status restore_snapshot_file(const std::string& path, const std::string& data_dir,
                                      SnapshotFileInfo* info);

// Checks `path` by restoring it into a scratch directory under `scratch_parent`, reports what
// it holds, and removes the scratch directory.
storage::Status inspect_snapshot_file(const std::string& path, const std::string& scratch_parent,
                                      SnapshotFileInfo* info);

}  // namespace chorus::server
