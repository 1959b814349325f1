// The Raft consensus state machine for one group. Pure and single-threaded: time arrives as
// tick(), the network as step(), and everything to persist, send and apply leaves through a
// Ready batch. The driver must persist Ready's snapshot, entries and hard state durably BEFORE
// it sends Ready's messages, then apply the committed entries and call advance().
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/ring.h"
#include "raft/log.h"
#include "raft/progress.h"
#include "raft/types.h"

namespace chorus::raft {

enum class ReadOnlyOption : uint8_t {
  // Every read confirms leadership with a round of heartbeats (ReadIndex, dissertation §6.4).
  kSafe,
  // Reads within the leader lease answer at once; outside it they fall back to kSafe.
  // Requires check_quorum, which is what makes followers honour the lease.
  kLeaseBased,
};

// Deliberate protocol bugs, only for proving that the simulator's checkers catch them. They exist
// only in the core built as chorus_raft_mutants (CHORUS_RAFT_MUTATIONS), which the simulator and
// the core's tests link; chorusd links chorus_raft, which has no such switch at all.
#ifdef CHORUS_RAFT_MUTATIONS
inline constexpr bool kMutationsCompiledIn = true;
struct UnsafeMutations {
  // Commit entries of earlier terms by counting replicas (the error of Figure 8).
  bool commit_previous_term_entries = false;
  // Driver bugs, in the engine's replica (engine/replica.h) that drives this core: the vote is
  // not recorded in the log; every message leaves before the write it depends on is durable.
  bool forget_vote = false;
  bool ack_before_durable = false;
  // A quiesced replica's clock stops with its timers, and a quiescing leader keeps its lease:
  // silence would extend the lease.
  bool quiesced_clock_stops = false;
};
#else
inline constexpr bool kMutationsCompiledIn = false;
#endif

struct Config {
  NodeId id = kNoNode;
  GroupId group = 1;
  const LogStorage* storage = nullptr;

  int election_ticks = 10;
  int heartbeat_ticks = 1;
  // The lease is shorter than the election timeout by this many ticks, covering clock drift
  // between nodes.
  int lease_drift_ticks = 2;

  uint64_t max_bytes_per_message = 1 << 20;
  size_t max_inflight_messages = 256;
  uint64_t max_inflight_bytes = 32ULL << 20;
  uint64_t max_uncommitted_bytes = 64ULL << 20;
  uint64_t max_entry_bytes = 8ULL << 20;
  uint64_t max_committed_bytes_per_ready = 64ULL << 20;

  bool pre_vote = true;
  bool check_quorum = true;
  ReadOnlyOption read_only = ReadOnlyOption::kSafe;
  // Followers drop proposals instead of forwarding them to the leader.
  bool disable_proposal_forwarding = false;
  // Idle groups quiesce: a leader whose followers all hold its whole log, committed and
  // applied, with nothing pending (no proposal, read, transfer or configuration change), sends
  // them one last heartbeat that asks them to quiesce, and then neither side's timers run: no
  // heartbeats, no elections, the clock alone counts. Anything that arrives wakes a replica
  // (a message, a proposal, a read), and so does the host, through wake(), when the member
  // that hosts the leader stops answering or restarts (engine/engine.h, member liveness).
  // A quiescing leader drops its lease: silence renews nothing, and after waking it reads
  // through a heartbeat round until a new round renews the lease.
  bool quiesce = false;

  // Index the application has already applied (e.g. from its snapshot) when restarting. It must
  // not pass the index of the snapshot whose configuration the storage reports: configuration
  // changes after it are replayed only when their entries are applied again.
  Index applied = 0;
  // Seeds the randomized election timeout; the core has no other source of randomness.
  uint64_t seed = 1;

#ifdef CHORUS_RAFT_MUTATIONS
  UnsafeMutations unsafe;
#endif
};

// Everything the driver must act on, in this order: write snapshot, entries and hard state
// (must_write()), and make them durable when must_sync() (fdatasync); send messages; apply
// committed entries; hand read states to waiting readers once applied >= their index; then
// advance(). When messages_first, the messages may be sent before the write instead.
struct Ready {
  std::optional<SoftState> soft_state;
  std::optional<HardState> hard_state;
  std::optional<Snapshot> snapshot;
  std::vector<Entry> entries;
  std::vector<Entry> committed_entries;
  std::vector<Message> messages;
  std::vector<ReadState> read_states;
  // The term or the vote changed, or the commit index lets a configuration change apply: the
  // hard state must be durable before any message leaves or anything is applied. Any other
  // change of the commit index need not be: it is learned again from the leader, and every
  // entry it covers was made durable by an earlier (or this) Ready.
  bool hard_state_must_sync = false;
  // The node leads, has applied every configuration change in its log, is not in a joint
  // configuration, and neither its term nor its vote changed, nor did a snapshot arrive: its
  // messages (appends, heartbeats, read confirmations) may leave before this Ready is durable,
  // so its own fdatasync overlaps the followers'. Safe because the leader counts itself toward
  // a commit only for entries it has made durable (advance()), as §10.2.1 of the dissertation
  // allows. Never set on a follower or candidate: their responses and votes promise
  // durability. Not while a configuration change is unapplied (or joint) either: a follower
  // holding an entry the leader lost in a crash could then be a member that already applied
  // its own removal, whose vote the restarted leader still needs and never gets.
  bool messages_first = false;

