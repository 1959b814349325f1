#include "kv/mvcc.h"

#include <rocksdb/db.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/utilities/write_batch_with_index.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdio>

#include "base/coding.h"
#include "kv/codec.h"
#include "kv/rocksdb_status.h"
#include "storage/crc32c.h"
#include "storage/snapshot_stream.h"

namespace chorus::kv {

using storage::Status;

namespace {

// ---- key encoding ----

constexpr char kRevision = 'r';
constexpr char kLease = 'l';
constexpr char kAttach = 'a';
constexpr char kSession = 's';
constexpr char kMeta = 'm';
// The records of the first layout (the current version by key, every version by key, and an
// event feed by revision), which this store no longer reads.
constexpr char kOldCurrent = 'k';
constexpr char kOldHistory = 'h';
constexpr char kOldEvent = 'e';
constexpr uint64_t kFormat = 2;

const std::string kMetaApplied = std::string(1, kMeta) + "applied";
const std::string kMetaRevision = std::string(1, kMeta) + "revision";
const std::string kMetaCompact = std::string(1, kMeta) + "compact";
const std::string kMetaLogTime = std::string(1, kMeta) + "logtime";
const std::string kMetaFormat = std::string(1, kMeta) + "format";
const std::string kMetaAuth = std::string(1, kMeta) + "auth";

std::string revision_key(int64_t rev, int64_t sub) {
  std::string k;
  k.reserve(17);
  k.push_back(kRevision);
  base::put_u64_be(&k, static_cast<uint64_t>(rev));
  base::put_u64_be(&k, static_cast<uint64_t>(sub));
  return k;
}
// Splits a <kind><rev><sub> key (a revision record, or an event of the first layout).
bool parse_revision_key(std::string_view k, int64_t* rev, int64_t* sub, char kind = kRevision) {
  if (k.size() != 17 || k[0] != kind) return false;
  *rev = static_cast<int64_t>(base::load_u64_be(k.data() + 1));
  *sub = static_cast<int64_t>(base::load_u64_be(k.data() + 9));
  return true;
}

std::string lease_key(int64_t id) {
  std::string k(1, kLease);
  base::put_u64_be(&k, static_cast<uint64_t>(id));
  return k;
}
std::string attach_key(int64_t id, std::string_view key) {
  std::string k(1, kAttach);
  base::put_u64_be(&k, static_cast<uint64_t>(id));
  k.append(key);
  return k;
}
std::string session_key(uint64_t client) {
  std::string k(1, kSession);
  base::put_u64_be(&k, client);
  return k;
}

// A revision record's value: one flag byte (1 = tombstone) and the KeyValue (for a tombstone,
// the key and the deleting revision as mod_revision).
std::string revision_value(const KeyValue& kv, bool tombstone) {
  std::string v(1, tombstone ? '\1' : '\0');
  v += encode_key_value(kv);
  return v;
}
bool parse_revision_value(std::string_view v, KeyValue* kv, bool* tombstone) {
  if (v.empty() || (v[0] != 0 && v[0] != 1)) return false;
  *tombstone = v[0] == 1;
  return decode_key_value(v.substr(1), kv);
}

std::string u64_value(uint64_t v) {
  std::string s;
  base::put_u64(&s, v);
  return s;
}

rocksdb::Slice slice(std::string_view s) {
  return {s.data(), s.size()};
}
std::string_view view(const rocksdb::Slice& s) {
  return {s.data(), s.size()};
}

ApiError error(Code code, const char* message) {
  return ApiError{code, message};
}

// The [begin, end) bounds of etcd's range rules, on user keys; end empty = unbounded.
struct KeyRange {
  std::string begin;
  std::string end;
  bool single = false;
  bool unbounded = false;
  bool contains(std::string_view k) const {
    if (single) return k == begin;
    return k >= begin && (unbounded || k < end);
  }
};
KeyRange make_range(const std::string& key, const std::string& range_end) {
  KeyRange r;
  r.begin = key;
  if (range_end.empty()) {
    r.single = true;
  } else if (range_end == std::string(1, '\0')) {
    r.unbounded = true;
  } else {
    r.end = range_end;
  }
  return r;
}

}  // namespace

// Read access to the store, either as committed or with an apply batch's writes on top: the
// key index says which version of a key is live at a revision, the revision records hold them.
class StoreReader {
 public:
  using Ref = MvccStore::VersionRef;
  using KeyEntry = MvccStore::KeyEntry;
  StoreReader(rocksdb::DB* db, rocksdb::WriteBatchWithIndex* batch,
              const MvccStore::KeyIndex* index)
      : db_(db), batch_(batch), index_(index) {}

  bool get(const std::string& key, std::string* value) const {
    rocksdb::Status s =
        batch_ ? batch_->GetFromBatchAndDB(db_, {}, key, value) : db_->Get({}, key, value);
    if (!s.ok() && !s.IsNotFound()) fail(s);
    return s.ok();
  }
  std::unique_ptr<rocksdb::Iterator> iterate() const {
    std::unique_ptr<rocksdb::Iterator> base(db_->NewIterator({}));
    if (!batch_) return base;
    return std::unique_ptr<rocksdb::Iterator>(batch_->NewIteratorWithBase(base.release()));
  }

  // The version of a key live at `rev` (rev < 0: now) among its versions, or null.
  static const Ref* live(const std::vector<Ref>& versions, int64_t rev) {
    if (versions.empty()) return nullptr;
    if (rev < 0) return versions.back().tombstone ? nullptr : &versions.back();
    auto it = std::upper_bound(versions.begin(), versions.end(), rev,
                               [](int64_t r, const Ref& v) { return r < v.rev; });
    if (it == versions.begin()) return nullptr;
    --it;
    return it->tombstone ? nullptr : &*it;
  }
  // The version a reference of the index names; its record must exist.
  KeyValue load(const Ref& ref) const {
    std::string v;
    if (!get(revision_key(ref.rev, ref.sub), &v))
      fail(rocksdb::Status::Corruption("a version in the key index has no record"));
    KeyValue kv;
    bool tombstone = false;
    if (!parse_revision_value(v, &kv, &tombstone))
      fail(rocksdb::Status::Corruption("bad revision record"));
    return kv;
  }
  std::optional<KeyValue> current(std::string_view key) const { return at(key, -1); }
  // The version of `key` live at `rev` (rev < 0: now), if any.
  std::optional<KeyValue> at(std::string_view key, int64_t rev) const {
    auto it = index_->find(key);
    if (it == index_->end()) return std::nullopt;
    const Ref* ref = live(it->second.versions, rev);
    if (ref == nullptr) return std::nullopt;
    return load(*ref);
  }

