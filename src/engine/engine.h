// The replicas of one process over its one write-ahead log. Each round opens a round on every
// replica with work, gathers their records into one batch for one write and one fdatasync, and
// closes them all once it is durable: however many groups have work, a round costs one sync.
//
// Like Replica, the engine has no threads, clocks, sockets or files of its own: the host (chorusd's
// raft thread, the simulator) calls it with the time, does the write and the sync between
// begin_round and finish_round, and sends the messages it returns.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "engine/replica.h"
#include "storage/wal.h"

namespace chorus::engine {

// Member liveness: quiesced replicas run no timers, so a follower would never notice that its
// leader's member died. The engine exchanges one small heartbeat per member pair per interval
// (whatever the number of groups) and wakes the quiesced replicas led by a member it has not
// heard from for `dead_after_us`, or that restarted (its heartbeats carry a new incarnation).
// The woken followers then elect as usual. When a member comes back or restarts, the quiesced
// leaders here wake too, and send it a heartbeat. Off when heartbeat_us is 0.
struct EngineOptions {
  raft::NodeId id = raft::kNoNode;
  uint64_t incarnation = 0;  // differs between two lives of this member
  uint64_t heartbeat_us = 0;
  uint64_t dead_after_us = 0;
};

// Member heartbeats travel as messages of this group, which no Raft group uses.
inline constexpr raft::GroupId kLivenessGroup = 0;

// One replica's part of an engine round.
struct GroupRound {
  Replica* replica = nullptr;
  Round* round = nullptr;
};

class Engine final : private ReplicaHost {
 public:
  Engine() = default;
  explicit Engine(const EngineOptions& options) : options_(options) {}
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Hosts a replica of options.raft.group (whose log must exist in the host's write-ahead log).
  // Without member liveness (heartbeat_us 0) the replica does not quiesce.
  Replica& add(const ReplicaOptions& options, uint64_t now_us);
  // Stops hosting the replica of `group` (removed from this member); false if none is here or a
  // round is open (its records may be in the batch). Messages for it then get kWrongGroup.
  bool remove(raft::GroupId group);
  // The replica of `group`, or nullptr.
  Replica* find(raft::GroupId group) const;
  const std::map<raft::GroupId, std::unique_ptr<Replica>>& replicas() const { return replicas_; }

  // A message from the network: member heartbeats go to liveness, the rest to the replica of
  // its group (Error::kWrongGroup if none here). Either way the sender is heard from.
  [[nodiscard]] raft::Error step(raft::Message&& m, uint64_t now_us);
  // The members this one exchanges heartbeats with (those hosting replicas of its groups).
  // A new peer counts as heard from at `now_us`.
  void set_peers(const std::vector<raft::NodeId>& peers, uint64_t now_us);
  // The member heartbeats due by `now_us`, to send; wakes the quiesced replicas led by a
  // member silent for dead_after_us.
  std::vector<raft::Message> liveness(uint64_t now_us);
  // Members currently believed down.
  size_t peers_down() const;
  // Replicas whose timers run (not quiesced), and replicas the engine looks at for work.
  size_t awake() const { return awake_.size(); }
  size_t dirty() const { return dirty_.size(); }

  // Delivers every tick due by `now_us` to every awake replica (a quiesced one skips them, and
  // catches up on its clock when something wakes it); returns the ticks delivered in all.
  uint64_t on_clock(uint64_t now_us);
  // The earliest tick due among the awake replicas, or the next member heartbeat (UINT64_MAX
  // without either).
  uint64_t next_tick_us() const;

  // No round is open and some replica has a Ready. Only replicas touched since their last
  // round are looked at, so an engine of many idle groups costs nothing here.
  bool has_round() const;
  bool in_round() const { return !open_.empty(); }
  // Opens a round on every replica with a Ready, in group order. Replicas that found their log
  // damaged (Replica::begin_round returned nullptr) are listed in `damaged` and take no part.
  const std::vector<GroupRound>& begin_round(std::vector<raft::GroupId>* damaged);
  // Every open round's records, in one batch (each group's in the order recovery relies on).
  void append_to(storage::WalBatch* batch) const;
  // Whether the batch must be durable before finish_round, and whether there is any at all.
  bool must_sync() const;
  bool must_write() const;
  // Closes every open round once the batch is durable (or written, without sync).
  void finish_round(std::vector<std::pair<raft::GroupId, RoundResult>>* out);

 private:
  struct Peer {
    uint64_t last_heard_us = 0;
    uint64_t incarnation = 0;  // 0: not heard yet
    bool down = false;
  };
  void touched(Replica& replica) override;
  uint64_t now_us() const override { return now_us_; }
  void heard_from(raft::NodeId peer, uint64_t incarnation, uint64_t now_us);
  void wake_for(raft::NodeId peer);

  EngineOptions options_;
  std::map<raft::GroupId, std::unique_ptr<Replica>> replicas_;
  std::vector<GroupRound> open_;
  std::map<raft::NodeId, Peer> peers_;
  uint64_t next_heartbeat_us_ = 0;
  uint64_t now_us_ = 0;  // the latest time the host gave
  // Replicas whose timers run, and replicas touched since their last round (which may have a
  // Ready), in group order.
  std::map<raft::GroupId, Replica*> awake_;
  mutable std::map<raft::GroupId, Replica*> dirty_;
};

}  // namespace chorus::engine