  bool must_sync() const { return hard_state_must_sync || !entries.empty() || snapshot; }
  bool must_write() const { return must_sync() || hard_state.has_value(); }
  void clear();
};

struct ProgressInfo {
  Index match = 0;
  Index next = 0;
  ProgressState state = ProgressState::kProbe;
  bool is_learner = false;
  bool recent_active = false;
  size_t inflight_messages = 0;
  uint64_t inflight_bytes = 0;
  // An upper bound on this follower's tick rate against the leader's, proven from heartbeat
  // round trips (0: not yet measured). Leases count the follower only while it is at most
  // max_peer_clock_rate().
  double clock_rate_bound = 0;
  // The leader's ticks the bound spans: the longer, the tighter.
  uint64_t clock_window_ticks = 0;
};

struct Status {
  NodeId id = kNoNode;
  HardState hard_state;
  SoftState soft_state;
  Index applied = 0;
  Index last_index = 0;
  NodeId lead_transferee = kNoNode;
  ConfState config;
  std::map<NodeId, ProgressInfo> progress;  // leader only
};

class Raft {
 public:
  // Aborts on an invalid configuration or inconsistent storage: both are programming errors.
  explicit Raft(const Config& config);

  // One unit of logical time. The driver must deliver ticks at the real rate (a tick lasts as
  // long on every member, up to lease_drift_ticks over an election timeout), and every tick
  // that has come due must be delivered before anything that arrived meanwhile is stepped:
  // after a stall (an fsync that took seconds, a paused process) the driver catches up on the
  // missed ticks first. Leader leases (ReadOnlyOption::kLeaseBased) and followers' refusal to
  // vote while they hear from a leader are both counted in ticks, so a core whose clock lags
  // real time would answer a read under a lease that has already run out.
  void tick();
  // `n` ticks; while quiesced only the clock counts, in one step however many there are.
  void tick(uint64_t n);
  [[nodiscard]] Error step(const Message& m);
  [[nodiscard]] Error step(Message&& m);
  [[nodiscard]] Error propose(std::string data);
  [[nodiscard]] Error propose_conf_change(const ConfChange& cc);
  // Asks for a linearizable read point; the answer arrives as a ReadState with `context`.
  // Requests waiting at a leader that steps down are dropped without an answer (as in etcd):
  // the caller retries after a timeout.
  [[nodiscard]] Error read_index(uint64_t context);
  [[nodiscard]] Error transfer_leader(NodeId transferee);
  [[nodiscard]] Error campaign();
  // Quiescence (Config::quiesce): whether this replica is quiesced, and the host's way to
  // wake it when the leader's member went silent or restarted. A follower woken so counts a
  // whole election timeout before it campaigns, and refuses votes meanwhile, as ever.
  bool quiesced() const { return quiesced_; }
  void wake();
  // Whether `id` is in the configuration (a voter or a learner).
  bool is_member(NodeId id) const { return tracker_.progress.count(id) != 0; }
  // Reports whether a snapshot sent to `to` was delivered.
  void report_snapshot(NodeId to, bool failed);
  void report_unreachable(NodeId to);
  // True (once) when the leader must send a snapshot to a member that the log's latest
  // snapshot does not include (it was added since): the driver should take a new snapshot of
  // its applied state soon. Reset by the call.
  [[nodiscard]] bool take_snapshot_request() {
    bool r = snapshot_requested_;
    snapshot_requested_ = false;
    return r;
  }
  // Applies a committed configuration change; returns the new configuration.
  ConfState apply_conf_change(const ConfChange& cc);