  // The versions `refs` name, in the same order, read together: one iterator visits them in
  // revision order, stepping to a nearby record and seeking to a far one, so versions written
  // together (a bulk load, a txn) are read as one sequential scan.
  std::vector<KeyValue> load_all(const std::vector<Ref>& refs) const {
    std::vector<KeyValue> out(refs.size());
    if (refs.empty()) return out;
    if (refs.size() == 1) {
      out[0] = load(refs[0]);
      return out;
    }
    std::vector<uint32_t> order(refs.size());
    for (uint32_t i = 0; i < order.size(); ++i)
      order[i] = i;
    std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) {
      return std::tie(refs[x].rev, refs[x].sub) < std::tie(refs[y].rev, refs[y].sub);
    });
    constexpr int kMaxSteps = 8;
    auto it = iterate();
    bool positioned = false;
    for (uint32_t i : order) {
      const std::string target = revision_key(refs[i].rev, refs[i].sub);
      const rocksdb::Slice want = slice(target);
      int steps = 0;
      while (positioned && it->Valid() && it->key().compare(want) < 0 && steps < kMaxSteps) {
        it->Next();
        ++steps;
      }
      if (!positioned || !it->Valid() || it->key().compare(want) != 0) {
        it->Seek(want);
        positioned = true;
      }
      if (!it->Valid() || it->key().compare(want) != 0) {
        if (!it->status().ok()) fail(it->status());
        fail(rocksdb::Status::Corruption("a version in the key index has no record"));
      }
      bool tombstone = false;
      if (!parse_revision_value(view(it->value()), &out[i], &tombstone))
        fail(rocksdb::Status::Corruption("bad revision record"));
    }
    return out;
  }

  // Calls `fn` with the key and index entry of every key in `range` the index holds (live
  // or not), in key order.
  template <typename Fn>
  void for_each_entry(const KeyRange& range, Fn&& fn) const {
    if (range.single) {
      auto it = index_->find(range.begin);
      if (it != index_->end()) fn(it->first, it->second);
      return;
    }
    for (auto it = index_->lower_bound(range.begin); it != index_->end(); ++it) {
      if (!range.unbounded && it->first >= range.end) break;
      fn(it->first, it->second);
    }
  }
  // Calls `fn` with the key and reference of every key in `range` live at `rev` (rev < 0:
  // now), without reading the versions themselves.
  template <typename Fn>
  void scan_refs(const KeyRange& range, int64_t rev, Fn&& fn) const {
    for_each_entry(range, [&](const std::string& key, const KeyEntry& e) {
      if (const Ref* ref = live(e.versions, rev)) fn(key, *ref);
    });
  }
  // Calls `fn` with every key in `range` live at `rev` (rev < 0: now), in key order.
  template <typename Fn>
  void scan(const KeyRange& range, int64_t rev, Fn&& fn) const {
    std::vector<Ref> refs;
    scan_refs(range, rev, [&](const std::string&, const Ref& ref) { refs.push_back(ref); });
    for (KeyValue& kv : load_all(refs))
      fn(std::move(kv));
  }

 private:
  // Damage inside RocksDB is not a client error: stop the node with a clear message.
  [[noreturn]] static void fail(const rocksdb::Status& s) {
    std::fprintf(stderr, "kv: the state machine's store cannot be read: %s\n",
                 s.ToString().c_str());
    std::abort();
  }

  rocksdb::DB* db_;
  rocksdb::WriteBatchWithIndex* batch_;
  const MvccStore::KeyIndex* index_;
};

namespace {

bool compare_kv(const Compare& c, const KeyValue& kv) {
  int cmp = 0;
  auto three_way = [](int64_t a, int64_t b) { return a < b ? -1 : (a > b ? 1 : 0); };
  switch (c.target) {
    case Compare::Target::kVersion:
      cmp = three_way(kv.version, c.number);
      break;
    case Compare::Target::kCreate:
      cmp = three_way(kv.create_revision, c.number);
      break;
    case Compare::Target::kMod:
      cmp = three_way(kv.mod_revision, c.number);
      break;
    case Compare::Target::kLease:
      cmp = three_way(kv.lease, c.number);
      break;
    case Compare::Target::kValue:
      cmp = kv.value.compare(c.value);
      cmp = cmp < 0 ? -1 : (cmp > 0 ? 1 : 0);
      break;
  }
  switch (c.result) {
    case Compare::Result::kEqual:
      return cmp == 0;
    case Compare::Result::kGreater:
      return cmp > 0;
    case Compare::Result::kLess:
      return cmp < 0;
    case Compare::Result::kNotEqual:
      return cmp != 0;
  }
  return false;
}

int64_t sort_field(const KeyValue& kv, SortTarget t) {
  switch (t) {
    case SortTarget::kVersion:
      return kv.version;
    case SortTarget::kCreate:
      return kv.create_revision;
    case SortTarget::kMod:
      return kv.mod_revision;
    default:
      return 0;
  }
}

// etcd's range read over a Reader whose newest revision is `current`.
ApiError do_range(const StoreReader& reader, int64_t current, int64_t compacted,
                  const RangeRequest& q, RangeResponse* resp) {
  int64_t rev = q.revision;
  if (rev > current) return error(Code::kOutOfRange, errors::kFutureRev);
  if (rev > 0 && rev < compacted) return error(Code::kOutOfRange, errors::kCompacted);
  if (rev <= 0) rev = current;
  resp->revision = current;
  resp->kvs.clear();
  resp->more = false;
  KeyRange range = make_range(q.key, q.range_end);
  bool filtered = q.min_mod_revision != 0 || q.max_mod_revision != 0 ||
                  q.min_create_revision != 0 || q.max_create_revision != 0;
  SortOrder order = q.sort_order;
  if (q.sort_target != SortTarget::kKey && order == SortOrder::kNone) order = SortOrder::kAscend;
  if (q.sort_target == SortTarget::kKey && order == SortOrder::kAscend) order = SortOrder::kNone;
  // Without sorting or filtering only limit+1 values are kept; the count covers every key.
  bool keep_all = filtered || order != SortOrder::kNone || q.limit <= 0;
  int64_t count = 0;
  // Versions are read only for the keys kept: a count, or the keys past a limit, come from
  // the index alone.
  std::vector<StoreReader::Ref> kept;
  reader.scan_refs(range, rev == current ? -1 : rev,
                   [&](const std::string&, const StoreReader::Ref& ref) {
                     ++count;
                     if (q.count_only) return;
                     if (!keep_all && static_cast<int64_t>(kept.size()) > q.limit) return;
                     kept.push_back(ref);
                   });
  resp->kvs = reader.load_all(kept);
  resp->count = count;
  if (q.count_only) return {};
  if (filtered) {
    std::erase_if(resp->kvs, [&](const KeyValue& kv) {
      return (q.max_mod_revision != 0 && kv.mod_revision > q.max_mod_revision) ||
             (q.min_mod_revision != 0 && kv.mod_revision < q.min_mod_revision) ||
             (q.max_create_revision != 0 && kv.create_revision > q.max_create_revision) ||
             (q.min_create_revision != 0 && kv.create_revision < q.min_create_revision);
    });
  }
  if (order != SortOrder::kNone) {
    auto less = [&](const KeyValue& a, const KeyValue& b) {
      switch (q.sort_target) {
        case SortTarget::kKey:
          return a.key < b.key;
        case SortTarget::kValue:
          return a.value < b.value;
        default:
          return sort_field(a, q.sort_target) < sort_field(b, q.sort_target);
      }
    };
    if (order == SortOrder::kAscend) {
      std::stable_sort(resp->kvs.begin(), resp->kvs.end(), less);
    } else {
      std::stable_sort(resp->kvs.begin(), resp->kvs.end(),
                       [&](const KeyValue& a, const KeyValue& b) { return less(b, a); });
    }
  }
  if (q.limit > 0 && static_cast<int64_t>(resp->kvs.size()) > q.limit) {
    resp->kvs.resize(static_cast<size_t>(q.limit));
    resp->more = true;
  }
  if (q.keys_only)
    for (KeyValue& kv : resp->kvs)
      kv.value.clear();
  return {};
}

}  // namespace

