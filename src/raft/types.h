// Core value types of the Raft state machine: log entries, persistent state, configurations,
// snapshots and messages. Plain data with no behaviour beyond small helpers, so that drivers,
// storage and the simulator can build and inspect them freely.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::raft {

using NodeId = uint64_t;
using GroupId = uint64_t;
using Term = uint64_t;
using Index = uint64_t;

inline constexpr NodeId kNoNode = 0;
inline constexpr uint64_t kNoLimit = UINT64_MAX;

enum class EntryType : uint8_t { kNormal = 0, kConfChange = 1 };

struct Entry {
  Term term = 0;
  Index index = 0;
  EntryType type = EntryType::kNormal;
  std::string data;

  // Bytes counted against message, uncommitted and in-flight limits. A fixed overhead keeps
  // empty entries from being free, so a flood of no-ops is still bounded.
  uint64_t size_bytes() const { return data.size() + kOverheadBytes; }
  static constexpr uint64_t kOverheadBytes = 24;
  bool operator==(const Entry&) const = default;
};

// Persistent state on all servers (Raft paper, Figure 2): must be durable before any message
// produced in the same Ready leaves the node.
struct HardState {
  Term term = 0;
  NodeId vote = kNoNode;
  Index commit = 0;
  bool operator==(const HardState&) const = default;
  bool empty() const { return term == 0 && vote == kNoNode && commit == 0; }
};

// Membership as stored in snapshots. During joint consensus (§6 of the dissertation, "joint
// consensus") `voters_outgoing` is the old voter set and decisions need a majority of both.
struct ConfState {
  std::vector<NodeId> voters;
  std::vector<NodeId> voters_outgoing;
  std::vector<NodeId> learners;
  // Voters of the outgoing configuration that become learners when the joint state is left.
  std::vector<NodeId> learners_next;
  bool auto_leave = false;
  bool operator==(const ConfState&) const = default;
  // Whether `id` is a voter, a learner or an outgoing voter of this configuration.
  bool includes(NodeId id) const;
};

enum class ConfChangeType : uint8_t { kAddNode = 0, kRemoveNode = 1, kAddLearner = 2 };

struct ConfChangeSingle {
  ConfChangeType type = ConfChangeType::kAddNode;
  NodeId node = kNoNode;
  bool operator==(const ConfChangeSingle&) const = default;
};

enum class ConfChangeTransition : uint8_t {
  // Simple change when at most one voter changes, else joint consensus left automatically.
  kAuto = 0,
  // Joint consensus, left automatically once the joint configuration is applied.
  kJointImplicit = 1,
  // Joint consensus, left only when the application proposes an empty change.
  kJointExplicit = 2,
};

struct ConfChange {
  ConfChangeTransition transition = ConfChangeTransition::kAuto;
  std::vector<ConfChangeSingle> changes;
  std::string context;

  // An empty change means "leave the joint configuration".
  bool leave_joint() const { return changes.empty(); }
  bool operator==(const ConfChange&) const = default;

  std::string encode() const;
  // Returns nullopt on malformed input; never reads past `bytes`.
  static std::optional<ConfChange> decode(std::string_view bytes);
};

struct SnapshotMetadata {
  Index index = 0;
  Term term = 0;
  ConfState conf_state;
  bool operator==(const SnapshotMetadata&) const = default;
};

struct Snapshot {
  SnapshotMetadata metadata;
  std::string data;
  bool empty() const { return metadata.index == 0; }
};

enum class MessageType : uint8_t {
  // Local inputs, never sent over the network.
  kHup,          // start an election
  kBeat,         // leader: send heartbeats
  kCheckQuorum,  // leader: step down unless a quorum was recently active
  kPropose,
  kSnapStatus,   // driver reports whether a snapshot reached a follower
  kUnreachable,  // driver reports a follower it cannot reach
  // Sent between nodes.
  kApp,
  kAppResp,
  kVote,
  kVoteResp,
  kPreVote,
  kPreVoteResp,
  kHeartbeat,
  kHeartbeatResp,
  kSnap,
  kTransferLeader,
  kTimeoutNow,
  kReadIndex,
  kReadIndexResp,
};

const char* to_string(MessageType type);
bool is_local(MessageType type);

struct Message {
  GroupId group = 0;
  MessageType type = MessageType::kHup;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  Term term = 0;
  Term log_term = 0;
  Index index = 0;
  std::vector<Entry> entries;
  Index commit = 0;
  bool reject = false;
  // On a rejected append: the follower's guess at where the logs may match (fast backtracking).
  Index reject_hint = 0;
  // A heartbeat with `reject` set asks the follower to quiesce (Config::quiesce).
  // Heartbeats carry the leader's tick count + 1 in `index`; their responses echo it in `index`
  // and add the responder's tick count + 1 in `commit` and its incarnation nonce in
  // `reject_hint` (0: no clock), from which the leader bounds the responder's clock rate.
  // Read requests: the caller's request id. Heartbeats: the leader's heartbeat round.
  // Votes: kCampaignTransfer when the election was asked for by a leadership transfer.
  uint64_t context = 0;
  std::shared_ptr<const Snapshot> snapshot;
};

inline constexpr uint64_t kCampaignTransfer = 1;

enum class Role : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader };
const char* to_string(Role role);

struct SoftState {
  NodeId lead = kNoNode;
  Role role = Role::kFollower;
  bool operator==(const SoftState&) const = default;
};

// The answer to a read_index request: once the state machine has applied `index`, a read of it
// is linearizable with respect to the moment of the request.
struct ReadState {
  Index index = 0;
  uint64_t context = 0;
};

// Expected failures returned to callers. Broken invariants abort instead.
enum class Error : uint8_t {
  kOk = 0,
  kNoLeader,            // proposal or read dropped: no known leader
  kTransferInProgress,  // proposal dropped: leadership transfer under way
  kUncommittedLimit,    // proposal dropped: too many uncommitted bytes
  kEntryTooLarge,       // proposal larger than max_entry_bytes
  kNotLeader,           // operation only valid on the leader
  kConfChangePending,   // a configuration change is not yet applied
  kInvalidConfChange,   // the change would produce an invalid configuration
  kCompacted,           // requested index was compacted
  kUnavailable,         // requested index is beyond the log
  kSnapshotTemporarilyUnavailable,
  kStepLocalMessage,  // a local message type arrived from the network
  kStepUnknownPeer,   // a response from a node not in the configuration
  kWrongGroup,
  kInvalidMessage,  // a message from the network that breaks the protocol's shape
  // The log storage could not read back an entry it holds (a damaged record): the core stops
  // and answers every call with this error; the driver must stop the member.
  kStorageFailed,
};

const char* to_string(Error error);

}  // namespace chorus::raft