  bool has_ready() const;
  // Valid until advance(); the caller may move messages out of it.
  Ready& ready();
  void advance();
  // The outstanding Ready, for drivers that finish it asynchronously (after an fsync).
  Ready& ready_for_driver() { return *ready_; }
  // While quiesced, lets go of the Ready and the buffers kept for the next round (a quiesced
  // replica may sleep for hours among thousands); the next ready() allocates them again. For
  // the driver, once it is done with the last Ready.
  void trim_if_quiesced();

  Status status() const;
  NodeId id() const { return id_; }
  Term term() const { return term_; }
  NodeId lead() const { return lead_; }
  Role role() const { return role_; }
  const RaftLog& log() const { return log_; }
  // The voters of the configuration in force (both sides while joint).
  const JointConfig& voters() const { return tracker_.config.voters; }
  bool promotable() const;
  bool lease_valid() const;
  // The fastest a follower's clock may run against the leader's while the lease stays safe:
  // a follower that heard a heartbeat refuses votes for (election_ticks - 1) of its ticks, the
  // lease lasts (election_ticks - lease_drift_ticks) of the leader's.
  double max_peer_clock_rate() const;
  // True once the log storage failed to read back an entry it holds (Error::kStorageFailed
  // from LogStorage::entries): the core has stopped, sends nothing more, and answers every
  // call with kStorageFailed. The member's log is damaged; the driver must stop it (it cannot
  // vote or acknowledge safely without its log) and the operator repairs or replaces it.
  bool storage_failed() const { return storage_failed_; }

 private:
  Error step_internal(Message& m);
  static bool well_formed_append(const Message& m);
  Error check_conf_change_proposal(const Entry& e) const;

  // Roles (election.cc).
  void become_follower(Term term, NodeId lead);
  void become_pre_candidate();
  void become_candidate();
  void become_leader();
  void reset(Term term);
  void start_campaign(bool pre_vote, bool transfer);
  void hup(bool transfer);
  void tick_election();
  void tick_heartbeat();
  bool past_election_timeout() const;
  void reset_randomized_election_timeout();
  Error step_vote_request(const Message& m);
  Error step_candidate(const Message& m);
  bool in_lease_from_leader() const;

  // Leader (leader.cc).
  Error step_leader(Message& m);
  Error append_proposals(std::vector<Entry>& entries);
  bool maybe_commit();
  void bcast_append();
  void bcast_heartbeat();
  void send_append(NodeId to);
  bool maybe_send_append(NodeId to, bool send_if_empty);
  void send_heartbeat(NodeId to, uint64_t round);
  void handle_append_response(const Message& m, Progress& pr);
  void handle_heartbeat_response(const Message& m, Progress& pr);
  void send_timeout_now(NodeId to);
  void abort_leader_transfer();
  bool committed_entry_in_current_term() const;
  bool leaving_config() const;
  void note_conf_change(const Entry& e);
  void leader_read(NodeId from, uint64_t context);
  void respond_read(NodeId to, Index index, uint64_t context);
  void advance_read_rounds();
  bool check_quorum_active();
  bool can_quiesce() const;
  void quiesce();

  // Follower (follower.cc).
  Error step_follower(Message& m);
  void handle_append(const Message& m);
  void handle_heartbeat(const Message& m);
  void handle_snapshot(const Message& m);
  bool restore(const Snapshot& s);

  // Configuration (raft.cc).
  void switch_to_config(const TrackerConfig& cfg, std::map<NodeId, Progress> prs);
  void load_state(const HardState& hs);
  HardState hard_state() const { return HardState{term_, vote_, log_.committed()}; }
  SoftState soft_state() const { return SoftState{lead_, role_}; }
  void send(Message m);
  void respond(const Message& to, MessageType type, Message&& resp);
  uint64_t next_random();
  void reduce_uncommitted(const std::vector<Entry>& committed);

