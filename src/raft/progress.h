// The leader's view of each follower (Progress) and the tracker that ties the followers'
// progress to the configuration's quorums. Internal to the core: the driver sees raft::Status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "raft/inflights.h"
#include "raft/quorum.h"
#include "raft/types.h"

namespace chorus::raft {

enum class ProgressState : uint8_t { kProbe, kReplicate, kSnapshot };
const char* to_string(ProgressState state);

struct Progress {
  Progress(size_t max_inflight_messages, uint64_t max_inflight_bytes)
      : inflights(max_inflight_messages, max_inflight_bytes) {}

  Index match = 0;
  Index next = 1;
  ProgressState state = ProgressState::kProbe;
  Index pending_snapshot = 0;
  // Set on any response; the leader's check-quorum clears it every election timeout.
  bool recent_active = false;
  // Probe state sends one append per heartbeat interval until the follower answers.
  bool msg_app_flow_paused = false;
  bool is_learner = false;
  Inflights inflights;

  void become_probe();
  void become_replicate();
  void become_snapshot(Index snapshot_index);
  // Records a successful append response; returns false when it is stale.
  bool maybe_update(Index n);
  // After a rejection: moves `next` back using the follower's hint. False when stale.
  bool maybe_decr_to(Index rejected, Index match_hint);
  void sent_entries(size_t count, uint64_t bytes, Index last_index);
  bool is_paused() const;
};

struct TrackerConfig {
  JointConfig voters;
  std::vector<NodeId> learners;
  std::vector<NodeId> learners_next;
  bool auto_leave = false;
  ConfState to_conf_state() const;
};

class ProgressTracker {
 public:
  ProgressTracker(size_t max_inflight_messages, uint64_t max_inflight_bytes);

  TrackerConfig config;
  std::map<NodeId, Progress> progress;
  std::map<NodeId, bool> votes;

  Index committed() const;
  bool quorum_active() const;
  bool is_voter(NodeId id) const { return config.voters.contains(id); }
  // True if this node is the only voter, so it commits alone.
  bool is_singleton() const;
  void reset_votes() { votes.clear(); }
  void record_vote(NodeId id, bool granted);
  VoteResult tally() const { return config.voters.vote(votes); }
  Progress make_progress() const { return Progress(max_inflight_messages_, max_inflight_bytes_); }

 private:
  size_t max_inflight_messages_;
  uint64_t max_inflight_bytes_;
};

}  // namespace chorus::raft
