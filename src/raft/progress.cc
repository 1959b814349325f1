#include "raft/progress.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>

namespace chorus::raft {
namespace {

bool contains(const std::vector<NodeId>& ids, NodeId id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

void insert_sorted(std::vector<NodeId>* ids, NodeId id) {
  auto it = std::lower_bound(ids->begin(), ids->end(), id);
  if (it == ids->end() || *it != id) ids->insert(it, id);
}

void erase(std::vector<NodeId>* ids, NodeId id) {
  ids->erase(std::remove(ids->begin(), ids->end(), id), ids->end());
}

}  // namespace

Inflights::Inflights(size_t max_messages, uint64_t max_bytes)
    : max_messages_(max_messages), max_bytes_(max_bytes) {}

void Inflights::add(Index last_index, uint64_t bytes) {
  if (full()) {
    std::fprintf(stderr, "raft: inflights overflow\n");
    std::abort();
  }
  if (count_ == buffer_.size()) {
    // Grow lazily: most followers never need the whole window.
    size_t want = std::min(max_messages_, std::max<size_t>(buffer_.size() * 2, 4));
    std::vector<Slot> grown(want);
    for (size_t i = 0; i < count_; ++i)
      grown[i] = buffer_[(start_ + i) % buffer_.size()];
    buffer_ = std::move(grown);
    start_ = 0;
  }
  size_t pos = (start_ + count_) % buffer_.size();
  buffer_[pos] = Slot{last_index, bytes};
  ++count_;
  bytes_ += bytes;
}

void Inflights::free_le(Index index) {
  while (count_ > 0 && buffer_[start_].index <= index) {
    bytes_ -= buffer_[start_].bytes;
    start_ = (start_ + 1) % buffer_.size();
    --count_;
  }
  if (count_ == 0) start_ = 0;
}

void Inflights::free_first_one() {
  if (count_ == 0) return;
  free_le(buffer_[start_].index);
}

bool Inflights::full() const {
  return count_ >= max_messages_ || (max_bytes_ != 0 && bytes_ >= max_bytes_);
}

void Inflights::reset() {
  start_ = 0;
  count_ = 0;
  bytes_ = 0;
}

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
  return raft::contains(incoming, id) || raft::contains(outgoing, id);
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

Error ConfChanger::enter_joint(bool auto_leave, const std::vector<ConfChangeSingle>& changes,
                               TrackerConfig* cfg, std::map<NodeId, Progress>* prs) const {
  *cfg = tracker_.config;
  *prs = tracker_.progress;
  if (cfg->voters.joint()) return Error::kInvalidConfChange;  // already joint
  if (cfg->voters.incoming.empty()) return Error::kInvalidConfChange;
  cfg->voters.outgoing = cfg->voters.incoming;
  Error err = apply(changes, cfg, prs);
  if (err != Error::kOk) return err;
  cfg->auto_leave = auto_leave;
  return check(*cfg, *prs);
}

Error ConfChanger::leave_joint(TrackerConfig* cfg, std::map<NodeId, Progress>* prs) const {
  *cfg = tracker_.config;
  *prs = tracker_.progress;
  if (!cfg->voters.joint()) return Error::kInvalidConfChange;
  for (NodeId id : cfg->learners_next) {
    insert_sorted(&cfg->learners, id);
    (*prs).at(id).is_learner = true;
  }
  cfg->learners_next.clear();
  for (NodeId id : cfg->voters.outgoing) {
    bool is_voter = contains(cfg->voters.incoming, id);
    bool is_learner = contains(cfg->learners, id);
    if (!is_voter && !is_learner) prs->erase(id);
  }
  cfg->voters.outgoing.clear();
  cfg->auto_leave = false;
  return check(*cfg, *prs);
}

Error ConfChanger::simple(const std::vector<ConfChangeSingle>& changes, TrackerConfig* cfg,
                          std::map<NodeId, Progress>* prs) const {
  *cfg = tracker_.config;
  *prs = tracker_.progress;
  if (cfg->voters.joint()) return Error::kInvalidConfChange;
  Error err = apply(changes, cfg, prs);
  if (err != Error::kOk) return err;
  // A simple change may alter at most one voter, else two majorities could be disjoint.
  const auto& before = tracker_.config.voters.incoming;
  const auto& after = cfg->voters.incoming;
  size_t diff = 0;
  for (NodeId id : before)
    diff += contains(after, id) ? 0 : 1;
  for (NodeId id : after)
    diff += contains(before, id) ? 0 : 1;
  if (diff > 1) return Error::kInvalidConfChange;
  return check(*cfg, *prs);
}

Error ConfChanger::restore(const ConfState& cs, TrackerConfig* cfg,
                           std::map<NodeId, Progress>* prs) const {
  *cfg = TrackerConfig{};
  prs->clear();
  for (NodeId id : cs.voters)
    insert_sorted(&cfg->voters.incoming, id);
  for (NodeId id : cs.voters_outgoing)
    insert_sorted(&cfg->voters.outgoing, id);
  for (NodeId id : cs.learners)
    insert_sorted(&cfg->learners, id);
  for (NodeId id : cs.learners_next)
    insert_sorted(&cfg->learners_next, id);
  cfg->auto_leave = cs.auto_leave && cfg->voters.joint();
  for (NodeId id : cfg->voters.incoming)
    init_progress(id, false, prs);
  for (NodeId id : cfg->voters.outgoing)
    init_progress(id, false, prs);
  for (NodeId id : cfg->learners)
    init_progress(id, true, prs);
  for (NodeId id : cfg->learners_next)
    init_progress(id, false, prs);
  if (cfg->voters.incoming.empty() && cfg->voters.outgoing.empty() && cfg->learners.empty()) {
    return Error::kOk;  // a node that joins later starts with no configuration
  }
  return check(*cfg, *prs);
}

Error ConfChanger::apply(const std::vector<ConfChangeSingle>& changes, TrackerConfig* cfg,
                         std::map<NodeId, Progress>* prs) const {
  for (const ConfChangeSingle& cc : changes) {
    if (cc.node == kNoNode) return Error::kInvalidConfChange;
    switch (cc.type) {
      case ConfChangeType::kAddNode:
        insert_sorted(&cfg->voters.incoming, cc.node);
        erase(&cfg->learners, cc.node);
        erase(&cfg->learners_next, cc.node);
        init_progress(cc.node, false, prs);
        prs->at(cc.node).is_learner = false;
        break;
      case ConfChangeType::kAddLearner:
        erase(&cfg->voters.incoming, cc.node);
        erase(&cfg->learners, cc.node);
        erase(&cfg->learners_next, cc.node);
        init_progress(cc.node, true, prs);
        if (contains(cfg->voters.outgoing, cc.node)) {
          // Still a voter of the outgoing side: becomes a learner when the joint state ends.
          insert_sorted(&cfg->learners_next, cc.node);
          prs->at(cc.node).is_learner = false;
        } else {
          insert_sorted(&cfg->learners, cc.node);
          prs->at(cc.node).is_learner = true;
        }
        break;
      case ConfChangeType::kRemoveNode:
        erase(&cfg->voters.incoming, cc.node);
        erase(&cfg->learners, cc.node);
        erase(&cfg->learners_next, cc.node);
        if (!contains(cfg->voters.outgoing, cc.node)) prs->erase(cc.node);
        break;
    }
  }
  if (cfg->voters.incoming.empty()) return Error::kInvalidConfChange;
  return Error::kOk;
}

void ConfChanger::init_progress(NodeId id, bool learner, std::map<NodeId, Progress>* prs) const {
  if (prs->count(id) != 0) return;
  Progress pr = tracker_.make_progress();
  pr.match = 0;
  pr.next = std::max<Index>(last_index_, 1);
  pr.is_learner = learner;
  // A new node counts as active so that adding it cannot make check-quorum step the leader down
  // before it had a chance to answer.
  pr.recent_active = true;
  prs->emplace(id, std::move(pr));
}

Error ConfChanger::check(const TrackerConfig& cfg, const std::map<NodeId, Progress>& prs) {
  for (NodeId id : cfg.voters.incoming) {
    if (prs.count(id) == 0) return Error::kInvalidConfChange;
  }
  for (NodeId id : cfg.voters.outgoing) {
    if (prs.count(id) == 0) return Error::kInvalidConfChange;
  }
  for (NodeId id : cfg.learners) {
    if (prs.count(id) == 0 || !prs.at(id).is_learner) return Error::kInvalidConfChange;
    if (cfg.voters.contains(id)) return Error::kInvalidConfChange;
  }
  for (NodeId id : cfg.learners_next) {
    if (!contains(cfg.voters.outgoing, id)) return Error::kInvalidConfChange;
    if (contains(cfg.voters.incoming, id)) return Error::kInvalidConfChange;
    if (contains(cfg.learners, id)) return Error::kInvalidConfChange;
  }
  if (!cfg.voters.joint() && (!cfg.learners_next.empty() || cfg.auto_leave)) {
    return Error::kInvalidConfChange;
  }
  return Error::kOk;
}

}  // namespace chorus::raft
