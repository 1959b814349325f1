// One replica of one Raft group, driven: the driver logic every host runs alike. chorusd's raft
// thread and the cluster simulator both drive their groups through this class, so every
// simulated seed runs the code that ships (docs/ARCHITECTURE.md, "The engine").
//
// Like the core it wraps, a Replica has no threads, clocks, sockets or files: time arrives as a
// number (on_clock), messages and requests as calls, and each Ready leaves in two phases around
// the host's write of its log:
//   begin_round   takes the core's Ready: what the host must persist (append_to adds it to the
//                 round's batch, which may carry other groups' records too), and the messages
//                 allowed to leave before that write;
//   finish_round  once the write is durable (or only written, when the round need not sync):
//                 the remaining messages, the committed entries with the configuration after
//                 each change among them (already applied to the core), and the read points
//                 reached; then the core advances.
// Reads are batched: every reader queued between two start_reads() shares one ReadIndex round.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "raft/raft.h"
#include "storage/wal.h"

namespace chorus::engine {

struct ReplicaOptions {
  raft::Config raft;  // its group, member id, log storage and seed among them
  uint64_t tick_us = 100'000;
  // ReadIndex contexts start here. A host that restarts gives each life its own range (the
  // wall clock in the high bits), so an answer to a read of an earlier life never matches.
  uint64_t first_read_context = 1;
};

// A committed configuration change, already applied to the core.
struct AppliedConf {
  raft::Index index = 0;
  raft::ConfChange change;
  raft::ConfState conf;  // the configuration after it
};

// Readers whose ReadIndex round settled at `index`: a read made once the state machine has
// applied `index` is linearizable.
struct ReadPoint {
  raft::Index index = 0;
  std::vector<uint64_t> readers;
};

// The first phase of a Ready. Pointers stay valid until finish_round().
struct Round {
  std::optional<raft::SoftState> soft_state;  // the role or the leader changed
  // A snapshot from the leader: the host installs its state machine before writing the log.
  const raft::Snapshot* snapshot = nullptr;
  const std::vector<raft::Entry>* entries = nullptr;  // to append
  std::optional<raft::HardState> hard_state;          // to record
  bool write = false;                                 // anything to write at all
  bool sync = false;  // it must be durable before finish_round (fdatasync)
  // Messages that may leave before the write (a leader's appends and heartbeats), so its own
  // fdatasync overlaps the followers'. Empty unless the core allows it (raft.h, messages_first).
  std::vector<raft::Message> early_messages;
};

struct RoundResult {
  std::vector<raft::Message> messages;
  std::vector<raft::Entry> committed;
  std::vector<AppliedConf> confs;  // one per configuration change in `committed`, in order
  std::vector<ReadPoint> reads;
  // A committed configuration change that cannot be decoded: the log is damaged and the
  // replica must stop. Empty when all is well.
  std::string error;
};

class Replica;

// The engine hosting a replica (engine.h) hears of every call that may give it a Ready or wake
// it, so that it looks only at replicas with work and ticks only awake ones; and it lends its
// clock to a quiesced replica catching up on the ticks it skipped before anything wakes it.
class ReplicaHost {
 public:
  virtual ~ReplicaHost() = default;
  virtual void touched(Replica& replica) = 0;
  virtual uint64_t now_us() const = 0;
};

class Replica {
 public:
  // The core is built from options.raft over its storage; the clock starts at `now_us`.
  Replica(const ReplicaOptions& options, uint64_t now_us);
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // The core, for status and checks. Changes go through the calls below.
  const raft::Raft& core() const { return *core_; }
  raft::GroupId group() const { return group_; }

  // Time. Delivers every tick due by `now_us`: after a stall (a long fdatasync, a paused
  // process) all the missed ticks at once, so whatever the host steps next is judged by the
  // current clock (raft.h, tick()). Returns the ticks delivered.
  uint64_t on_clock(uint64_t now_us);
  // Ticks start again one interval after `now_us` (a host that starts driving later than it
  // built the replica).
  void restart_clock(uint64_t now_us);
  uint64_t next_tick_us() const { return next_tick_us_; }

  // Set by the engine that hosts the replica; none for a replica driven alone.
  void set_host(ReplicaHost* host) { host_ = host; }

