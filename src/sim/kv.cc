#include "sim/kv.h"

#include "sim/rng.h"

namespace chorus::sim {
namespace {

constexpr char kSep = '\x1f';

void put_field(std::string* out, std::string_view f) {
  out->append(f);
  out->push_back(kSep);
}

bool next_field(std::string_view* in, std::string_view* field) {
  size_t pos = in->find(kSep);
  if (pos == std::string_view::npos) return false;
  *field = in->substr(0, pos);
  in->remove_prefix(pos + 1);
  return true;
}

bool parse_u64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::string Command::encode() const {
  std::string out;
  put_field(&out, kind == Kind::kWrite ? "W" : "C");
  put_field(&out, std::to_string(client));
  put_field(&out, std::to_string(op));
  put_field(&out, key);
  put_field(&out, value);
  put_field(&out, expected);
  return out;
}

std::optional<Command> Command::decode(std::string_view in) {
  std::string_view f[6];
  for (auto& field : f) {
    if (!next_field(&in, &field)) return std::nullopt;
  }
  if (!in.empty()) return std::nullopt;
  Command c;
  if (f[0] == "W") {
    c.kind = Kind::kWrite;
  } else if (f[0] == "C") {
    c.kind = Kind::kCas;
  } else {
    return std::nullopt;
  }
  if (!parse_u64(f[1], &c.client) || !parse_u64(f[2], &c.op)) return std::nullopt;
  c.key = f[3];
  c.value = f[4];
  c.expected = f[5];
  return c;
}

uint64_t KvStateMachine::chain_step(uint64_t chain, const raft::Entry& e) {
  uint64_t h = hash_mix(chain, e.index);
  h = hash_mix(h, e.term);
  h = hash_mix(h, static_cast<uint64_t>(e.type));
  return hash_mix(h, hash_bytes(e.data.data(), e.data.size()));
}

bool KvStateMachine::apply(const raft::Entry& e, std::optional<Command>* cmd) {
  applied_ = e.index;
  chain_ = chain_step(chain_, e);
  cmd->reset();
  if (e.type != raft::EntryType::kNormal || e.data.empty()) return false;
  *cmd = Command::decode(e.data);
  if (!*cmd) return false;
  const Command& c = **cmd;
  uint64_t& last = last_op_[c.client];
  if (c.op <= last) {
    cmd->reset();
    return false;
  }
  last = c.op;
  if (c.kind == Command::Kind::kWrite) {
    data_[c.key] = c.value;
    return true;
  }
  auto it = data_.find(c.key);
  if (it == data_.end() || it->second != c.expected) return false;
  it->second = c.value;
  return true;
}

std::optional<std::string> KvStateMachine::get(const std::string& key) const {
  auto it = data_.find(key);
  if (it == data_.end()) return std::nullopt;
  return it->second;
}

std::string KvStateMachine::snapshot() const {
  std::string out;
  put_field(&out, std::to_string(applied_));
  put_field(&out, std::to_string(chain_));
  put_field(&out, std::to_string(data_.size()));
  for (const auto& [k, v] : data_) {
    put_field(&out, k);
    put_field(&out, v);
  }
  put_field(&out, std::to_string(last_op_.size()));
  for (const auto& [client, op] : last_op_) {
    put_field(&out, std::to_string(client));
    put_field(&out, std::to_string(op));
  }
  return out;
}

bool KvStateMachine::restore(std::string_view in) {
  std::string_view f;
  uint64_t applied = 0;
  uint64_t chain = 0;
  uint64_t n = 0;
  if (!next_field(&in, &f) || !parse_u64(f, &applied)) return false;
  if (!next_field(&in, &f) || !parse_u64(f, &chain)) return false;
  if (!next_field(&in, &f) || !parse_u64(f, &n)) return false;
  std::map<std::string, std::string> data;
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view k;
    std::string_view v;
    if (!next_field(&in, &k) || !next_field(&in, &v)) return false;
    data.emplace(std::string(k), std::string(v));
  }
  std::map<uint64_t, uint64_t> sessions;
  if (!next_field(&in, &f) || !parse_u64(f, &n)) return false;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t client = 0;
    uint64_t op = 0;
    if (!next_field(&in, &f) || !parse_u64(f, &client)) return false;
    if (!next_field(&in, &f) || !parse_u64(f, &op)) return false;
    sessions[client] = op;
  }
  if (!in.empty()) return false;
  data_ = std::move(data);
  last_op_ = std::move(sessions);
  applied_ = applied;
  chain_ = chain;
  return true;
}

}  // namespace chorus::sim
