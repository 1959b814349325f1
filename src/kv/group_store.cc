#include "kv/group_store.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "base/coding.h"
#include "kv/rocksdb_status.h"
#include "redis/keyspace.h"

namespace chorus::kv {

using storage::Status;

namespace {

constexpr uint8_t kOpVersion = 1;

std::string group_prefix(raft::GroupId group) {
  std::string k;
  k.reserve(10);
  k.push_back('g');
  base::put_u64_be(&k, group);
  return k;
}

// A group's record of one kind: 'k' a Groups API key, 'r' a Redis key record, 'e' a Redis
// element record.
std::string kind_key(raft::GroupId group, char kind, std::string_view key) {
  std::string k = group_prefix(group);
  k.push_back(kind);
  k.append(key);
  return k;
}
std::string value_key(raft::GroupId group, std::string_view key) {
  return kind_key(group, 'k', key);
}
std::string record_key(raft::GroupId group, std::string_view key) {
  return kind_key(group, 'r', key);
}
std::string element_key(raft::GroupId group, std::string_view ekey) {
  return kind_key(group, 'e', ekey);
}

// The first key after every key that starts with `prefix`.
std::string prefix_end(std::string prefix) {
  while (!prefix.empty() && static_cast<uint8_t>(prefix.back()) == 0xff)
    prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(static_cast<uint8_t>(prefix.back()) + 1);
  return prefix;
}

// The length of the part of a RocksDB key before a Redis element key: g<group>e.
constexpr size_t kElementKeyOffset = 10;

std::string applied_key(raft::GroupId group) {
  std::string k = group_prefix(group);
  k.push_back('a');
  return k;
}

std::string installed_key(raft::GroupId group) {
  std::string k = group_prefix(group);
  k.push_back('s');
  return k;
}

// The end of a group's range: the next group's prefix, or past every group for the last id.
std::string group_end(raft::GroupId group) {
  return group == UINT64_MAX ? std::string("h") : group_prefix(group + 1);
}

// Version 1 holds the Groups API's keys only; version 2 every key with its kind's letter
// ('k', 'r' or 'e': Groups API keys, Redis key records, Redis element records) in front.
constexpr uint8_t kExportVersionKeys = 1;
constexpr uint8_t kExportVersion = 2;

// A group's Redis records as the store holds them: read-only commands run on this.
class StoredRecords : public redis::RecordStore {
 public:
  explicit StoredRecords(rocksdb::DB* db) : db_(db) {}
  void set_group(raft::GroupId g) { group_ = g; }
  // Every read from one RocksDB snapshot: a command sees its key record and that record's
  // elements as of one moment, whatever the apply thread writes meanwhile.
  void set_snapshot(const rocksdb::Snapshot* snap) { read_options_.snapshot = snap; }

  bool get(std::string_view key, std::string* record) override {
    return read(record_key(group_, key), record);
  }
  bool get_element(std::string_view ekey, std::string* value) override {
    return read(element_key(group_, ekey), value);
  }
  void scan_elements(std::string_view prefix, std::string_view from, size_t limit,
                     std::vector<std::pair<std::string, std::string>>* out) override {
    out->clear();
    const std::string first = element_key(group_, prefix);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options_));
    for (it->Seek(from.empty() ? first : element_key(group_, from));
         it->Valid() && out->size() < limit && it->key().starts_with(first); it->Next()) {
      rocksdb::Slice k = it->key();
      out->emplace_back(std::string(k.data() + kElementKeyOffset, k.size() - kElementKeyOffset),
                        it->value().ToString());
    }
    if (!it->status().ok()) failed_ = from_rocksdb(it->status(), "group store scan");
  }
  // A read-only command writes nothing: never called here (BatchRecords writes).
  void put(std::string_view, std::string_view) override {}
  void del(std::string_view) override {}
  void put_element(std::string_view, std::string_view) override {}
  void del_element(std::string_view) override {}
  void drop_elements(std::string_view) override {}
  void clear() override {}
  // A read of the store that failed: the command's reply does not count.
  const Status& failed() const { return failed_; }

