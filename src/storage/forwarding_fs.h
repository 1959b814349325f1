// A FileSystem that passes every call to another one, for fault injectors that intercept only
// syncs (a sync that fails, a sync that stalls): they override on_file_sync() and, if they need
// to, sync_dir(), and inherit the rest. Header-only; for tests and the simulator.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storage/file.h"

namespace chorus::storage {

class ForwardingFileSystem : public FileSystem {
 public:
  explicit ForwardingFileSystem(FileSystem* base) : base_(base) {}
  explicit ForwardingFileSystem(std::unique_ptr<FileSystem> owned)
      : owned_(std::move(owned)), base_(owned_.get()) {}

  Status create_dir(const std::string& dir) override { return base_->create_dir(dir); }
  Status list_dir(const std::string& dir, std::vector<std::string>* names) override {
    return base_->list_dir(dir, names);
  }
  Status open_writable(const std::string& path, std::unique_ptr<WritableFile>* out) override {
    std::unique_ptr<WritableFile> f;
    CHORUS_RETURN_IF_ERROR(base_->open_writable(path, &f));
    *out = std::make_unique<File>(this, std::move(f));
    return Status::ok();
  }
  Status open_readable(const std::string& path, std::unique_ptr<ReadableFile>* out) override {
    return base_->open_readable(path, out);
  }
  Status rename(const std::string& from, const std::string& to) override {
    return base_->rename(from, to);
  }
  Status remove(const std::string& path) override { return base_->remove(path); }
  Status remove_dir(const std::string& dir) override { return base_->remove_dir(dir); }
  Status sync_dir(const std::string& dir) override { return base_->sync_dir(dir); }
  bool exists(const std::string& path) override { return base_->exists(path); }
  bool is_dir(const std::string& path) override { return base_->is_dir(path); }

 protected:
  // Runs before every sync of a file opened here; an error is returned instead of syncing.
  virtual Status on_file_sync() { return Status::ok(); }

 private:
  class File final : public WritableFile {
   public:
    File(ForwardingFileSystem* fs, std::unique_ptr<WritableFile> f) : fs_(fs), f_(std::move(f)) {}
    Status write_at(uint64_t offset, std::string_view data) override {
      return f_->write_at(offset, data);
    }
    Status sync() override {
      CHORUS_RETURN_IF_ERROR(fs_->on_file_sync());
      return f_->sync();
    }
    Status preallocate(uint64_t size) override { return f_->preallocate(size); }
    Status truncate(uint64_t size) override { return f_->truncate(size); }
    Status close() override { return f_->close(); }

   private:
    ForwardingFileSystem* fs_;
    std::unique_ptr<WritableFile> f_;
  };

  std::unique_ptr<FileSystem> owned_;
  FileSystem* base_;
};

}  // namespace chorus::storage