// One apply batch: every write goes into a WriteBatchWithIndex that later reads see, and the
// in-memory lease and session tables change with it.
class MvccStore::Txn {
 public:
  Txn(MvccStore* s, ApplyResult* result)
      : s_(s),
        batch_(rocksdb::BytewiseComparator(), 0, true),
        reader_(s->db_, &batch_, &s->index_),
        result_(result) {}

  Response apply(const Command& c) {
    Response r;
    if (c.log_time_ms > s_->log_time_ms_) s_->log_time_ms_ = c.log_time_ms;
    if (c.client_id != 0) {
      auto it = s_->sessions_.find(c.client_id);
      if (it == s_->sessions_.end() && c.sequence != 1) {
        r.error = error(Code::kFailedPrecondition, errors::kSessionExpired);
        return r;
      }
      if (it != s_->sessions_.end()) {
        if (c.sequence == it->second.last_sequence) return cached_response(c.client_id);
        if (c.sequence < it->second.last_sequence) {
          r.error = error(Code::kFailedPrecondition, errors::kStaleSequence);
          return r;
        }
      }
    }
    if (c.auth_revision != 0 && s_->auth_.enabled && c.auth_revision < s_->auth_.revision) {
      r.error = error(Code::kInvalidArgument, errors::kAuthOldRevision);
    } else {
      r = execute(c);
    }
    if (c.client_id != 0) remember(c, r);
    expire_sessions();
    return r;
  }

  // Whether an applied entry changed the auth state (then published after the commit).
  bool auth_changed() const { return auth_changed_; }

  Status commit(raft::Index index, raft::Term term) {
    std::string applied = u64_value(index) + u64_value(term);
    put(kMetaApplied, applied);
    put(kMetaRevision, u64_value(static_cast<uint64_t>(s_->revision_)));
    put(kMetaCompact, u64_value(static_cast<uint64_t>(s_->compact_revision_)));
    put(kMetaLogTime, u64_value(static_cast<uint64_t>(s_->log_time_ms_)));
    if (auth_changed_) put(kMetaAuth, encode_auth_state(s_->auth_));
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;
    return from_rocksdb(s_->db_->Write(wo, batch_.GetWriteBatch()), "write");
  }

 private:
  void put(const std::string& k, std::string_view v) { (void)batch_.Put(k, slice(v)); }
  void del(const std::string& k) { (void)batch_.Delete(k); }

  Response execute(const Command& c) {
    Response r;
    int64_t before = s_->revision_;
    rev_ = before + 1;
    sub_ = 0;
    std::visit(
        [&](const auto& op) {
          using T = std::decay_t<decltype(op)>;
          if constexpr (std::is_same_v<T, PutRequest>) {
            PutResponse p;
            r.error = check_put_request(op);
            if (r.error.ok()) r.error = check_put_state(op, /*in_txn=*/false);
            if (r.error.ok()) do_put(op, &p);
            r.op = p;
          } else if constexpr (std::is_same_v<T, DeleteRangeRequest>) {
            DeleteRangeResponse p;
            r.error = check_key(op.key);
            if (r.error.ok()) do_delete(op, &p);
            r.op = p;
          } else if constexpr (std::is_same_v<T, TxnRequest>) {
            TxnResponse p;
            r.error = do_txn(op, &p);
            r.op = p;
          } else if constexpr (std::is_same_v<T, CompactionRequest>) {
            CompactionResponse p;
            r.error = do_compact(op.revision);
            r.op = p;
          } else if constexpr (std::is_same_v<T, LeaseGrantRequest>) {
            LeaseGrantResponse p;
            r.error = do_grant(op, &p);
            r.op = p;
          } else if constexpr (std::is_same_v<T, LeaseRevokeRequest>) {
            LeaseRevokeResponse p;
            r.error = do_revoke(op.id);
            r.op = p;
          } else if constexpr (std::is_same_v<T, AuthRequest>) {
            AuthResponse p;
            AuthState next = s_->auth_;
            r.error = apply_auth(&next, op, &p);
            if (r.error.ok() && !(next == s_->auth_)) {
              s_->auth_ = std::move(next);
              auth_changed_ = true;
            }
            r.op = p;
          }
        },
        c.op);
    if (sub_ > 0) s_->revision_ = rev_;
    int64_t header = s_->revision_;
    std::visit(
        [&](auto& p) {
          using T = std::decay_t<decltype(p)>;
          if constexpr (!std::is_same_v<T, std::monostate> && !std::is_same_v<T, redis::Reply>)
            p.revision = header;
        },
        r.op);
    return r;
  }

  int64_t current_revision() const { return sub_ > 0 ? rev_ : rev_ - 1; }

  // etcd checks a request's shape before it reaches the log (v3rpc/key.go); there is no such
  // layer in front of the log here yet, so the state machine makes the same checks.
  static ApiError check_key(const std::string& key) {
    if (key.empty()) return error(Code::kInvalidArgument, errors::kEmptyKey);
    return {};
  }
  static ApiError check_put_request(const PutRequest& q) {
    if (q.key.empty()) return error(Code::kInvalidArgument, errors::kEmptyKey);
    if (q.ignore_value && !q.value.empty())
      return error(Code::kInvalidArgument, errors::kValueProvided);
    if (q.ignore_lease && q.lease != 0)
      return error(Code::kInvalidArgument, errors::kLeaseProvided);
    return {};
  }
  // The checks against the store. etcd's Put looks the lease up first; inside a txn its
  // checkRequestPut first wants the previous value. A client sees whichever error comes first.
  ApiError check_put_state(const PutRequest& q, bool in_txn) const {
    auto lease_error = [&]() -> ApiError {
      if (q.lease != 0 && !s_->leases_.contains(q.lease))
        return error(Code::kNotFound, errors::kLeaseNotFound);
      return {};
    };
    if (!in_txn) {
      ApiError e = lease_error();
      if (!e.ok()) return e;
    }
    if (q.ignore_value || q.ignore_lease) {
      auto entry = s_->index_.find(q.key);
      if (entry == s_->index_.end() || !entry->second.live())
        return error(Code::kInvalidArgument, errors::kKeyNotFound);
    }
    return in_txn ? lease_error() : ApiError{};
  }

  // Every change is one record at (rev_, sub_), the key's new version (or its tombstone), and
  // one more reference in the key index.
  void write_version(const KeyValue& kv, bool tombstone) {
    write_version(&s_->index_[kv.key], kv, tombstone);
  }
  void write_version(KeyEntry* entry, const KeyValue& kv, bool tombstone) {
    put(revision_key(rev_, sub_), revision_value(kv, tombstone));
    entry->add({rev_, static_cast<uint32_t>(sub_), tombstone}, kv);
    ++sub_;
  }