 protected:
  bool read(const std::string& key, std::string* value) {
    rocksdb::Status s = db_->Get(read_options_, key, value);
    if (!s.ok() && !s.IsNotFound()) failed_ = from_rocksdb(s, "group store read");
    return s.ok();
  }

  rocksdb::DB* db_;
  raft::GroupId group_ = 0;
  rocksdb::ReadOptions read_options_;
  Status failed_ = Status::ok();
};

// A group's Redis records as one apply() sees them: what earlier commands of the same write
// batch wrote (`written`, ordered so that scans merge it with the store), else what the store
// holds. Range deletions go into the RocksDB batch at once (they cover only versions no later
// command reads, or a whole group after FLUSHALL, whose later writes are in `written`); each
// record written goes in once, with its last value, when the batch is complete (put_written):
// a key written by a hundred commands of one turn costs one memtable insert.
class BatchRecords : public StoredRecords {
 public:
  using Written = std::map<std::string, std::optional<std::string>>;
  BatchRecords(rocksdb::DB* db, rocksdb::WriteBatch* batch, Written* written)
      : StoredRecords(db), batch_(batch), written_(written) {}

  bool get(std::string_view key, std::string* record) override {
    return lookup(record_key(group_, key), record);
  }
  void put(std::string_view key, std::string_view record) override {
    write(record_key(group_, key), record);
  }
  void del(std::string_view key) override { erase(record_key(group_, key)); }
  bool get_element(std::string_view ekey, std::string* value) override {
    return lookup(element_key(group_, ekey), value);
  }
  void put_element(std::string_view ekey, std::string_view value) override {
    write(element_key(group_, ekey), value);
  }
  void del_element(std::string_view ekey) override { erase(element_key(group_, ekey)); }
  void scan_elements(std::string_view prefix, std::string_view from, size_t limit,
                     std::vector<std::pair<std::string, std::string>>* out) override {
    out->clear();
    const std::string first = element_key(group_, prefix);
    const std::string start = from.empty() ? first : element_key(group_, from);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions{}));
    it->Seek(start);
    auto w = written_->lower_bound(start);
    const bool cleared = cleared_.contains(group_);  // the store's records are gone
    while (out->size() < limit) {
      bool db_ok = !cleared && it->Valid() && it->key().starts_with(first);
      bool w_ok = w != written_->end() && std::string_view(w->first).starts_with(first);
      if (!db_ok && !w_ok) break;
      int order = !db_ok ? 1 : !w_ok ? -1 : it->key().compare(w->first);
      if (order < 0) {
        rocksdb::Slice k = it->key();
        out->emplace_back(std::string(k.data() + kElementKeyOffset, k.size() - kElementKeyOffset),
                          it->value().ToString());
        it->Next();
        continue;
      }
      // This batch wrote the key: its write (or deletion) stands over the store's.
      if (w->second) out->emplace_back(w->first.substr(kElementKeyOffset), *w->second);
      if (order == 0) it->Next();
      ++w;
    }
    if (!it->status().ok()) failed_ = from_rocksdb(it->status(), "group store scan");
  }
  void drop_elements(std::string_view prefix) override {
    drop_range(element_key(group_, prefix), prefix_end(element_key(group_, prefix)));
  }
  void clear() override {
    drop_range(record_key(group_, ""), prefix_end(record_key(group_, "")));
    drop_range(element_key(group_, ""), prefix_end(element_key(group_, "")));
    cleared_.insert(group_);
  }
  // Puts every record written into the batch, after its range deletions.
  void put_written() {
    for (const auto& [key, value] : *written_) {
      if (value) {
        batch_->Put(key, *value);
      } else {
        batch_->Delete(key);
      }
    }
  }

 private:
  void drop_range(const std::string& from, const std::string& to) {
    batch_->DeleteRange(from, to);
    written_->erase(written_->lower_bound(from), written_->lower_bound(to));
  }
  bool lookup(const std::string& key, std::string* value) {
    auto it = written_->find(key);
    if (it == written_->end()) return !cleared_.contains(group_) && read(key, value);
    if (!it->second) return false;
    *value = *it->second;
    return true;
  }
  void write(std::string key, std::string_view value) {
    (*written_)[std::move(key)] = std::string(value);
  }
  void erase(std::string key) { (*written_)[std::move(key)] = std::nullopt; }

  rocksdb::WriteBatch* batch_;
  Written* written_;
  std::set<raft::GroupId> cleared_;  // groups this batch flushed
};

}  // namespace

