// An in-memory FileSystem for tests and the simulator that behaves like a disk under a power
// cut: writes and directory changes are visible at once but survive crash() only once synced.
// It can also tear the last unsynced write at any byte, fail syncs and run out of space.
// Single-threaded, like the simulator that drives it.
//
// Directories are nodes like files: creating, renaming or removing a file or a directory inside
// `d` survives a crash only after sync_dir(d), and a renamed directory takes its contents (and
// their durability) with it. Top-level directories (no '/' in the name) stand for mount points
// and are durable as soon as they are created.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "storage/file.h"

namespace chorus::storage {

class FaultFileSystem final : public FileSystem {
 public:
  FaultFileSystem();
  ~FaultFileSystem() override;

  Status create_dir(const std::string& dir) override;
  Status list_dir(const std::string& dir, std::vector<std::string>* names) override;
  Status open_writable(const std::string& path, std::unique_ptr<WritableFile>* out) override;
  Status open_readable(const std::string& path, std::unique_ptr<ReadableFile>* out) override;
  Status rename(const std::string& from, const std::string& to) override;
  Status remove(const std::string& path) override;
  Status remove_dir(const std::string& dir) override;
  Status sync_dir(const std::string& dir) override;
  bool exists(const std::string& path) override;
  bool is_dir(const std::string& path) override;

  // The next `count` syncs (of files or directories) fail with an I/O error.
  void fail_next_syncs(int count) { sync_failures_ = count; }
  // Writes and preallocations that would take the total size of all files past `bytes` fail
  // with kNoSpace and change nothing.
  void set_space_limit(uint64_t bytes) { space_limit_ = bytes; }
  uint64_t bytes_used() const;

  // A power cut. Every unsynced change is lost, except that with `tear` a random prefix of each
  // file's unsynced writes survives, the last of them cut at a random byte (chosen from `seed`).
  // Handles opened before the crash fail from now on, as the process that held them is gone.
  void crash(uint64_t seed, bool tear);

  // For tests that damage files: the live contents of a file, or nullptr.
  std::string* contents(const std::string& path);
  // The medium damages byte `offset` of a file (XOR `mask`), in what is written and in what
  // survives a power cut alike. False if the file or the byte does not exist.
  bool damage(const std::string& path, uint64_t offset, uint8_t mask);
  uint64_t syncs() const { return syncs_; }

  struct Inode;
  struct Dir;
  // A directory entry: a file or a directory.
  struct Node {
    std::shared_ptr<Inode> file;
    std::shared_ptr<Dir> dir;
  };

 private:
  friend class FaultWritableFile;
  friend class FaultReadableFile;
  Status check_sync();
  bool fits(uint64_t old_size, uint64_t new_size) const;
  // The live directory at `path`, or nullptr.
  Dir* find_dir(const std::string& path) const;
  // The live entry at `path`, or nullptr.
  const Node* find(const std::string& path) const;
  // Every file reachable from the live tree (and, with `durable`, from the durable one too).
  std::vector<Inode*> inodes(bool durable) const;

  std::shared_ptr<Dir> root_;
  uint64_t generation_ = 0;
  int sync_failures_ = 0;
  uint64_t space_limit_ = UINT64_MAX;
  uint64_t syncs_ = 0;
};

}  // namespace chorus::storage