  void detach(int64_t lease, const std::string& key) {
    if (lease == 0) return;
    auto it = s_->leases_.find(lease);
    if (it != s_->leases_.end()) it->second.keys.erase(key);
    del(attach_key(lease, key));
  }
  void attach(int64_t lease, const std::string& key) {
    if (lease == 0) return;
    s_->leases_[lease].keys.insert(key);
    put(attach_key(lease, key), "");
  }

  // The key's live version comes from the index: its value is read only when the request
  // needs it (prev_kv, ignore_value). A watcher that wants it reads it later (prev_unread).
  void do_put(const PutRequest& q, PutResponse* resp) {
    // One lookup: the entry is found or made here and written through below. A key that is
    // not live has version, create revision and lease 0 in it.
    KeyEntry& entry = s_->index_.try_emplace(q.key).first->second;
    const bool existed = entry.live();
    std::optional<KeyValue> prev;
    if (existed && (q.prev_kv || q.ignore_value)) prev = reader_.load(entry.versions.back());
    const int64_t prev_lease = entry.lease;
    KeyValue kv;
    kv.key = q.key;
    kv.create_revision = existed ? entry.create_revision : rev_;
    kv.mod_revision = rev_;
    kv.version = entry.version + 1;
    kv.value = q.ignore_value ? prev->value : q.value;
    kv.lease = q.ignore_lease ? prev_lease : q.lease;
    write_version(&entry, kv, false);
    if (prev_lease != kv.lease) {
      detach(prev_lease, kv.key);
      attach(kv.lease, kv.key);
    }
    if (q.prev_kv) resp->prev_kv = prev;
    Event ev{Event::Type::kPut, std::move(kv), std::move(prev)};
    ev.prev_unread = existed && !ev.prev_kv;
    result_->events.push_back(std::move(ev));
  }

  void delete_keys(const std::vector<KeyValue>& victims) {
    for (const KeyValue& victim : victims) {
      KeyValue tomb;
      tomb.key = victim.key;
      tomb.mod_revision = rev_;
      write_version(tomb, true);
      detach(victim.lease, victim.key);
      result_->events.push_back({Event::Type::kDelete, std::move(tomb), victim});
    }
  }

  void do_delete(const DeleteRangeRequest& q, DeleteRangeResponse* resp) {
    std::vector<KeyValue> victims;
    reader_.scan(make_range(q.key, q.range_end), -1,
                 [&](KeyValue kv) { victims.push_back(std::move(kv)); });
    delete_keys(victims);
    resp->deleted = static_cast<int64_t>(victims.size());
    if (q.prev_kv) resp->prev_kvs = std::move(victims);
  }

  // ---- txn ----

  bool evaluate(const Compare& c) const {
    bool any = false;
    bool all = true;
    if (c.target == Compare::Target::kValue) {
      reader_.scan(make_range(c.key, c.range_end), -1, [&](const KeyValue& kv) {
        any = true;
        all = all && compare_kv(c, kv);
      });
    } else {
      // Versions, revisions and leases are in the index: nothing is read from disk.
      reader_.for_each_entry(make_range(c.key, c.range_end),
                             [&](const std::string& key, const KeyEntry& e) {
                               if (!e.live()) return;
                               KeyValue kv;
                               kv.key = key;
                               kv.create_revision = e.create_revision;
                               kv.mod_revision = e.versions.back().rev;
                               kv.version = e.version;
                               kv.lease = e.lease;
                               any = true;
                               all = all && compare_kv(c, kv);
                             });
    }
    if (!any) return c.target != Compare::Target::kValue && compare_kv(c, KeyValue{});
    return all;
  }

  // etcd's checkTxnRequest: no list longer than `max_ops`, and a nested txn gets only what
  // the longest list of its parent leaves of it; every key given, in both branches.
  static ApiError check_txn_request(const TxnRequest& t, int64_t max_ops, int depth) {
    if (depth > kMaxTxnDepth) return error(Code::kInvalidArgument, errors::kTooManyOps);
    auto opc =
        static_cast<int64_t>(std::max({t.compare.size(), t.success.size(), t.failure.size()}));
    if (opc > max_ops) return error(Code::kInvalidArgument, errors::kTooManyOps);
    for (const Compare& c : t.compare) {
      ApiError e = check_key(c.key);
      if (!e.ok()) return e;
    }
    for (const auto* ops : {&t.success, &t.failure}) {
      for (const RequestOp& op : *ops) {
        ApiError e;
        if (auto* range_q = std::get_if<RangeRequest>(&op.op)) {
          e = check_key(range_q->key);
        } else if (auto* put_q = std::get_if<PutRequest>(&op.op)) {
          e = check_put_request(*put_q);
        } else if (auto* del_q = std::get_if<DeleteRangeRequest>(&op.op)) {
          e = check_key(del_q->key);
        } else if (auto* txn_q = std::get_if<std::shared_ptr<TxnRequest>>(&op.op)) {
          e = check_txn_request(**txn_q, max_ops - opc, depth + 1);
        }
        if (!e.ok()) return e;
      }
    }
    return {};
  }

  // etcd's rule for the writes of one branch: a key is put at most once and never inside a
  // deleted range, counting nested txns; a key put in both branches of a nested txn is fine,
  // as only one of them runs.
  static bool overlaps(const std::vector<KeyRange>& dels, const std::string& key) {
    return std::any_of(dels.begin(), dels.end(),
                       [&](const KeyRange& d) { return d.contains(key); });
  }
  static bool check_intervals(const std::vector<RequestOp>& ops, std::set<std::string>* puts,
                              std::vector<KeyRange>* dels) {
    for (const RequestOp& op : ops)
      if (auto* d = std::get_if<DeleteRangeRequest>(&op.op))
        dels->push_back(make_range(d->key, d->range_end));
    for (const RequestOp& op : ops) {
      auto* t = std::get_if<std::shared_ptr<TxnRequest>>(&op.op);
      if (t == nullptr) continue;
      std::set<std::string> puts_then, puts_else;
      std::vector<KeyRange> dels_then, dels_else;
      if (!check_intervals((*t)->success, &puts_then, &dels_then) ||
          !check_intervals((*t)->failure, &puts_else, &dels_else))
        return false;
      for (const std::string& k : puts_then) {
        if (puts->contains(k) || overlaps(*dels, k)) return false;
        puts->insert(k);
      }
      for (const std::string& k : puts_else) {
        if (puts->contains(k) && !puts_then.contains(k)) return false;
        if (overlaps(*dels, k)) return false;
        puts->insert(k);
      }
      dels->insert(dels->end(), dels_then.begin(), dels_then.end());
      dels->insert(dels->end(), dels_else.begin(), dels_else.end());
    }
    for (const RequestOp& op : ops) {
      auto* p = std::get_if<PutRequest>(&op.op);
      if (p == nullptr) continue;
      if (puts->contains(p->key) || overlaps(*dels, p->key)) return false;
      puts->insert(p->key);
    }
    return true;
  }