std::string encode_group_op(const GroupOp& op) {
  std::string out;
  out.reserve(10 + op.key.size() + op.value.size());
  base::put_u8(&out, kOpVersion);
  base::put_u8(&out, static_cast<uint8_t>(op.kind));
  base::put_bytes(&out, op.key);
  if (op.kind != GroupOp::Kind::kDelete) base::put_bytes(&out, op.value);
  return out;
}

std::optional<GroupOp> decode_group_op(std::string_view bytes) {
  base::Reader r(bytes);
  uint8_t version = 0;
  uint8_t kind = 0;
  GroupOp op;
  if (!r.u8(&version) || version != kOpVersion || !r.u8(&kind) || !r.bytes(&op.key))
    return std::nullopt;
  if (kind == static_cast<uint8_t>(GroupOp::Kind::kPut) ||
      kind == static_cast<uint8_t>(GroupOp::Kind::kCommand)) {
    op.kind = static_cast<GroupOp::Kind>(kind);
    if (!r.bytes(&op.value)) return std::nullopt;
  } else if (kind == static_cast<uint8_t>(GroupOp::Kind::kDelete)) {
    op.kind = GroupOp::Kind::kDelete;
  } else {
    return std::nullopt;
  }
  if (!r.done()) return std::nullopt;
  return op;
}

Status GroupStore::open(const std::string& dir, std::unique_ptr<GroupStore>* out) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.avoid_flush_during_shutdown = false;
  rocksdb::DB* db = nullptr;
  CHORUS_RETURN_IF_ERROR(from_rocksdb(rocksdb::DB::Open(o, dir, &db), "group store open"));
  std::unique_ptr<GroupStore> s(new GroupStore(db));
  CHORUS_RETURN_IF_ERROR(s->load());
  *out = std::move(s);
  return Status::ok();
}

GroupStore::~GroupStore() {
  // With RocksDB's WAL off, closing flushes the memtables; a crash is covered by replay.
  delete db_;
}

Status GroupStore::load() {
  // Every group's applied record, found by seeking from one group's prefix to the next.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions{}));
  std::unique_lock lock(mu_);
  applied_.clear();
  for (it->Seek("g"); it->Valid();) {
    rocksdb::Slice k = it->key();
    if (k.size() < 9 || k[0] != 'g') break;
    raft::GroupId group = base::load_u64_be(k.data() + 1);
    std::string want = applied_key(group);
    it->Seek(want);
    if (it->Valid() && it->key() == rocksdb::Slice(want)) {
      rocksdb::Slice v = it->value();
      if (v.size() != 16) return Status::corruption("group store: malformed applied index");
      applied_[group] = base::load_u64(v.data());
    }
    if (group == UINT64_MAX) break;
    it->Seek(group_prefix(group + 1));
  }
  return from_rocksdb(it->status(), "group store load");
}

namespace {

// The messages an applied command published: PUBLISH's, or those of a transaction that ran.
void collect_published(std::vector<std::string>& argv, const redis::Reply& reply,
                       GroupStore::Published* published) {
  if (argv.size() == 3 && argv[0] == "publish") {
    published->emplace_back(std::move(argv[1]), std::move(argv[2]));
    return;
  }
  if (argv.empty() || argv[0] != redis::kTransaction || reply.kind != redis::Reply::Kind::kArray)
    return;
  std::vector<std::string> sub;
  int64_t unused = 0;
  for (size_t i = 1; i < argv.size(); ++i) {
    if (redis::decode_command(argv[i], &unused, &sub) && sub.size() == 3 && sub[0] == "publish")
      published->emplace_back(std::move(sub[1]), std::move(sub[2]));
  }
}

}  // namespace

