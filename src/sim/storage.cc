#include "sim/storage.h"

namespace chorus::sim {

void SimStorage::apply(raft::MemoryLogStorage* s, const Op& op) {
  if (auto* hs = std::get_if<SetHardState>(&op)) {
    s->set_hard_state(hs->hs);
  } else if (auto* a = std::get_if<Append>(&op)) {
    s->append(a->entries);
  } else if (auto* snap = std::get_if<ApplySnapshot>(&op)) {
    (void)s->apply_snapshot(snap->snapshot);
  } else if (auto* cs = std::get_if<CreateSnapshot>(&op)) {
    if (s->create_snapshot(cs->index, cs->conf_state, cs->data) == raft::Error::kOk) {
      (void)s->compact(cs->compact_to);
    }
  }
}

void SimStorage::sync() {
  for (const Op& op : pending_)
    apply(&durable_, op);
  pending_.clear();
}

void SimStorage::crash() {
  pending_.clear();
  live_ = durable_;
}

}  // namespace chorus::sim
