// Internal: the simulation of one seed. See cluster.h for the public entry point.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "check/kv_model.h"
#include "engine/engine.h"
#include "raft/raft.h"
#include "sim/cluster.h"
#include "sim/kv.h"
#include "sim/rng.h"
#include "sim/storage.h"

namespace chorus::sim {

inline constexpr uint64_t kTickUs = 10'000;  // one step is one Raft tick: 10 ms
inline constexpr int kElectionTicks = 10;
inline constexpr int kHeartbeatTicks = 2;
inline constexpr uint64_t kClientTimeoutUs = 1'000'000;
inline constexpr size_t kTraceTailLines = 400;

struct ClientOp {
  uint64_t client = 0;
  uint64_t op = 0;
  check::KvInput input;
};

struct Reply {
  uint64_t client = 0;
  uint64_t op = 0;
  bool definite_failure = false;
  check::KvOutput output;
  raft::NodeId hint = raft::kNoNode;
  raft::NodeId from = raft::kNoNode;
};

enum class EventKind : uint8_t {
  kDeliver,
  kSyncDone,
  kRequest,
  kReply,
  kRestart,
  kResume,
  kCrash,
  kSnapStatus,
  kSnapChunk,  // the next chunk of a snapshot in transfer
  kDiskFreed   // a full disk gets space again
};

struct Event {
  uint64_t time = 0;
  uint64_t seq = 0;
  EventKind kind = EventKind::kDeliver;
  raft::NodeId node = raft::kNoNode;
  uint64_t incarnation = 0;
  raft::Message msg;
  ClientOp request;
  Reply reply;
  raft::GroupId group = 0;            // kSnapStatus
  raft::NodeId peer = raft::kNoNode;  // kSnapStatus: the follower
  bool failed = false;                // kSnapStatus
  uint64_t transfer = 0;              // kSnapChunk
};

// A snapshot streamed in chunks (as chorusd's transport sends one): it reaches the follower
// only if the link, the sender and the receiver all last until the final chunk.
struct SnapTransfer {
  raft::Message msg;
  uint64_t from_incarnation = 0;
  uint64_t to_incarnation = 0;
  uint64_t chunks = 0;
  uint64_t sent = 0;
  uint64_t chunk_us = 0;
};

struct PendingRead {
  ClientOp op;
  raft::Index index = 0;
  bool ready = false;
};

// A member's replica of one group: the engine's replica, and what the host keeps beside it.
struct SimReplica {
  raft::GroupId group = 0;
  engine::Replica* replica = nullptr;  // owned by the member's engine
  const raft::Raft& core() const { return replica->core(); }
  KvStateMachine sm;
  raft::ConfState conf;
  std::map<std::pair<uint64_t, uint64_t>, ClientOp> proposals;
  std::map<uint64_t, PendingRead> reads;  // by reader token
  raft::Index last_commit = 0;
  // Commit index when this replica last became leader or switched configuration: commits
  // beyond it were decided by this leader in its current configuration. Taken when the checks
  // or the driver first see it lead `floor_term` (a core may become leader while its member's
  // round is still open: it can commit nothing before its next round sends its appends).
  raft::Index commit_floor = 0;
  raft::Term floor_term = 0;
  raft::Role last_role = raft::Role::kFollower;
  bool was_quiesced = false;  // as a leader, at the last check
};

// A simulated member (a chorusd process): its disk, its clock and its engine, which hosts a
// replica of every group.
struct SimNode {
  raft::NodeId id = raft::kNoNode;
  bool up = true;
  bool paused = false;
  uint64_t incarnation = 0;
  // This node's clock runs at this rate against simulated real time (drift): its local clock
  // advances by whole ticks as the credit reaches them, and keeps running while the node is
  // paused, so the replica catches up on every missed tick when it resumes.
  double clock_rate = 1.0;
  uint64_t clock_us = 0;
  // Its log was found damaged and recovery refused it: down for good, to be replaced.
  bool lost = false;
  double tick_credit = 0;
  std::unique_ptr<SimStorage> storage;
  // The driver chorusd runs, around the cores.
  std::unique_ptr<engine::Engine> engine;
  std::map<raft::GroupId, SimReplica> groups;
  SimReplica& group(raft::GroupId g) { return groups.at(g); }
  const SimReplica& group(raft::GroupId g) const { return groups.at(g); }
  const raft::Raft& core(raft::GroupId g) const { return groups.at(g).core(); }
  uint64_t next_reader = 1;
  std::vector<Event> deferred;
};

struct SimClient {
  uint64_t id = 0;
  bool busy = false;
  uint64_t op = 0;
  uint64_t deadline = 0;
  std::map<raft::GroupId, raft::NodeId> leader_guess;
  size_t history_index = 0;
  bool liveness_done = false;
  std::map<std::string, std::string> last_seen;
};

// What the checks remember of one group.
struct GroupChecks {
  std::map<raft::Term, raft::NodeId> leader_of_term;
  struct Applied {
    raft::Term term = 0;
    uint64_t chain = 0;
  };
  std::vector<std::optional<Applied>> registry;  // by index
  raft::Index registry_max = 0;
  // For each upper bound on the term in which entries were committed (the highest term any
  // replica of the group had when the entry was first applied), the highest such index.
  std::map<raft::Term, raft::Index> max_index_by_term_bound;
  std::vector<std::pair<raft::Index, uint64_t>> acked;  // (index, chain) acknowledged writes
};

struct HistoryEntry {
  check::KvOperation op;
  bool dropped = false;
};

class Simulation {
 public:
  explicit Simulation(const SimOptions& options);
  SimResult run();

