// The parameters CONFIG GET and CONFIG SET know on the Redis face, one table per member (Redis
// keeps its configuration per server too; nothing here is replicated).
//
// Three kinds of parameter:
//  - reported: what Chorus does, for clients that read it (appendonly yes, appendfsync always,
//    databases 1, proto-max-bulk-len from --max-request-bytes). Setting one to what it already
//    is answers OK; to anything else, Redis's "can't set" error.
//  - tunable without effect: the encoding thresholds (hash-max-listpack-entries, ...), which tell
//    Redis when to switch a small collection's memory layout. Chorus has one layout per type, so
//    values are checked and kept (and read back) but change nothing, as Redis's own encodings
//    are invisible to commands.
//  - names Redis 7 keeps as aliases (hash-max-ziplist-entries for hash-max-listpack-entries)
//    share one value.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "redis/reply.h"

namespace chorus::redis {

class ServerConfig {
 public:
  // max_bulk_bytes: the largest bulk string a request may carry (--max-request-bytes).
  explicit ServerConfig(size_t max_bulk_bytes);

  // CONFIG GET pattern [pattern ...]: name/value pairs of every parameter matching a glob.
  std::vector<std::pair<std::string, std::string>> get(
      const std::vector<std::string>& patterns) const;
  // CONFIG SET name value [name value ...]: all or nothing. Returns OK or Redis's error.
  Reply set(const std::vector<std::string>& pairs);

 private:
  enum class Kind { kFixed, kInteger, kEnum };
  struct Param {
    Kind kind;
    std::string value;
    long long min = 0;
    long long max = 0;
    std::vector<std::string> choices;  // kEnum
  };
  // Canonical name -> parameter; alias -> canonical name.
  std::map<std::string, Param, std::less<>> params_;
  std::map<std::string, std::string, std::less<>> aliases_;
};

}  // namespace chorus::redis
