#include "raft/confchange.h"

#include <algorithm>

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
