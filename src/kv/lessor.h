// When leases expire. Only the leader decides: it keeps a deadline per lease from its own
// monotonic clock and, once one passes, proposes a LeaseRevoke through the log, so every
// replica deletes the lease's keys at the same revision. Followers keep no deadlines; a new
// leader starts every lease's clock afresh (a lease may outlive its TTL across a failover, as
// in etcd, but never expires early). Time is passed in, so this class is deterministic.
//
// Checkpoints (etcd's --experimental-enable-lease-checkpoint): the leader records through the
// log, every checkpoint interval, the time left on each lease whose TTL is longer than that
// interval; a new leader then starts such a lease's clock at its checkpointed time left, not at
// its full TTL, so leases under frequent failovers still expire. A keep-alive clears the
// checkpoint through the log, and answers only once that is applied (has_checkpoint), so a
// renewed lease is never cut short by an older checkpoint.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <utility>
#include <vector>

namespace chorus::kv {

class Lessor {
 public:
  // Becoming leader: every known lease gets a full TTL from `now_ms`.
  void promote(int64_t now_ms);
  // Losing leadership: deadlines are forgotten.
  void demote();
  bool is_primary() const { return primary_; }

  // Applied grants and revokes, on every replica.
  void granted(int64_t id, int64_t ttl_seconds, int64_t now_ms);
  void revoked(int64_t id);

  // A keep-alive on the leader: returns the TTL, or -1 if the lease is unknown or not led here.
  int64_t renew(int64_t id, int64_t now_ms);
  // Seconds left (rounded up), or -1 if unknown; on a follower, the full TTL.
  int64_t remaining_seconds(int64_t id, int64_t now_ms) const;
  int64_t ttl_seconds(int64_t id) const;

  // Leases past their deadline, at most `max`, oldest first. The leader proposes revokes for
  // them; they stay listed until the revoke is applied.
  std::vector<int64_t> expired(int64_t now_ms, size_t max) const;

  // An applied checkpoint, on every replica: the lease had `remaining_ms` left (0 clears it).
  void checkpointed(int64_t id, int64_t remaining_ms);
  // Whether a checkpoint of the lease is set: a keep-alive must then clear it through the log
  // before it answers, or a new leader could end the renewed lease early.
  bool has_checkpoint(int64_t id) const;
  // On the leader, with checkpoints every `interval_ms`: the (lease, time left) pairs to record
  // now, at most `max` (leases with a TTL longer than the interval, each once per interval).
  std::vector<std::pair<int64_t, int64_t>> due_checkpoints(int64_t now_ms, int64_t interval_ms,
                                                           size_t max);

 private:
  struct Lease {
    int64_t ttl_ms = 0;
    int64_t deadline_ms = 0;
    int64_t checkpoint_ms = 0;       // time left as last checkpointed through the log; 0: none
    int64_t next_checkpoint_ms = 0;  // leader only: when to record the time left again
  };
  void set_deadline(int64_t id, Lease* l, int64_t deadline_ms);

  bool primary_ = false;
  std::map<int64_t, Lease> leases_;
  std::set<std::pair<int64_t, int64_t>> by_deadline_;  // (deadline_ms, id), leader only
};

}  // namespace chorus::kv