 private:
  // Nodes (sim_node.cc).
  void start_node(SimNode& n);
  void drive(SimNode& n);
  // One group's part of the member's round, before the write: leadership notes, the messages
  // that may leave first, a snapshot from the leader installed. False if the run failed.
  bool start_group_round(SimNode& n, SimReplica& r, engine::Round& round, bool* vote_changed);
  void finish_ready(SimNode& n);
  void apply_committed(SimNode& n, SimReplica& r, const engine::RoundResult& round);
  void serve_reads(SimNode& n, SimReplica& r);
  // Reads whose ReadIndex round outlived the client's timeout fail (as chorusd's do).
  void expire_reads(SimNode& n);
  // Snapshots and compacts a group's log once it is long enough; with `requested` (the core
  // asked for a newer snapshot) takes a snapshot of the applied state now.
  void maybe_compact(SimNode& n, SimReplica& r, bool requested);
  void on_request(SimNode& n, const ClientOp& op);
  void reply(SimNode& n, raft::GroupId group, const ClientOp& op, bool definite_failure,
             check::KvOutput output);
  void crash(SimNode& n);
  // The node goes down and its storage recovers as the restart will (see SimStorage::crash);
  // a recovery that loses synced state fails the run.
  void go_down(SimNode& n, bool power_cut);
  // Sometimes arms a sync failure inside the node's next Wal operation, whose status then goes
  // to disk_result().
  bool maybe_inject_disk_failure(SimNode& n);
  // True if `st` is ok. A failure the simulation injected stops the node, which never uses that
  // Wal again and restarts through recovery; any other failure, or an injected one the Wal did
  // not report, fails the run.
  bool disk_result(SimNode& n, const storage::Status& st, bool injected, const char* what);
  void restart(SimNode& n);
  void resume(SimNode& n);

  // Events and network (simulation.cc).
  void schedule(Event e);
  // An event for a node's current incarnation: dropped if the node crashed meanwhile.
  void schedule_node_event(uint64_t time, EventKind kind, const SimNode& n);
  void schedule_snap_status(uint64_t time, raft::GroupId group, raft::NodeId leader,
                            raft::NodeId follower, bool failed);
  void schedule_delivery(raft::Message m);
  void run_until(uint64_t t);
  void handle(Event& e);
  void send_messages(SimNode& n, std::vector<raft::Message>& msgs);
  // Starts streaming a snapshot; a large one takes seconds, and a partition, a crash of either
  // end or a reset connection on the way makes the leader hear that it failed.
  void start_snapshot_transfer(const SimNode& from, raft::Message m);
  void snapshot_chunk(uint64_t transfer);
  bool blocked(raft::NodeId from, raft::NodeId to) const;
  uint64_t link_latency(raft::NodeId from, raft::NodeId to);
  uint64_t client_latency();
  void tick_all();
  // Every leader's bound on each follower's clock rate holds against the true rates.
  void check_clock_bounds();

  // Faults (faults.cc).
  void inject_faults();
  void make_partition();
  void fill_disk();
  void free_disk(SimNode& n);
  // The medium damages a byte of one node's older log segments.
  void damage_disk();
  // A damaged log not yet found, or a lost member not yet replaced.
  bool damage_pending() const;
  // The node's core found entries that read back damaged: it stops, as chorusd does.
  void stop_on_damaged_log(SimNode& n);
  // Recovery refused a damaged log: the node is gone, and the operator replaces it.
  void mark_lost(SimNode& n);
  // The operator's procedure for a lost member, one step at a time: remove it, then add a new
  // member (a new id, an empty disk) as a learner, then promote it once it caught up.
  void replace_lost();
  SimNode& add_node(raft::NodeId id);
  void heal_all();
  void membership_change();
  // The operator moves one replica of a group to another member, and the group's leader carries
  // it out step by step as chorusd's data groups do (engine::plan_reshape: learner, promotion,
  // removal; a leader that is to go hands over last).
  void start_move();
  void drive_moves();
  void leader_transfer();
  // The leader of `group` with the highest term among running members, or nullptr.
  SimNode* highest_leader(raft::GroupId group);
  // The group a fault aimed at one group picks (always group 1 when there is one).
  raft::GroupId pick_group(Rng& rng);
  // The group that holds a client's key.
  raft::GroupId group_of(const std::string& key) const;
  // "n3" with one group, "n3/g2" with several: a replica's name in the timeline.
  std::string who(raft::NodeId id, raft::GroupId group) const;

