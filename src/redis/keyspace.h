// The Redis data model as a deterministic state machine: a command and the time it is judged
// at go in, the records it changes and its reply come out. Writes run when their log entry is
// applied, on every replica alike (the proposer fixed `now_ms` and put it in the entry, so
// relative expiry times and expiry checks give the same result everywhere); reads run on one
// member after its read barrier, at that member's clock. Pure: records are reached through
// RecordStore, which the owner maps onto RocksDB (kv::GroupStore) or memory (tests).
//
// Records, one per key: a format byte, the type, the absolute expiry in Unix milliseconds (0:
// none), then the type's payload (a string's value). A key whose expiry is at or before
// `now_ms` is absent to every command; its record goes the next time a write touches the key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "redis/reply.h"

namespace chorus::redis {

class RecordStore {
 public:
  virtual ~RecordStore() = default;
  // Key records, one per Redis key. False if the key has none.
  virtual bool get(std::string_view key, std::string* record) = 0;
  virtual void put(std::string_view key, std::string_view record) = 0;
  virtual void del(std::string_view key) = 0;
  // Element records of collections, by element key (records.h). False if there is none.
  virtual bool get_element(std::string_view ekey, std::string* value) = 0;
  virtual void put_element(std::string_view ekey, std::string_view value) = 0;
  virtual void del_element(std::string_view ekey) = 0;
  // Up to `limit` element records whose keys start with `prefix`, in key order, from the first
  // key at or after `from` (which starts with `prefix`, or is empty: from the first).
  virtual void scan_elements(std::string_view prefix, std::string_view from, size_t limit,
                             std::vector<std::pair<std::string, std::string>>* out) = 0;
  // Drops every element record under `prefix`: a collection deleted or replaced, whose
  // elements no command reads again.
  virtual void drop_elements(std::string_view prefix) = 0;
  // Drops every record (FLUSHALL): later reads find nothing.
  virtual void clear() = 0;
};

enum CommandFlags : uint32_t {
  kWrite = 1,      // goes through the log
  kReadOnly = 2,   // runs after a read barrier
  kKeyless = 4,    // answered by the connection itself (PING, HELLO, ...)
  kAllGroups = 8,  // about every key: runs on every group (FLUSHALL, DBSIZE, KEYS, SCAN)
  // BLPOP and kin: the state machine runs them as their non-blocking forms, answering a null
  // array when there is nothing to take; the connection then waits for a write to the keys.
  kBlocking = 16,
};

struct CommandSpec {
  const char* name;  // lower case, as Redis names commands in its errors
  int arity;         // Redis's convention: n exactly n arguments (the name included), -n at least n
  uint32_t flags;
  int first_key;  // 0: none
  int last_key;   // -1: the last argument
  int key_step;
};

// nullopt-like: null for a command this table does not hold. `name` in any case.
const CommandSpec* find_command(std::string_view name);
// Every command of the table (COMMAND COUNT, COMMAND INFO).
const std::vector<CommandSpec>& command_table();
// Whether argv.size() fits the spec's arity.
bool arity_ok(const CommandSpec& spec, size_t argc);
// Whether the command names its keys with a count first (SINTERCARD, ZUNIONSTORE, BLMPOP, ...);
// when the count is bad, command_keys gives none and the command answers why.
bool names_keys_by_count(const CommandSpec& spec);
// The keys of a command whose arity is checked.
std::vector<std::string_view> command_keys(const CommandSpec& spec,
                                           const std::vector<std::string>& argv);

// MULTI ... EXEC: the commands queued, as one command (one log entry) that runs them in turn
// and answers an array of their replies. Its name is no command's a client can send.
inline constexpr std::string_view kTransaction = "\x01exec";
inline constexpr size_t kMaxTransactionCommands = 100'000;
// With `watched` (WATCH: keys and the versions read from kKeyVersions), the transaction runs
// only if every key's version is still the same when the entry is applied; otherwise it
// answers a null array (EXEC aborted), as Redis does.
std::vector<std::string> transaction_command(
    const std::vector<std::vector<std::string>>& cmds,
    const std::vector<std::pair<std::string, uint64_t>>& watched = {});
inline constexpr std::string_view kWatchedVersions = "\x01watched";

// A read: the versions of keys [key ...] (an array of integers): 0 for a key that is not
// live, else the log index of its last write (at least 1). Any write to a key, its deletion
// or its expiry changes it.
inline constexpr std::string_view kKeyVersions = "\x01versions";

// Active expiry: a group's leader proposes the keys it found expired; each goes if it is still
// expired at the entry's time (a key written since stays). Answers how many went.
inline constexpr std::string_view kExpireSweep = "\x01expire";

// Runs a keyed command (or a transaction) against the records at `now_ms`. `version_base` makes the
// versions of the collections a write creates: the index of its log entry (unique in its group, so
// no two collections share a version), and it seeds the random picks. Reads create none: they
// pass a number that differs per read, so their random picks (SRANDMEMBER) differ too.
Reply execute(RecordStore& store, const std::vector<std::string>& argv, int64_t now_ms,
              uint64_t version_base = 0);

// Redis's glob patterns (KEYS, SCAN MATCH): * ? [abc] [^a] [a-z] and \ escapes.
bool glob_match(std::string_view pattern, std::string_view text);

// A stored key record's type name ("string", "hash", ...) if it is live at `now_ms`; null if it
// has expired or does not decode.
const char* live_type(std::string_view record, int64_t now_ms);
// Whether a stored key record has an expiry at or before `now_ms`.
bool expired(std::string_view record, int64_t now_ms);

// Redis's integer and float parsing and printing, shared with the connection's own commands.
bool parse_int64(std::string_view s, int64_t* out);
bool parse_long_double(std::string_view s, long double* out);
std::string format_long_double(long double v);

// Where a command goes: encoded for a log entry, and back.
std::string encode_command(int64_t now_ms, const std::vector<std::string>& argv);
bool decode_command(std::string_view bytes, int64_t* now_ms, std::vector<std::string>* argv);

}  // namespace chorus::redis
