#include "server/group_directory.h"

#include <algorithm>
#include <string>

namespace chorus::server {

namespace {

bool has(const std::vector<uint64_t>& v, uint64_t id) {
  return std::find(v.begin(), v.end(), id) != v.end();
}

std::string no_group(raft::GroupId id) {
  return "chorus: no group " + std::to_string(id);
}

}  // namespace

std::vector<raft::NodeId> initial_placement(raft::GroupId group,
                                            std::vector<raft::NodeId> members) {
  std::sort(members.begin(), members.end());
  members.erase(std::unique(members.begin(), members.end()), members.end());
  std::vector<raft::NodeId> out;
  if (members.empty() || group < 2) return out;
  size_t n = members.size();
  size_t first = static_cast<size_t>((group - 2) % n);
  for (size_t j = 0; j < std::min(n, kReplicasPerGroup); ++j)
    out.push_back(members[(first + j) % n]);
  return out;
}

GroupDescriptor GroupDirectory::initial(raft::GroupId id) const {
  std::vector<raft::NodeId> placed = initial_placement(id, initial_members_);
  return GroupDescriptor{id, placed, placed, {}, {}};
}

std::optional<GroupDescriptor> GroupDirectory::find(raft::GroupId id) const {
  auto it = explicit_.find(id);
  if (it != explicit_.end()) return it->second;
  if (implicit(id)) return initial(id);
  return std::nullopt;
}

GroupDescriptor* GroupDirectory::materialize(raft::GroupId id) {
  if (implicit(id)) explicit_[id] = initial(id);
  auto it = explicit_.find(id);
  return it == explicit_.end() ? nullptr : &it->second;
}

void GroupDirectory::for_each(const std::function<void(const GroupDescriptor&)>& fn) const {
  // The initial range and the explicit descriptors, merged in id order.
  const raft::GroupId end = 2 + raft::GroupId{initial_count_};
  auto it = explicit_.begin();
  for (raft::GroupId g = 2; g < end; ++g) {
    while (it != explicit_.end() && it->first < g)
      fn((it++)->second);
    if (it != explicit_.end() && it->first == g) {
      fn((it++)->second);
    } else if (!deleted_.contains(g)) {
      fn(initial(g));
    }
  }
  for (; it != explicit_.end(); ++it)
    fn(it->second);
}

RpcError GroupDirectory::apply(const GroupChange& c, GroupDescriptor* result) {
  switch (c.op) {
    case GroupChange::Op::kCreateInitial:
      // Once, as a new cluster's first entries; groups made or removed since stay as they are.
      if (initial_count_ != 0 || c.count == 0) {
        return rpc_error(RpcCode::kFailedPrecondition, "chorus: the initial groups exist");
      }
      initial_count_ = c.count;
      initial_members_ = c.replicas;
      next_ = std::max<raft::GroupId>(next_, 2 + raft::GroupId{c.count});
      return RpcError{};
    case GroupChange::Op::kCreate: {
      const raft::GroupId id = c.group == 0 ? next_ : c.group;
      if (id < 2) {
        return rpc_error(RpcCode::kInvalidArgument,
                         "chorus: group " + std::to_string(id) + " is not a data group");
      }
      if (find(id)) {
        return rpc_error(RpcCode::kAlreadyExists,
                         "chorus: group " + std::to_string(id) + " exists");
      }
      if (deleted_.contains(id)) {
        return rpc_error(RpcCode::kAlreadyExists, "chorus: group " + std::to_string(id) +
                                                      " was deleted; ids are not reused");
      }
      std::set<raft::NodeId> unique(c.replicas.begin(), c.replicas.end());
      if (c.replicas.empty() || unique.size() != c.replicas.size() || unique.contains(0) ||
          c.replicas.size() > kMaxGroupReplicas) {
        return rpc_error(RpcCode::kInvalidArgument, "chorus: a group needs distinct replicas");
      }
      explicit_[id] = GroupDescriptor{id, c.replicas, c.replicas, {}, {}};
      next_ = std::max(next_, id + 1);
      *result = explicit_[id];
      return RpcError{};
    }
    case GroupChange::Op::kReplicaGone: {
      std::optional<GroupDescriptor> d = find(c.group);
      if (!d || c.replicas.size() != 1 || !has(d->removed, c.replicas[0])) {
        return rpc_error(RpcCode::kFailedPrecondition, "chorus: no such removed replica");
      }
      GroupDescriptor* g = materialize(c.group);
      if (!has(g->gone, c.replicas[0])) g->gone.push_back(c.replicas[0]);
      *result = *g;
      return RpcError{};
    }
    case GroupChange::Op::kAddReplica:
    case GroupChange::Op::kRemoveReplica: {
      std::optional<GroupDescriptor> d = find(c.group);
      if (!d) return rpc_error(RpcCode::kNotFound, no_group(c.group));
      if (c.replicas.size() != 1 || c.replicas[0] == 0)
        return rpc_error(RpcCode::kInvalidArgument, "chorus: name one member");
      const raft::NodeId m = c.replicas[0];
      const std::string group = std::to_string(c.group);
      if (c.op == GroupChange::Op::kAddReplica) {
        if (has(d->replicas, m)) {
          return rpc_error(
              RpcCode::kAlreadyExists,
              "chorus: member " + hex_id(m) + " holds a replica of group " + group + " already");
        }
        if (d->replicas.size() >= kMaxGroupReplicas) {
          return rpc_error(RpcCode::kFailedPrecondition, "chorus: group " + group + " has " +
                                                             std::to_string(kMaxGroupReplicas) +
                                                             " replicas, the most it may");
        }
        if (has(d->removed, m)) {
          return rpc_error(RpcCode::kFailedPrecondition,
                           "chorus: member " + hex_id(m) + " left group " + group +
                               " before; a member does not return to a group it left");
        }
        GroupDescriptor* g = materialize(c.group);
        g->replicas.push_back(m);
        *result = *g;
        return RpcError{};
      }
      if (!has(d->replicas, m)) {
        return rpc_error(RpcCode::kNotFound,
                         "chorus: member " + hex_id(m) + " holds no replica of group " + group);
      }
      if (d->replicas.size() == 1) {
        return rpc_error(
            RpcCode::kFailedPrecondition,
            "chorus: the last replica of group " + group + " stays; delete the group instead");
      }
      GroupDescriptor* g = materialize(c.group);
      std::erase(g->replicas, m);
      g->removed.push_back(m);
      *result = *g;
      return RpcError{};
    }
    case GroupChange::Op::kDelete: {
      std::optional<GroupDescriptor> d = find(c.group);
      if (!d) return rpc_error(RpcCode::kNotFound, no_group(c.group));
      *result = *d;
      explicit_.erase(c.group);
      deleted_.insert(c.group);
      return RpcError{};
    }
  }
  return rpc_error(RpcCode::kInvalidArgument, "chorus: unknown group change");
}

void GroupDirectory::save(ServerState* st) const {
  st->groups.clear();
  for (const auto& [id, d] : explicit_)
    st->groups.push_back(d);
  st->deleted_groups.assign(deleted_.begin(), deleted_.end());
  st->next_group = next_;
  st->initial_groups = initial_count_;
  st->initial_members = initial_members_;
}

void GroupDirectory::restore(const ServerState& st) {
  explicit_.clear();
  for (const GroupDescriptor& d : st.groups)
    explicit_[d.id] = d;
  deleted_ = std::set<raft::GroupId>(st.deleted_groups.begin(), st.deleted_groups.end());
  next_ = std::max<raft::GroupId>(st.next_group, 2);
  initial_count_ = st.initial_groups;
  initial_members_ = st.initial_members;
}

}  // namespace chorus::server
