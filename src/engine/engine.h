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

// One replica's part of an engine round.
struct GroupRound {
  Replica* replica = nullptr;
  Round* round = nullptr;
};

class Engine {
 public:
  Engine() = default;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Hosts a replica of options.raft.group (whose log must exist in the host's write-ahead log).
  Replica& add(const ReplicaOptions& options, uint64_t now_us);
  // The replica of `group`, or nullptr.
  Replica* find(raft::GroupId group) const;
  const std::map<raft::GroupId, std::unique_ptr<Replica>>& replicas() const { return replicas_; }

  // Delivers every tick due by `now_us` to every replica; returns the ticks delivered in all.
  uint64_t on_clock(uint64_t now_us);
  // The earliest tick due among the replicas (UINT64_MAX without replicas).
  uint64_t next_tick_us() const;

  // No round is open and some replica has a Ready.
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
  std::map<raft::GroupId, std::unique_ptr<Replica>> replicas_;
  std::vector<GroupRound> open_;
};

}  // namespace chorus::engine