  // Chooses each txn's branch against the state before the txn, as etcd does.
  struct Plan {
    bool succeeded = false;
    std::vector<Plan> nested;  // one per nested txn on the chosen branch, in order
  };
  void choose(const TxnRequest& t, Plan* p) const {
    p->succeeded = std::all_of(t.compare.begin(), t.compare.end(),
                               [&](const Compare& c) { return evaluate(c); });
    for (const RequestOp& op : p->succeeded ? t.success : t.failure) {
      if (auto* txn_q = std::get_if<std::shared_ptr<TxnRequest>>(&op.op)) {
        p->nested.emplace_back();
        choose(**txn_q, &p->nested.back());
      }
    }
  }
  // Calls `fn` with every operation but nested txns on the chosen path, in order.
  template <typename Fn>
  static ApiError for_each_chosen(const TxnRequest& t, const Plan& p, Fn&& fn) {
    size_t nested = 0;
    for (const RequestOp& op : p.succeeded ? t.success : t.failure) {
      ApiError e;
      if (auto* txn_q = std::get_if<std::shared_ptr<TxnRequest>>(&op.op)) {
        e = for_each_chosen(**txn_q, p.nested[nested++], fn);
      } else {
        e = fn(op);
      }
      if (!e.ok()) return e;
    }
    return {};
  }
  // Checks the chosen operations before anything is written, so a failing txn changes nothing:
  // as etcd's checkRequests, every put on the path first, then every range.
  ApiError check_chosen(const TxnRequest& t, const Plan& p) const {
    ApiError e = for_each_chosen(t, p, [&](const RequestOp& op) -> ApiError {
      if (auto* put_q = std::get_if<PutRequest>(&op.op))
        return check_put_state(*put_q, /*in_txn=*/true);
      return {};
    });
    if (!e.ok()) return e;
    return for_each_chosen(t, p, [&](const RequestOp& op) -> ApiError {
      auto* range_q = std::get_if<RangeRequest>(&op.op);
      if (range_q == nullptr || range_q->revision == 0) return {};
      if (range_q->revision > current_revision())
        return error(Code::kOutOfRange, errors::kFutureRev);
      if (range_q->revision > 0 && range_q->revision < s_->compact_revision_)
        return error(Code::kOutOfRange, errors::kCompacted);
      return {};
    });
  }

  void run(const TxnRequest& t, const Plan& p, TxnResponse* resp) {
    resp->succeeded = p.succeeded;
    size_t nested = 0;
    for (const RequestOp& op : p.succeeded ? t.success : t.failure) {
      ResponseOp out;
      if (auto* range_q = std::get_if<RangeRequest>(&op.op)) {
        RangeResponse rr;
        (void)do_range(reader_, current_revision(), s_->compact_revision_, *range_q, &rr);
        out.op = std::move(rr);
      } else if (auto* put_q = std::get_if<PutRequest>(&op.op)) {
        PutResponse pr;
        do_put(*put_q, &pr);
        pr.revision = current_revision();
        out.op = std::move(pr);
      } else if (auto* del_q = std::get_if<DeleteRangeRequest>(&op.op)) {
        DeleteRangeResponse dr;
        do_delete(*del_q, &dr);
        dr.revision = current_revision();
        out.op = std::move(dr);
      } else if (auto* txn_q = std::get_if<std::shared_ptr<TxnRequest>>(&op.op)) {
        // etcd leaves a nested txn's own header empty (revision 0).
        auto sub = std::make_shared<TxnResponse>();
        run(**txn_q, p.nested[nested++], sub.get());
        out.op = std::move(sub);
      }
      resp->responses.push_back(std::move(out));
    }
  }

  // As etcd's applyTxn, each response inside a txn carries the revision its operation saw or
  // made: a range the revision it read, a write the txn's revision once the txn has changed
  // anything. The txn's own header (set by execute()) carries its final revision.
  ApiError do_txn(const TxnRequest& t, TxnResponse* resp) {
    ApiError e = check_txn_request(t, s_->options_.max_txn_ops, 0);
    if (!e.ok()) return e;
    // After the shape checks, as etcd, whose duplicate check is quadratic in the operations.
    for (const auto* ops : {&t.success, &t.failure}) {
      std::set<std::string> puts;
      std::vector<KeyRange> dels;
      if (!check_intervals(*ops, &puts, &dels))
        return error(Code::kInvalidArgument, errors::kDuplicateKey);
    }
    Plan p;
    choose(t, &p);
    e = check_chosen(t, p);
    if (!e.ok()) return e;
    run(t, p, resp);
    return {};
  }

  // ---- compaction ----

  ApiError do_compact(int64_t rev) {
    if (rev <= s_->compact_revision_) return error(Code::kOutOfRange, errors::kCompacted);
    if (rev > s_->revision_) return error(Code::kOutOfRange, errors::kFutureRev);
    // The previous versions that this batch's events left unread may be about to go.
    for (Event& e : result_->events) {
      if (!e.prev_unread) continue;
      e.prev_kv = reader_.at(e.kv.key, e.kv.mod_revision - 1);
      e.prev_unread = false;
    }
    // Keep, for each key, the newest version at or below `rev` unless it is a tombstone from
    // before `rev` (a tombstone at `rev` stays: the event feed starts there), and every later
    // version; drop the rest, records and references.
    for (auto it = s_->index_.begin(); it != s_->index_.end();) {
      std::vector<VersionRef>& versions = it->second.versions;
      auto later = std::upper_bound(versions.begin(), versions.end(), rev,
                                    [](int64_t r, const VersionRef& v) { return r < v.rev; });
      if (later == versions.begin()) {
        ++it;
        continue;
      }
      auto keep = later - 1;
      if (keep->tombstone && keep->rev < rev) ++keep;
      // Nothing at `rev` itself goes: a txn may write a key twice at one revision (a put and a
      // delete in sibling nested txns), and the feed from `rev` must keep both.
      auto at_rev = std::lower_bound(versions.begin(), versions.end(), rev,
                                     [](const VersionRef& v, int64_t r) { return v.rev < r; });
      keep = std::min(keep, at_rev);
      for (auto v = versions.begin(); v != keep; ++v)
        del(revision_key(v->rev, v->sub));
      versions.erase(versions.begin(), keep);
      it = versions.empty() ? s_->index_.erase(it) : std::next(it);
    }
    s_->compact_revision_ = rev;
    return {};
  }

  // ---- leases ----

  ApiError do_grant(const LeaseGrantRequest& q, LeaseGrantResponse* resp) {
    if (q.id <= 0) return error(Code::kInvalidArgument, "chorus: lease id must be positive");
    if (q.ttl > kMaxLeaseTTLSeconds) return error(Code::kOutOfRange, errors::kLeaseTTLTooLarge);
    if (s_->leases_.contains(q.id)) return error(Code::kFailedPrecondition, errors::kLeaseExist);
    // As etcd's lessor: a shorter TTL is raised, not refused, and the answer says so.
    int64_t ttl = std::max(q.ttl, s_->options_.min_lease_ttl_seconds);
    s_->leases_[q.id].ttl = ttl;
    put(lease_key(q.id), u64_value(static_cast<uint64_t>(ttl)));
    resp->id = q.id;
    resp->ttl = ttl;
    return {};
  }

