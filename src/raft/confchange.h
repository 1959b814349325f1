// Configuration changes: the rules of joint consensus applied to a tracker's configuration.
#pragma once

#include <map>
#include <vector>

#include "raft/progress.h"
#include "raft/types.h"

namespace chorus::raft {

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
