#include "raft/progress.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace chorus::raft {

const char* to_string(ProgressState state) {
  switch (state) {
    case ProgressState::kProbe:
      return "probe";
    case ProgressState::kReplicate:
      return "replicate";
    case ProgressState::kSnapshot:
      return "snapshot";
  }
  return "?";
}

void Progress::become_probe() {
  // After a snapshot the follower has at least the snapshot's index; start probing after it.
  if (state == ProgressState::kSnapshot) {
    Index pending = pending_snapshot;
    state = ProgressState::kProbe;
    next = std::max(match + 1, pending + 1);
  } else {
    state = ProgressState::kProbe;
    next = match + 1;
  }
  pending_snapshot = 0;
  msg_app_flow_paused = false;
  inflights.reset();
}

void Progress::become_replicate() {
  state = ProgressState::kReplicate;
  next = match + 1;
  pending_snapshot = 0;
  msg_app_flow_paused = false;
  inflights.reset();
}

void Progress::become_snapshot(Index snapshot_index) {
  state = ProgressState::kSnapshot;
  pending_snapshot = snapshot_index;
  msg_app_flow_paused = false;
  inflights.reset();
}

bool Progress::maybe_update(Index n) {
  bool updated = false;
  if (match < n) {
    match = n;
    updated = true;
    msg_app_flow_paused = false;
  }
  next = std::max(next, n + 1);
  return updated;
}

bool Progress::maybe_decr_to(Index rejected, Index match_hint) {
  if (state == ProgressState::kReplicate) {
    // Rejections of indexes at or below match are stale (reordered or duplicated messages).
    if (rejected <= match) return false;
    next = match + 1;
    return true;
  }
  // In probe state only the rejection of the last probe counts.
  if (next == 0 || next - 1 != rejected) return false;
  next = std::max(std::min(rejected, match_hint + 1), match + 1);
  msg_app_flow_paused = false;
  return true;
}

void Progress::sent_entries(size_t count, uint64_t bytes, Index last_index) {
  switch (state) {
    case ProgressState::kReplicate:
      if (count > 0) {
        next = last_index + 1;
        inflights.add(last_index, bytes);
      }
      break;
    case ProgressState::kProbe:
      if (count > 0) msg_app_flow_paused = true;
      break;
    case ProgressState::kSnapshot:
      std::fprintf(stderr, "raft: sending entries to a follower in snapshot state\n");
      std::abort();
  }
}

bool Progress::is_paused() const {
  switch (state) {
    case ProgressState::kProbe:
      return msg_app_flow_paused;
    case ProgressState::kReplicate:
      return inflights.full();
    case ProgressState::kSnapshot:
      return true;
  }
  return true;
}

ConfState TrackerConfig::to_conf_state() const {
  ConfState cs;
  cs.voters = voters.incoming;
  cs.voters_outgoing = voters.outgoing;
  cs.learners = learners;
  cs.learners_next = learners_next;
  cs.auto_leave = auto_leave;
  return cs;
}

ProgressTracker::ProgressTracker(size_t max_inflight_messages, uint64_t max_inflight_bytes)
    : max_inflight_messages_(max_inflight_messages), max_inflight_bytes_(max_inflight_bytes) {}

Index ProgressTracker::committed() const {
  Index c = config.voters.committed([this](NodeId id) -> Index {
    auto it = progress.find(id);
    return it == progress.end() ? 0 : it->second.match;
  });
  return c == kNoLimit ? 0 : c;
}

bool ProgressTracker::quorum_active() const {
  std::map<NodeId, bool> active;
  for (const auto& [id, pr] : progress) {
    if (!pr.is_learner) active[id] = pr.recent_active;
  }
  return config.voters.vote(active) == VoteResult::kWon;
}

bool ProgressTracker::is_singleton() const {
  return config.voters.incoming.size() == 1 && !config.voters.joint();
}

void ProgressTracker::record_vote(NodeId id, bool granted) {
  votes.emplace(id, granted);
}

}  // namespace chorus::raft
