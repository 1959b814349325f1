// Every file Chorus touches goes through FileSystem, so tests and the simulator can swap in a
// FaultFileSystem that loses unsynced data, tears writes, fails syncs and runs out of space.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/status.h"

namespace chorus::storage {

// A file open for positional writes. Data written is visible to readers at once but survives a
// crash only after sync().
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status write_at(uint64_t offset, std::string_view data) = 0;
  // Makes every earlier write durable (fdatasync).
  virtual Status sync() = 0;
  // Reserves space up to `size` bytes; the file reads as zeros past what was written.
  virtual Status preallocate(uint64_t size) = 0;
  virtual Status truncate(uint64_t size) = 0;
  virtual Status close() = 0;
};

class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads up to `n` bytes at `offset`; fewer only at the end of the file.
  virtual Status read_at(uint64_t offset, size_t n, std::string* out) const = 0;
  virtual Status size(uint64_t* out) const = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Creates `dir` if missing (one level: its parent must exist).
  virtual Status create_dir(const std::string& dir) = 0;
  // Names of the files and directories in `dir`.
  virtual Status list_dir(const std::string& dir, std::vector<std::string>* names) = 0;
  // Opens for writing, creating the file if missing; existing contents are kept.
  virtual Status open_writable(const std::string& path, std::unique_ptr<WritableFile>* out) = 0;
  virtual Status open_readable(const std::string& path, std::unique_ptr<ReadableFile>* out) = 0;
  // Renames a file or a directory. A file replaces a file at `to`; a directory replaces only a
  // missing or empty directory.
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  // Removes a file.
  virtual Status remove(const std::string& path) = 0;
  // Removes a directory and everything in it. Symbolic links inside are removed, not followed.
  // Not pure, so wrappers that only need files (fault injectors around the log) stay small; the
  // default refuses.
  virtual Status remove_dir(const std::string& dir);
  // Makes the directory's entries (creations, renames, removals) durable.
  virtual Status sync_dir(const std::string& dir) = 0;
  virtual bool exists(const std::string& path) = 0;
  // The default asks list_dir(), which fails on anything but a directory.
  virtual bool is_dir(const std::string& path);

  // Reads a whole file.
  Status read_file(const std::string& path, std::string* out);
  // Writes a whole file durably: temporary name, sync, rename, directory sync.
  Status write_file_atomic(const std::string& dir, const std::string& name, std::string_view data);
};

// The real thing: POSIX calls on the local disk.
std::unique_ptr<FileSystem> make_posix_file_system();

std::string join_path(const std::string& dir, const std::string& name);

}  // namespace chorus::storage
