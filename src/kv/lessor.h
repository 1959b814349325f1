// When leases expire. Only the leader decides: it keeps a deadline per lease from its own
// monotonic clock and, once one passes, proposes a LeaseRevoke through the log, so every
// replica deletes the lease's keys at the same revision. Followers keep no deadlines; a new
// leader starts every lease's clock afresh (a lease may outlive its TTL across a failover, as
// in etcd, but never expires early). Time is passed in, so this class is deterministic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
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

 private:
  struct Lease {
    int64_t ttl_ms = 0;
    int64_t deadline_ms = 0;
  };
  void set_deadline(int64_t id, Lease* l, int64_t deadline_ms);

  bool primary_ = false;
  std::map<int64_t, Lease> leases_;
  std::set<std::pair<int64_t, int64_t>> by_deadline_;  // (deadline_ms, id), leader only
};

}  // namespace chorus::kv
