// Inside the keyspace state machine (keyspace.cc, collections.cc): the record of a key, one
// command's view of the records, and the helpers its commands share. Not for other layers.
//
// A key's record: format byte, type, absolute expiry in ms (0: none), the log index of its
// last write, then
//   string:      the value
//   collections: version, size, and for a list the position of its first element.
// A collection's elements are element records keyed by the collection's version (unique in its
// group: made from the log index of the entry that created it) and then the element's own key:
// a hash's field, a set's member, a list's position. Deleting or replacing a collection drops
// its version's range in one step, and RENAME moves only the key's record.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/coding.h"
#include "redis/keyspace.h"

namespace chorus::redis::internal {

// Format 2 adds the log index of the key's last write (WATCH); format 1 records still read.
inline constexpr uint8_t kRecordFormat = 2;
// The longest string APPEND and SETRANGE may make. Redis allows 512 MiB, but a few bytes of
// SETRANGE would then make every replica hold (and a group's snapshot carry) that much: the
// cap is a constant, the same on every replica, well inside what a group's snapshot holds.
inline constexpr size_t kMaxStringBytes = 16u << 20;
// Collection versions: the entry's log index, then a counter of the collections the entry
// creates; a transaction holds at most kMaxTransactionCommands commands, each creating at most
// two, so the counter never reaches the next index's versions.
inline constexpr int kVersionCounterBits = 20;
static_assert(2 * kMaxTransactionCommands < (size_t{1} << kVersionCounterBits));

enum Type : uint8_t { kString = 1, kHash = 2, kSet = 3, kList = 4, kZset = 5, kStream = 6 };

struct Record {
  uint8_t type = kString;
  int64_t expire_ms = 0;  // 0: none
  std::string value;      // a string's value
  uint64_t version = 0;   // collections
  uint64_t size = 0;
  int64_t head = 0;  // lists: the position of the first element
  // The log index of the entry that last wrote the key (0: before format 2). Set by Keys::save.
  uint64_t modified = 0;

  bool collection() const { return type != kString; }
};

std::string encode_record(const Record& r);
bool decode_record(std::string_view bytes, Record* r);
const char* type_name(uint8_t type);

// The element key of `sub` in the collection of `version`.
inline std::string element_key(uint64_t version, std::string_view sub = {}) {
  std::string k;
  k.reserve(8 + sub.size());
  base::put_u64_be(&k, version);
  k.append(sub);
  return k;
}
// A list position as element bytes that sort in position order.
inline std::string position_key(int64_t pos) {
  std::string k;
  base::put_u64_be(&k, static_cast<uint64_t>(pos) ^ (uint64_t{1} << 63));
  return k;
}

bool equals_ci(std::string_view a, std::string_view b);

// The conditions EXPIRE and ZADD share: NX, XX, GT, LT.
struct Conditions {
  bool nx = false, xx = false, gt = false, lt = false;
  // Takes `option` if it is one of them (any case).
  bool take(std::string_view option) {
    bool* flag = equals_ci(option, "nx")   ? &nx
                 : equals_ci(option, "xx") ? &xx
                 : equals_ci(option, "gt") ? &gt
                 : equals_ci(option, "lt") ? &lt
                                           : nullptr;
    if (flag != nullptr) *flag = true;
    return flag != nullptr;
  }
};

Reply wrong_args(std::string_view name);
Reply damaged(std::string_view key);

// One command's view of the records, at one time.
class Keys {
 public:
  Keys(RecordStore& store, int64_t now_ms, uint64_t version_base)
      : store_(store), now_(now_ms), version_base_(version_base) {}

  enum class Found { kNone, kLive, kDamaged };
  // A live record of the key; an expired one counts as none.
  Found load(std::string_view key, Record* r);
  // Writes the key's record; the elements of a collection it replaces go.
  void save(std::string_view key, const Record& r);
  // Removes the key's record (and elements), live or expired; true if it was live.
  bool remove(std::string_view key);
  int64_t now() const { return now_; }
  // WATCH's version of a key (keyspace.h, kKeyVersions).
  uint64_t watch_version(std::string_view key);
  // A version no collection of the group has had.
  uint64_t new_version() { return (version_base_ << kVersionCounterBits) | next_++; }
  // A seed for the state machine's random picks (SPOP): the same on every replica.
  uint64_t seed() { return (version_base_ * 0x9e3779b97f4a7c15ULL) ^ (++seeds_ << 32) ^ now_; }
  RecordStore& store() { return store_; }

 private:
  // Drops the elements of the collection the stored record of `key` holds, if any.
  void drop_stored_elements(std::string_view key, uint64_t keep_version);

  RecordStore& store_;
  int64_t now_;
  uint64_t version_base_;
  uint64_t next_ = 1;
  uint64_t seeds_ = 0;
};

// The live record of `key` if it has type `type`; otherwise none (a fresh record of the type
// with a new version when `create`), or the error to answer (wrong type, damaged).
struct TypedAt {
  bool live = false;
  Record rec;
  std::optional<Reply> error;
};
TypedAt typed_at(Keys& k, std::string_view key, uint8_t type, bool create = false);

// A string's record, or the reply that says why there is none (null: no error, not live).
struct StringAt {
  bool live = false;
  Record rec;
  std::optional<Reply> error;
};
StringAt string_at(Keys& k, std::string_view key);

// A blocking command's timeout in seconds (BLPOP ... 0.5): none if valid, else Redis's error.
std::optional<Reply> check_block_timeout(std::string_view timeout);

// Saves a collection, or removes its key once it is empty (Redis has no empty collections).
void save_collection(Keys& k, std::string_view key, const Record& rec);

using Handler = Reply (*)(Keys&, const std::vector<std::string>&);
struct Entry {
  CommandSpec spec;
  Handler fn;
};
// The collection commands (collections.cc, sorted_sets.cc), for the command table.
const std::vector<Entry>& collection_entries();
const std::vector<Entry>& sorted_set_entries();
const std::vector<Entry>& string_entries();  // strings.cc: bits, LCS
const std::vector<Entry>& sort_entries();    // sort.cc
const std::vector<Entry>& stream_entries();  // streams.cc

}  // namespace chorus::redis::internal
