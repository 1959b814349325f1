// The state machines of a member's data groups: one plain key-value map per Raft group, each
// under its own key prefix in one RocksDB shared by every group of the process.
//
// Layout (big-endian group ids, so each group's records are one contiguous range):
//   g<group>k<key>  a key's value (the Groups API's Put and Delete)
//   g<group>r<key>  a Redis key's record (redis/keyspace.h: commands proposed as kCommand)
//   g<group>e<ekey> a Redis collection's element record (redis/records.h)
//   g<group>a       the group's applied index and term
//   g<group>s       the applied index the last snapshot installed brought (install())
// apply() writes the committed entries of any number of groups as one WriteBatch that also
// records each group's applied index, so every group's state on disk is exactly a prefix of its
// log. RocksDB's own WAL is off: the Raft log is the source of truth, and after a crash each
// group replays the entries after its applied index (those are skipped if already held).
//
// Snapshots: export_group() reads one group's whole state at one point (its applied index and
// every key), which install() on another member puts in place of that group's state in one
// synced write. The log of the receiving replica then starts at the Raft snapshot's index, which
// may be below the applied index the data brought (the leader's store had applied further).
//
// Threads: apply(), drop() and install() are serialized among themselves; reads from any.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "raft/types.h"
#include "redis/reply.h"
#include "storage/status.h"

namespace rocksdb {
class DB;
}

namespace chorus::kv {

// What a data group's log entry asks of its state machine.
struct GroupOp {
  // kCommand: a Redis command (value: redis::encode_command), run against the group's Redis
  // records when applied; its reply goes to the proposer.
  enum class Kind : uint8_t { kPut = 1, kDelete = 2, kCommand = 3 };
  Kind kind = Kind::kPut;
  std::string key;
  std::string value;
  bool operator==(const GroupOp&) const = default;
};
std::string encode_group_op(const GroupOp& op);
// nullopt for bytes that are not an encoded GroupOp (a damaged or foreign entry).
std::optional<GroupOp> decode_group_op(std::string_view bytes);

struct GroupEntry {
  raft::GroupId group = 0;
  raft::Index index = 0;
  raft::Term term = 0;
  std::string_view op;  // an encoded GroupOp; empty for entries with nothing to apply
};

class GroupStore {
 public:
  static storage::Status open(const std::string& dir, std::unique_ptr<GroupStore>* out);
  ~GroupStore();
  GroupStore(const GroupStore&) = delete;
  GroupStore& operator=(const GroupStore&) = delete;

  // Applies entries of any groups, in order within each group, as one write. An entry at or
  // below its group's applied index is skipped (replay after a restart). An entry whose op does
  // not decode changes nothing but still counts as applied (every replica skips it alike).
  // With `replies`, (*replies)[i] is the reply of entries[i] when it is a command applied now.
  // With `published`, the channel and message of each PUBLISH applied now, in order.
  using Published = std::vector<std::pair<std::string, std::string>>;
  storage::Status apply(const std::vector<GroupEntry>& entries,
                        std::vector<std::optional<redis::Reply>>* replies = nullptr,
                        Published* published = nullptr);
  // Live Redis keys of the group at `now_ms` (with their type names), in byte order from the
  // first key at or after `from`: at least `limit` of them if there are as many, and past that
  // every further key sharing the last one's first `tie_bytes` bytes (0: none), so that an
  // answer ends between two prefixes. *more: whether keys remain after it.
  struct RedisKey {
    std::string key;
    const char* type = "";
  };
  storage::Status redis_keys(raft::GroupId group, std::string_view from, size_t limit,
                             size_t tie_bytes, int64_t now_ms, std::vector<RedisKey>* out,
                             bool* more) const;
  // Active expiry: examines up to `examine` Redis key records of the group from the first at or
  // after `from`, gathers those expired at `now_ms` into *expired, and sets *next to the key to
  // go on from (empty once the group's last record was examined).
  storage::Status redis_expired(raft::GroupId group, std::string_view from, size_t examine,
                                int64_t now_ms, std::vector<std::string>* expired,
                                std::string* next) const;
  // Runs a read-only Redis command against the group's records as applied so far.
  redis::Reply read_command(raft::GroupId group, const std::vector<std::string>& argv,
                            int64_t now_ms) const;
  // 0 for a group that has applied nothing.
  raft::Index applied_index(raft::GroupId group) const;
  // The value of `key` in `group`: not_found if it has none.
  storage::Status get(raft::GroupId group, std::string_view key, std::string* value) const;
  // Makes everything applied so far durable (RocksDB's WAL is off): before the log may let go
  // of the entries behind it.
  storage::Status flush();
  // Groups with an applied index: how many, and which.
  size_t groups() const;
  std::vector<raft::GroupId> group_ids() const;
  // Deletes everything of `group` (a group removed from this member): one range deletion, made
  // only if the group holds anything. Not durable by itself: the owner repeats it after a
  // restart for every group it knows as removed (a no-op once done).
  storage::Status drop(raft::GroupId group);

  // The group's whole state, encoded for install(); invalid_argument past `max_bytes`.
  storage::Status export_group(raft::GroupId group, size_t max_bytes, std::string* out) const;
  // Whether `data` is an export install() takes (checked before a snapshot is accepted).
  static bool valid_export(std::string_view data);
  // The applied index an export was taken at (0 if it is not one).
  static raft::Index export_index(std::string_view data);
  // Replaces the group's state with an export, durably (RocksDB's WAL and fsync this once).
  storage::Status install(raft::GroupId group, std::string_view data);
  // The applied index of the last install() of the group (0: none): the one case where the
  // store may be ahead of what the group's log holds.
  raft::Index installed_index(raft::GroupId group) const;

 private:
  explicit GroupStore(rocksdb::DB* db) : db_(db) {}
  storage::Status load();

  rocksdb::DB* db_;
  mutable std::atomic<uint64_t> reads_{0};  // read_command: seeds its random picks
  std::mutex write_mu_;                     // one writer at a time: apply, drop, install
  mutable std::shared_mutex mu_;            // guards applied_
  std::unordered_map<raft::GroupId, raft::Index> applied_;
};

}  // namespace chorus::kv