  Config config_;
  NodeId id_;
  GroupId group_;
  Term term_ = 0;
  NodeId vote_ = kNoNode;
  NodeId lead_ = kNoNode;
  Role role_ = Role::kFollower;
  bool is_learner_ = false;
  RaftLog log_;
  ProgressTracker tracker_;

  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_election_timeout_ = 0;
  uint64_t rng_state_;
  // Ticks since start: the clock of the leader lease.
  uint64_t ticks_ = 0;
  // Tells this incarnation's tick count apart from an earlier one's (a restart starts at 0).
  uint64_t clock_nonce_ = 0;
  // Clock drift, measured by the leader: heartbeat round trips bound each follower's tick rate
  // against ours. With an earlier sample (sent at our tick s0, answered at r0, the follower at
  // tick f0) and a later one (s1, r1, f1), the follower counted at most f1 - f0 + 1 ticks while
  // we counted at least s1 - r0 - 1, whatever the network delays: the bound is their ratio. A
  // few samples spread over the last few hundred ticks are kept, and the tightest bound
  // between any two of them counts (a slow round trip loosens only the bounds it takes part
  // in), so a change of rate shows once the history has moved past it. A lease counts a
  // follower only while its bound is within max_peer_clock_rate(), so a clock drifting beyond
  // the lease's allowance makes the lease refused, not trusted. Kept across terms (the counts
  // do not depend on the term) for the members of the configuration.
  struct ClockSample {
    uint64_t sent = 0;
    uint64_t received = 0;
    uint64_t peer = 0;
  };
  struct PeerClock {
    uint64_t nonce = 0;
    base::Ring<ClockSample> refs;  // earlier samples, oldest first
    ClockSample last;
    double rate_bound = 0;  // 0: not proven yet
    uint64_t window = 0;    // our ticks the bound spans
  };
  std::map<NodeId, PeerClock> peer_clocks_;
  void note_peer_clock(NodeId from, uint64_t sent, uint64_t peer_ticks, uint64_t nonce);
  bool clock_proven(NodeId id) const;
  // True when state was recovered from storage: this node may have acknowledged a leader
  // before it stopped.
  bool restarted_ = false;

  NodeId lead_transferee_ = kNoNode;
  Index pending_conf_index_ = 0;
  // Index of the latest appended configuration change that removes or demotes this leader.
  Index self_removal_index_ = 0;
  // A TimeoutNow arrived while a committed configuration change was still unapplied.
  bool campaign_after_apply_ = false;
  uint64_t uncommitted_bytes_ = 0;

  // ReadIndex: requests wait for a heartbeat round acknowledged by a quorum. Rounds number the
  // heartbeat broadcasts; a request joins the next round to be sent, so reads arriving together
  // share one round (batching).
  struct PendingRead {
    uint64_t round = 0;
    Index index = 0;
    NodeId from = kNoNode;
    uint64_t context = 0;
  };
  base::Ring<PendingRead> pending_reads_;
  // Reads that arrived before the leader committed an entry of its term (§6.4): they wait.
  std::vector<std::pair<NodeId, uint64_t>> reads_before_commit_;
  uint64_t read_round_ = 0;
  std::map<NodeId, uint64_t> acked_round_;
  base::Ring<std::pair<uint64_t, uint64_t>> round_sent_tick_;  // (round, tick)
  uint64_t lease_expiry_tick_ = 0;

  std::vector<Message> msgs_;
  std::vector<ReadState> read_states_;
  HardState prev_hard_state_;
  SoftState prev_soft_state_;
  std::unique_ptr<Ready> ready_;  // allocated by ready(), released while quiesced
  void release_idle_memory();
  bool ready_outstanding_ = false;
  std::vector<Entry> scratch_entries_;
  // Entry buffers of appends built and not sent, reused by the next one; bounded so that a
  // burst does not pin memory.
  void recycle(Message&& m);
  std::vector<std::vector<Entry>> entry_buffers_;
  static constexpr size_t kMaxPooledBuffers = 64;
  static constexpr size_t kMaxPooledBufferEntries = 4096;
  // Appends are broadcast when the driver collects the next Ready, so that proposals arriving
  // together leave in one message per follower (batching), and likewise heartbeat rounds for
  // reads arriving together.
  bool needs_bcast_append_ = false;
  bool needs_read_round_ = false;
  // Set once this leader asked another node to take over: that node's election ignores
  // follower leases, so this leader's lease can no longer be trusted in this term.
  bool lease_disabled_ = false;
  bool snapshot_requested_ = false;
  bool quiesced_ = false;
  // A leader quiesces only once every voter answered a heartbeat round numbered at least this:
  // after it became leader or woke, a round must prove the quorum is still there (a leader cut
  // off from its followers must find out, and step down, rather than quiesce again).
  uint64_t quiesce_round_ = 1;
  bool storage_failed_ = false;
  // Records a storage read failure; true if `err` is one (the caller then stops what it does).
  bool check_storage(Error err) {
    if (err != Error::kStorageFailed) return false;
    storage_failed_ = true;
    return true;
  }
};

}  // namespace chorus::raft
