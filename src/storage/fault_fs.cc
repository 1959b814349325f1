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

struct FaultFileSystem::Dir {
  std::map<std::string, Node> live;
  std::map<std::string, Node> durable;
};

namespace {

std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The components of a path; empty ones ("a//b", a leading '/') are skipped.
std::vector<std::string> split(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
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

FaultFileSystem::FaultFileSystem() : root_(std::make_shared<Dir>()) {}
FaultFileSystem::~FaultFileSystem() = default;

Status FaultFileSystem::check_sync() {
  ++syncs_;
  if (sync_failures_ > 0) {
    --sync_failures_;
    return Status::io_error("fsync: input/output error (injected)");
  }
  return Status::ok();
}

FaultFileSystem::Dir* FaultFileSystem::find_dir(const std::string& path) const {
  Dir* d = root_.get();
  for (const std::string& part : split(path)) {
    auto it = d->live.find(part);
    if (it == d->live.end() || !it->second.dir) return nullptr;
    d = it->second.dir.get();
  }
  return d;
}

const FaultFileSystem::Node* FaultFileSystem::find(const std::string& path) const {
  Dir* d = find_dir(parent_of(path));
  if (d == nullptr) return nullptr;
  auto it = d->live.find(base_of(path));
  return it == d->live.end() ? nullptr : &it->second;
}

std::vector<FaultFileSystem::Inode*> FaultFileSystem::inodes(bool durable) const {
  // In the order of a walk by name, so crash choices replay from their seed.
  std::vector<Inode*> files;
  std::set<const Inode*> files_seen;
  std::set<const Dir*> seen;
  std::vector<const Dir*> todo{root_.get()};
  while (!todo.empty()) {
    const Dir* d = todo.back();
    todo.pop_back();
    if (!seen.insert(d).second) continue;
    for (const auto* view : {&d->durable, &d->live}) {
      if (view == &d->durable && !durable) continue;
      for (const auto& [name, node] : *view) {
        if (node.file && files_seen.insert(node.file.get()).second)
          files.push_back(node.file.get());
        if (node.dir) todo.push_back(node.dir.get());
      }
    }
  }
  return files;
}

uint64_t FaultFileSystem::bytes_used() const {
  uint64_t total = 0;
  for (const Inode* inode : inodes(false))
    total += inode->data.size();
  return total;
}

bool FaultFileSystem::fits(uint64_t old_size, uint64_t new_size) const {
  if (new_size <= old_size || space_limit_ == UINT64_MAX) return true;
  return bytes_used() + (new_size - old_size) <= space_limit_;
}

Status FaultFileSystem::create_dir(const std::string& dir) {
  if (split(dir).empty()) return Status::ok();
  Dir* parent = find_dir(parent_of(dir));
  if (parent == nullptr) return Status::not_found("mkdir " + dir + ": no such directory");
  std::string name = base_of(dir);
  auto it = parent->live.find(name);
  if (it != parent->live.end()) {
    if (it->second.dir) return Status::ok();
    return Status::io_error("mkdir " + dir + ": a file has that name");
  }
  Node node{nullptr, std::make_shared<Dir>()};
  parent->live[name] = node;
  if (parent == root_.get()) parent->durable[name] = node;
  return Status::ok();
}

Status FaultFileSystem::list_dir(const std::string& dir, std::vector<std::string>* names) {
  names->clear();
  Dir* d = find_dir(dir);
  if (d == nullptr) return Status::not_found("opendir " + dir + ": no such directory");
  for (const auto& [name, node] : d->live)
    names->push_back(name);
  return Status::ok();
}

Status FaultFileSystem::open_writable(const std::string& path, std::unique_ptr<WritableFile>* out) {
  Dir* d = find_dir(parent_of(path));
  if (d == nullptr) return Status::not_found("open " + path + ": no such directory");
  Node& node = d->live[base_of(path)];
  if (node.dir) return Status::io_error("open " + path + ": is a directory");
  if (!node.file) node.file = std::make_shared<Inode>();
  *out = std::make_unique<FaultWritableFile>(this, node.file, path);
  return Status::ok();
}

Status FaultFileSystem::open_readable(const std::string& path, std::unique_ptr<ReadableFile>* out) {
  const Node* node = find(path);
  if (node == nullptr || !node->file) return Status::not_found("open " + path + ": no such file");
  *out = std::make_unique<FaultReadableFile>(this, node->file, path);
  return Status::ok();
}

Status FaultFileSystem::rename(const std::string& from, const std::string& to) {
  Dir* src = find_dir(parent_of(from));
  Dir* dst = find_dir(parent_of(to));
  auto it =
      src == nullptr ? std::map<std::string, Node>::iterator() : src->live.find(base_of(from));
  if (src == nullptr || it == src->live.end())
    return Status::not_found("rename " + from + ": no such file or directory");
  if (dst == nullptr) return Status::not_found("rename " + to + ": no such directory");
  if (from == to) return Status::ok();
  Node node = it->second;
  auto target = dst->live.find(base_of(to));
  if (target != dst->live.end()) {
    if (node.file && target->second.dir)
      return Status::io_error("rename " + from + " to " + to + ": target is a directory");
    if (node.dir && target->second.file)
      return Status::io_error("rename " + from + " to " + to + ": target is not a directory");
    if (node.dir && !target->second.dir->live.empty())
      return Status::io_error("rename " + from + " to " + to + ": directory not empty");
  }
  if (node.dir && (to + "/").starts_with(from + "/"))
    return Status::invalid_argument("rename " + from + " into itself");
  src->live.erase(it);
  dst->live[base_of(to)] = std::move(node);
  return Status::ok();
}

Status FaultFileSystem::remove(const std::string& path) {
  Dir* d = find_dir(parent_of(path));
  auto it = d == nullptr ? std::map<std::string, Node>::iterator() : d->live.find(base_of(path));
  if (d == nullptr || it == d->live.end() || !it->second.file)
    return Status::not_found("unlink " + path + ": no such file");
  d->live.erase(it);
  return Status::ok();
}

Status FaultFileSystem::remove_dir(const std::string& dir) {
  Dir* d = find_dir(parent_of(dir));
  auto it = d == nullptr ? std::map<std::string, Node>::iterator() : d->live.find(base_of(dir));
  if (split(dir).empty() || d == nullptr || it == d->live.end() || !it->second.dir)
    return Status::not_found("rmdir " + dir + ": no such directory");
  d->live.erase(it);
  return Status::ok();
}

Status FaultFileSystem::sync_dir(const std::string& dir) {
  Dir* d = find_dir(dir);
  if (d == nullptr) return Status::not_found("open " + dir + ": no such directory");
  CHORUS_RETURN_IF_ERROR(check_sync());
  d->durable = d->live;
  return Status::ok();
}

bool FaultFileSystem::exists(const std::string& path) {
  return split(path).empty() || find(path) != nullptr;
}

bool FaultFileSystem::is_dir(const std::string& path) {
  return find_dir(path) != nullptr;
}

void FaultFileSystem::crash(uint64_t seed, bool tear) {
  ++generation_;
  uint64_t rng = seed;
  // Every file reachable from either view gets its data reset; only durable names survive.
  for (Inode* inode : inodes(true)) {
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
  }
  std::vector<Dir*> todo{root_.get()};
  std::set<Dir*> seen;
  while (!todo.empty()) {
    Dir* d = todo.back();
    todo.pop_back();
    if (!seen.insert(d).second) continue;
    d->live = d->durable;
    for (const auto& [name, node] : d->live)
      if (node.dir) todo.push_back(node.dir.get());
  }
}

bool FaultFileSystem::damage(const std::string& path, uint64_t offset, uint8_t mask) {
  const Node* node = find(path);
  if (node == nullptr || !node->file || offset >= node->file->data.size()) return false;
  node->file->data[offset] = static_cast<char>(node->file->data[offset] ^ mask);
  if (offset < node->file->durable.size())
    node->file->durable[offset] = static_cast<char>(node->file->durable[offset] ^ mask);
  return true;
}

std::string* FaultFileSystem::contents(const std::string& path) {
  const Node* node = find(path);
  return node == nullptr || !node->file ? nullptr : &node->file->data;
}

}  // namespace chorus::storage
