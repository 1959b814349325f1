// The etcd v3 data model on RocksDB: a multi-version key-value store with a revision counter,
// leases and a watch event feed, driven by committed Raft entries.
//
// Layout (one column family, one prefix byte per kind of record):
//   r<rev><sub>                    every version not yet compacted, keyed by the revision that
//                                  wrote it (tombstones for deletes); in order, it is also the
//                                  event feed
//   l<lease>  a<lease><key>        leases and the keys attached to them
//   s<client>                      client sessions: last sequence and cached response
//   m<name>                        applied index and term, revision, compaction, log time, the
//                                  layout's number, and the auth state (users, roles; auth.h)
// Revisions are big-endian so RocksDB's byte order is revision order: a change appends one
// record at the end of the key space. Which version of a key is live at a revision comes from
// an index in memory (every key's revisions, as etcd's treeIndex), rebuilt from the records
// when the store opens, so a write reads nothing to find its key's current version.
//
// Threads: apply() from one thread; reads from any.
//
// apply() writes a batch of committed entries as one RocksDB WriteBatch that also records the
// applied index, so the state on disk always matches exactly a prefix of the log. RocksDB's own
// WAL is off: the Raft log is the source of truth, and after a crash the node replays entries
// after applied_index(). Log entries may therefore only be compacted up to an index RocksDB has
// flushed, which checkpoint() guarantees.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kv/types.h"
#include "raft/types.h"
#include "storage/status.h"

namespace rocksdb {
class DB;
class Iterator;
}  // namespace rocksdb
namespace chorus::storage {
class SnapshotReceiver;
}

namespace chorus::kv {

struct MvccOptions {
  // etcd's --max-txn-ops: operations per list in a txn.
  int64_t max_txn_ops = 128;
  // A client session with no request for this long, in log time, is forgotten.
  int64_t session_expiry_ms = 3'600'000;
  // A lease granted with a shorter TTL gets this one, as in etcd, whose minimum is 1.5
  // election timeouts rounded up to a second: 2 with its default timing. It must exceed the
  // time a new leader needs to take over the leases, or they would expire across a failover.
  int64_t min_lease_ttl_seconds = 2;
};

struct AppliedEntry {
  raft::Index index = 0;
  raft::Term term = 0;
  std::string_view data;  // an encoded Command; empty for entries with nothing to apply
};

struct LeaseInfo {
  int64_t id = 0;
  int64_t ttl = 0;
  std::vector<std::string> keys;
};

class MvccStore {
 public:
  static storage::Status open(const std::string& dir, const MvccOptions& options,
                              std::unique_ptr<MvccStore>* out);
  ~MvccStore();
  MvccStore(const MvccStore&) = delete;
  MvccStore& operator=(const MvccStore&) = delete;

  struct ApplyResult {
    // One per entry applied, in order; entries at or below applied_index() get none.
    std::vector<Response> responses;
    // Every change, in revision order, with prev_kv when a request asked for it (otherwise a
    // put over a live version says so with prev_unread).
    std::vector<Event> events;
  };
  // Applies committed entries in log order, atomically with the new applied index. Entries at
  // or below applied_index() are skipped (a replay after a restart). A failure here is a
  // storage failure: the node must stop.
  storage::Status apply(const std::vector<AppliedEntry>& entries, ApplyResult* result);

  raft::Index applied_index() const;
  raft::Term applied_term() const;
  int64_t revision() const;
  int64_t compact_revision() const;

  // A read at the current state (the caller makes it linearizable by waiting for a read index).
  ApiError range(const RangeRequest& request, RangeResponse* response) const;
  // Changes with revision >= `from`, in order, whole revisions only, stopping after at least
  // `max_events` or `max_bytes` of keys and values (0: no limit); *stopped_early (if given)
  // tells whether it stopped on a limit before the end. Fails with etcd's error if `from` was
  // compacted.
  ApiError events(int64_t from, size_t max_events, std::vector<Event>* out, size_t max_bytes = 0,
                  bool* stopped_early = nullptr) const;
  // The version of `key` live just before revision `rev` (an event's prev_kv), if any and not
  // compacted.
  std::optional<KeyValue> version_before(std::string_view key, int64_t rev) const;

  std::vector<LeaseInfo> leases() const;
  bool lease_exists(int64_t id) const;
  std::vector<std::string> lease_keys(int64_t id) const;  // empty for an unknown lease

