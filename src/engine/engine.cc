#include "engine/engine.h"

#include <algorithm>
#include <limits>

namespace chorus::engine {

Replica& Engine::add(const ReplicaOptions& options, uint64_t now_us) {
  auto& r = replicas_[options.raft.group];
  r = std::make_unique<Replica>(options, now_us);
  return *r;
}

Replica* Engine::find(raft::GroupId group) const {
  auto it = replicas_.find(group);
  return it == replicas_.end() ? nullptr : it->second.get();
}

uint64_t Engine::on_clock(uint64_t now_us) {
  uint64_t ticks = 0;
  for (auto& [id, r] : replicas_)
    ticks += r->on_clock(now_us);
  return ticks;
}

uint64_t Engine::next_tick_us() const {
  uint64_t next = std::numeric_limits<uint64_t>::max();
  for (const auto& [id, r] : replicas_)
    next = std::min(next, r->next_tick_us());
  return next;
}

bool Engine::has_round() const {
  // One round at a time: a replica that gets work while a round is open waits for the next one.
  return open_.empty() && std::any_of(replicas_.begin(), replicas_.end(),
                                      [](const auto& kv) { return kv.second->has_round(); });
}

const std::vector<GroupRound>& Engine::begin_round(std::vector<raft::GroupId>* damaged) {
  open_.clear();
  for (auto& [id, r] : replicas_) {
    if (!r->has_round()) continue;
    Round* round = r->begin_round();
    if (round == nullptr) {
      damaged->push_back(id);
      continue;
    }
    open_.push_back(GroupRound{r.get(), round});
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
  }
  open_.clear();
}

}  // namespace chorus::engine
