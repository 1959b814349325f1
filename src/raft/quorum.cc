#include "raft/quorum.h"

#include <algorithm>
#include <array>

namespace chorus::raft {

Index majority_committed(const MajorityConfig& config,
                         const std::function<Index(NodeId)>& value_of) {
  size_t n = config.size();
  if (n == 0) return kNoLimit;
  // Stack storage for the common cluster sizes: the commit path allocates nothing.
  std::array<Index, 16> small{};
  std::vector<Index> large;
  Index* values = small.data();
  if (n > small.size()) {
    large.resize(n);
    values = large.data();
  }
  for (size_t i = 0; i < n; ++i)
    values[i] = value_of(config[i]);
  std::sort(values, values + n);
  // With values sorted ascending, the element at n - (n/2 + 1) is held by a majority.
  return values[n - (n / 2 + 1)];
}

VoteResult majority_vote(const MajorityConfig& config, const std::map<NodeId, bool>& votes) {
  if (config.empty()) return VoteResult::kWon;
  size_t granted = 0;
  size_t missing = 0;
  for (NodeId id : config) {
    auto it = votes.find(id);
    if (it == votes.end()) {
      ++missing;
    } else if (it->second) {
      ++granted;
    }
  }
  size_t q = config.size() / 2 + 1;
  if (granted >= q) return VoteResult::kWon;
  if (granted + missing >= q) return VoteResult::kPending;
  return VoteResult::kLost;
}

Index JointConfig::committed(const std::function<Index(NodeId)>& value_of) const {
  return std::min(majority_committed(incoming, value_of), majority_committed(outgoing, value_of));
}

VoteResult JointConfig::vote(const std::map<NodeId, bool>& votes) const {
  VoteResult a = majority_vote(incoming, votes);
  VoteResult b = majority_vote(outgoing, votes);
  if (a == b) return a;
  if (a == VoteResult::kLost || b == VoteResult::kLost) return VoteResult::kLost;
  return VoteResult::kPending;
}

bool JointConfig::contains(NodeId id) const {
  return std::find(incoming.begin(), incoming.end(), id) != incoming.end() ||
         std::find(outgoing.begin(), outgoing.end(), id) != outgoing.end();
}

}  // namespace chorus::raft
