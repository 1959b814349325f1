// What a group's leader does next to bring the group's configuration to the replicas its
// directory asks for (chorusd's data groups, docs/ARCHITECTURE.md "Group lifecycle"). Pure: the
// host gathers the inputs from the directory and the core, and carries the step out.
//
// One change at a time, in an order that never leaves the group with fewer replicas than asked:
// a missing member joins as a learner; a learner is promoted once it holds the leader's
// committed log; only then do members no longer asked for go, learners and voters alike. The
// leader does not remove itself: it hands leadership to a voter that stays, whose turn it then
// is. Members out of the configuration that the directory does not know to be gone are reported.
#pragma once

#include <map>
#include <optional>
#include <vector>

#include "raft/raft.h"
#include "raft/types.h"

namespace chorus::engine {

struct ReshapeInput {
  raft::NodeId self = raft::kNoNode;  // the group's leader
  std::vector<raft::NodeId> wanted;   // the replicas the directory asks for
  std::vector<raft::NodeId> removed;  // members that left the group
  std::vector<raft::NodeId> gone;     // of those, the ones the directory knows to be out
  raft::ConfState config;             // the leader's, as applied
  raft::Index commit = 0;
  std::map<raft::NodeId, raft::Index> match;  // the leader's progress, per member
};

struct ReshapeStep {
  std::optional<raft::ConfChangeSingle> change;  // to propose
  raft::NodeId transfer_to = raft::kNoNode;      // instead: hand leadership over
  std::vector<raft::NodeId> report_gone;         // to report to the directory
  bool waiting = false;  // a learner is still catching up (nothing may go meanwhile)
  bool joint = false;    // the configuration is joint: wait for it to settle
  // The configuration is what the directory asks for, and the directory knows it.
  bool settled() const {
    return !change && transfer_to == raft::kNoNode && report_gone.empty() && !waiting && !joint;
  }
};

// The input's leader side from the leader's status: its id, configuration, commit and the
// progress of each member; the caller adds what the directory asks for.
ReshapeInput reshape_input(const raft::Status& leader);

ReshapeStep plan_reshape(const ReshapeInput& in);

}  // namespace chorus::engine
