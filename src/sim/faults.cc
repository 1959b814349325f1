// Fault injection: partitions, crashes, pauses, membership changes and leadership transfers.
#include <algorithm>

#include "engine/reshape.h"
#include "sim/simulation.h"

namespace chorus::sim {
namespace {

std::string ids(const std::vector<raft::NodeId>& v) {
  std::string s;
  for (raft::NodeId id : v)
    s += (s.empty() ? "" : ",") + std::to_string(id);
  return "{" + s + "}";
}

}  // namespace

SimNode* Simulation::highest_leader(raft::GroupId group) {
  SimNode* best = nullptr;
  for (auto& [id, n] : nodes_) {
    if (!n.up || n.paused || n.core(group).role() != raft::Role::kLeader) continue;
    if (best == nullptr || n.core(group).term() > best->core(group).term()) best = &n;
  }
  return best;
}

void Simulation::inject_faults() {
  if (!faults_active_) return;
  if (blocked_.empty()) {
    if (p_partition_ > 0 && fault_rng_.chance(p_partition_)) make_partition();
  } else if (fault_rng_.chance(p_heal_)) {
    blocked_.clear();
    note("network heals");
  }
  if (p_crash_ > 0 && fault_rng_.chance(p_crash_)) {
    std::vector<raft::NodeId> up;
    for (auto& [id, n] : nodes_) {
      if (n.up) up.push_back(id);
    }
    if (!up.empty()) crash(nodes_.at(up[fault_rng_.below(up.size())]));
  }
  if (p_pause_ > 0 && fault_rng_.chance(p_pause_)) {
    std::vector<raft::NodeId> running;
    for (auto& [id, n] : nodes_) {
      if (n.up && !n.paused) running.push_back(id);
    }
    if (!running.empty()) {
      SimNode& n = nodes_.at(running[fault_rng_.below(running.size())]);
      n.paused = true;
      uint64_t pause_us = fault_rng_.range(50'000, 1'500'000);
      bool leads = false;
      for (const auto& [group, r] : n.groups)
        leads = leads || r.core().role() == raft::Role::kLeader;
      note("n" + std::to_string(n.id) + " pauses for " + std::to_string(pause_us / 1000) + " ms" +
           (leads ? " (leader)" : ""));
      schedule_node_event(now_ + pause_us, EventKind::kResume, n);
    }
  }
  if (p_disk_full_ > 0 && fault_rng_.chance(p_disk_full_)) fill_disk();
  if (p_damage_ > 0 && fault_rng_.chance(p_damage_)) damage_disk();
  if (p_member_ > 0 && fault_rng_.chance(p_member_)) membership_change();
  if (p_member_ > 0 && move_rng_.chance(p_member_ / 2)) start_move();
  if (p_transfer_ > 0 && fault_rng_.chance(p_transfer_)) leader_transfer();
}

void Simulation::make_partition() {
  std::vector<raft::NodeId> all;
  for (auto& [id, n] : nodes_)
    all.push_back(id);
  for (size_t i = all.size(); i > 1; --i)
    std::swap(all[i - 1], all[fault_rng_.below(i)]);
  size_t n = all.size();
  auto cut_both = [&](raft::NodeId a, raft::NodeId b) {
    blocked_.insert({a, b});
    blocked_.insert({b, a});
  };
  switch (fault_rng_.below(4)) {
    case 0: {  // one node isolated
      for (size_t i = 1; i < n; ++i)
        cut_both(all[0], all[i]);
      note("partition: n" + std::to_string(all[0]) + " isolated");
      break;
    }
    case 1: {  // a minority against a majority
      size_t minority = 1 + fault_rng_.below(std::max<size_t>(1, (n - 1) / 2));
      std::vector<raft::NodeId> a(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(minority));
      std::vector<raft::NodeId> b(all.begin() + static_cast<std::ptrdiff_t>(minority), all.end());
      for (auto x : a) {
        for (auto y : b)
          cut_both(x, y);
      }
      note("partition: " + ids(a) + " | " + ids(b));
      break;
    }
    case 2: {  // majorities ring: each node sees a majority, no two see the same one
      size_t majority = n / 2 + 1;
      size_t reach = majority / 2;
      for (size_t i = 0; i < n; ++i) {
        for (size_t j = i + 1; j < n; ++j) {
          size_t d = std::min(j - i, n - (j - i));
          if (d > reach) cut_both(all[i], all[j]);
        }
      }
      note("partition: majorities ring " + ids(all));
      break;
    }
    default: {  // one-way: a node cannot reach some others but hears them
      size_t k = 1 + fault_rng_.below(n - 1);
      for (size_t i = 1; i <= k; ++i)
        blocked_.insert({all[0], all[i]});
      note("partition: n" + std::to_string(all[0]) + " cannot send to " + std::to_string(k) +
           " nodes");
      break;
    }
  }
}

void Simulation::fill_disk() {
  std::vector<raft::NodeId> candidates;
  for (auto& [id, n] : nodes_) {
    if (!n.storage->disk_full()) candidates.push_back(id);
  }
  if (candidates.empty()) return;
  SimNode& n = nodes_.at(candidates[fault_rng_.below(candidates.size())]);
  uint64_t slack = fault_rng_.below(4 << 10);
  uint64_t for_us = fault_rng_.range(200'000, 3'000'000);
  n.storage->fill_disk(slack);
  note("n" + std::to_string(n.id) + "'s disk fills up (" + std::to_string(slack) +
       " bytes left) for " + std::to_string(for_us / 1000) + " ms");
  Event e;
  e.time = now_ + for_us;
  e.kind = EventKind::kDiskFreed;
  e.node = n.id;
  schedule(std::move(e));
}

void Simulation::damage_disk() {
  // One damaged member at a time, so that a cluster of three keeps a quorum while it is
  // replaced.
  if (damage_pending()) return;
  // In every group: not while a configuration change is in flight, as it could leave fewer
  // voters.
  for (const auto& [group, initial] : initial_confs_) {
    SimNode* l = highest_leader(group);
    if (l == nullptr) return;
    const raft::Raft& core = l->core(group);
    raft::ConfState cs = core.status().config;
    if (cs.voters.size() < 3 || !cs.voters_outgoing.empty() ||
        core.log().last_index() != core.log().applied())
      return;
  }
  std::vector<raft::NodeId> candidates;
  for (auto& [id, n] : nodes_) {
    if (!n.lost) candidates.push_back(id);
  }
  SimNode& n = nodes_.at(candidates[fault_rng_.below(candidates.size())]);
  if (!n.storage->damage(fault_rng_.next())) return;
  ++result_.logs_damaged;
  note("a byte of n" + std::to_string(n.id) + "'s log changes on its disk (in " +
       n.storage->damaged_segment() + ")");
  if (!n.up) {
    // The node's restart has not read its log yet (the simulation recovers it when it goes
    // down): recover again from the damaged disk, as the restart will.
    std::string err = n.storage->crash(false, disk_rng_.next());
    if (!err.empty()) fail(Check::kStorage, "wal recovery: n" + std::to_string(n.id) + " " + err);
  }
}

bool Simulation::damage_pending() const {
  if (replacing_ || !to_replace_.empty()) return true;
  for (const auto& [id, n] : nodes_) {
    if (!n.lost && n.storage->damaged()) return true;
  }
  return false;
}

void Simulation::mark_lost(SimNode& n) {
  ++result_.damage_found_at_start;
  if (opt_.mutation == Mutation::kRejoinEmptyUnderOldId) {
    note("n" + std::to_string(n.id) + " refuses to start: " + n.storage->lost_reason() +
         "; it is wiped and started again under its old id");
    n.storage = std::make_unique<SimStorage>(initial_confs_, wal_options_);
    n.up = true;
    start_node(n);
    drive(n);
    return;
  }
  n.lost = true;
  note("n" + std::to_string(n.id) + " refuses to start: " + n.storage->lost_reason() +
       "; the operator replaces it");
  to_replace_.push_back(n.id);
}

SimNode& Simulation::add_node(raft::NodeId id) {
  SimNode& n = nodes_[id];
  n.id = id;
  n.clock_rate = 1.0 + (fault_rng_.unit() * 2 - 1) * max_drift_;
  // An empty data directory: the group as every member first had it, before any entry (as a
  // member chorusd adds replays the bootstrap entries).
  n.storage = std::make_unique<SimStorage>(initial_confs_, wal_options_);
  for (auto& [other, o] : nodes_) {
    link_base_[{id, other}] = base_latency_us_ / 2 + fault_rng_.below(base_latency_us_);
    link_base_[{other, id}] = base_latency_us_ / 2 + fault_rng_.below(base_latency_us_);
  }
  start_node(n);
  for (auto& [other, o] : nodes_) {
    if (o.engine != nullptr) o.engine->set_peers(member_ids(), o.clock_us);
  }
  return n;
}

std::vector<raft::NodeId> Simulation::member_ids() const {
  std::vector<raft::NodeId> ids;
  for (const auto& [id, n] : nodes_) {
    if (!n.lost) ids.push_back(id);
  }
  return ids;
}

void Simulation::replace_lost() {
  if (!replacing_) {
    if (to_replace_.empty()) return;
    replacing_ = Replacement{};
    replacing_->old_id = to_replace_.front();
    to_replace_.pop_front();
  }
  Replacement& r = *replacing_;
  if (now_ < r.next_try) return;
  auto in = [](const std::vector<raft::NodeId>& v, raft::NodeId id) {
    return std::find(v.begin(), v.end(), id) != v.end();
  };
  // One step in each group, through its leader; a group without one, or in a joint
  // configuration, waits.
  bool done = true;
  bool removed_everywhere = true;
  for (const auto& [group, initial] : initial_confs_) {
    SimNode* l = highest_leader(group);
    if (l == nullptr) {
      done = false;
      removed_everywhere = false;
      continue;
    }
    const raft::Raft& core = l->core(group);
    raft::ConfState cs = core.status().config;
    if (!cs.voters_outgoing.empty()) {  // joint: wait for auto-leave
      done = false;
      removed_everywhere = false;
      continue;
    }
    r.next_try = now_ + 200'000;
    auto propose = [&](raft::ConfChangeType type, raft::NodeId id, const char* what) {
      raft::ConfChange cc;
      cc.changes = {{type, id}};
      raft::Error err = l->group(group).replica->propose_conf_change(cc);
      note("operator: " + who(l->id, group) + " proposes " + what + " n" + std::to_string(id) +
           ": " + raft::to_string(err));
      drive(*l);
    };
    if (r.new_id == raft::kNoNode) {
      bool voter = in(cs.voters, r.old_id);
      if (voter || in(cs.learners, r.old_id)) {
        r.was_voter.emplace(group, voter);
        propose(raft::ConfChangeType::kRemoveNode, r.old_id, "to remove lost");
        done = false;
        removed_everywhere = false;
      }
      continue;
    }
    auto member = r.was_voter.find(group);
    if (member == r.was_voter.end()) continue;  // the lost member was not in this group
    if (!in(cs.voters, r.new_id) && !in(cs.learners, r.new_id)) {
      propose(raft::ConfChangeType::kAddLearner, r.new_id, "to add learner");
      done = false;
      continue;
    }
    if (member->second && !in(cs.voters, r.new_id)) {
      // As etcd's member promote: only a learner that caught up with the leader.
      done = false;
      const SimNode& n = nodes_.at(r.new_id);
      if (n.up && n.group(group).sm.applied() + 10 >= core.log().committed())
        propose(raft::ConfChangeType::kAddNode, r.new_id, "to promote");
    }
  }
  if (r.new_id == raft::kNoNode) {
    if (!removed_everywhere) return;
    r.new_id = next_node_id_++;
    add_node(r.new_id);
    note("operator: n" + std::to_string(r.new_id) + " starts on an empty disk to replace n" +
         std::to_string(r.old_id));
    return;
  }
  if (!done) return;
  ++result_.members_replaced;
  note("operator: n" + std::to_string(r.new_id) + " replaced n" + std::to_string(r.old_id));
  replacing_.reset();
}

void Simulation::free_disk(SimNode& n) {
  n.storage->free_disk();
  note("n" + std::to_string(n.id) + "'s disk has space again");
}

void Simulation::heal_all() {
  blocked_.clear();
  loss_ = 0;
  dup_ = 0;
  spike_ = 0;
  for (auto& [id, n] : nodes_) {
    if (n.storage->disk_full()) free_disk(n);
  }
  for (auto& [id, n] : nodes_) {
    if (!n.up) restart(n);
  }
  for (auto& [id, n] : nodes_) {
    if (n.paused) resume(n);
  }
  note("faults stop: network healed, every node up");
}

void Simulation::start_move() {
  raft::GroupId group = pick_group(move_rng_);
  if (moves_.contains(group) || replacing_ || !to_replace_.empty()) return;
  SimNode* l = highest_leader(group);
  if (l == nullptr) return;
  raft::ConfState cs = l->core(group).status().config;
  if (!cs.voters_outgoing.empty() || !cs.learners.empty() || cs.voters.empty()) return;
  std::vector<raft::NodeId> others;
  for (auto& [id, n] : nodes_) {
    if (!n.lost && std::find(cs.voters.begin(), cs.voters.end(), id) == cs.voters.end())
      others.push_back(id);
  }
  if (others.empty()) return;
  Move m;
  const raft::NodeId out = cs.voters[move_rng_.below(cs.voters.size())];
  const raft::NodeId in = others[move_rng_.below(others.size())];
  for (raft::NodeId v : cs.voters) {
    if (v != out) m.wanted.push_back(v);
  }
  m.wanted.push_back(in);
  m.removed = {out};
  moves_[group] = m;
  note("operator: move " + who(out, group) + " to n" + std::to_string(in));
}

void Simulation::drive_moves() {
  for (auto it = moves_.begin(); it != moves_.end();) {
    const raft::GroupId group = it->first;
    Move& m = it->second;
    bool lost = false;
    for (raft::NodeId id : m.wanted) {
      auto n = nodes_.find(id);
      lost = lost || n == nodes_.end() || n->second.lost;
    }
    if (lost) {
      // The operator's replacement of the lost member takes over the group.
      ++result_.planned_moves_abandoned;
      note("operator: move in g" + std::to_string(group) + " given up (a member was lost)");
      it = moves_.erase(it);
      continue;
    }
    SimNode* l = highest_leader(group);
    if (l == nullptr || now_ < m.next_try) {
      ++it;
      continue;
    }
    engine::ReshapeInput in = engine::reshape_input(l->core(group).status());
    in.wanted = m.wanted;
    in.removed = m.removed;
    in.gone = m.removed;  // nothing to report here: the directory is chorusd's
    const engine::ReshapeStep step = engine::plan_reshape(in);
    if (step.settled()) {
      ++result_.planned_moves;
      note("operator: move in g" + std::to_string(group) + " done");
      it = moves_.erase(it);
      continue;
    }
    m.next_try = now_ + 200'000;
    if (step.transfer_to != raft::kNoNode) {
      raft::Error err = l->group(group).replica->transfer_leader(step.transfer_to);
      note("planner: " + who(l->id, group) + " hands over to n" + std::to_string(step.transfer_to) +
           ": " + raft::to_string(err));
      drive(*l);
    } else if (step.change) {
      raft::ConfChange cc;
      cc.changes = {*step.change};
      raft::Error err = l->group(group).replica->propose_conf_change(cc);
      note("planner: " + who(l->id, group) + " proposes " +
           (step.change->type == raft::ConfChangeType::kAddLearner ? "learner n"
            : step.change->type == raft::ConfChangeType::kAddNode  ? "promote n"
                                                                   : "remove n") +
           std::to_string(step.change->node) + ": " + raft::to_string(err));
      drive(*l);
    }
    ++it;
  }
}

void Simulation::membership_change() {
  raft::GroupId group = pick_group(fault_rng_);
  if (moves_.contains(group)) return;  // the planner is moving a replica of it
  SimNode* l = highest_leader(group);
  if (l == nullptr) return;
  raft::ConfState cs = l->core(group).status().config;
  if (!cs.voters_outgoing.empty()) return;  // joint: wait for auto-leave
  std::vector<raft::NodeId> others;
  for (auto& [id, n] : nodes_) {
    bool member = std::count(cs.voters.begin(), cs.voters.end(), id) ||
                  std::count(cs.learners.begin(), cs.learners.end(), id);
    if (!member && !n.lost) others.push_back(id);
  }
  // Learners that can be promoted: not lost ones (a lost member is only ever removed).
  std::vector<raft::NodeId> learners;
  for (raft::NodeId id : cs.learners) {
    auto it = nodes_.find(id);
    if (it == nodes_.end() || !it->second.lost) learners.push_back(id);
  }
  // While a damaged member may be lost, keep three voters, so that losing it leaves a quorum.
  size_t min_voters = opt_.nodes >= 5 || damage_pending() ? 3 : 1;
  raft::ConfChange cc;
  std::string what;
  switch (fault_rng_.below(5)) {
    case 0:
      if (others.empty()) return;
      cc.changes = {{raft::ConfChangeType::kAddLearner, others[fault_rng_.below(others.size())]}};
      what = "add learner n" + std::to_string(cc.changes[0].node);
      break;
    case 1:
      if (learners.empty()) return;
      cc.changes = {{raft::ConfChangeType::kAddNode, learners[fault_rng_.below(learners.size())]}};
      what = "promote n" + std::to_string(cc.changes[0].node);
      break;
    case 2:
      if (cs.voters.size() <= min_voters) return;
      cc.changes = {
          {raft::ConfChangeType::kRemoveNode, cs.voters[fault_rng_.below(cs.voters.size())]}};
      what = "remove n" + std::to_string(cc.changes[0].node);
      break;
    case 3:
      if (cs.voters.size() <= min_voters) return;
      cc.changes = {
          {raft::ConfChangeType::kAddLearner, cs.voters[fault_rng_.below(cs.voters.size())]}};
      what = "demote n" + std::to_string(cc.changes[0].node) + " to learner";
      break;
    default: {
      // Joint consensus: swap a voter (maybe the leader) for a learner in one change.
      if (learners.empty()) return;
      raft::NodeId out = cs.voters[fault_rng_.below(cs.voters.size())];
      raft::NodeId in = learners[fault_rng_.below(learners.size())];
      cc.changes = {{raft::ConfChangeType::kRemoveNode, out}, {raft::ConfChangeType::kAddNode, in}};
      what = "joint: replace n" + std::to_string(out) + " by n" + std::to_string(in);
      break;
    }
  }
  raft::Error err = l->group(group).replica->propose_conf_change(cc);
  note(who(l->id, group) + " proposes " + what + ": " + raft::to_string(err));
  drive(*l);
}

void Simulation::leader_transfer() {
  raft::GroupId group = pick_group(fault_rng_);
  SimNode* l = highest_leader(group);
  if (l == nullptr) return;
  raft::ConfState cs = l->core(group).status().config;
  std::vector<raft::NodeId> targets;
  for (raft::NodeId id : cs.voters) {
    if (id != l->id) targets.push_back(id);
  }
  if (targets.empty()) return;
  raft::NodeId to = targets[fault_rng_.below(targets.size())];
  raft::Error err = l->group(group).replica->transfer_leader(to);
  note(who(l->id, group) + " transfers leadership to n" + std::to_string(to) + ": " +
       raft::to_string(err));
  drive(*l);
}

}  // namespace chorus::sim
