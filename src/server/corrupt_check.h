// etcd's corruption checks (--experimental-initial-corrupt-check,
// --experimental-corrupt-check-time): members compare the hash of their key-value history
// (HashKV) at one revision. Two members that applied the same log hold the same history, so at
// the same revision and compaction their hashes agree; a difference means one store diverged
// (a disk that changed bytes, a defect) and must not keep serving as if nothing happened.
//
//   at start: a member asks every other member for its hash at its own revision, and refuses to
//     start if one with the same compaction differs.
//   periodically, on the leader: its hash, every follower's at the leader's revision, then its
//     own again once it applied all that was committed; a mismatch raises the CORRUPT alarm
//     (through the log) against the member at fault, after which the cluster refuses reads and
//     writes until an operator clears it.
//
// The comparisons are pure functions (etcd's rules); CorruptionChecker runs the periodic one on
// its own thread (chorus-corrupt).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/periodic.h"

namespace chorus::server {

struct KvHash {
  uint32_t hash = 0;
  int64_t revision = 0;
  int64_t compact_revision = 0;
};

// A member's answer to HashKV at a revision: `answered` false (with `error`) when it could not
// give one (unreachable, not yet at that revision, compacted past it, auth).
struct MemberHash {
  uint64_t member = 0;
  bool answered = false;
  KvHash kv;  // revision: the member's current revision (its answer's header)
  std::string error;
};

// At start: the members whose hash at `mine.revision` differs from `mine` though their
// compaction is the same.
std::vector<uint64_t> initial_mismatches(const KvHash& mine, const std::vector<MemberHash>& peers);

// On the leader (`self`): `before` and `after` are its own hash at its current revision taken
// before and after asking the followers (`peers`, at before.revision). The members to raise the
// CORRUPT alarm against: itself if its history changed under the same revision; a follower
// ahead of it, compacted further than it, or with another hash at the same compaction.
std::vector<uint64_t> periodic_mismatches(uint64_t self, const KvHash& before, const KvHash& after,
                                          const std::vector<MemberHash>& peers);

class CorruptionChecker {
 public:
  struct Hooks {
    std::function<bool()> is_leader;
    std::function<bool(KvHash*)> local_hash;  // at the current revision
    // Waits until this member applied everything committed so far (a linearizable read's
    // barrier); false if it could not. Between the followers' answers and the second local
    // hash, so no follower can be ahead of the leader merely because the leader applies later.
    std::function<bool()> catch_up;
    // Every other member's hash at `revision`.
    std::function<std::vector<MemberHash>(int64_t revision)> peer_hashes;
    // Raises the CORRUPT alarm against `member`, unless it is raised already.
    std::function<void(uint64_t member)> raise;
  };
  CorruptionChecker(uint64_t self, std::chrono::milliseconds interval, Hooks hooks);
  ~CorruptionChecker();  // stops and joins
  CorruptionChecker(const CorruptionChecker&) = delete;
  CorruptionChecker& operator=(const CorruptionChecker&) = delete;

  // One pass, as the thread runs it (tests call it directly with the thread's interval long).
  void check_once();

  // Members whose last answer was missing: a member that stops answering is logged once at
  // warning level, and again when it answers (checker's thread, or check_once's caller).
  const std::set<uint64_t>& unanswered() const { return unanswered_; }

 private:
  const uint64_t self_;
  Hooks hooks_;
  std::set<uint64_t> unanswered_;
  base::PeriodicThread thread_;  // last (chorus-corrupt)
};

// Answers other members' hash requests (they arrive on the peer port, see
// transport::ask_hash_kv) on its own thread (chorus-hash), one at a time: hashing reads every
// key, so a request that comes while another is hashed is refused, not queued.
class HashResponder {
 public:
  // Hashes the store at `revision` (0: now); false with *error when it cannot (a compacted or
  // future revision).
  using Hash = std::function<bool(int64_t revision, KvHash* out, std::string* error)>;
  using Reply = std::function<void(bool ok, const KvHash& hash, const std::string& error)>;

  explicit HashResponder(Hash hash);
  ~HashResponder();  // answers nothing more, and joins
  HashResponder(const HashResponder&) = delete;
  HashResponder& operator=(const HashResponder&) = delete;

  // `reply` runs on the responder's thread, or at once when it is busy or stopping.
  void submit(int64_t revision, Reply reply);

 private:
  const Hash hash_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool has_job_ = false;
  int64_t revision_ = 0;
  Reply reply_;
  std::thread thread_;
};

}  // namespace chorus::server