Status GroupStore::apply(const std::vector<GroupEntry>& entries,
                         std::vector<std::optional<redis::Reply>>* replies, Published* published) {
  std::lock_guard<std::mutex> w(write_mu_);
  rocksdb::WriteBatch batch;
  std::unordered_map<raft::GroupId, std::pair<raft::Index, raft::Term>> last;
  BatchRecords::Written written;
  BatchRecords records(db_, &batch, &written);
  std::vector<std::string> argv;
  if (replies) replies->assign(entries.size(), std::nullopt);
  {
    std::shared_lock lock(mu_);
    for (size_t i = 0; i < entries.size(); ++i) {
      const GroupEntry& e = entries[i];
      auto seen = last.find(e.group);
      raft::Index done = 0;
      if (seen != last.end()) {
        done = seen->second.first;
      } else {
        auto a = applied_.find(e.group);
        if (a != applied_.end()) done = a->second;
      }
      if (e.index <= done) continue;
      last[e.group] = {e.index, e.term};
      if (e.op.empty()) continue;
      std::optional<GroupOp> op = decode_group_op(e.op);
      if (!op) continue;
      if (op->kind == GroupOp::Kind::kCommand) {
        int64_t now_ms = 0;
        redis::Reply reply = redis::Reply::error("ERR malformed command entry");
        if (redis::decode_command(op->value, &now_ms, &argv)) {
          records.set_group(e.group);
          reply = redis::execute(records, argv, now_ms, e.index);
          if (!records.failed().is_ok()) return records.failed();
          if (published) collect_published(argv, reply, published);
        }
        if (replies) (*replies)[i] = std::move(reply);
      } else if (op->kind == GroupOp::Kind::kPut) {
        batch.Put(value_key(e.group, op->key), op->value);
      } else {
        batch.Delete(value_key(e.group, op->key));
      }
    }
  }
  if (last.empty()) return Status::ok();
  records.put_written();
  for (const auto& [group, at] : last) {
    std::string v;
    base::put_u64(&v, at.first);
    base::put_u64(&v, at.second);
    batch.Put(applied_key(group), v);
  }
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  CHORUS_RETURN_IF_ERROR(from_rocksdb(db_->Write(wo, &batch), "group store write"));
  std::unique_lock lock(mu_);
  for (const auto& [group, at] : last)
    applied_[group] = at.first;
  return Status::ok();
}

raft::Index GroupStore::applied_index(raft::GroupId group) const {
  std::shared_lock lock(mu_);
  auto it = applied_.find(group);
  return it == applied_.end() ? 0 : it->second;
}

Status GroupStore::redis_keys(raft::GroupId group, std::string_view from, size_t limit,
                              size_t tie_bytes, int64_t now_ms, std::vector<RedisKey>* out,
                              bool* more) const {
  out->clear();
  *more = false;
  const std::string first = record_key(group, "");
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions{}));
  for (it->Seek(record_key(group, from)); it->Valid() && it->key().starts_with(first); it->Next()) {
    std::string_view key(it->key().data() + first.size(), it->key().size() - first.size());
    if (!out->empty() && out->size() >= limit) {
      // Keys sharing the last one's first tie_bytes bytes (zeros past a short key's end) come
      // in the same answer.
      auto head = [tie_bytes](std::string_view k) {
        std::string h(k.substr(0, tie_bytes));
        h.resize(tie_bytes, '\0');
        return h;
      };
      if (tie_bytes == 0 || head(key) != head(out->back().key)) {
        *more = true;
        break;
      }
    }
    const char* type =
        redis::live_type(std::string_view(it->value().data(), it->value().size()), now_ms);
    if (type != nullptr) out->push_back({std::string(key), type});
  }
  return from_rocksdb(it->status(), "group store scan");
}

