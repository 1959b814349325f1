#include "raft/types.h"

#include <algorithm>
#include <cstring>

#include "base/coding.h"

namespace chorus::raft {
namespace {

using base::put_u32;
using base::put_u64;
using base::Reader;

constexpr uint8_t kConfChangeVersion = 1;

}  // namespace

bool ConfState::includes(NodeId id) const {
  for (const auto* set : {&voters, &learners, &voters_outgoing}) {
    if (std::find(set->begin(), set->end(), id) != set->end()) return true;
  }
  return false;
}

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
    case Error::kStorageFailed:
      return "raft: the log storage cannot read back its entries";
  }
  return "raft: unknown error";
}

}  // namespace chorus::raft
