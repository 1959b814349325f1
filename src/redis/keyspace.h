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
#include <vector>

#include "redis/reply.h"

namespace chorus::redis {

class RecordStore {
 public:
  virtual ~RecordStore() = default;
  // False if the key has no record.
  virtual bool get(std::string_view key, std::string* record) = 0;
  virtual void put(std::string_view key, std::string_view record) = 0;
  virtual void del(std::string_view key) = 0;
};

enum CommandFlags : uint32_t {
  kWrite = 1,     // goes through the log
  kReadOnly = 2,  // runs after a read barrier
  kKeyless = 4,   // answered by the connection itself (PING, HELLO, ...)
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
// The keys of a command whose arity is checked.
std::vector<std::string_view> command_keys(const CommandSpec& spec,
                                           const std::vector<std::string>& argv);

// Runs a keyed command (argv[0] in lower case, arity checked) against the records.
Reply execute(RecordStore& store, const std::vector<std::string>& argv, int64_t now_ms);

// Redis's integer and float parsing and printing, shared with the connection's own commands.
bool parse_int64(std::string_view s, int64_t* out);
bool parse_long_double(std::string_view s, long double* out);
std::string format_long_double(long double v);

// Where a command goes: encoded for a log entry, and back.
std::string encode_command(int64_t now_ms, const std::vector<std::string>& argv);
bool decode_command(std::string_view bytes, int64_t* now_ms, std::vector<std::string>* argv);

}  // namespace chorus::redis
