// The directory of data groups (docs/ARCHITECTURE.md, "Group lifecycle"): which members hold a
// replica of each data group. It is server state of the etcd group: every member applies the
// same changes (GroupChange) in the same log order, so apply() depends on the directory alone.
//
// A new cluster's initial groups (--initial-groups, possibly tens of thousands) are held as a
// range, placed by initial_placement(), and only a group changed since is held as a descriptor
// of its own: the directory costs nothing per group that never moved.
//
// Not thread-safe: the node guards it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "raft/types.h"
#include "server/errors.h"
#include "server/proposal.h"

namespace chorus::server {

// Where a new cluster places data group `group` (2, 3, ...) among its initial members: on
// min(3, n) of them, starting one member further for each group. The first of them campaigns
// when the cluster first starts, so leadership starts spread evenly over the members.
std::vector<raft::NodeId> initial_placement(raft::GroupId group, std::vector<raft::NodeId> members);

// Replicas a data group is placed on when no one says otherwise, and the most it may have.
inline constexpr size_t kReplicasPerGroup = 3;
inline constexpr size_t kMaxGroupReplicas = 64;

class GroupDirectory {
 public:
  // Applies one change; the error for its proposer, and the group as it now stands (as it
  // was, for a deletion).
  RpcError apply(const GroupChange& change, GroupDescriptor* result);

  std::optional<GroupDescriptor> find(raft::GroupId id) const;
  bool deleted(raft::GroupId id) const { return deleted_.contains(id); }
  // How many initial groups the cluster was created with (ids 2..N+1).
  uint32_t initial_count() const { return initial_count_; }
  const std::set<raft::GroupId>& deleted_ids() const { return deleted_; }
  // Every group, in id order.
  void for_each(const std::function<void(const GroupDescriptor&)>& fn) const;

  // Into and out of the server state of a snapshot.
  void save(ServerState* st) const;
  void restore(const ServerState& st);

 private:
  bool implicit(raft::GroupId id) const {
    return id >= 2 && id < 2 + raft::GroupId{initial_count_} && !explicit_.contains(id) &&
           !deleted_.contains(id);
  }
  GroupDescriptor initial(raft::GroupId id) const;
  // The group's own descriptor, made from the initial range if it is still there; nullptr if
  // there is no such group.
  GroupDescriptor* materialize(raft::GroupId id);

  std::map<raft::GroupId, GroupDescriptor> explicit_;
  uint32_t initial_count_ = 0;
  std::vector<raft::NodeId> initial_members_;
  std::set<raft::GroupId> deleted_;
  raft::GroupId next_ = 2;
};

}  // namespace chorus::server
