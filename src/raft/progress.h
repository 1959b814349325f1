// The leader's view of each follower (Progress), flow control (Inflights), quorum arithmetic
// over simple and joint configurations, and the tracker that ties them together.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "raft/types.h"

namespace chorus::raft {

// A sliding window of append messages in flight to one follower, bounded both in messages and in
// bytes so that a slow follower cannot make the leader buffer unbounded data.
class Inflights {
 public:
  Inflights(size_t max_messages, uint64_t max_bytes);
  void add(Index last_index, uint64_t bytes);
  // Frees every message whose last index is <= `index` (acknowledged).
  void free_le(Index index);
  void free_first_one();
  bool full() const;
  size_t count() const { return count_; }
  uint64_t bytes() const { return bytes_; }
  void reset();

 private:
  struct Slot {
    Index index = 0;
    uint64_t bytes = 0;
  };
  std::vector<Slot> buffer_;
  size_t start_ = 0;
  size_t count_ = 0;
  uint64_t bytes_ = 0;
  size_t max_messages_;
  uint64_t max_bytes_;
};

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

// Applies configuration changes to a tracker's configuration, checking every rule of joint
// consensus. `last_index` seeds the progress of added nodes.
class ConfChanger {
 public:
  ConfChanger(const ProgressTracker& tracker, Index last_index)
      : tracker_(tracker), last_index_(last_index) {}

  [[nodiscard]] Error enter_joint(bool auto_leave, const std::vector<ConfChangeSingle>& changes,
                                  TrackerConfig* cfg, std::map<NodeId, Progress>* prs) const;
  [[nodiscard]] Error leave_joint(TrackerConfig* cfg, std::map<NodeId, Progress>* prs) const;
  [[nodiscard]] Error simple(const std::vector<ConfChangeSingle>& changes, TrackerConfig* cfg,
                             std::map<NodeId, Progress>* prs) const;
  // Builds the configuration described by a ConfState (on restart or snapshot restore).
  [[nodiscard]] Error restore(const ConfState& cs, TrackerConfig* cfg,
                              std::map<NodeId, Progress>* prs) const;

 private:
  [[nodiscard]] Error apply(const std::vector<ConfChangeSingle>& changes, TrackerConfig* cfg,
                            std::map<NodeId, Progress>* prs) const;
  void init_progress(NodeId id, bool learner, std::map<NodeId, Progress>* prs) const;
  [[nodiscard]] static Error check(const TrackerConfig& cfg, const std::map<NodeId, Progress>& prs);

  const ProgressTracker& tracker_;
  Index last_index_;
};

}  // namespace chorus::raft