  ApiError do_revoke(int64_t id) {
    auto it = s_->leases_.find(id);
    if (it == s_->leases_.end()) return error(Code::kNotFound, errors::kLeaseNotFound);
    std::vector<KeyValue> victims;
    for (const std::string& key : it->second.keys) {
      if (auto kv = reader_.current(key)) victims.push_back(std::move(*kv));
    }
    delete_keys(victims);
    for (const KeyValue& kv : victims)
      del(attach_key(id, kv.key));
    s_->leases_.erase(id);
    del(lease_key(id));
    return {};
  }

  // ---- sessions ----

  Response cached_response(uint64_t client) const {
    std::string v;
    Response r;
    if (!reader_.get(session_key(client), &v) || v.size() < 16) {
      r.error = error(Code::kInternal, "chorus: session record missing");
      return r;
    }
    auto decoded = decode_response(std::string_view(v).substr(16));
    if (!decoded) {
      r.error = error(Code::kInternal, "chorus: session record damaged");
      return r;
    }
    return *decoded;
  }

  void remember(const Command& c, const Response& r) {
    auto& session = s_->sessions_[c.client_id];
    s_->session_expiry_.erase({session.last_active_ms, c.client_id});
    session.last_sequence = c.sequence;
    session.last_active_ms = s_->log_time_ms_;
    s_->session_expiry_.insert({session.last_active_ms, c.client_id});
    std::string v = u64_value(c.sequence) + u64_value(static_cast<uint64_t>(s_->log_time_ms_));
    v += encode_response(r);
    put(session_key(c.client_id), v);
  }

  void expire_sessions() {
    int64_t cutoff = s_->log_time_ms_ - s_->options_.session_expiry_ms;
    while (!s_->session_expiry_.empty() && s_->session_expiry_.begin()->first < cutoff) {
      uint64_t client = s_->session_expiry_.begin()->second;
      s_->session_expiry_.erase(s_->session_expiry_.begin());
      s_->sessions_.erase(client);
      del(session_key(client));
    }
  }

  MvccStore* s_;
  rocksdb::WriteBatchWithIndex batch_;
  StoreReader reader_;
  ApplyResult* result_;
  int64_t rev_ = 0;
  int64_t sub_ = 0;
  bool auth_changed_ = false;
};

MvccStore::MvccStore(rocksdb::DB* db, const MvccOptions& options) : db_(db), options_(options) {}

MvccStore::~MvccStore() {
  // With RocksDB's WAL off, closing flushes the memtables; a crash instead is covered by
  // replaying the Raft log after applied_index().
  delete db_;
}

Status MvccStore::open(const std::string& dir, const MvccOptions& options,
                       std::unique_ptr<MvccStore>* out) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.avoid_flush_during_shutdown = false;
  rocksdb::DB* db = nullptr;
  CHORUS_RETURN_IF_ERROR(from_rocksdb(rocksdb::DB::Open(o, dir, &db), "open"));
  std::unique_ptr<MvccStore> s(new MvccStore(db, options));
  CHORUS_RETURN_IF_ERROR(s->load());
  *out = std::move(s);
  return Status::ok();
}

Status MvccStore::install(storage::SnapshotReceiver* receiver, const std::string& dir) {
  std::unique_lock lock(mu_);
  if (!receiver->complete()) return Status::invalid_argument("snapshot transfer is not complete");
  delete db_;
  db_ = nullptr;
  CHORUS_RETURN_IF_ERROR(receiver->finish());
  rocksdb::Options o;
  o.create_if_missing = false;
  o.avoid_flush_during_shutdown = false;
  CHORUS_RETURN_IF_ERROR(from_rocksdb(rocksdb::DB::Open(o, dir, &db_), "open"));
  return load();
}

// Reads the store's state from RocksDB into memory, replacing whatever was there.
Status MvccStore::load() {
  leases_.clear();
  sessions_.clear();
  session_expiry_.clear();
  index_.clear();
  std::string v;
  auto read_u64 = [&](const std::string& key, size_t at, uint64_t* out) -> Status {
    rocksdb::Status st = db_->Get({}, key, &v);
    if (st.IsNotFound()) return Status::ok();
    CHORUS_RETURN_IF_ERROR(from_rocksdb(st, "read"));
    if (v.size() < at + 8) return Status::corruption("kv: malformed " + key.substr(1));
    *out = base::load_u64(v.data() + at);
    return Status::ok();
  };
  uint64_t index = 0, term = 0, rev = 1, compact = 0, log_time = 0;
  CHORUS_RETURN_IF_ERROR(read_u64(kMetaApplied, 0, &index));
  CHORUS_RETURN_IF_ERROR(read_u64(kMetaApplied, 8, &term));
  CHORUS_RETURN_IF_ERROR(read_u64(kMetaRevision, 0, &rev));
  CHORUS_RETURN_IF_ERROR(read_u64(kMetaCompact, 0, &compact));
  CHORUS_RETURN_IF_ERROR(read_u64(kMetaLogTime, 0, &log_time));
  applied_index_ = index;
  applied_term_ = term;
  revision_ = static_cast<int64_t>(rev);
  {
    rocksdb::Status st = db_->Get({}, kMetaAuth, &v);
    if (st.IsNotFound()) {
      auth_ = AuthState{};
    } else {
      CHORUS_RETURN_IF_ERROR(from_rocksdb(st, "read"));
      std::optional<AuthState> a = decode_auth_state(v);
      if (!a) return Status::corruption("kv: malformed auth record");
      auth_ = std::move(*a);
    }
    publish_auth();
  }
  compact_revision_ = static_cast<int64_t>(compact);
  log_time_ms_ = static_cast<int64_t>(log_time);

  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}));
  for (it->Seek(std::string(1, kLease)); it->Valid() && it->key()[0] == kLease; it->Next()) {
    if (it->key().size() != 9 || it->value().size() != 8)
      return Status::corruption("kv: malformed lease record");
    auto id = static_cast<int64_t>(base::load_u64_be(it->key().data() + 1));
    leases_[id].ttl = static_cast<int64_t>(base::load_u64(it->value().data()));
  }
  for (it->Seek(std::string(1, kAttach)); it->Valid() && it->key()[0] == kAttach; it->Next()) {
    if (it->key().size() < 9) return Status::corruption("kv: malformed lease attachment");
    auto id = static_cast<int64_t>(base::load_u64_be(it->key().data() + 1));
    leases_[id].keys.insert(std::string(it->key().data() + 9, it->key().size() - 9));
  }
  for (it->Seek(std::string(1, kSession)); it->Valid() && it->key()[0] == kSession; it->Next()) {
    if (it->key().size() != 9 || it->value().size() < 16)
      return Status::corruption("kv: malformed session record");
    uint64_t client = base::load_u64_be(it->key().data() + 1);
    Session s{base::load_u64(it->value().data()),
              static_cast<int64_t>(base::load_u64(it->value().data() + 8))};
    sessions_[client] = s;
    session_expiry_.insert({s.last_active_ms, client});
  }
  CHORUS_RETURN_IF_ERROR(from_rocksdb(it->status(), "scan"));
  CHORUS_RETURN_IF_ERROR(check_format(it.get()));
  it.reset(db_->NewIterator({}));  // after an upgrade, the records it wrote
  // The key index, rebuilt from the revision records (they are in revision order, so each
  // key's references come out oldest first).
  KeyValue kv;
  for (it->Seek(std::string(1, kRevision)); it->Valid() && it->key()[0] == kRevision; it->Next()) {
    int64_t r = 0, sub = 0;
    bool tombstone = false;
    if (!parse_revision_key(view(it->key()), &r, &sub) ||
        !parse_revision_value(view(it->value()), &kv, &tombstone) || r <= 0 || sub < 0 ||
        sub > UINT32_MAX)
      return Status::corruption("kv: malformed revision record");
    index_[kv.key].add({r, static_cast<uint32_t>(sub), tombstone}, kv);
  }
  return from_rocksdb(it->status(), "scan");
}

