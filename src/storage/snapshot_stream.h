// Streaming a snapshot directory (such as a RocksDB checkpoint) from a leader to a follower in
// chunks. The sender cuts every regular file of the directory, in name order, into chunks; the
// receiver writes them into `<name>.tmp` beside the final directory, checks each file's size and
// CRC32C, and installs the whole directory at once with a rename.
//
// A chunk, all integers little-endian:
//
//   offset 0   u32 crc32c      over every byte after this field
//          4   u32 magic       kSnapshotChunkMagic
//          8   u16 version     kSnapshotChunkVersion
//         10   u8  flags       kChunkLastInFile | kChunkLastInSnapshot
//         11   u8  reserved    zero
//         12   u64 snapshot id
//         20   u32 file index  position of the file in name order
//         24   u64 offset      of `data` in the file
//         32   u32 data bytes
//         36   u16 name bytes
//         38   name, then data
//         then, if kChunkLastInFile:     u64 file size, u32 crc32c of the whole file
//         then, if kChunkLastInSnapshot: u32 number of files
//
// A snapshot of an empty directory is one chunk with no name, no data and only
// kChunkLastInSnapshot set.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/file.h"

namespace chorus::storage {

inline constexpr uint32_t kSnapshotChunkMagic = 0x504e5343;  // "CSNP"
inline constexpr uint16_t kSnapshotChunkVersion = 1;
inline constexpr uint8_t kChunkLastInFile = 1;
inline constexpr uint8_t kChunkLastInSnapshot = 2;
inline constexpr size_t kSnapshotChunkHeaderBytes = 38;
// Bounds a damaged or hostile chunk cannot make the receiver exceed.
inline constexpr uint32_t kMaxSnapshotChunkDataBytes = 64u << 20;
inline constexpr size_t kMaxSnapshotFileNameBytes = 255;
inline constexpr uint32_t kMaxSnapshotFiles = 1u << 20;

struct SnapshotChunk {
  uint64_t snapshot_id = 0;
  uint32_t file_index = 0;
  std::string file_name;  // empty only in the one chunk of an empty snapshot
  uint64_t offset = 0;
  bool last_in_file = false;
  bool last_in_snapshot = false;
  std::string data;
  uint64_t file_size = 0;   // with last_in_file
  uint32_t file_crc = 0;    // with last_in_file: crc32c of the whole file
  uint32_t file_count = 0;  // with last_in_snapshot
  bool operator==(const SnapshotChunk&) const = default;
};

std::string encode_snapshot_chunk(const SnapshotChunk& chunk);
// Bounds-checked: never reads outside `bytes`. Anything malformed is kCorruption with the reason.
Status decode_snapshot_chunk(std::string_view bytes, SnapshotChunk* out);
// A name a received file may have: no path separator, not "." or "..", at most
// kMaxSnapshotFileNameBytes bytes.
bool valid_snapshot_file_name(std::string_view name);

// Reads the regular files of `dir` (subdirectories are skipped) in name order and cuts them into
// chunks of at most `chunk_bytes` bytes of data. The files must not change while they are sent.
class SnapshotSender {
 public:
  SnapshotSender(FileSystem* fs, std::string dir, uint64_t snapshot_id, size_t chunk_bytes);
  ~SnapshotSender();
  // The next chunk. After the chunk with last_in_snapshot, done() is true.
  Status next(SnapshotChunk* out);
  bool done() const { return done_; }

 private:
  Status start();
  Status open_file();

  FileSystem* fs_;
  std::string dir_;
  uint64_t snapshot_id_;
  size_t chunk_bytes_;
  bool started_ = false;
  bool done_ = false;
  std::vector<std::string> files_;
  size_t file_ = 0;
  std::unique_ptr<ReadableFile> reader_;
  uint64_t size_ = 0;
  uint64_t offset_ = 0;
  uint32_t crc_ = 0;
};

// Receives one snapshot into `<parent_dir>/<final_name>.tmp` and installs it as
// `<parent_dir>/<final_name>`. Chunks must arrive in order; a chunk of another snapshot, out of
// order, repeated or failing its checksum is refused with kInvalidArgument or kCorruption and
// changes nothing, so the sender may resend. A file whose size or CRC32C does not match, or a
// failed write, ends the transfer: every later call fails and abort() cleans up.
class SnapshotReceiver {
 public:
  SnapshotReceiver(FileSystem* fs, std::string parent_dir, std::string final_name);

  Status add(std::string_view encoded_chunk);
  Status add(const SnapshotChunk& chunk);
  // True once the last chunk of the snapshot was accepted.
  bool complete() const { return complete_; }
  uint64_t snapshot_id() const { return snapshot_id_; }
  // Reads every file back and checks it, syncs, then replaces the final directory: the old one
  // is renamed aside, the new one renamed into place, the parent synced, the old one deleted. A
  // crash at any point leaves either the old or the new directory once recover() has run.
  Status finish();
  // Removes the temporary directory of an unfinished transfer.
  Status abort();

  // Completes or rolls back an installation a crash interrupted, and removes the leftovers of
  // unfinished transfers. A node calls it before it reads the snapshot directory at start.
  static Status recover(FileSystem* fs, const std::string& parent_dir,
                        const std::string& final_name);

 private:
  struct ReceivedFile {
    std::string name;
    uint64_t size;
    uint32_t crc;
  };
  Status start(const SnapshotChunk& first);
  Status fail(Status st);

  FileSystem* fs_;
  std::string parent_dir_;
  std::string final_name_;
  std::string tmp_dir_;
  Status failed_;
  bool started_ = false;
  bool complete_ = false;
  bool finished_ = false;
  uint64_t snapshot_id_ = 0;
  uint32_t next_file_ = 0;
  uint64_t next_offset_ = 0;
  uint32_t crc_ = 0;
  std::string current_name_;
  std::unique_ptr<WritableFile> writer_;
  std::vector<ReceivedFile> files_;
};

}  // namespace chorus::storage