  // Clients and checks (checks.cc).
  void clients_step(bool liveness_phase);
  void issue(SimClient& c, bool write_only);
  void on_reply(const Reply& r);
  void check_invariants();
  void check_group(raft::GroupId group);
  void observe_commit(SimNode& n, SimReplica& r);
  void check_electable_hold_committed(raft::GroupId group);
  void check_commit_locked(SimNode& l, raft::GroupId group);
  bool group_live(raft::GroupId group, std::string* waiting);
  // True once the cluster recovered; otherwise `waiting` says what it still waits for.
  bool liveness_reached(std::string* waiting);
  void final_checks();
  void final_group_checks(raft::GroupId group);
  // Each member's role, term, leader, log and configuration size in `group`, for failure
  // messages.
  std::string members_state(raft::GroupId group) const;
  // Checks the client history for linearizability (recording the verdict in the result).
  check::CheckReport check_history(size_t* operations);
  void fail(Check check, const std::string& what);
  void note(const std::string& line);
  std::string stamp() const;
  void hash(uint64_t v) { trace_hash_ = hash_mix(trace_hash_, v); }

  SimOptions opt_;
  Rng rng_;
  Rng net_rng_;
  Rng fault_rng_;
  Rng client_rng_;
  Rng check_rng_;
  // The operator's replica moves draw from a stream of their own, seeded apart, so that the
  // faults of a seed stay what they were before moves existed.
  Rng move_rng_;
  Rng disk_rng_{0};  // crash tears, injected sync failures, disk parameters
  uint64_t now_ = 0;
  uint64_t seq_ = 0;
  uint64_t trace_hash_ = 0;
  uint64_t max_events_ = 0;
  std::vector<Event> events_;  // a binary heap ordered by (time, seq)
  std::map<raft::NodeId, SimNode> nodes_;
  std::vector<SimClient> clients_;
  std::vector<HistoryEntry> history_;
  bool failed_ = false;
  bool faults_active_ = true;
  SimResult result_;
  std::deque<std::string> tail_;

  // Per-seed fault parameters.
  double loss_ = 0;
  double dup_ = 0;
  double spike_ = 0;
  uint64_t base_latency_us_ = 500;
  uint64_t fsync_us_max_ = 1000;
  double p_partition_ = 0;
  double p_heal_ = 0;
  double p_crash_ = 0;
  double p_pause_ = 0;
  double p_member_ = 0;
  double p_transfer_ = 0;
  double p_crash_in_sync_ = 0;
  double p_crash_after_vote_ = 0;
  double p_stall_ = 0;  // per sync: an fsync stall of seconds
  double max_drift_ = 0;
  double p_disk_failure_ = 0;  // per Wal write, sync or compaction of a node
  double p_disk_full_ = 0;     // per step: a node's disk fills up
  double p_damage_ = 0;        // per step: a byte of a node's log is damaged
  // Each group's configuration when the cluster starts, which every member's log bootstraps.
  std::map<raft::GroupId, raft::ConfState> initial_confs_;
  raft::NodeId next_node_id_ = 0;
  // The operator's replacement of a lost member: removed from every group it was in, then its
  // successor added to each of them as a learner, and promoted where the lost one voted.
  struct Replacement {
    raft::NodeId old_id = raft::kNoNode;
    raft::NodeId new_id = raft::kNoNode;
    std::map<raft::GroupId, bool> was_voter;  // the groups it was a member of
    uint64_t next_try = 0;
  };
  std::optional<Replacement> replacing_;
  struct Move {
    std::vector<raft::NodeId> wanted;
    std::vector<raft::NodeId> removed;
    uint64_t next_try = 0;
  };
  std::map<raft::GroupId, Move> moves_;
  std::deque<raft::NodeId> to_replace_;
  storage::WalOptions wal_options_;
  double p_client_ = 0.5;
  uint64_t snapshot_threshold_ = 100;
  bool lease_reads_ = false;
  bool quiesce_ = false;
  uint64_t quiet_until_ = 0;  // clients issue nothing until then
  // Groups whose quiesced leader's member went down, until the group elects again.
  std::set<raft::GroupId> quiesced_leader_down_;
  // The members every member's engine exchanges heartbeats with.
  std::vector<raft::NodeId> member_ids() const;
  size_t max_inflight_ = 16;
  uint64_t max_msg_bytes_ = 4096;
  // Snapshot transfers: the time to stream one (0: as one message), in chunks of kSnapChunkUs.
  uint64_t snap_transfer_us_max_ = 0;
  uint64_t next_transfer_ = 1;
  std::map<uint64_t, SnapTransfer> transfers_;
  std::set<std::pair<raft::NodeId, raft::NodeId>> blocked_;
  std::map<std::pair<raft::NodeId, raft::NodeId>, uint64_t> link_base_;

  // Checks, per group.
  std::map<raft::GroupId, GroupChecks> checks_;
  uint64_t keys_ = 3;  // clients use keys k0 .. k{keys_-1}, spread over the groups
};

}  // namespace chorus::sim