Status GroupStore::redis_expired(raft::GroupId group, std::string_view from, size_t examine,
                                 int64_t now_ms, std::vector<std::string>* expired,
                                 std::string* next) const {
  expired->clear();
  next->clear();
  const std::string first = record_key(group, "");
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions{}));
  size_t seen = 0;
  for (it->Seek(record_key(group, from)); it->Valid() && it->key().starts_with(first); it->Next()) {
    std::string_view key(it->key().data() + first.size(), it->key().size() - first.size());
    if (seen++ == examine) {
      next->assign(key);
      break;
    }
    if (redis::expired(std::string_view(it->value().data(), it->value().size()), now_ms))
      expired->emplace_back(key);
  }
  return from_rocksdb(it->status(), "group store scan");
}

redis::Reply GroupStore::read_command(raft::GroupId group, const std::vector<std::string>& argv,
                                      int64_t now_ms) const {
  const rocksdb::Snapshot* snap = db_->GetSnapshot();
  StoredRecords records(db_);
  records.set_group(group);
  records.set_snapshot(snap);
  // A read creates no collection; its number only seeds its random picks (SRANDMEMBER,
  // ZRANDMEMBER), which differ from one read to the next.
  redis::Reply reply = redis::execute(records, argv, now_ms, ++reads_);
  db_->ReleaseSnapshot(snap);
  if (!records.failed().is_ok()) return redis::Reply::error("ERR " + records.failed().to_string());
  return reply;
}

Status GroupStore::get(raft::GroupId group, std::string_view key, std::string* value) const {
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions{}, value_key(group, key), value);
  if (s.IsNotFound()) return Status::not_found(std::string(key));
  return from_rocksdb(s, "group store read");
}

Status GroupStore::flush() {
  return from_rocksdb(db_->Flush(rocksdb::FlushOptions{}), "group store flush");
}

Status GroupStore::drop(raft::GroupId group) {
  std::lock_guard<std::mutex> w(write_mu_);
  const std::string from = group_prefix(group);
  const std::string to = group_end(group);
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions{}));
    it->Seek(from);
    CHORUS_RETURN_IF_ERROR(from_rocksdb(it->status(), "group store drop"));
    if (!it->Valid() || it->key().compare(to) >= 0) {
      std::unique_lock lock(mu_);
      applied_.erase(group);
      return Status::ok();
    }
  }
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  CHORUS_RETURN_IF_ERROR(
      from_rocksdb(db_->DeleteRange(wo, db_->DefaultColumnFamily(), from, to), "group store drop"));
  std::unique_lock lock(mu_);
  applied_.erase(group);
  return Status::ok();
}

Status GroupStore::export_group(raft::GroupId group, size_t max_bytes, std::string* out) const {
  out->clear();
  // One implicit RocksDB snapshot: the applied index and the keys are of the same moment.
  rocksdb::ReadOptions ro;
  const rocksdb::Snapshot* snap = db_->GetSnapshot();
  ro.snapshot = snap;
  std::string applied;
  rocksdb::Status s = db_->Get(ro, applied_key(group), &applied);
  if (!s.ok() && !s.IsNotFound()) {
    db_->ReleaseSnapshot(snap);
    return from_rocksdb(s, "group store export");
  }
  base::put_u8(out, kExportVersion);
  if (applied.size() == 16) {
    out->append(applied);
  } else {
    base::put_u64(out, 0);
    base::put_u64(out, 0);
  }
  const std::string prefix = group_prefix(group);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  Status st = Status::ok();
  for (const char* range : {"ef", "kl", "rs"}) {
    const std::string from = prefix + range[0];
    const std::string to = prefix + range[1];
    for (it->Seek(from); st.is_ok() && it->Valid() && it->key().compare(to) < 0; it->Next()) {
      rocksdb::Slice k = it->key();
      k.remove_prefix(prefix.size());  // the kind's letter stays
      base::put_bytes(out, std::string_view(k.data(), k.size()));
      base::put_bytes(out, std::string_view(it->value().data(), it->value().size()));
      if (out->size() > max_bytes) {
        st = Status::invalid_argument("group " + std::to_string(group) + " holds more than " +
                                      std::to_string(max_bytes) + " bytes for one snapshot");
      }
    }
    if (st.is_ok()) st = from_rocksdb(it->status(), "group store export");
    if (!st.is_ok()) break;
  }
  it.reset();
  db_->ReleaseSnapshot(snap);
  return st;
}

