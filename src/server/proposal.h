// What a Raft log entry of the server holds: the proposing member and its request id, so the
// member that accepted a client's request can answer it once the entry is applied, then the
// state machine's command. The id pair is an envelope around kv::Command, invisible to the
// state machine.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::server {

enum class ProposalKind : uint8_t {
  kCommand = 1,           // a kv::Command for the state machine
  kMemberAttributes = 2,  // a member publishing its name and client URLs (MemberAttributes)
  kAlarm = 3,             // raising or clearing an alarm (AlarmChange)
  kMemberPeerUrls = 4,    // MemberUpdate: a member's new peer URLs (MemberPeerUrls)
  kGroupChange = 5,       // the directory of data groups: one created or deleted (GroupChange)
};

struct ProposalHeader {
  ProposalKind kind = ProposalKind::kCommand;
  uint64_t proposer = 0;    // member id; 0 for proposals nobody waits on
  uint64_t request_id = 0;  // unique per proposer while it runs
};

// What a member tells the cluster about itself once it runs (what etcd calls publishing).
struct MemberAttributes {
  uint64_t id = 0;
  std::string name;
  std::vector<std::string> client_urls;
  bool operator==(const MemberAttributes&) const = default;
};
std::string encode_member_attributes(const MemberAttributes& a);
std::optional<MemberAttributes> decode_member_attributes(std::string_view bytes);

// Alarms are cluster state: raised and cleared through the log so every member agrees.
enum class AlarmType : uint8_t { kNone = 0, kNoSpace = 1, kCorrupt = 2 };
struct AlarmChange {
  bool activate = true;
  uint64_t member = 0;
  AlarmType type = AlarmType::kNoSpace;
  bool operator==(const AlarmChange&) const = default;
};
std::string encode_alarm_change(const AlarmChange& a);
std::optional<AlarmChange> decode_alarm_change(std::string_view bytes);

struct MemberPeerUrls {
  uint64_t id = 0;
  std::vector<std::string> peer_urls;
  bool operator==(const MemberPeerUrls&) const = default;
};
std::string encode_member_peer_urls(const MemberPeerUrls& u);
std::optional<MemberPeerUrls> decode_member_peer_urls(std::string_view bytes);

// A member's identity in the context of the configuration change that adds it.
struct MemberContext {
  std::string name;  // empty until the member publishes it
  std::vector<std::string> peer_urls;
  bool operator==(const MemberContext&) const = default;
};
std::string encode_member_context(const MemberContext& c);
std::optional<MemberContext> decode_member_context(std::string_view bytes);

// The directory of data groups lives in the etcd group (group 1), which every member hosts: which
// members hold a replica of each data group. Its changes go through that group's log, so every
// member applies the same ones in the same order, and each member then creates or removes its own
// replicas to match (docs/ARCHITECTURE.md, "Group lifecycle").
struct GroupDescriptor {
  uint64_t id = 0;
  std::vector<uint64_t> replicas;  // members that should hold one, in the order they were placed
  // The replicas at creation (the first campaigned): created with the group's first
  // configuration. A replica added later starts empty and is caught up by a snapshot.
  std::vector<uint64_t> founders;
  // Members once replicas and since removed: a member does not return to a group it left (its
  // replica's votes are gone with it).
  std::vector<uint64_t> removed;
  // Of those, the ones the group's configuration no longer holds (its leader reported it): a
  // member cut off while it was removed never hears it from the group, and learns it here.
  std::vector<uint64_t> gone;
  bool operator==(const GroupDescriptor&) const = default;
};
struct GroupChange {
  enum class Op : uint8_t {
    kCreate = 1,         // `group` (0: the next free id) on `replicas`
    kDelete = 2,         // `group`; its id is never used again
    kCreateInitial = 3,  // a new cluster's groups 2..count+1 on `replicas` (initial_placement)
    kAddReplica = 4,     // replicas[0] joins `group`
    kRemoveReplica = 5,  // replicas[0] leaves `group`
    kReplicaGone = 6,    // replicas[0], removed, is out of the group's configuration
  };
  Op op = Op::kCreate;
  uint64_t group = 0;
  std::vector<uint64_t> replicas;
  uint32_t count = 0;
  bool operator==(const GroupChange&) const = default;
};
std::string encode_group_change(const GroupChange& c);
// A member id as the server writes it in files and messages (16 hex digits).
std::string hex_id(uint64_t id);
std::optional<GroupChange> decode_group_change(std::string_view bytes);

// Header then payload, in one buffer ready for the log.
std::string encode_proposal(const ProposalHeader& header, std::string_view command);
// Splits an entry's data; nullopt if it is not a proposal of this format. `command` points into
// `data`.
std::optional<ProposalHeader> decode_proposal(std::string_view data, std::string_view* command);

struct MemberInfo {
  uint64_t id = 0;
  std::string name;
  std::vector<std::string> peer_urls;
  std::vector<std::string> client_urls;
  bool is_learner = false;
  bool operator==(const MemberInfo&) const = default;
};

// What a Raft snapshot of the server holds (raft::Snapshot::data): where the state machine
// stood, and the server's own state that lives in the log rather than in the store -- members,
// removed ids and alarms -- as of the snapshot, so that it survives log compaction.
struct ServerState {
  uint64_t index = 0;    // the state machine's applied index
  int64_t revision = 0;  // its revision there
  std::vector<MemberInfo> members;
  std::vector<uint64_t> removed;
  std::vector<AlarmChange> alarms;  // activate = true
  // The directory of data groups, the ids deleted (never reused) and the next id to give.
  std::vector<GroupDescriptor> groups;  // those changed since the initial range, and all others
  std::vector<uint64_t> deleted_groups;
  uint64_t next_group = 0;
  uint32_t initial_groups = 0;            // groups 2..initial_groups+1 as initially placed
  std::vector<uint64_t> initial_members;  // over these members (initial_placement)
  bool operator==(const ServerState&) const = default;
};
std::string encode_server_state(const ServerState& s);
std::optional<ServerState> decode_server_state(std::string_view bytes);

}  // namespace chorus::server
