#include "engine/engine.h"

#include <algorithm>
#include <limits>

namespace chorus::engine {

Replica& Engine::add(const ReplicaOptions& options, uint64_t now_us) {
  now_us_ = std::max(now_us_, now_us);
  auto& r = replicas_[options.raft.group];
  ReplicaOptions o = options;
  // A quiesced follower learns of its leader's death only through member liveness: without
  // it, groups do not quiesce.
  if (options_.heartbeat_us == 0) o.raft.quiesce = false;
  r = std::make_unique<Replica>(o, now_us);
  r->set_host(this);
  touched(*r);  // a restarted replica may have entries to apply at once
  return *r;
}

bool Engine::remove(raft::GroupId group) {
  if (in_round()) return false;
  auto it = replicas_.find(group);
  if (it == replicas_.end()) return false;
  awake_.erase(group);
  dirty_.erase(group);
  replicas_.erase(it);
  return true;
}

void Engine::touched(Replica& replica) {
  dirty_[replica.group()] = &replica;
  if (!replica.quiesced()) awake_[replica.group()] = &replica;
}

Replica* Engine::find(raft::GroupId group) const {
  auto it = replicas_.find(group);
  return it == replicas_.end() ? nullptr : it->second.get();
}

raft::Error Engine::step(raft::Message&& m, uint64_t now_us) {
  now_us_ = std::max(now_us_, now_us);
  if (m.group == kLivenessGroup) {
    if (m.type != raft::MessageType::kHeartbeat || m.from == raft::kNoNode ||
        m.from == options_.id || m.context == 0)
      return raft::Error::kInvalidMessage;
    heard_from(m.from, m.context, now_us);
    return raft::Error::kOk;
  }
  heard_from(m.from, 0, now_us);
  Replica* r = find(m.group);
  if (r == nullptr) return raft::Error::kWrongGroup;
  return r->step(std::move(m));
}

void Engine::set_peers(const std::vector<raft::NodeId>& peers, uint64_t now_us) {
  std::map<raft::NodeId, Peer> next;
  std::vector<raft::NodeId> gone;
  for (const auto& [id, p] : peers_) {
    if (std::find(peers.begin(), peers.end(), id) == peers.end()) gone.push_back(id);
  }
  for (raft::NodeId id : peers) {
    if (id == options_.id) continue;
    auto it = peers_.find(id);
    if (it != peers_.end()) {
      next.emplace(id, it->second);
    } else {
      next.emplace(id, Peer{now_us, 0, false});
    }
  }
  peers_ = std::move(next);
  // A member no longer among the peers is heard from no more: what it led must not wait.
  for (raft::NodeId id : gone)
    wake_for(id);
}

void Engine::heard_from(raft::NodeId id, uint64_t incarnation, uint64_t now_us) {
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  Peer& p = it->second;
  p.last_heard_us = std::max(p.last_heard_us, now_us);
  bool back = p.down;
  p.down = false;
  bool restarted = incarnation != 0 && p.incarnation != 0 && p.incarnation != incarnation;
  if (incarnation != 0) p.incarnation = incarnation;
  if (back || restarted) wake_for(id);
}

void Engine::wake_for(raft::NodeId peer) {
  // A member that restarted leads nothing any more, though it never went silent for long; one
  // that restarted or came back may have missed the request to quiesce, or (a restarted
  // learner, which never campaigns) wait for a leader that says nothing: the leaders here
  // wake, and quiesce again after one heartbeat if all is well.
  for (auto& [group, r] : replicas_) {
    if (!r->quiesced()) continue;
    const raft::Raft& core = r->core();
    if (core.lead() == peer || (core.role() == raft::Role::kLeader && core.is_member(peer)))
      r->wake();
  }
}

std::vector<raft::Message> Engine::liveness(uint64_t now_us) {
  std::vector<raft::Message> out;
  if (options_.heartbeat_us == 0) return out;
  for (auto& [id, p] : peers_) {
    if (!p.down && now_us > p.last_heard_us + options_.dead_after_us) {
      p.down = true;
      wake_for(id);
    }
  }
  if (now_us < next_heartbeat_us_) return out;
  next_heartbeat_us_ = now_us + options_.heartbeat_us;
  for (const auto& [id, p] : peers_) {
    raft::Message m;
    m.group = kLivenessGroup;
    m.type = raft::MessageType::kHeartbeat;
    m.from = options_.id;
    m.to = id;
    m.context = options_.incarnation;
    out.push_back(std::move(m));
  }
  return out;
}

size_t Engine::peers_down() const {
  return static_cast<size_t>(
      std::count_if(peers_.begin(), peers_.end(), [](const auto& kv) { return kv.second.down; }));
}

uint64_t Engine::on_clock(uint64_t now_us) {
  now_us_ = std::max(now_us_, now_us);
  uint64_t ticks = 0;
  for (auto it = awake_.begin(); it != awake_.end();) {
    Replica* r = it->second;
    ticks += r->on_clock(now_us);  // touches it (Replica::touched) when a tick came due
    // A quiesced replica leaves the ticking set until something wakes it (Replica::touched).
    it = r->quiesced() ? awake_.erase(it) : std::next(it);
  }
  return ticks;
}

uint64_t Engine::next_tick_us() const {
  uint64_t next = std::numeric_limits<uint64_t>::max();
  // Member heartbeats are due whether or not any replica is awake.
  if (options_.heartbeat_us != 0 && !peers_.empty()) next = next_heartbeat_us_;
  for (const auto& [id, r] : awake_)
    next = std::min(next, r->next_tick_us());
  return next;
}

bool Engine::has_round() const {
  // One round at a time: a replica that gets work while a round is open waits for the next one.
  if (!open_.empty()) return false;
  for (auto it = dirty_.begin(); it != dirty_.end();) {
    if (it->second->has_round()) return true;
    it = dirty_.erase(it);  // nothing to do until touched again
  }
  return false;
}

const std::vector<GroupRound>& Engine::begin_round(std::vector<raft::GroupId>* damaged) {
  open_.clear();
  for (auto it = dirty_.begin(); it != dirty_.end();) {
    Replica* r = it->second;
    if (!r->has_round()) {
      it = dirty_.erase(it);
      continue;
    }
    ++it;
    Round* round = r->begin_round();
    if (round == nullptr) {
      damaged->push_back(r->group());
      continue;
    }
    open_.push_back(GroupRound{r, round});
  }
  return open_;
}

void Engine::append_to(storage::WalBatch* batch) const {
  for (const GroupRound& g : open_) {
    if (g.round->write) g.replica->append_to(batch);
  }
}

bool Engine::must_sync() const {
  return std::any_of(open_.begin(), open_.end(), [](const GroupRound& g) { return g.round->sync; });
}

bool Engine::must_write() const {
  return std::any_of(open_.begin(), open_.end(),
                     [](const GroupRound& g) { return g.round->write; });
}

void Engine::finish_round(std::vector<std::pair<raft::GroupId, RoundResult>>* out) {
  for (const GroupRound& g : open_) {
    RoundResult result;
    g.replica->finish_round(&result);
    out->emplace_back(g.replica->group(), std::move(result));
    // Its next Ready (more entries to apply, a configuration change's consequences) comes in
    // a later round; it stays among those looked at.
    touched(*g.replica);
  }
  open_.clear();
}

}  // namespace chorus::engine