namespace {

// Calls fn(key, value) for every pair of an export; false if it is not a whole export.
template <typename Fn>
bool read_export(std::string_view data, raft::Index* index, raft::Term* term, Fn fn) {
  base::Reader r(data);
  uint8_t version = 0;
  if (!r.u8(&version) || (version != kExportVersion && version != kExportVersionKeys) ||
      !r.u64(index) || !r.u64(term))
    return false;
  std::string with_kind;
  while (!r.done()) {
    uint32_t kn = 0, vn = 0;
    std::string_view k, v;
    if (!r.u32(&kn) || !r.view(kn, &k) || !r.u32(&vn) || !r.view(vn, &v)) return false;
    if (version == kExportVersionKeys) {
      with_kind.assign("k");
      with_kind.append(k);
      fn(std::string_view(with_kind), v);
      continue;
    }
    if (k.empty() || (k[0] != 'k' && k[0] != 'r' && k[0] != 'e')) return false;
    fn(k, v);
  }
  return true;
}

}  // namespace

bool GroupStore::valid_export(std::string_view data) {
  raft::Index index = 0;
  raft::Term term = 0;
  return read_export(data, &index, &term, [](std::string_view, std::string_view) {});
}

raft::Index GroupStore::export_index(std::string_view data) {
  base::Reader r(data);
  uint8_t version = 0;
  raft::Index index = 0;
  if (!r.u8(&version) || (version != kExportVersion && version != kExportVersionKeys) ||
      !r.u64(&index))
    return 0;
  return index;
}

Status GroupStore::install(raft::GroupId group, std::string_view data) {
  std::lock_guard<std::mutex> w(write_mu_);
  rocksdb::WriteBatch batch;
  batch.DeleteRange(group_prefix(group), group_end(group));
  const std::string prefix = group_prefix(group);
  raft::Index index = 0;
  raft::Term term = 0;
  std::string key;
  bool ok = read_export(data, &index, &term, [&](std::string_view k, std::string_view v) {
    key.assign(prefix);
    key.append(k);
    batch.Put(key, rocksdb::Slice(v.data(), v.size()));
  });
  if (!ok)
    return Status::invalid_argument("group " + std::to_string(group) + ": malformed snapshot");
  std::string applied;
  base::put_u64(&applied, index);
  base::put_u64(&applied, term);
  batch.Put(applied_key(group), applied);
  std::string installed;
  base::put_u64(&installed, index);
  batch.Put(installed_key(group), installed);
  // Durable before the log records the snapshot: RocksDB's WAL, synced, for this one write.
  rocksdb::WriteOptions wo;
  wo.sync = true;
  CHORUS_RETURN_IF_ERROR(from_rocksdb(db_->Write(wo, &batch), "group store install"));
  std::unique_lock lock(mu_);
  if (index > 0) {
    applied_[group] = index;
  } else {
    applied_.erase(group);
  }
  return Status::ok();
}

raft::Index GroupStore::installed_index(raft::GroupId group) const {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions{}, installed_key(group), &v);
  if (!s.ok() || v.size() != 8) return 0;
  return base::load_u64(v.data());
}

std::vector<raft::GroupId> GroupStore::group_ids() const {
  std::shared_lock lock(mu_);
  std::vector<raft::GroupId> out;
  out.reserve(applied_.size());
  for (const auto& [g, index] : applied_)
    out.push_back(g);
  std::sort(out.begin(), out.end());
  return out;
}

size_t GroupStore::groups() const {
  std::shared_lock lock(mu_);
  return applied_.size();
}

}  // namespace chorus::kv
