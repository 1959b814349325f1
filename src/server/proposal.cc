#include "server/proposal.h"

#include <cstdio>

#include "base/coding.h"

namespace chorus::server {
namespace {
// A version byte lets a later format coexist with entries already in logs.
constexpr uint8_t kFormatV1 = 1;
constexpr size_t kHeaderBytes = 1 + 1 + 8 + 8;
// Bounds on decoded lists, so a damaged entry cannot ask for a huge allocation.
constexpr uint32_t kMaxUrls = 64;

void put_strings(std::string* out, const std::vector<std::string>& v) {
  base::put_u32(out, static_cast<uint32_t>(v.size()));
  for (const auto& s : v)
    base::put_bytes(out, s);
}

bool get_strings(base::Reader* r, std::vector<std::string>* out) {
  uint32_t n = 0;
  if (!r->u32(&n) || n > kMaxUrls) return false;
  out->clear();
  for (uint32_t i = 0; i < n; ++i) {
    std::string s;
    if (!r->bytes(&s)) return false;
    out->push_back(std::move(s));
  }
  return true;
}
}  // namespace

std::string encode_proposal(const ProposalHeader& header, std::string_view command) {
  std::string out;
  out.reserve(kHeaderBytes + command.size());
  out.push_back(static_cast<char>(kFormatV1));
  out.push_back(static_cast<char>(header.kind));
  base::put_u64(&out, header.proposer);
  base::put_u64(&out, header.request_id);
  out.append(command);
  return out;
}

std::optional<ProposalHeader> decode_proposal(std::string_view data, std::string_view* command) {
  if (data.size() < kHeaderBytes || static_cast<uint8_t>(data[0]) != kFormatV1) return std::nullopt;
  ProposalHeader h;
  auto kind = static_cast<uint8_t>(data[1]);
  if (kind != static_cast<uint8_t>(ProposalKind::kCommand) &&
      kind != static_cast<uint8_t>(ProposalKind::kMemberAttributes) &&
      kind != static_cast<uint8_t>(ProposalKind::kAlarm) &&
      kind != static_cast<uint8_t>(ProposalKind::kMemberPeerUrls) &&
      kind != static_cast<uint8_t>(ProposalKind::kGroupChange)) {
    return std::nullopt;
  }
  h.kind = static_cast<ProposalKind>(kind);
  h.proposer = base::load_u64(data.data() + 2);
  h.request_id = base::load_u64(data.data() + 10);
  *command = data.substr(kHeaderBytes);
  return h;
}

std::string encode_member_attributes(const MemberAttributes& a) {
  std::string out;
  base::put_u64(&out, a.id);
  base::put_bytes(&out, a.name);
  put_strings(&out, a.client_urls);
  return out;
}

std::optional<MemberAttributes> decode_member_attributes(std::string_view bytes) {
  base::Reader r(bytes);
  MemberAttributes a;
  if (!r.u64(&a.id) || !r.bytes(&a.name) || !get_strings(&r, &a.client_urls) || !r.done()) {
    return std::nullopt;
  }
  return a;
}

std::string encode_alarm_change(const AlarmChange& a) {
  std::string out;
  base::put_u8(&out, a.activate ? 1 : 0);
  base::put_u64(&out, a.member);
  base::put_u8(&out, static_cast<uint8_t>(a.type));
  return out;
}

std::optional<AlarmChange> decode_alarm_change(std::string_view bytes) {
  base::Reader r(bytes);
  AlarmChange a;
  uint8_t type = 0;
  if (!r.boolean(&a.activate) || !r.u64(&a.member) || !r.u8(&type) || !r.done()) {
    return std::nullopt;
  }
  if (type > static_cast<uint8_t>(AlarmType::kCorrupt)) return std::nullopt;
  a.type = static_cast<AlarmType>(type);
  return a;
}

std::string encode_member_peer_urls(const MemberPeerUrls& u) {
  std::string out;
  base::put_u64(&out, u.id);
  put_strings(&out, u.peer_urls);
  return out;
}

std::optional<MemberPeerUrls> decode_member_peer_urls(std::string_view bytes) {
  base::Reader r(bytes);
  MemberPeerUrls u;
  if (!r.u64(&u.id) || !get_strings(&r, &u.peer_urls) || !r.done()) return std::nullopt;
  return u;
}

std::string encode_member_context(const MemberContext& c) {
  std::string out;
  base::put_bytes(&out, c.name);
  put_strings(&out, c.peer_urls);
  return out;
}

std::optional<MemberContext> decode_member_context(std::string_view bytes) {
  base::Reader r(bytes);
  MemberContext c;
  if (!r.bytes(&c.name) || !get_strings(&r, &c.peer_urls) || !r.done()) return std::nullopt;
  return c;
}

namespace {
constexpr uint32_t kServerStateMagic = 0x53534843;  // "CHSS"
constexpr uint32_t kMaxMembers = 1024;
constexpr uint32_t kMaxRemoved = 1u << 16;
// The data groups' part of a server state, after the rest (older states end before it).
constexpr uint8_t kGroupsSection = 1;
constexpr uint32_t kMaxReplicas = 64;

}  // namespace

std::string hex_id(uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

std::string encode_group_change(const GroupChange& c) {
  std::string out;
  base::put_u8(&out, static_cast<uint8_t>(c.op));
  base::put_u64(&out, c.group);
  base::put_u64s(&out, c.replicas);
  base::put_u32(&out, c.count);
  return out;
}

std::optional<GroupChange> decode_group_change(std::string_view bytes) {
  base::Reader r(bytes);
  GroupChange c;
  uint8_t op = 0;
  if (!r.u8(&op) || op < 1 || op > 6 || !r.u64(&c.group) || !r.u64s(kMaxReplicas, &c.replicas) ||
      !r.u32(&c.count) || !r.done()) {
    return std::nullopt;
  }
  c.op = static_cast<GroupChange::Op>(op);
  return c;
}

std::string encode_server_state(const ServerState& s) {
  std::string out;
  base::put_u32(&out, kServerStateMagic);
  base::put_u64(&out, s.index);
  base::put_u64(&out, static_cast<uint64_t>(s.revision));
  base::put_u32(&out, static_cast<uint32_t>(s.members.size()));
  for (const MemberInfo& m : s.members) {
    base::put_u64(&out, m.id);
    base::put_bytes(&out, m.name);
    put_strings(&out, m.peer_urls);
    put_strings(&out, m.client_urls);
    base::put_u8(&out, m.is_learner ? 1 : 0);
  }
  base::put_u64s(&out, s.removed);
  base::put_u32(&out, static_cast<uint32_t>(s.alarms.size()));
  for (const AlarmChange& a : s.alarms)
    base::put_bytes(&out, encode_alarm_change(a));
  if (s.groups.empty() && s.deleted_groups.empty() && s.next_group == 0 && s.initial_groups == 0)
    return out;
  base::put_u8(&out, kGroupsSection);
  base::put_u64(&out, s.next_group);
  base::put_u64(&out, s.groups.size());
  for (const GroupDescriptor& g : s.groups) {
    base::put_u64(&out, g.id);
    base::put_u64s(&out, g.replicas);
    base::put_u64s(&out, g.founders);
    base::put_u64s(&out, g.removed);
    base::put_u64s(&out, g.gone);
  }
  base::put_u64s(&out, s.deleted_groups);
  base::put_u32(&out, s.initial_groups);
  base::put_u64s(&out, s.initial_members);
  return out;
}

std::optional<ServerState> decode_server_state(std::string_view bytes) {
  base::Reader r(bytes);
  ServerState s;
  uint32_t magic = 0, n = 0;
  if (!r.u32(&magic) || magic != kServerStateMagic || !r.u64(&s.index) || !r.i64(&s.revision) ||
      !r.u32(&n) || n > kMaxMembers) {
    return std::nullopt;
  }
  for (uint32_t i = 0; i < n; ++i) {
    MemberInfo m;
    if (!r.u64(&m.id) || !r.bytes(&m.name) || !get_strings(&r, &m.peer_urls) ||
        !get_strings(&r, &m.client_urls) || !r.boolean(&m.is_learner)) {
      return std::nullopt;
    }
    s.members.push_back(std::move(m));
  }
  if (!r.u64s(kMaxRemoved, &s.removed)) return std::nullopt;
  if (!r.u32(&n) || n > kMaxMembers * 2) return std::nullopt;
  for (uint32_t i = 0; i < n; ++i) {
    std::string a;
    if (!r.bytes(&a)) return std::nullopt;
    auto change = decode_alarm_change(a);
    if (!change) return std::nullopt;
    s.alarms.push_back(*change);
  }
  if (r.done()) return s;
  uint8_t section = 0;
  uint64_t groups = 0;
  // Each descriptor takes at least 24 bytes: a damaged count cannot ask for more than is there.
  if (!r.u8(&section) || section != kGroupsSection || !r.u64(&s.next_group) || !r.u64(&groups) ||
      groups > r.remaining() / 24) {
    return std::nullopt;
  }
  s.groups.resize(groups);
  for (GroupDescriptor& g : s.groups) {
    if (!r.u64(&g.id) || !r.u64s(kMaxReplicas, &g.replicas) || !r.u64s(kMaxReplicas, &g.founders) ||
        !r.u64s(UINT32_MAX, &g.removed) || !r.u64s(UINT32_MAX, &g.gone)) {
      return std::nullopt;
    }
  }
  if (!r.u64s(UINT32_MAX, &s.deleted_groups) || !r.u32(&s.initial_groups) ||
      !r.u64s(kMaxMembers, &s.initial_members) || !r.done()) {
    return std::nullopt;
  }
  return s;
}

}  // namespace chorus::server