// A store carries its layout's number; one without it is either new (and gets it) or from the
// first layout, which this store cannot read: it says so rather than serve an empty store.
Status MvccStore::check_format(rocksdb::Iterator* it) {
  std::string v;
  rocksdb::Status st = db_->Get({}, kMetaFormat, &v);
  if (st.ok()) {
    if (v.size() != 8 || base::load_u64(v.data()) != kFormat)
      return Status::invalid_argument("kv: the store's layout is not one this version reads");
    return Status::ok();
  }
  if (!st.IsNotFound()) return from_rocksdb(st, "read");
  for (char kind : {kOldCurrent, kOldHistory, kOldEvent}) {
    it->Seek(std::string(1, kind));
    CHORUS_RETURN_IF_ERROR(from_rocksdb(it->status(), "scan"));
    if (it->Valid() && it->key()[0] == kind) return upgrade_first_layout();
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return from_rocksdb(db_->Put(wo, kMetaFormat, slice(u64_value(kFormat))), "write");
}

// Rewrites a store of the first layout in place. Its version records, h<escaped key>\0\1
// <rev><sub>, hold exactly what a revision record holds (flag and KeyValue), so each becomes
// r<rev><sub>; the current-version and event records, which the key index and the revision
// records replace, go. Chunk by chunk, each one durable batch that adds the new records and
// drops the old ones, so a crash part-way resumes where it stopped on the next open.
Status MvccStore::upgrade_first_layout() {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  constexpr size_t kChunk = 4096;
  // Each chunk starts after the last key of the one before: seeking from the start each time
  // would step over every deletion the earlier chunks left.
  std::string from(1, kOldHistory);
  for (;;) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}));
    rocksdb::WriteBatch batch;
    size_t n = 0;
    for (it->Seek(from); it->Valid() && it->key()[0] == kOldHistory && n < kChunk;
         it->Next(), ++n) {
      std::string_view k = view(it->key());
      KeyValue kv;
      bool tombstone = false;
      if (k.size() < 1 + 2 + 16 || k[k.size() - 18] != '\0' || k[k.size() - 17] != '\1' ||
          !parse_revision_value(view(it->value()), &kv, &tombstone))
        return Status::corruption("kv: malformed version record in a store of the first layout");
      auto rev = static_cast<int64_t>(base::load_u64_be(k.data() + k.size() - 16));
      auto sub = static_cast<int64_t>(base::load_u64_be(k.data() + k.size() - 8));
      (void)batch.Put(revision_key(rev, sub), it->value());
      (void)batch.Delete(it->key());
      from = it->key().ToString();
      from.push_back('\0');  // the smallest key after it
    }
    CHORUS_RETURN_IF_ERROR(from_rocksdb(it->status(), "scan"));
    if (n == 0) break;
    CHORUS_RETURN_IF_ERROR(from_rocksdb(db_->Write(wo, &batch), "upgrade"));
  }
  rocksdb::WriteBatch rest;
  // The first layout's compaction dropped a tombstone at exactly the compacted revision but
  // kept its event, so a watch from there still saw the delete: such a delete becomes its
  // tombstone record here.
  {
    std::string v;
    uint64_t compact = 0;
    rocksdb::Status st = db_->Get({}, kMetaCompact, &v);
    if (st.ok() && v.size() >= 8) compact = base::load_u64(v.data());
    if (!st.ok() && !st.IsNotFound()) return from_rocksdb(st, "read");
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}));
    std::string start(1, kOldEvent);
    base::put_u64_be(&start, compact);
    for (it->Seek(start); it->Valid() && it->key()[0] == kOldEvent; it->Next()) {
      std::string_view ev = view(it->value());
      int64_t rev = 0, sub = 0;
      if (!parse_revision_key(view(it->key()), &rev, &sub, kOldEvent) || ev.empty())
        return Status::corruption("kv: malformed event record");
      if (ev[0] != 1) continue;
      std::string existing;
      st = db_->Get({}, revision_key(rev, sub), &existing);
      if (st.ok()) continue;
      if (!st.IsNotFound()) return from_rocksdb(st, "read");
      KeyValue tomb;
      tomb.key = std::string(ev.substr(1));
      tomb.mod_revision = rev;
      (void)rest.Put(revision_key(rev, sub), revision_value(tomb, true));
    }
    CHORUS_RETURN_IF_ERROR(from_rocksdb(it->status(), "scan"));
  }
  for (char kind : {kOldCurrent, kOldEvent}) {
    (void)rest.DeleteRange(std::string(1, kind), std::string(1, static_cast<char>(kind + 1)));
  }
  (void)rest.Put(kMetaFormat, slice(u64_value(kFormat)));
  CHORUS_RETURN_IF_ERROR(from_rocksdb(db_->Write(wo, &rest), "upgrade"));
  std::fprintf(stderr, "kv: upgraded the store to layout %llu (one record per revision)\n",
               static_cast<unsigned long long>(kFormat));
  return Status::ok();
}

Status MvccStore::apply(const std::vector<AppliedEntry>& entries, ApplyResult* result) {
  std::unique_lock lock(mu_);
  result->responses.clear();
  result->events.clear();
  // A gap is found before anything is applied: applying changes the revision, leases and
  // sessions in memory at once, and those must not run ahead of a batch that is not written.
  raft::Index last = applied_index_;
  for (const AppliedEntry& e : entries) {
    if (e.index <= last) continue;
    if (e.index != last + 1)
      return Status::invalid_argument("kv: entry " + std::to_string(e.index) + " applied after " +
                                      std::to_string(last));
    last = e.index;
  }
  Txn txn(this, result);
  last = applied_index_;
  raft::Term last_term = applied_term_;
  for (const AppliedEntry& e : entries) {
    if (e.index <= last) continue;
    last = e.index;
    last_term = e.term;
    if (e.data.empty()) {
      result->responses.emplace_back();
      continue;
    }
    std::optional<Command> c = decode_command(e.data);
    if (!c) {
      // Every replica sees the same bytes and gives the same answer.
      Response r;
      r.error = error(Code::kInternal, "chorus: malformed command in the log");
      result->responses.push_back(std::move(r));
      continue;
    }
    result->responses.push_back(txn.apply(*c));
  }
  if (last == applied_index_) return Status::ok();
  Status written = txn.commit(last, last_term);
  if (!written.is_ok()) {
    // The batch changed the key index, leases, sessions and revision in memory, and none of it
    // reached the disk: go back to what is there, so the reads served until the node stops
    // see the last batch written, never versions that have no record.
    Status reloaded = load();
    if (!reloaded.is_ok()) {
      std::fprintf(stderr, "kv: the store cannot be read back after a failed write: %s\n",
                   reloaded.to_string().c_str());
      std::abort();
    }
    return written;
  }
  applied_index_ = last;
  applied_term_ = last_term;
  if (txn.auth_changed()) publish_auth();
  return Status::ok();
}

