#include "engine/reshape.h"

#include <algorithm>

namespace chorus::engine {

namespace {

bool has(const std::vector<raft::NodeId>& v, raft::NodeId id) {
  return std::find(v.begin(), v.end(), id) != v.end();
}

}  // namespace

ReshapeInput reshape_input(const raft::Status& leader) {
  ReshapeInput in;
  in.self = leader.id;
  in.config = leader.config;
  in.commit = leader.hard_state.commit;
  for (const auto& [id, pr] : leader.progress)
    in.match[id] = pr.match;
  return in;
}

ReshapeStep plan_reshape(const ReshapeInput& in) {
  ReshapeStep out;
  const raft::ConfState& cfg = in.config;
  if (!cfg.voters_outgoing.empty()) {
    out.joint = true;
    return out;
  }
  for (raft::NodeId m : in.wanted) {
    if (!has(cfg.voters, m) && !has(cfg.learners, m)) {
      out.change = raft::ConfChangeSingle{raft::ConfChangeType::kAddLearner, m};
      return out;
    }
  }
  for (raft::NodeId m : in.wanted) {
    if (!has(cfg.learners, m)) continue;
    auto pr = in.match.find(m);
    if (pr != in.match.end() && pr->second >= in.commit) {
      out.change = raft::ConfChangeSingle{raft::ConfChangeType::kAddNode, m};
      return out;
    }
    out.waiting = true;
  }
  if (out.waiting) return out;
  for (raft::NodeId m : cfg.voters) {
    if (has(in.wanted, m)) continue;
    if (m != in.self) {
      out.change = raft::ConfChangeSingle{raft::ConfChangeType::kRemoveNode, m};
      return out;
    }
  }
  for (raft::NodeId m : cfg.learners) {
    if (!has(in.wanted, m)) {
      out.change = raft::ConfChangeSingle{raft::ConfChangeType::kRemoveNode, m};
      return out;
    }
  }
  if (has(cfg.voters, in.self) && !has(in.wanted, in.self)) {
    // Every other change is made: the leader, which is to go, hands over to a voter that stays.
    for (raft::NodeId v : cfg.voters) {
      if (v != in.self && has(in.wanted, v)) out.transfer_to = v;
    }
    if (out.transfer_to != raft::kNoNode) return out;
  }
  for (raft::NodeId m : in.removed) {
    if (!has(in.gone, m) && !has(cfg.voters, m) && !has(cfg.learners, m))
      out.report_gone.push_back(m);
  }
  return out;
}

}  // namespace chorus::engine