  // The auth state as last applied: whether auth is on and its revision, read in one step (for
  // every request), and the whole state (users, roles) for checks when it is on.
  struct AuthSummary {
    bool enabled = false;
    uint64_t revision = 1;
  };
  AuthSummary auth_summary() const;
  std::shared_ptr<const AuthState> auth_state() const;
  size_t session_count() const;

  // Writes a consistent copy of the store (memtables flushed) into `dir`, which must not exist.
  storage::Status checkpoint(const std::string& dir);
  // Replaces the whole store, in place, with the completed transfer in `receiver`, installed as
  // `dir` (this store's directory): readers wait on the lock and then see the new state. On
  // failure the store is unusable and the node must stop.
  storage::Status install(storage::SnapshotReceiver* receiver, const std::string& dir);
  // Bytes the store occupies on disk plus its memtables (etcd's db size, for the quota).
  uint64_t size_bytes() const;
  // Rewrites the store's files to reclaim the space of compacted history (etcd's Defragment).
  storage::Status defragment();
  // A CRC32C of every key's current version at `revision` (0: now) -- key, value, create and
  // mod revision, version and lease, in key order -- so replicas can be compared (etcd's
  // HashKV). Fails with etcd's errors for a compacted or future revision.
  ApiError hash_kv(int64_t revision, uint32_t* hash, int64_t* hashed_revision) const;
  storage::Status flush();
  // Forgets the log position (applied index and term back to 0) and keeps everything else:
  // keys, revisions, leases. A store restored from a backup then starts a new cluster's log,
  // whose first entries it applies on top of what it holds. Durable when it returns.
  storage::Status restart_log();

  struct Lease {
    int64_t ttl = 0;
    std::set<std::string> keys;
  };
  struct Session {
    uint64_t last_sequence = 0;
    int64_t last_active_ms = 0;
  };

  // A reference from the key index to one version: its revision record, and whether it is a
  // tombstone (which ends the key's life).
  struct VersionRef {
    int64_t rev = 0;
    uint32_t sub = 0;
    bool tombstone = false;
  };
  // A key's entry: the references of its versions not yet compacted, oldest first, and what
  // a put needs of its live version (so a put reads nothing from disk).
  struct KeyEntry {
    std::vector<VersionRef> versions;
    int64_t create_revision = 0;  // of the live version; 0 after a delete
    int64_t version = 0;
    int64_t lease = 0;
    bool live() const { return !versions.empty() && !versions.back().tombstone; }
    void add(const VersionRef& ref, const KeyValue& kv) {
      versions.push_back(ref);
      create_revision = ref.tombstone ? 0 : kv.create_revision;
      version = ref.tombstone ? 0 : kv.version;
      lease = ref.tombstone ? 0 : kv.lease;
    }
  };
  // Every key with a version not yet compacted. apply() changes it; reads look keys up in it
  // under the same lock as the store.
  using KeyIndex = std::map<std::string, KeyEntry, std::less<>>;

 private:
  class Txn;
  friend class Txn;
  MvccStore(rocksdb::DB* db, const MvccOptions& options);
  storage::Status load();
  storage::Status check_format(rocksdb::Iterator* it);
  storage::Status upgrade_first_layout();

  rocksdb::DB* db_;
  MvccOptions options_;
  // Reads (any thread) take it shared; apply() takes it exclusively, so a read never sees a
  // batch half applied or a revision that does not match the data.
  mutable std::shared_mutex mu_;
  raft::Index applied_index_ = 0;
  raft::Term applied_term_ = 0;
  int64_t revision_ = 1;  // as etcd: an empty store is at revision 1
  int64_t compact_revision_ = 0;
  int64_t log_time_ms_ = 0;
  std::map<int64_t, Lease> leases_;
  std::map<uint64_t, Session> sessions_;
  std::set<std::pair<int64_t, uint64_t>> session_expiry_;  // (last_active_ms, client)
  KeyIndex index_;
  // Changed by apply() under mu_; published for readers that do not take mu_.
  AuthState auth_;
  void publish_auth();
  std::atomic<uint64_t> auth_word_{2};  // revision << 1 | enabled
  mutable std::mutex auth_mu_;
  std::shared_ptr<const AuthState> auth_published_ = std::make_shared<AuthState>();
};

}  // namespace chorus::kv
