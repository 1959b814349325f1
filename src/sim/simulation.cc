// The event loop, the simulated network and the run of one seed.
#include "sim/simulation.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>

namespace chorus::sim {
namespace {

bool later(const Event& a, const Event& b) {
  return a.time != b.time ? a.time > b.time : a.seq > b.seq;
}

}  // namespace

const char* to_string(Faults f) {
  switch (f) {
    case Faults::kNone:
      return "none";
    case Faults::kNetwork:
      return "network";
    case Faults::kCrash:
      return "crash";
    case Faults::kAll:
      return "all";
  }
  return "?";
}

std::optional<Faults> parse_faults(const std::string& s) {
  for (Faults f : {Faults::kNone, Faults::kNetwork, Faults::kCrash, Faults::kAll}) {
    if (s == to_string(f)) return f;
  }
  return std::nullopt;
}

const char* to_string(Mutation m) {
  switch (m) {
    case Mutation::kNone:
      return "none";
    case Mutation::kCommitPreviousTerm:
      return "commit-previous-term";
    case Mutation::kVoteNotPersisted:
      return "vote-not-persisted";
    case Mutation::kAckBeforeDurable:
      return "ack-before-durable";
    case Mutation::kReadWithoutReadIndex:
      return "read-without-readindex";
    case Mutation::kRejoinEmptyUnderOldId:
      return "rejoin-empty-under-old-id";
    case Mutation::kQuiescedClockStops:
      return "quiesced-clock-stops";
  }
  return "?";
}

const char* to_string(Check c) {
  switch (c) {
    case Check::kNone:
      return "none";
    case Check::kCommitMonotonic:
      return "commit-monotonic";
    case Check::kElectionSafety:
      return "election-safety";
    case Check::kLeaderCompleteness:
      return "leader-completeness";
    case Check::kLogMatching:
      return "log-matching";
    case Check::kCompletenessAtRisk:
      return "completeness-at-risk";
    case Check::kCommitLocked:
      return "commit-locked";
    case Check::kStateMachineSafety:
      return "state-machine-safety";
    case Check::kApplyOrder:
      return "apply-order";
    case Check::kLostWrite:
      return "lost-write";
    case Check::kReplicasDiffer:
      return "replicas-differ";
    case Check::kLinearizability:
      return "linearizability";
    case Check::kLinearizabilityUnknown:
      return "linearizability-unknown";
    case Check::kLiveness:
      return "liveness";
    case Check::kStorage:
      return "storage";
    case Check::kMessageStorm:
      return "message-storm";
    case Check::kClockBound:
      return "clock-bound";
  }
  return "?";
}

std::optional<Mutation> parse_mutation(const std::string& s) {
  for (Mutation m : {Mutation::kNone, Mutation::kCommitPreviousTerm, Mutation::kVoteNotPersisted,
                     Mutation::kAckBeforeDurable, Mutation::kReadWithoutReadIndex,
                     Mutation::kRejoinEmptyUnderOldId, Mutation::kQuiescedClockStops}) {
    if (s == to_string(m)) return m;
  }
  return std::nullopt;
}

Simulation::Simulation(const SimOptions& options)
    : opt_(options),
      rng_(options.seed * 0x2545F4914F6CDD1DULL + 1),
      net_rng_(rng_.fork(1)),
      fault_rng_(rng_.fork(2)),
      client_rng_(rng_.fork(3)),
      check_rng_(rng_.fork(4)),
      move_rng_(options.seed * 0xD1B54A32D192ED03ULL + 0x6d6f7665) {
  Rng params = rng_.fork(5);
  bool network = opt_.faults == Faults::kNetwork || opt_.faults == Faults::kAll;
  bool crashes = opt_.faults == Faults::kCrash || opt_.faults == Faults::kAll;
  bool all = opt_.faults == Faults::kAll;
  base_latency_us_ = params.range(100, 2000);
  fsync_us_max_ = params.range(100, 5000);
  if (network) {
    loss_ = params.unit() * 0.30;
    dup_ = params.unit() * 0.05;
    spike_ = params.unit() * 0.02;
    p_partition_ = 0.002 + params.unit() * 0.01;
    p_heal_ = 0.005 + params.unit() * 0.02;
  }
  if (crashes) {
    p_crash_ = 0.001 + params.unit() * 0.005;
    p_pause_ = 0.001 + params.unit() * 0.004;
    p_crash_in_sync_ = params.unit() * 0.01;
    p_crash_after_vote_ = params.unit() * 0.2;
  }
  if (all) {
    p_member_ = params.unit() * 0.01;
    p_transfer_ = params.unit() * 0.005;
  }
  p_client_ = 0.2 + params.unit() * 0.6;
  // A healthy run handles tens of events per node and tick; far more means messages feed on
  // each other (for example a follower that lost acknowledged entries, probed forever).
  max_events_ = 100ULL * static_cast<uint64_t>(opt_.nodes) * static_cast<uint64_t>(opt_.groups) *
                static_cast<uint64_t>(opt_.steps + opt_.liveness_steps);
  snapshot_threshold_ = params.range(20, 300);
  lease_reads_ = params.chance(0.5);
  max_inflight_ = params.range(1, 64);
  // Log-uniform, so that small messages (one entry each, many in flight) are common.
  max_msg_bytes_ = 64ULL << params.below(9);
  // Small segments, so rotation and the deletion of compacted segments happen in every run,
  // and a small entry cache, so lagging followers are served from the segment files.
  disk_rng_ = rng_.fork(6);
  wal_options_.segment_bytes = 16ULL << (10 + disk_rng_.below(3));
  wal_options_.cache_bytes = 2ULL << (10 + disk_rng_.below(5));
  if (crashes && disk_rng_.chance(0.5)) p_disk_failure_ = disk_rng_.unit() * 0.002;
  if (crashes && disk_rng_.chance(0.5)) p_stall_ = disk_rng_.unit() * 0.002;
  // Clock drift: each node's ticks run up to max_drift_ fast or slow against real time. With
  // lease reads it stays inside the lease's allowance (kLeaseSafeDrift).
  Rng clocks = rng_.fork(7);
  // With lease reads, half the seeds stay inside the lease's allowance (the lease is granted)
  // and half go beyond it (the leader must measure the drift and refuse the lease).
  if (all) {
    bool beyond = !lease_reads_ || clocks.chance(0.5);
    max_drift_ = clocks.unit() * (beyond ? 0.3 : kLeaseSafeDrift);
  }
  result_.max_drift = max_drift_;
  result_.lease_reads = lease_reads_;
  // Large snapshots: in half the seeds with network faults a snapshot streams for up to seconds,
  // long enough for partitions, crashes and resets to cut it off midway.
  Rng snaps = rng_.fork(8);
  if (network && snaps.chance(0.5)) snap_transfer_us_max_ = snaps.range(50'000, 3'000'000);
  // Full disks: a node's writes fail with ENOSPC for a while; it stops, and starts again once
  // there is space.
  Rng disks = rng_.fork(9);
  if (crashes && disks.chance(0.5)) p_disk_full_ = disks.unit() * 0.01;
  // Damaged disks: a byte of a log changes; the node finds it reading back an entry, or at its
  // next start, and stops for good; the operator replaces it by a new member.
  Rng damage = rng_.fork(10);
  if (all && damage.chance(0.4)) p_damage_ = damage.unit() * 0.005;
  if (opt_.mutation == Mutation::kRejoinEmptyUnderOldId) p_damage_ = 0.01;
  // Quiescence: in half the seeds idle groups quiesce, and clients fall quiet now and then so
  // that they do.
  Rng quiet = rng_.fork(11);
  quiesce_ = quiet.chance(0.5) || opt_.mutation == Mutation::kQuiescedClockStops;
  result_.quiesce = quiesce_;

  // One group spans every member; several groups on five or seven members span three each,
  // starting one member further along for each group.
  for (int g = 1; g <= opt_.groups; ++g) {
    raft::ConfState initial;
    int span = opt_.groups > 1 && opt_.nodes >= 5 ? 3 : opt_.nodes;
    for (int i = 0; i < span; ++i)
      initial.voters.push_back(static_cast<raft::NodeId>(1 + (g - 1 + i) % opt_.nodes));
    std::sort(initial.voters.begin(), initial.voters.end());
    initial_confs_[static_cast<raft::GroupId>(g)] = initial;
  }
  if (opt_.groups > 1) keys_ = std::min<uint64_t>(64, 2 * static_cast<uint64_t>(opt_.groups));
  next_node_id_ = static_cast<raft::NodeId>(opt_.nodes + 1);
  for (int i = 1; i <= opt_.nodes; ++i) {
    SimNode& n = nodes_[static_cast<raft::NodeId>(i)];
    n.id = static_cast<raft::NodeId>(i);
    n.clock_rate = 1.0 + (clocks.unit() * 2 - 1) * max_drift_;
    n.storage = std::make_unique<SimStorage>(initial_confs_, wal_options_);
    start_node(n);
  }
  for (int a = 1; a <= opt_.nodes; ++a) {
    for (int b = 1; b <= opt_.nodes; ++b) {
      link_base_[{a, b}] = base_latency_us_ / 2 + params.below(base_latency_us_);
    }
  }
  int clients = static_cast<int>(params.range(2, 5)) + (opt_.groups - 1);
  for (int i = 1; i <= clients; ++i) {
    SimClient c;
    c.id = static_cast<uint64_t>(i);
    clients_.push_back(c);
  }
  note("cluster of " + std::to_string(opt_.nodes) + " nodes, " +
       (opt_.groups > 1 ? std::to_string(opt_.groups) + " groups, " : "") +
       std::to_string(clients) + " clients, faults " + to_string(opt_.faults) + ", loss " +
       std::to_string(static_cast<int>(loss_ * 100)) + "%, reads " +
       (lease_reads_ ? "lease" : "read-index") + ", snapshot every " +
       std::to_string(snapshot_threshold_) + " entries" +
       (opt_.mutation != Mutation::kNone ? std::string(", MUTATION ") + to_string(opt_.mutation)
                                         : ""));
}

void Simulation::schedule(Event e) {
  e.seq = ++seq_;
  events_.push_back(std::move(e));
  std::push_heap(events_.begin(), events_.end(), later);
}

void Simulation::schedule_node_event(uint64_t time, EventKind kind, const SimNode& n) {
  Event e;
  e.time = time;
  e.kind = kind;
  e.node = n.id;
  e.incarnation = n.incarnation;
  schedule(std::move(e));
}

void Simulation::schedule_snap_status(uint64_t time, raft::GroupId group, raft::NodeId leader,
                                      raft::NodeId follower, bool failed) {
  Event e;
  e.time = time;
  e.kind = EventKind::kSnapStatus;
  e.group = group;
  e.node = leader;
  e.peer = follower;
  e.failed = failed;
  schedule(std::move(e));
}

void Simulation::schedule_delivery(raft::Message m) {
  Event e;
  e.time = now_ + link_latency(m.from, m.to);
  e.kind = EventKind::kDeliver;
  e.node = m.to;
  e.msg = std::move(m);
  schedule(std::move(e));
}

void Simulation::run_until(uint64_t t) {
  while (!events_.empty() && !failed_) {
    if (events_.front().time >= t) break;
    std::pop_heap(events_.begin(), events_.end(), later);
    Event e = std::move(events_.back());
    events_.pop_back();
    now_ = e.time;
    if (++result_.events > max_events_) {
      fail(Check::kMessageStorm,
           "message storm: more than " + std::to_string(max_events_) + " events");
      return;
    }
    hash(e.time);
    hash(static_cast<uint64_t>(e.kind));
    hash(e.node);
    handle(e);
  }
  if (!failed_) now_ = t;
}

void Simulation::handle(Event& e) {
  if (e.kind == EventKind::kReply) {
    on_reply(e.reply);
    return;
  }
  if (e.kind == EventKind::kSnapChunk) {
    snapshot_chunk(e.transfer);
    return;
  }
  auto it = nodes_.find(e.node);
  if (it == nodes_.end()) return;
  SimNode& n = it->second;
  switch (e.kind) {
    case EventKind::kRestart:
      restart(n);
      return;
    case EventKind::kResume:
      if (n.up && n.paused && e.incarnation == n.incarnation) resume(n);
      return;
    case EventKind::kDiskFreed:
      if (n.storage->disk_full()) free_disk(n);
      return;
    case EventKind::kCrash:
      // A crash scheduled while faults were active (during an fsync, after a vote) can come due
      // after heal_all(); faults have stopped, and crash() would schedule no restart.
      if (faults_active_ && n.up && e.incarnation == n.incarnation) crash(n);
      return;
    default:
      break;
  }
  if (!n.up) {
    if (e.kind == EventKind::kDeliver && e.msg.type == raft::MessageType::kSnap) {
      schedule_snap_status(now_, e.msg.group, e.msg.from, e.msg.to, true);
    }
    return;
  }
  if (n.paused) {
    n.deferred.push_back(std::move(e));
    return;
  }
  switch (e.kind) {
    case EventKind::kDeliver: {
      hash(static_cast<uint64_t>(e.msg.type));
      hash(e.msg.from);
      hash(e.msg.term);
      hash(e.msg.index);
      hash(e.msg.entries.size());
      bool snap = e.msg.type == raft::MessageType::kSnap;
      raft::NodeId from = e.msg.from;
      raft::GroupId group = e.msg.group;
      // Member heartbeats and every group's messages go through the engine.
      raft::Error err = n.engine->step(std::move(e.msg), n.clock_us);
      (void)err;  // stale or foreign messages are expected under faults
      if (snap) {
        schedule_snap_status(now_ + client_latency(), group, from, n.id, false);
      }
      drive(n);
      break;
    }
    case EventKind::kSyncDone:
      if (e.incarnation != n.incarnation || !n.engine->in_round()) return;
      if (bool injected = maybe_inject_disk_failure(n);
          !disk_result(n, n.storage->sync(), injected, "fsync")) {
        return;
      }
      finish_ready(n);
      drive(n);
      break;
    case EventKind::kRequest:
      hash(e.request.client);
      hash(e.request.op);
      on_request(n, e.request);
      break;
    case EventKind::kSnapStatus:
      if (engine::Replica* replica = n.engine->find(e.group)) {
        replica->report_snapshot(e.peer, e.failed);
        drive(n);
      }
      break;
    default:
      break;
  }
}

bool Simulation::blocked(raft::NodeId from, raft::NodeId to) const {
  return blocked_.count({from, to}) != 0;
}

uint64_t Simulation::link_latency(raft::NodeId from, raft::NodeId to) {
  uint64_t base = link_base_[{from, to}];
  uint64_t lat = base / 2 + net_rng_.below(base + 1);
  // Occasional long delays reorder messages on a link.
  if (spike_ > 0 && net_rng_.chance(spike_)) lat += net_rng_.range(20'000, 200'000);
  return lat;
}

uint64_t Simulation::client_latency() {
  return 100 + net_rng_.below(400);
}

void Simulation::send_messages(SimNode& n, std::vector<raft::Message>& msgs) {
  for (raft::Message& m : msgs) {
    bool dropped =
        blocked(m.from, m.to) || (loss_ > 0 && net_rng_.chance(loss_)) || nodes_.count(m.to) == 0;
    if (dropped) {
      if (m.type == raft::MessageType::kSnap) n.engine->find(m.group)->report_snapshot(m.to, true);
      continue;
    }
    if (m.type == raft::MessageType::kSnap && snap_transfer_us_max_ > 0) {
      start_snapshot_transfer(n, std::move(m));
      continue;
    }
    if (dup_ > 0 && net_rng_.chance(dup_)) {
      schedule_delivery(m);
    }
    schedule_delivery(std::move(m));
  }
}

namespace {
constexpr uint64_t kSnapChunkUs = 20'000;
}  // namespace

void Simulation::start_snapshot_transfer(const SimNode& from, raft::Message m) {
  auto to = nodes_.find(m.to);
  SnapTransfer t;
  t.from_incarnation = from.incarnation;
  t.to_incarnation = to->second.incarnation;
  uint64_t us = net_rng_.below(snap_transfer_us_max_ + 1);
  t.chunks = std::max<uint64_t>(1, us / kSnapChunkUs);
  t.chunk_us = kSnapChunkUs;
  t.msg = std::move(m);
  uint64_t id = next_transfer_++;
  note("n" + std::to_string(t.msg.from) + " streams a snapshot at index " +
       std::to_string(t.msg.snapshot ? t.msg.snapshot->metadata.index : 0) + " to n" +
       std::to_string(t.msg.to) + " in " + std::to_string(t.chunks) + " chunks");
  transfers_.emplace(id, std::move(t));
  Event e;
  e.time = now_ + kSnapChunkUs;
  e.kind = EventKind::kSnapChunk;
  e.transfer = id;
  schedule(std::move(e));
}

void Simulation::snapshot_chunk(uint64_t id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  SnapTransfer& t = it->second;
  raft::NodeId from = t.msg.from;
  raft::NodeId to = t.msg.to;
  const SimNode& sender = nodes_.at(from);
  const SimNode& receiver = nodes_.at(to);
  // A stream needs both directions (TCP acknowledgements), both ends alive in the incarnation
  // that began it, and no reset: a lossy link now and then breaks the connection.
  std::string cut;
  if (blocked(from, to) || blocked(to, from)) cut = "the link is cut";
  if (!sender.up || sender.incarnation != t.from_incarnation) cut = "the sender went down";
  if (!receiver.up || receiver.incarnation != t.to_incarnation) cut = "the receiver went down";
  if (cut.empty() && loss_ > 0 && net_rng_.chance(loss_ / 10)) cut = "the connection reset";
  if (!cut.empty()) {
    ++result_.snapshot_transfers_cut;
    note("snapshot stream n" + std::to_string(from) + " -> n" + std::to_string(to) + " cut after " +
         std::to_string(t.sent) + " of " + std::to_string(t.chunks) + " chunks: " + cut);
    // The sender's transport reports the failure (if the sender still runs); the receiver
    // drops the partial stream and installs nothing.
    if (sender.up && sender.incarnation == t.from_incarnation)
      schedule_snap_status(now_, t.msg.group, from, to, true);
    transfers_.erase(it);
    return;
  }
  // A paused receiver stalls the stream (its socket buffer fills) without breaking it.
  if (!receiver.paused) ++t.sent;
  if (t.sent < t.chunks) {
    Event e;
    e.time = now_ + t.chunk_us;
    e.kind = EventKind::kSnapChunk;
    e.transfer = id;
    schedule(std::move(e));
    return;
  }
  raft::Message m = std::move(t.msg);
  transfers_.erase(it);
  schedule_delivery(std::move(m));
}

void Simulation::tick_all() {
  std::vector<raft::NodeId> order;
  for (auto& [id, n] : nodes_)
    order.push_back(id);
  // A different interleaving every step.
  for (size_t i = order.size(); i > 1; --i)
    std::swap(order[i - 1], order[fault_rng_.below(i)]);
  for (raft::NodeId id : order) {
    SimNode& n = nodes_.at(id);
    if (!n.up) continue;
    n.tick_credit += n.clock_rate;
    while (n.tick_credit >= 1.0) {
      n.tick_credit -= 1.0;
      n.clock_us += kTickUs;
    }
    if (n.paused) continue;
    n.engine->on_clock(n.clock_us);
    std::vector<raft::Message> beats = n.engine->liveness(n.clock_us);
    send_messages(n, beats);
    expire_reads(n);
    drive(n);
  }
}

SimResult Simulation::run() {
  for (int step = 0; step < opt_.steps && !failed_; ++step) {
    inject_faults();
    replace_lost();
    drive_moves();
    clients_step(false);
    tick_all();
    run_until(now_ + kTickUs);
    if (!failed_) check_invariants();
    if (!failed_ && step % 10 == 0) check_clock_bounds();
  }
  if (!failed_) {
    faults_active_ = false;
    heal_all();
    bool live = false;
    std::string waiting;
    for (int step = 0; step < opt_.liveness_steps && !failed_; ++step) {
      replace_lost();
      drive_moves();
      clients_step(true);
      tick_all();
      run_until(now_ + kTickUs);
      if (failed_) break;
      check_invariants();
      if (liveness_reached(&waiting)) {
        live = true;
        break;
      }
    }
    if (!failed_ && !live) {
      // A cluster that does not recover may be stalled by a safety violation (a client reading
      // a stale value forever never wins its compare-and-set): the history's verdict first.
      size_t checked = 0;
      check::CheckReport report = check_history(&checked);
      if (report.result == check::CheckResult::kIllegal) {
        fail(Check::kLinearizability,
             "linearizability (and no recovery after the heal): " + report.explanation);
      }
      fail(Check::kLiveness, "liveness: cluster did not recover within " +
                                 std::to_string(opt_.liveness_steps) +
                                 " ticks after faults healed: " + waiting);
    }
  }
  if (!failed_) final_checks();
  for (const auto& [id, n] : nodes_) {
    for (const auto& [group, r] : n.groups) {
      if (n.up) result_.max_term = std::max(result_.max_term, r.core().term());
    }
  }
  for (const auto& [group, initial] : initial_confs_) {
    result_.committed_by_group.push_back(checks_[group].registry_max);
    result_.committed += checks_[group].registry_max;
  }
  result_.trace_hash = trace_hash_;
  result_.ok = !failed_;
  if (failed_) result_.trace_tail.assign(tail_.begin(), tail_.end());
  return result_;
}

void Simulation::check_clock_bounds() {
  for (auto& [lid, l] : nodes_) {
    if (!l.up) continue;
    for (const auto& [group, r] : l.groups) {
      if (r.core().role() != raft::Role::kLeader) continue;
      for (const auto& [id, p] : r.core().status().progress) {
        if (p.clock_rate_bound == 0) continue;
        // The simulation knows the true rates: the leader's bound must hold.
        double truth = nodes_.at(id).clock_rate / l.clock_rate;
        if (truth > p.clock_rate_bound * (1 + 1e-9)) {
          fail(Check::kClockBound, "n" + std::to_string(lid) + " bounds n" + std::to_string(id) +
                                       "'s clock rate at " + std::to_string(p.clock_rate_bound) +
                                       " of its own; it is " + std::to_string(truth));
          return;
        }
        // Over a long window the bound is tight: beyond the allowance the clock is too fast
        // (over a short one it may only be not proven yet).
        if (lease_reads_ && !result_.lease_refused_for_drift && p.clock_window_ticks >= 100 &&
            p.clock_rate_bound > r.core().max_peer_clock_rate()) {
          result_.lease_refused_for_drift = true;
          note("n" + std::to_string(lid) + " bounds n" + std::to_string(id) + "'s clock rate at " +
               std::to_string(p.clock_rate_bound) + " of its own: too fast for its lease");
        }
      }
    }
  }
}

raft::GroupId Simulation::group_of(const std::string& key) const {
  // Keys are "k<i>": key i lives in group 1 + i mod G.
  uint64_t i = std::strtoull(key.c_str() + 1, nullptr, 10);
  return static_cast<raft::GroupId>(1 + i % static_cast<uint64_t>(opt_.groups));
}

raft::GroupId Simulation::pick_group(Rng& rng) {
  if (opt_.groups == 1) return 1;
  return static_cast<raft::GroupId>(1 + rng.below(static_cast<uint64_t>(opt_.groups)));
}

std::string Simulation::who(raft::NodeId id, raft::GroupId group) const {
  std::string s = "n" + std::to_string(id);
  if (opt_.groups > 1) s += "/g" + std::to_string(group);
  return s;
}

std::string Simulation::stamp() const {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "[%9.1f ms] ", static_cast<double>(now_) / 1000.0);
  return buf;
}

void Simulation::note(const std::string& line) {
  std::string s = stamp() + line;
  if (opt_.timeline) std::printf("%s\n", s.c_str());
  tail_.push_back(std::move(s));
  if (tail_.size() > kTraceTailLines) tail_.pop_front();
}

void Simulation::fail(Check check, const std::string& what) {
  if (failed_) return;
  failed_ = true;
  result_.failure = what;
  result_.check = check;
  note("VIOLATION: " + what);
}

SimResult run_simulation(const SimOptions& options) {
  Simulation sim(options);
  return sim.run();
}

}  // namespace chorus::sim
