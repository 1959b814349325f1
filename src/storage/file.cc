#include "storage/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace chorus::storage {
namespace {

Status errno_status(const std::string& what, const std::string& path, int err) {
  std::string m = what + " " + path + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return Status::no_space(m);
  if (err == ENOENT) return Status::not_found(m);
  return Status::io_error(m);
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status write_at(uint64_t offset, std::string_view data) override {
    const char* p = data.data();
    size_t left = data.size();
    auto off = static_cast<off_t>(offset);
    while (left > 0) {
      ssize_t n = ::pwrite(fd_, p, left, off);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_status("write", path_, errno);
      }
      p += n;
      left -= static_cast<size_t>(n);
      off += n;
    }
    return Status::ok();
  }
  Status sync() override {
    if (::fdatasync(fd_) != 0) return errno_status("fdatasync", path_, errno);
    return Status::ok();
  }
  Status preallocate(uint64_t size) override {
    int rc = ::posix_fallocate(fd_, 0, static_cast<off_t>(size));
    if (rc != 0) return errno_status("fallocate", path_, rc);
    return Status::ok();
  }
  Status truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0)
      return errno_status("truncate", path_, errno);
    return Status::ok();
  }
  Status close() override {
    if (fd_ < 0) return Status::ok();
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return errno_status("close", path_, errno);
    return Status::ok();
  }

 private:
  std::string path_;
  int fd_;
};

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixReadableFile() override { ::close(fd_); }

  Status read_at(uint64_t offset, size_t n, std::string* out) const override {
    out->resize(n);
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd_, out->data() + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0) {
        if (errno == EINTR) continue;
        return errno_status("read", path_, errno);
      }
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    out->resize(got);
    return Status::ok();
  }
  Status size(uint64_t* out) const override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return errno_status("stat", path_, errno);
    *out = static_cast<uint64_t>(st.st_size);
    return Status::ok();
  }

 private:
  std::string path_;
  int fd_;
};

class PosixFileSystem final : public FileSystem {
 public:
  Status create_dir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
      return errno_status("mkdir", dir, errno);
    return Status::ok();
  }
  Status list_dir(const std::string& dir, std::vector<std::string>* names) override {
    names->clear();
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return errno_status("opendir", dir, errno);
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names->push_back(n);
    }
    ::closedir(d);
    return Status::ok();
  }
  Status open_writable(const std::string& path, std::unique_ptr<WritableFile>* out) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return errno_status("open", path, errno);
    *out = std::make_unique<PosixWritableFile>(path, fd);
    return Status::ok();
  }
  Status open_readable(const std::string& path, std::unique_ptr<ReadableFile>* out) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_status("open", path, errno);
    *out = std::make_unique<PosixReadableFile>(path, fd);
    return Status::ok();
  }
  Status rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return errno_status("rename", from, errno);
    return Status::ok();
  }
  Status remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return errno_status("unlink", path, errno);
    return Status::ok();
  }
  Status remove_dir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return errno_status("opendir", dir, errno);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    for (const std::string& n : names) {
      std::string path = join_path(dir, n);
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0) return errno_status("stat", path, errno);
      if (S_ISDIR(st.st_mode)) {
        CHORUS_RETURN_IF_ERROR(remove_dir(path));
      } else if (::unlink(path.c_str()) != 0) {
        return errno_status("unlink", path, errno);
      }
    }
    if (::rmdir(dir.c_str()) != 0) return errno_status("rmdir", dir, errno);
    return Status::ok();
  }
  Status sync_dir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno_status("open", dir, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return errno_status("fsync", dir, err);
    return Status::ok();
  }
  bool exists(const std::string& path) override {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
  }
  bool is_dir(const std::string& path) override {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }
};

}  // namespace

std::string Status::to_string() const {
  static constexpr const char* kNames[] = {"OK",         "NotFound",        "IOError", "NoSpace",
                                           "Corruption", "InvalidArgument", "ReadOnly"};
  std::string s = kNames[static_cast<int>(code_)];
  if (!message_.empty()) s += ": " + message_;
  return s;
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

Status FileSystem::remove_dir(const std::string& dir) {
  return Status::invalid_argument("remove_dir " + dir + ": not supported by this file system");
}

bool FileSystem::is_dir(const std::string& path) {
  std::vector<std::string> names;
  return list_dir(path, &names).is_ok();
}

Status FileSystem::read_file(const std::string& path, std::string* out) {
  std::unique_ptr<ReadableFile> f;
  CHORUS_RETURN_IF_ERROR(open_readable(path, &f));
  uint64_t size = 0;
  CHORUS_RETURN_IF_ERROR(f->size(&size));
  return f->read_at(0, size, out);
}

Status FileSystem::write_file_atomic(const std::string& dir, const std::string& name,
                                     std::string_view data) {
  std::string tmp = join_path(dir, name + ".tmp");
  std::unique_ptr<WritableFile> f;
  CHORUS_RETURN_IF_ERROR(open_writable(tmp, &f));
  CHORUS_RETURN_IF_ERROR(f->truncate(0));
  CHORUS_RETURN_IF_ERROR(f->write_at(0, data));
  CHORUS_RETURN_IF_ERROR(f->sync());
  CHORUS_RETURN_IF_ERROR(f->close());
  CHORUS_RETURN_IF_ERROR(rename(tmp, join_path(dir, name)));
  return sync_dir(dir);
}

std::unique_ptr<FileSystem> make_posix_file_system() {
  return std::make_unique<PosixFileSystem>();
}

}  // namespace chorus::storage
