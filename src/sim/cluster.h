// A whole Raft cluster simulated in one thread from one seed: a simulated clock, a faulty
// network, storage that loses unsynced writes on crash, clients with a recorded history, and
// the safety checks run after every step.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "check/kv_model.h"
#include "raft/raft.h"
#include "sim/kv.h"
#include "sim/rng.h"
#include "sim/storage.h"

namespace chorus::sim {

enum class Faults : uint8_t { kNone, kNetwork, kCrash, kAll };
const char* to_string(Faults f);
std::optional<Faults> parse_faults(const std::string& s);

// Deliberately broken variants: the checkers must catch each of them.
enum class Mutation : uint8_t {
  kNone,
  kCommitPreviousTerm,    // core counts replicas for entries of earlier terms (Figure 8)
  kVoteNotPersisted,      // driver does not persist the vote before answering
  kAckBeforeDurable,      // driver sends messages before its writes are synced
  kReadWithoutReadIndex,  // leader serves reads from local state without confirming leadership
  // A member whose log was damaged comes back on an empty disk under its old identity instead
  // of being removed and replaced by a new member: its votes and acknowledgements are forgotten.
  kRejoinEmptyUnderOldId,
  // A quiesced replica's clock stops with its timers and a quiescing leader keeps its lease,
  // so silence extends the lease (the simulation turns quiescence on for it).
  kQuiescedClockStops
};

// Clock drift (rate difference against real time) every member may have while leases stay
// safe: the leader's lease is (election - lease_drift) = 8 of its ticks, and a follower refuses
// votes for at least 9 of its own after a heartbeat, so any two rates must stay within 8/9;
// 1 - 0.05 over 1 + 0.05 is 0.905. Beyond it the leader must find out and refuse its lease.
inline constexpr double kLeaseSafeDrift = 0.05;
const char* to_string(Mutation m);
std::optional<Mutation> parse_mutation(const std::string& s);

// Which check found a violation, so a test of a broken variant can tell that the checker meant
// to catch it is the one that did.
enum class Check : uint8_t {
  kNone,
  kCommitMonotonic,         // a node's commit index went back
  kElectionSafety,          // two leaders in one term
  kLeaderCompleteness,      // a leader lacks a committed entry
  kLogMatching,             // two logs differ below a common (index, term)
  kCompletenessAtRisk,      // an electable voter lacks a committed entry
  kCommitLocked,            // a commit not held by a majority ending in the leader's term
  kStateMachineSafety,      // two nodes applied different entries at one index
  kApplyOrder,              // a node applied out of order
  kLostWrite,               // an acknowledged write is not in the final log
  kReplicasDiffer,          // caught-up replicas differ at the end
  kLinearizability,         // the history is not linearizable
  kLinearizabilityUnknown,  // the checker ran out of budget: no verdict is a failure
  kLiveness,                // no leader, or no recovery, after faults healed
  kStorage,                 // the log or a snapshot was damaged or hid a failure
  kMessageStorm,            // the event budget ran out
  kClockBound,              // a leader bounded a follower's clock rate below its true rate
};
const char* to_string(Check c);

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 5;
  // Raft groups over the members, each a replica on every member's engine, all on each
  // member's one log. With more than one, a 5- or 7-member cluster starts each group on three
  // members (a different three for each), and faults aimed at one group pick one at random.
  int groups = 1;
  int steps = 2000;
  Faults faults = Faults::kAll;
  Mutation mutation = Mutation::kNone;
  bool timeline = false;      // print a readable timeline while running
  int liveness_steps = 1500;  // bound for recovery after faults heal
  uint64_t checker_max_steps = 20'000'000;
};

struct SimResult {
  bool ok = true;
  std::string failure;         // the first violation, if any
  Check check = Check::kNone;  // the check that found it
  uint64_t trace_hash = 0;
  uint64_t events = 0;
  uint64_t ops_ok = 0;
  uint64_t ops_unknown = 0;
  uint64_t ops_failed = 0;
  uint64_t elections = 0;
  uint64_t max_term = 0;
  uint64_t committed = 0;
  uint64_t snapshots_requested = 0;     // snapshots taken because a leader asked for one
  uint64_t snapshots_installed = 0;     // snapshots a follower received whole and installed
  uint64_t snapshot_transfers_cut = 0;  // snapshot transfers cut off midway
  uint64_t disk_full_stops = 0;         // nodes stopped by ENOSPC
  uint64_t logs_damaged = 0;            // bytes of a node's log damaged on its disk
  uint64_t damage_found_running = 0;    // damage a running node's core found reading its log
  uint64_t damage_found_at_start = 0;   // damage recovery found, refusing to start
  uint64_t members_replaced = 0;        // lost members replaced by new ones on empty disks
  uint64_t conf_changes = 0;            // configuration changes committed, in all groups
  // Committed changes that left a group with a voter it did not start with: a replica moved
  // to (or added on) another member.
  uint64_t replicas_moved = 0;
  // Replica moves the operator asked for and the groups' leaders completed by the engine's
  // planner (engine::plan_reshape), and those given up (a member they needed was lost).
  uint64_t planned_moves = 0;
  uint64_t planned_moves_abandoned = 0;
  std::vector<uint64_t> committed_by_group;  // the highest index committed in each group
  double max_drift = 0;                      // the seed's clock drift bound
  bool lease_reads = false;
  bool quiesce = false;      // idle groups quiesce in this seed
  uint64_t quiescences = 0;  // times a group's leader quiesced
  // Groups whose quiesced leader's member went down and that elected a new leader after.
  uint64_t reelected_after_quiesced_leader_down = 0;
  // A leader found a follower's clock running too fast for its lease (and refused the lease).
  bool lease_refused_for_drift = false;
  std::string linearizability;          // checker verdict
  std::vector<std::string> trace_tail;  // last events, for a failing run
};

SimResult run_simulation(const SimOptions& options);

}  // namespace chorus::sim
