#include "raft/types.h"

#include <cstring>

namespace chorus::raft {
namespace {

void put_u32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A bounds-checked little-endian reader: every read fails cleanly past the end.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool u8(uint8_t* v) {
    if (b_.size() < 1) return false;
    *v = static_cast<uint8_t>(b_[0]);
    b_.remove_prefix(1);
    return true;
  }
  bool u32(uint32_t* v) {
    if (b_.size() < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i)
      *v |= static_cast<uint32_t>(static_cast<uint8_t>(b_[i])) << (8 * i);
    b_.remove_prefix(4);
    return true;
  }
  bool u64(uint64_t* v) {
    if (b_.size() < 8) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i)
      *v |= static_cast<uint64_t>(static_cast<uint8_t>(b_[i])) << (8 * i);
    b_.remove_prefix(8);
    return true;
  }
  bool bytes(size_t n, std::string* out) {
    if (b_.size() < n) return false;
    out->assign(b_.data(), n);
    b_.remove_prefix(n);
    return true;
  }
  bool done() const { return b_.empty(); }
  size_t remaining() const { return b_.size(); }

 private:
  std::string_view b_;
};

constexpr uint8_t kConfChangeVersion = 1;

}  // namespace

std::string ConfChange::encode() const {
  std::string out;
  out.push_back(static_cast<char>(kConfChangeVersion));
  out.push_back(static_cast<char>(transition));
  put_u32(&out, static_cast<uint32_t>(changes.size()));
  for (const auto& c : changes) {
    out.push_back(static_cast<char>(c.type));
    put_u64(&out, c.node);
  }
  put_u32(&out, static_cast<uint32_t>(context.size()));
  out += context;
  return out;
}

std::optional<ConfChange> ConfChange::decode(std::string_view bytes) {
  Reader r(bytes);
  uint8_t version = 0;
  uint8_t transition = 0;
  uint32_t count = 0;
  if (!r.u8(&version) || version != kConfChangeVersion) return std::nullopt;
  if (!r.u8(&transition) || transition > 2) return std::nullopt;
  if (!r.u32(&count) || count > r.remaining() / 9) return std::nullopt;
  ConfChange cc;
  cc.transition = static_cast<ConfChangeTransition>(transition);
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t type = 0;
    uint64_t node = 0;
    if (!r.u8(&type) || type > 2 || !r.u64(&node)) return std::nullopt;
    cc.changes.push_back({static_cast<ConfChangeType>(type), node});
  }
  uint32_t ctx_len = 0;
  if (!r.u32(&ctx_len) || !r.bytes(ctx_len, &cc.context) || !r.done()) return std::nullopt;
  return cc;
}

const char* to_string(MessageType type) {
  switch (type) {
    case MessageType::kHup:
      return "Hup";
    case MessageType::kBeat:
      return "Beat";
    case MessageType::kCheckQuorum:
      return "CheckQuorum";
    case MessageType::kPropose:
      return "Propose";
    case MessageType::kSnapStatus:
      return "SnapStatus";
    case MessageType::kUnreachable:
      return "Unreachable";
    case MessageType::kApp:
      return "App";
    case MessageType::kAppResp:
      return "AppResp";
    case MessageType::kVote:
      return "Vote";
    case MessageType::kVoteResp:
      return "VoteResp";
    case MessageType::kPreVote:
      return "PreVote";
    case MessageType::kPreVoteResp:
      return "PreVoteResp";
    case MessageType::kHeartbeat:
      return "Heartbeat";
    case MessageType::kHeartbeatResp:
      return "HeartbeatResp";
    case MessageType::kSnap:
      return "Snap";
    case MessageType::kTransferLeader:
      return "TransferLeader";
    case MessageType::kTimeoutNow:
      return "TimeoutNow";
    case MessageType::kReadIndex:
      return "ReadIndex";
    case MessageType::kReadIndexResp:
      return "ReadIndexResp";
  }
  return "?";
}

bool is_local(MessageType type) {
  switch (type) {
    case MessageType::kHup:
    case MessageType::kBeat:
    case MessageType::kCheckQuorum:
    case MessageType::kSnapStatus:
    case MessageType::kUnreachable:
      return true;
    default:
      return false;
  }
}

const char* to_string(Role role) {
  switch (role) {
    case Role::kFollower:
      return "follower";
    case Role::kPreCandidate:
      return "pre-candidate";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
  }
  return "?";
}

const char* to_string(Error error) {
  switch (error) {
    case Error::kOk:
      return "ok";
    case Error::kNoLeader:
      return "raft: proposal dropped: no leader";
    case Error::kTransferInProgress:
      return "raft: proposal dropped: leadership transfer in progress";
    case Error::kUncommittedLimit:
      return "raft: proposal dropped: too many uncommitted bytes";
    case Error::kEntryTooLarge:
      return "raft: proposal dropped: entry too large";
    case Error::kNotLeader:
      return "raft: not the leader";
    case Error::kConfChangePending:
      return "raft: a configuration change is still pending";
    case Error::kInvalidConfChange:
      return "raft: invalid configuration change";
    case Error::kCompacted:
      return "raft: requested index is compacted";
    case Error::kUnavailable:
      return "raft: requested entry is unavailable";
    case Error::kSnapshotTemporarilyUnavailable:
      return "raft: snapshot temporarily unavailable";
    case Error::kStepLocalMessage:
      return "raft: local message type received from a peer";
    case Error::kStepUnknownPeer:
      return "raft: message from a node not in the configuration";
    case Error::kWrongGroup:
      return "raft: message for another group";
    case Error::kInvalidMessage:
      return "raft: malformed message";
  }
  return "raft: unknown error";
}

}  // namespace chorus::raft