  [[nodiscard]] raft::Error step(raft::Message&& m);
  [[nodiscard]] raft::Error propose(std::string data);
  [[nodiscard]] raft::Error propose_conf_change(const raft::ConfChange& cc);
  [[nodiscard]] raft::Error transfer_leader(raft::NodeId to);
  // Starts an election now (a host placing a new group's first leader).
  [[nodiscard]] raft::Error campaign();
  void report_snapshot(raft::NodeId to, bool failed);
  // The connection to `to` failed: a snapshot in flight to it is lost with it, or the leader
  // would send that follower nothing else, ever.
  void report_unreachable(raft::NodeId to);
  [[nodiscard]] bool take_snapshot_request() { return core_->take_snapshot_request(); }
  // Quiescence (raft.h, Config::quiesce). The engine wakes a quiesced replica whose leader's
  // member went silent or restarted.
  bool quiesced() const { return core_->quiesced(); }
  void wake();

  // Queues a reader (a host's token) for the next ReadIndex round.
  void read(uint64_t reader) { queued_reads_.push_back(reader); }
  // Starts one round for every queued reader, which expires at `deadline_us`. Returns the
  // readers refused at once (no leader known): the host fails them.
  std::vector<uint64_t> start_reads(uint64_t deadline_us);
  // Readers of rounds whose deadline passed by `now_us` (the leader stepped down, or lost its
  // quorum): the host fails them with a timeout.
  std::vector<uint64_t> expire_reads(uint64_t now_us);
  // Readers waiting, queued or in rounds.
  size_t reads_waiting() const;

  // A Ready is waiting and no round is open.
  bool has_round() const { return !in_round_ && core_->has_ready(); }
  bool in_round() const { return in_round_; }
  // Opens a round; nullptr if the core found its log damaged (raft.h, storage_failed()): the
  // host must stop this replica.
  Round* begin_round();
  // During a round whose Ready installs a snapshot: its data, moved out, so that the host
  // installs it in its state machine and the log records the snapshot without it.
  std::string take_snapshot_data();
  // The open round's records, in the order recovery relies on: the snapshot, then the
  // entries, then the hard state, so a commit index never survives without its entries.
  void append_to(storage::WalBatch* batch) const;
  // Closes the round once its write is durable (or written, without sync).
  void finish_round(RoundResult* out);

 private:
  // Before a call that may wake the core: a quiesced core catches up on the ticks it skipped
  // (its clock counts, its timers do not), so that it wakes at the right time.
  void catch_up();
  // After a call that may have given the core a Ready or woken it.
  void touched() {
    if (host_ != nullptr) host_->touched(*this);
  }

  struct ReadRound {
    std::vector<uint64_t> readers;
    uint64_t deadline_us = 0;
  };

  // Of the options, only what the driver reads again (the core keeps its own copy of the rest):
  // an idle replica's every byte counts, times thousands of groups.
  raft::GroupId group_;
  uint64_t tick_us_;
#ifdef CHORUS_RAFT_MUTATIONS
  raft::UnsafeMutations unsafe_;
#endif
  ReplicaHost* host_ = nullptr;
  std::unique_ptr<raft::Raft> core_;
  uint64_t next_tick_us_ = 0;
  bool in_round_ = false;
  Round round_;
  std::vector<uint64_t> queued_reads_;
  std::map<uint64_t, ReadRound> read_rounds_;  // by ReadIndex context
  uint64_t next_read_context_ = 1;
};

// The records that persist a Ready, in the order recovery relies on: the snapshot, then the
// entries, then the hard state, so a commit index never survives without its entries. Before
// each configuration change among the entries goes a hard state committing as much of what
// precedes it as the Ready's does: a crash that keeps a change then keeps the commit of the
// change before it (the leader appends a change only once the one before is applied, so the
// commit it sends covers it). Without that, a member restarting from a torn write could hold
// a change whose predecessor it does not know to be committed, campaign in the configuration
// before both, and win it while a newer one is in force (the simulator found this: five
// members, a joint change whose two entries reached a follower in one write).
void append_ready(storage::WalBatch* batch, raft::GroupId group, const raft::Snapshot* snapshot,
                  const std::vector<raft::Entry>& entries,
                  const std::optional<raft::HardState>& hard_state);
// One record of those, in write order: a snapshot, a run of entries, or a hard state. The
// simulator's model of the disk reads them so it knows every record written.
struct ReadyRecord {
  const raft::Snapshot* snapshot = nullptr;
  std::span<const raft::Entry> entries;
  std::optional<raft::HardState> hard_state;
};
std::vector<ReadyRecord> ready_records(const raft::Snapshot* snapshot,
                                       const std::vector<raft::Entry>& entries,
                                       const std::optional<raft::HardState>& hard_state);
// The same as a batch of its own, for hosts and tools that hold a core directly.
storage::WalBatch ready_batch(raft::GroupId group, const raft::Ready& rd);

}  // namespace chorus::engine
