// The simulator's replicated state machine: a string key-value store with write and
// compare-and-set, plus a hash chain over every applied entry so that replicas can be compared
// entry by entry in O(1).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "raft/types.h"

namespace chorus::sim {

struct Command {
  enum class Kind : uint8_t { kWrite = 1, kCas = 2 };
  Kind kind = Kind::kWrite;
  uint64_t client = 0;
  uint64_t op = 0;  // unique per client
  std::string key;
  std::string value;
  std::string expected;

  std::string encode() const;
  static std::optional<Command> decode(std::string_view bytes);
};

class KvStateMachine {
 public:
  // Applies a committed entry; returns whether a command in it took effect (cas may fail).
  // Entries that are not commands (no-ops, configuration changes) only advance the chain. A
  // command a client already had applied (a forwarded proposal the network duplicated) has no
  // effect and comes back as no command: each client's operation numbers only grow, so the
  // state machine keeps the last one per client (a session, as chorusd's sessions do).
  bool apply(const raft::Entry& e, std::optional<Command>* cmd);
  std::optional<std::string> get(const std::string& key) const;

  std::string snapshot() const;
  bool restore(std::string_view data);

  raft::Index applied() const { return applied_; }
  uint64_t chain() const { return chain_; }
  const std::map<std::string, std::string>& data() const { return data_; }

  static uint64_t chain_step(uint64_t chain, const raft::Entry& e);

 private:
  std::map<std::string, std::string> data_;
  std::map<uint64_t, uint64_t> last_op_;  // client -> its last applied operation
  raft::Index applied_ = 0;
  uint64_t chain_ = 0;
};

}  // namespace chorus::sim
