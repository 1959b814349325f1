#include "kv/lessor.h"

#include <algorithm>

namespace chorus::kv {

void Lessor::set_deadline(int64_t id, Lease* l, int64_t deadline_ms) {
  if (primary_) by_deadline_.erase({l->deadline_ms, id});
  l->deadline_ms = deadline_ms;
  if (primary_) by_deadline_.insert({deadline_ms, id});
}

void Lessor::promote(int64_t now_ms) {
  primary_ = true;
  by_deadline_.clear();
  for (auto& [id, l] : leases_) {
    l.deadline_ms = now_ms + (l.checkpoint_ms > 0 ? std::min(l.checkpoint_ms, l.ttl_ms) : l.ttl_ms);
    l.next_checkpoint_ms = 0;
    by_deadline_.insert({l.deadline_ms, id});
  }
}

void Lessor::demote() {
  primary_ = false;
  by_deadline_.clear();
}

void Lessor::granted(int64_t id, int64_t ttl_seconds, int64_t now_ms) {
  Lease& l = leases_[id];
  l.ttl_ms = ttl_seconds * 1000;
  set_deadline(id, &l, now_ms + l.ttl_ms);
}

void Lessor::revoked(int64_t id) {
  auto it = leases_.find(id);
  if (it == leases_.end()) return;
  by_deadline_.erase({it->second.deadline_ms, id});
  leases_.erase(it);
}

int64_t Lessor::renew(int64_t id, int64_t now_ms) {
  auto it = leases_.find(id);
  if (it == leases_.end() || !primary_) return -1;
  // An expired lease whose revoke is under way cannot be brought back.
  if (it->second.deadline_ms <= now_ms) return -1;
  set_deadline(id, &it->second, now_ms + it->second.ttl_ms);
  return it->second.ttl_ms / 1000;
}

void Lessor::checkpointed(int64_t id, int64_t remaining_ms) {
  auto it = leases_.find(id);
  if (it == leases_.end()) return;
  it->second.checkpoint_ms = std::max<int64_t>(remaining_ms, 0);
}

std::vector<std::pair<int64_t, int64_t>> Lessor::due_checkpoints(int64_t now_ms,
                                                                 int64_t interval_ms, size_t max) {
  std::vector<std::pair<int64_t, int64_t>> out;
  if (!primary_ || interval_ms <= 0) return out;
  for (auto& [id, l] : leases_) {
    if (out.size() >= max) break;
    if (l.ttl_ms <= interval_ms) continue;  // too short to need one
    if (l.next_checkpoint_ms == 0) l.next_checkpoint_ms = now_ms + interval_ms;
    if (now_ms < l.next_checkpoint_ms) continue;
    out.emplace_back(id, std::max<int64_t>(l.deadline_ms - now_ms, 1));
    l.next_checkpoint_ms = now_ms + interval_ms;
  }
  return out;
}

bool Lessor::has_checkpoint(int64_t id) const {
  auto it = leases_.find(id);
  return it != leases_.end() && it->second.checkpoint_ms > 0;
}

int64_t Lessor::remaining_seconds(int64_t id, int64_t now_ms) const {
  auto it = leases_.find(id);
  if (it == leases_.end()) return -1;
  if (!primary_) return it->second.ttl_ms / 1000;
  int64_t left = it->second.deadline_ms - now_ms;
  if (left <= 0) return 0;
  return (left + 999) / 1000;
}

int64_t Lessor::ttl_seconds(int64_t id) const {
  auto it = leases_.find(id);
  return it == leases_.end() ? -1 : it->second.ttl_ms / 1000;
}

std::vector<int64_t> Lessor::expired(int64_t now_ms, size_t max) const {
  std::vector<int64_t> out;
  for (const auto& [deadline, id] : by_deadline_) {
    if (deadline > now_ms || out.size() >= max) break;
    out.push_back(id);
  }
  return out;
}

}  // namespace chorus::kv
