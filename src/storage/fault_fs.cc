#include "storage/fault_fs.h"

#include <algorithm>

namespace chorus::storage {

struct FaultFileSystem::Inode {
  // An unsynced change, replayed in order onto `durable` when a crash keeps part of it.
  struct Op {
    enum class Kind : uint8_t { kWrite, kResize } kind;
    uint64_t offset;  // kWrite: where; kResize: the new size
    std::string data;
  };
  std::string data;
  std::string durable;
  std::vector<Op> unsynced;

  void apply(const Op& op, std::string* to, size_t keep_bytes) const {
    if (op.kind == Op::Kind::kResize) {
      to->resize(op.offset, '\0');
      return;
    }
    size_t n = std::min(keep_bytes, op.data.size());
    if (to->size() < op.offset + n) to->resize(op.offset + n, '\0');
    to->replace(op.offset, n, op.data, 0, n);
  }
};

namespace {

std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

// splitmix64: a tiny deterministic generator for crash choices.
uint64_t next_random(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

class FaultWritableFile final : public WritableFile {
 public:
  FaultWritableFile(FaultFileSystem* fs, std::shared_ptr<FaultFileSystem::Inode> inode,
                    std::string path)
      : fs_(fs), inode_(std::move(inode)), path_(std::move(path)), generation_(fs->generation_) {}

  Status write_at(uint64_t offset, std::string_view data) override {
    CHORUS_RETURN_IF_ERROR(alive());
    uint64_t end = std::max<uint64_t>(inode_->data.size(), offset + data.size());
    if (!fs_->fits(inode_->data.size(), end))
      return Status::no_space("write " + path_ + ": no space left on device");
    using Op = FaultFileSystem::Inode::Op;
    Op op{Op::Kind::kWrite, offset, std::string(data)};
    inode_->apply(op, &inode_->data, op.data.size());
    inode_->unsynced.push_back(std::move(op));
    return Status::ok();
  }
  Status sync() override {
    CHORUS_RETURN_IF_ERROR(alive());
    CHORUS_RETURN_IF_ERROR(fs_->check_sync());
    inode_->durable = inode_->data;
    inode_->unsynced.clear();
    return Status::ok();
  }
  Status preallocate(uint64_t size) override {
    CHORUS_RETURN_IF_ERROR(alive());
    if (size <= inode_->data.size()) return Status::ok();
    if (!fs_->fits(inode_->data.size(), size))
      return Status::no_space("fallocate " + path_ + ": no space left on device");
    return resize(size);
  }
  Status truncate(uint64_t size) override {
    CHORUS_RETURN_IF_ERROR(alive());
    if (!fs_->fits(inode_->data.size(), size))
      return Status::no_space("truncate " + path_ + ": no space left on device");
    return resize(size);
  }
  Status close() override { return Status::ok(); }

 private:
  Status alive() const {
    if (generation_ != fs_->generation_)
      return Status::io_error(path_ + ": file handle from before a crash");
    return Status::ok();
  }
  Status resize(uint64_t size) {
    using Op = FaultFileSystem::Inode::Op;
    Op op{Op::Kind::kResize, size, {}};
    inode_->apply(op, &inode_->data, 0);
    inode_->unsynced.push_back(std::move(op));
    return Status::ok();
  }

  FaultFileSystem* fs_;
  std::shared_ptr<FaultFileSystem::Inode> inode_;
  std::string path_;
  uint64_t generation_;
};

class FaultReadableFile final : public ReadableFile {
 public:
  FaultReadableFile(const FaultFileSystem* fs, std::shared_ptr<FaultFileSystem::Inode> inode,
                    std::string path)
      : fs_(fs), inode_(std::move(inode)), path_(std::move(path)), generation_(fs->generation_) {}

  Status read_at(uint64_t offset, size_t n, std::string* out) const override {
    if (generation_ != fs_->generation_)
      return Status::io_error(path_ + ": file handle from before a crash");
    const std::string& d = inode_->data;
    if (offset >= d.size()) {
      out->clear();
      return Status::ok();
    }
    out->assign(d, offset, std::min<uint64_t>(n, d.size() - offset));
    return Status::ok();
  }
  Status size(uint64_t* out) const override {
    *out = inode_->data.size();
    return Status::ok();
  }

 private:
  const FaultFileSystem* fs_;
  std::shared_ptr<FaultFileSystem::Inode> inode_;
  std::string path_;
  uint64_t generation_;
};

FaultFileSystem::FaultFileSystem() = default;
FaultFileSystem::~FaultFileSystem() = default;

Status FaultFileSystem::check_sync() {
  ++syncs_;
  if (sync_failures_ > 0) {
    --sync_failures_;
    return Status::io_error("fsync: input/output error (injected)");
  }
  return Status::ok();
}

uint64_t FaultFileSystem::bytes_used() const {
  uint64_t total = 0;
  std::set<const Inode*> seen;
  for (const auto& [name, inode] : live_)
    if (seen.insert(inode.get()).second) total += inode->data.size();
  return total;
}

bool FaultFileSystem::fits(uint64_t old_size, uint64_t new_size) const {
  if (new_size <= old_size || space_limit_ == UINT64_MAX) return true;
  return bytes_used() + (new_size - old_size) <= space_limit_;
}

Status FaultFileSystem::create_dir(const std::string& dir) {
  dirs_.insert(dir);
  return Status::ok();
}

Status FaultFileSystem::list_dir(const std::string& dir, std::vector<std::string>* names) {
  names->clear();
  if (!dirs_.contains(dir)) return Status::not_found("opendir " + dir + ": no such directory");
  for (const auto& [path, inode] : live_)
    if (parent_of(path) == dir) names->push_back(path.substr(dir.size() + 1));
  return Status::ok();
}

Status FaultFileSystem::open_writable(const std::string& path, std::unique_ptr<WritableFile>* out) {
  if (!dirs_.contains(parent_of(path)))
    return Status::not_found("open " + path + ": no such directory");
  auto& inode = live_[path];
  if (!inode) inode = std::make_shared<Inode>();
  *out = std::make_unique<FaultWritableFile>(this, inode, path);
  return Status::ok();
}

Status FaultFileSystem::open_readable(const std::string& path, std::unique_ptr<ReadableFile>* out) {
  auto it = live_.find(path);
  if (it == live_.end()) return Status::not_found("open " + path + ": no such file");
  *out = std::make_unique<FaultReadableFile>(this, it->second, path);
  return Status::ok();
}

Status FaultFileSystem::rename(const std::string& from, const std::string& to) {
  auto it = live_.find(from);
  if (it == live_.end()) return Status::not_found("rename " + from + ": no such file");
  auto inode = it->second;
  live_.erase(it);
  live_[to] = std::move(inode);
  return Status::ok();
}

Status FaultFileSystem::remove(const std::string& path) {
  if (live_.erase(path) == 0) return Status::not_found("unlink " + path + ": no such file");
  return Status::ok();
}

Status FaultFileSystem::sync_dir(const std::string& dir) {
  CHORUS_RETURN_IF_ERROR(check_sync());
  for (auto it = durable_.begin(); it != durable_.end();) {
    if (parent_of(it->first) == dir) {
      it = durable_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [path, inode] : live_)
    if (parent_of(path) == dir) durable_[path] = inode;
  return Status::ok();
}

bool FaultFileSystem::exists(const std::string& path) {
  return live_.contains(path) || dirs_.contains(path);
}

void FaultFileSystem::crash(uint64_t seed, bool tear) {
  ++generation_;
  uint64_t rng = seed;
  std::set<Inode*> done;
  // Inodes reachable from either view get their data reset; only durable names survive.
  auto reset = [&](const std::shared_ptr<Inode>& inode) {
    if (!done.insert(inode.get()).second) return;
    std::string result = inode->durable;
    if (tear && !inode->unsynced.empty()) {
      size_t keep = next_random(&rng) % (inode->unsynced.size() + 1);
      for (size_t i = 0; i < keep; ++i)
        inode->apply(inode->unsynced[i], &result, inode->unsynced[i].data.size());
      if (keep < inode->unsynced.size()) {
        const auto& op = inode->unsynced[keep];
        if (op.kind == Inode::Op::Kind::kWrite && !op.data.empty())
          inode->apply(op, &result, next_random(&rng) % op.data.size());
      }
    }
    inode->data = result;
    inode->durable = std::move(result);
    inode->unsynced.clear();
  };
  for (const auto& [path, inode] : durable_)
    reset(inode);
  for (const auto& [path, inode] : live_)
    reset(inode);
  live_ = durable_;
}

std::string* FaultFileSystem::contents(const std::string& path) {
  auto it = live_.find(path);
  return it == live_.end() ? nullptr : &it->second->data;
}

}  // namespace chorus::storage
