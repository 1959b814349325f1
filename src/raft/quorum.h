// Quorum arithmetic over simple and joint configurations: the commit index a quorum holds and
// the outcome of an election, from each voter's value.
#pragma once

#include <functional>
#include <map>
#include <vector>

#include "raft/types.h"

namespace chorus::raft {

// Quorum arithmetic. A MajorityConfig is a sorted set of voter ids.
using MajorityConfig = std::vector<NodeId>;

enum class VoteResult : uint8_t { kPending, kLost, kWon };

// The largest value acknowledged by a majority, where `value_of` gives each voter's value (for
// commit: its match index). An empty configuration returns kNoLimit so that joint quorums with an
// empty side reduce to the other side.
Index majority_committed(const MajorityConfig& config,
                         const std::function<Index(NodeId)>& value_of);
VoteResult majority_vote(const MajorityConfig& config, const std::map<NodeId, bool>& votes);

struct JointConfig {
  MajorityConfig incoming;
  MajorityConfig outgoing;  // empty unless in joint consensus
  bool joint() const { return !outgoing.empty(); }
  Index committed(const std::function<Index(NodeId)>& value_of) const;
  VoteResult vote(const std::map<NodeId, bool>& votes) const;
  bool contains(NodeId id) const;
};

}  // namespace chorus::raft