void MvccStore::publish_auth() {
  auto copy = std::make_shared<const AuthState>(auth_);
  {
    std::lock_guard<std::mutex> lk(auth_mu_);
    auth_published_ = std::move(copy);
  }
  auth_word_.store(auth_.revision << 1 | (auth_.enabled ? 1 : 0));
}

MvccStore::AuthSummary MvccStore::auth_summary() const {
  uint64_t w = auth_word_.load();
  return AuthSummary{(w & 1) != 0, w >> 1};
}

std::shared_ptr<const AuthState> MvccStore::auth_state() const {
  std::lock_guard<std::mutex> lk(auth_mu_);
  return auth_published_;
}

raft::Index MvccStore::applied_index() const {
  std::shared_lock lock(mu_);
  return applied_index_;
}
raft::Term MvccStore::applied_term() const {
  std::shared_lock lock(mu_);
  return applied_term_;
}
int64_t MvccStore::revision() const {
  std::shared_lock lock(mu_);
  return revision_;
}
int64_t MvccStore::compact_revision() const {
  std::shared_lock lock(mu_);
  return compact_revision_;
}
bool MvccStore::lease_exists(int64_t id) const {
  std::shared_lock lock(mu_);
  return leases_.contains(id);
}
size_t MvccStore::session_count() const {
  std::shared_lock lock(mu_);
  return sessions_.size();
}

ApiError MvccStore::range(const RangeRequest& request, RangeResponse* response) const {
  if (request.key.empty()) return error(Code::kInvalidArgument, errors::kEmptyKey);
  std::shared_lock lock(mu_);
  StoreReader reader(db_, nullptr, &index_);
  return do_range(reader, revision_, compact_revision_, request, response);
}

ApiError MvccStore::events(int64_t from, size_t max_events, std::vector<Event>* out,
                           size_t max_bytes, bool* stopped_early) const {
  std::shared_lock lock(mu_);
  if (stopped_early != nullptr) *stopped_early = false;
  if (from < compact_revision_) return error(Code::kOutOfRange, errors::kCompacted);
  StoreReader reader(db_, nullptr, &index_);
  auto it = reader.iterate();
  int64_t last_rev = -1;
  size_t bytes = 0;
  for (it->Seek(slice(revision_key(std::max<int64_t>(from, 0), 0))); it->Valid(); it->Next()) {
    if (it->key()[0] != kRevision) break;
    int64_t rev = 0, sub = 0;
    if (!parse_revision_key(view(it->key()), &rev, &sub))
      return error(Code::kInternal, "chorus: damaged revision record");
    bool full =
        (max_events != 0 && out->size() >= max_events) || (max_bytes != 0 && bytes >= max_bytes);
    if (full && rev != last_rev) {
      if (stopped_early != nullptr) *stopped_early = true;
      break;
    }
    last_rev = rev;
    Event ev;
    bool tombstone = false;
    if (!parse_revision_value(view(it->value()), &ev.kv, &tombstone))
      return error(Code::kInternal, "chorus: damaged revision record");
    ev.type = tombstone ? Event::Type::kDelete : Event::Type::kPut;
    // As etcd's prev_kv: the key's version live before the event's revision.
    ev.prev_kv = reader.at(ev.kv.key, rev - 1);
    bytes += event_bytes(ev);
    out->push_back(std::move(ev));
  }
  return {};
}

std::optional<KeyValue> MvccStore::version_before(std::string_view key, int64_t rev) const {
  std::shared_lock lock(mu_);
  if (rev - 1 < compact_revision_) return std::nullopt;
  StoreReader reader(db_, nullptr, &index_);
  return reader.at(key, rev - 1);
}

std::vector<std::string> MvccStore::lease_keys(int64_t id) const {
  std::shared_lock lock(mu_);
  auto it = leases_.find(id);
  if (it == leases_.end()) return {};
  return {it->second.keys.begin(), it->second.keys.end()};
}

std::vector<LeaseInfo> MvccStore::leases() const {
  std::shared_lock lock(mu_);
  std::vector<LeaseInfo> out;
  for (const auto& [id, l] : leases_)
    out.push_back({id, l.ttl, {l.keys.begin(), l.keys.end()}});
  return out;
}

Status MvccStore::restart_log() {
  std::unique_lock lock(mu_);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  Status st =
      from_rocksdb(db_->Put(wo, kMetaApplied, slice(u64_value(0) + u64_value(0))), "restart log");
  if (!st.is_ok()) return st;
  applied_index_ = 0;
  applied_term_ = 0;
  return from_rocksdb(db_->Flush({}), "flush");
}

Status MvccStore::flush() {
  return from_rocksdb(db_->Flush({}), "flush");
}

uint64_t MvccStore::size_bytes() const {
  uint64_t sst = 0, mem = 0;
  db_->GetIntProperty("rocksdb.total-sst-files-size", &sst);
  db_->GetIntProperty("rocksdb.cur-size-all-mem-tables", &mem);
  return sst + mem;
}

Status MvccStore::defragment() {
  rocksdb::CompactRangeOptions o;
  o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  return from_rocksdb(db_->CompactRange(o, nullptr, nullptr), "defragment");
}

ApiError MvccStore::hash_kv(int64_t revision, uint32_t* hash, int64_t* hashed_revision) const {
  RangeRequest all;
  all.key = std::string(1, '\0');
  all.range_end = std::string(1, '\0');
  all.revision = revision;
  RangeResponse r;
  ApiError err = range(all, &r);
  if (!err.ok()) return err;
  uint32_t crc = 0;
  std::string buf;
  for (const KeyValue& kv : r.kvs) {
    buf.clear();
    base::put_bytes(&buf, kv.key);
    base::put_bytes(&buf, kv.value);
    base::put_u64(&buf, static_cast<uint64_t>(kv.create_revision));
    base::put_u64(&buf, static_cast<uint64_t>(kv.mod_revision));
    base::put_u64(&buf, static_cast<uint64_t>(kv.version));
    base::put_u64(&buf, static_cast<uint64_t>(kv.lease));
    crc = storage::crc32c_extend(crc, buf.data(), buf.size());
  }
  *hash = crc;
  *hashed_revision = revision != 0 ? revision : r.revision;
  return {};
}

Status MvccStore::checkpoint(const std::string& dir) {
  rocksdb::Checkpoint* cp = nullptr;
  CHORUS_RETURN_IF_ERROR(from_rocksdb(rocksdb::Checkpoint::Create(db_, &cp), "checkpoint"));
  std::unique_ptr<rocksdb::Checkpoint> owner(cp);
  // A log size of 0 forces a flush, so the copy holds everything applied so far.
  return from_rocksdb(cp->CreateCheckpoint(dir, 0), "checkpoint");
}

}  // namespace chorus::kv
