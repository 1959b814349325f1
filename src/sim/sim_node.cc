// The simulated member: chorusd's replica driver (engine::Replica) around the core, on the real
// write-ahead log over a simulated disk, with fsync taking simulated time and crashes losing what
// was not synced. What is simulated here is only what a host supplies: the disk, the network,
// the clock and the state machine.
#include <algorithm>

#include "sim/simulation.h"

namespace chorus::sim {

void Simulation::start_node(SimNode& n) {
  // Exactly what a restarting node has: the Wal's recovered log and nothing else.
  const raft::LogStorage* recovered = n.storage->view();
  raft::Snapshot snap;
  (void)recovered->snapshot(&snap);
  n.sm = KvStateMachine{};
  if (!snap.empty() && !n.sm.restore(snap.data))
    fail(Check::kStorage, "node " + std::to_string(n.id) + ": corrupt snapshot");
  n.conf = recovered->conf_state();
  raft::Config c;
  c.id = n.id;
  c.storage = recovered;
  c.election_ticks = kElectionTicks;
  c.heartbeat_ticks = kHeartbeatTicks;
  c.lease_drift_ticks = 2;
  c.pre_vote = true;
  c.check_quorum = true;
  c.read_only = lease_reads_ ? raft::ReadOnlyOption::kLeaseBased : raft::ReadOnlyOption::kSafe;
  c.max_inflight_messages = max_inflight_;
  c.max_bytes_per_message = max_msg_bytes_;
  c.max_uncommitted_bytes = 1 << 20;
  c.applied = snap.metadata.index;
  c.seed = hash_mix(hash_mix(opt_.seed, n.id), n.incarnation);
  c.unsafe.commit_previous_term_entries = opt_.mutation == Mutation::kCommitPreviousTerm;
  c.unsafe.forget_vote = opt_.mutation == Mutation::kVoteNotPersisted;
  c.unsafe.ack_before_durable = opt_.mutation == Mutation::kAckBeforeDurable;
  engine::ReplicaOptions ro;
  ro.raft = c;
  ro.tick_us = kTickUs;
  ro.first_read_context = hash_mix(c.seed, 0x5eed) | 1;
  n.engine = std::make_unique<engine::Engine>();
  n.replica = &n.engine->add(ro, n.clock_us);
  n.last_commit = n.core().log().committed();
  n.last_role = raft::Role::kFollower;
  n.last_term = n.core().term();
}

void Simulation::drive(SimNode& n) {
  if (!failed_ && n.up && n.core().storage_failed()) {
    stop_on_damaged_log(n);
    return;
  }
  while (!failed_ && n.up && !n.paused && n.engine->has_round()) {
    std::vector<raft::GroupId> damaged;
    const std::vector<engine::GroupRound>& rounds = n.engine->begin_round(&damaged);
    if (!damaged.empty()) {
      stop_on_damaged_log(n);
      return;
    }
    // The simulated member hosts one group; the engine's round is the same for any number.
    bool vote_changed = false;
    for (const engine::GroupRound& g : rounds) {
      if (!start_group_round(n, *g.round, &vote_changed)) return;
    }
    if (n.engine->must_write()) {
      // Failed syncs are injected into the writes that sync (a commit-only write does not).
      bool injected = n.engine->must_sync() && maybe_inject_disk_failure(n);
      storage::Status st;
      for (const engine::GroupRound& g : rounds) {
        const engine::Round& rd = *g.round;
        if (!rd.write || !st.is_ok()) continue;
        st = n.storage->write(rd.snapshot, *rd.entries, rd.hard_state ? &*rd.hard_state : nullptr);
      }
      if (!disk_result(n, st, injected, "write")) return;
    }
    if (!n.engine->must_sync()) {
      finish_ready(n);
      continue;
    }
    uint64_t fsync_us = 50 + fault_rng_.below(fsync_us_max_);
    if (faults_active_ && p_stall_ > 0 && fault_rng_.chance(p_stall_)) {
      // The disk stalls for seconds. The node keeps stepping messages meanwhile, and its
      // replica catches up on the ticks it missed before it steps anything (Replica::on_clock).
      fsync_us = fault_rng_.range(1'000'000, 4'000'000);
      note("n" + std::to_string(n.id) + " stalls in fsync for " + std::to_string(fsync_us / 1000) +
           " ms");
    }
    schedule_node_event(now_ + fsync_us, EventKind::kSyncDone, n);
    if (!faults_active_) return;
    // Fault points: a power cut while the disk is syncing, or right after a vote went out.
    if (p_crash_in_sync_ > 0 && fault_rng_.chance(p_crash_in_sync_)) {
      schedule_node_event(now_ + fault_rng_.below(fsync_us), EventKind::kCrash, n);
    } else if (vote_changed && p_crash_after_vote_ > 0 && fault_rng_.chance(p_crash_after_vote_)) {
      schedule_node_event(now_ + fsync_us + fault_rng_.below(3000), EventKind::kCrash, n);
    }
    return;
  }
}

bool Simulation::start_group_round(SimNode& n, engine::Round& round, bool* vote_changed) {
  if (round.soft_state) {
    const raft::SoftState& ss = *round.soft_state;
    if (ss.role == raft::Role::kLeader && n.last_role != raft::Role::kLeader) {
      ++result_.elections;
      n.commit_floor = n.core().log().committed();
      note("n" + std::to_string(n.id) + " becomes leader in term " +
           std::to_string(n.core().term()));
    } else if (ss.role != raft::Role::kLeader && n.last_role == raft::Role::kLeader) {
      note("n" + std::to_string(n.id) + " steps down in term " + std::to_string(n.core().term()));
    }
    n.last_role = ss.role;
  }
  if (round.hard_state) {
    raft::HardState before = n.storage->view()->hard_state();
    *vote_changed = *vote_changed || round.hard_state->vote != before.vote ||
                    round.hard_state->term != before.term;
  }
  send_messages(n, round.early_messages);
  if (round.snapshot != nullptr) {
    // As chorusd: the state machine is replaced before the log records the snapshot.
    if (!n.sm.restore(round.snapshot->data)) {
      fail(Check::kStorage, "node " + std::to_string(n.id) + ": received a corrupt snapshot");
      return false;
    }
    n.conf = round.snapshot->metadata.conf_state;
    ++result_.snapshots_installed;
    note("n" + std::to_string(n.id) + " installs snapshot at index " +
         std::to_string(round.snapshot->metadata.index));
  }
  return true;
}

void Simulation::finish_ready(SimNode& n) {
  std::vector<std::pair<raft::GroupId, engine::RoundResult>> results;
  n.engine->finish_round(&results);
  for (auto& [group, out] : results) {
    if (!out.error.empty()) {
      fail(Check::kStorage, "n" + std::to_string(n.id) + ": " + out.error);
      return;
    }
    send_messages(n, out.messages);
    apply_committed(n, out);
    for (const engine::ReadPoint& p : out.reads) {
      for (uint64_t reader : p.readers) {
        auto it = n.reads.find(reader);
        if (it != n.reads.end()) {
          it->second.index = p.index;
          it->second.ready = true;
        }
      }
    }
  }
  observe_commit(n);
  serve_reads(n);
  maybe_compact(n, n.replica->take_snapshot_request());
}

void Simulation::apply_committed(SimNode& n, const engine::RoundResult& round) {
  size_t next_conf = 0;
  for (const raft::Entry& e : round.committed) {
    if (failed_) return;
    if (e.index != n.sm.applied() + 1) {
      fail(Check::kApplyOrder, "n" + std::to_string(n.id) + " applies index " +
                                   std::to_string(e.index) + " after " +
                                   std::to_string(n.sm.applied()));
      return;
    }
    std::optional<Command> cmd;
    bool effect = n.sm.apply(e, &cmd);
    // State machine safety: every node applies the same entry at the same index.
    if (registry_.size() <= e.index) registry_.resize(e.index + 1024);
    auto& slot = registry_[e.index];
    if (!slot) {
      slot = Applied{e.term, n.sm.chain()};
      registry_max_ = std::max(registry_max_, e.index);
      raft::Term bound = 0;
      for (const auto& [id, other] : nodes_) {
        if (other.up) bound = std::max(bound, other.core().term());
      }
      if (e.index % 100 == 0) {
        note("committed through index " + std::to_string(e.index) + " (term " +
             std::to_string(e.term) + ")");
      }
      raft::Index& max_index = max_index_by_term_bound_[bound];
      max_index = std::max(max_index, e.index);
    } else if (slot->chain != n.sm.chain()) {
      fail(Check::kStateMachineSafety,
           "state machine safety: n" + std::to_string(n.id) +
               " applied a different entry at index " + std::to_string(e.index) + " (term " +
               std::to_string(e.term) + " vs " + std::to_string(slot->term) + ")");
      return;
    }
    if (e.type == raft::EntryType::kConfChange) {
      // The replica applied it to the core already; the state machine takes its result.
      if (next_conf >= round.confs.size() || round.confs[next_conf].index != e.index) {
        fail(Check::kStorage, "n" + std::to_string(n.id) + ": no configuration for the change at " +
                                  std::to_string(e.index));
        return;
      }
      n.conf = round.confs[next_conf++].conf;
      n.commit_floor = n.core().log().committed();
      if (n.id == 1 || n.core().role() == raft::Role::kLeader) {
        std::string v;
        for (auto id : n.conf.voters)
          v += std::to_string(id) + " ";
        std::string o;
        for (auto id : n.conf.voters_outgoing)
          o += std::to_string(id) + " ";
        std::string l;
        for (auto id : n.conf.learners)
          l += std::to_string(id) + " ";
        note("n" + std::to_string(n.id) + " applies config at " + std::to_string(e.index) +
             ": voters {" + v + "}" + (o.empty() ? "" : " outgoing {" + o + "}") + " learners {" +
             l + "}");
      }
    }
    if (cmd) {
      auto it = n.proposals.find({cmd->client, cmd->op});
      if (it != n.proposals.end()) {
        check::KvOutput out;
        if (cmd->kind == Command::Kind::kWrite) {
          out = check::KvOutput::write_ok();
        } else {
          out = effect ? check::KvOutput::cas_ok() : check::KvOutput::cas_failed();
        }
        if (effect) acked_.emplace_back(e.index, n.sm.chain());
        reply(n, it->second, false, out);
        n.proposals.erase(it);
      }
    }
  }
}

void Simulation::serve_reads(SimNode& n) {
  for (auto it = n.reads.begin(); it != n.reads.end();) {
    if (it->second.ready && n.sm.applied() >= it->second.index) {
      auto v = n.sm.get(it->second.op.input.key);
      reply(n, it->second.op, false, v ? check::KvOutput::found(*v) : check::KvOutput::not_found());
      it = n.reads.erase(it);
    } else {
      ++it;
    }
  }
}

void Simulation::expire_reads(SimNode& n) {
  for (uint64_t reader : n.replica->expire_reads(n.clock_us)) {
    auto it = n.reads.find(reader);
    if (it == n.reads.end()) continue;
    reply(n, it->second.op, true, {});
    n.reads.erase(it);
  }
}

void Simulation::maybe_compact(SimNode& n, bool requested) {
  raft::Index first = n.storage->view()->first_index();
  raft::Index applied = n.sm.applied();
  raft::Index compact_to = 0;
  if (applied >= first && applied - first + 1 >= snapshot_threshold_) {
    raft::Index keep = snapshot_threshold_ / 4;
    compact_to = applied > keep ? applied - keep : 0;
  } else if (!requested) {
    return;
  } else {
    ++result_.snapshots_requested;
  }
  // A snapshot the leader asked for (a member added since the last one) compacts nothing more.
  bool injected = maybe_inject_disk_failure(n);
  storage::Status st =
      n.storage->snapshot_and_compact(applied, n.conf, n.sm.snapshot(), compact_to);
  (void)disk_result(n, st, injected, "compaction");
}

void Simulation::on_request(SimNode& n, const ClientOp& op) {
  using Kind = check::KvInput::Kind;
  if (op.input.kind == Kind::kRead) {
    if (opt_.mutation == Mutation::kReadWithoutReadIndex &&
        n.core().role() == raft::Role::kLeader) {
      auto v = n.sm.get(op.input.key);
      reply(n, op, false, v ? check::KvOutput::found(*v) : check::KvOutput::not_found());
      return;
    }
    uint64_t reader = n.next_reader++;
    n.replica->read(reader);
    if (!n.replica->start_reads(n.clock_us + kClientTimeoutUs).empty()) {
      reply(n, op, true, {});
      return;
    }
    n.reads[reader] = PendingRead{op, 0, false};
    drive(n);
    return;
  }
  // Any member takes a write: a follower's core forwards the proposal to the leader (as
  // chorusd's does), and the follower answers once it applies the entry. A forwarded proposal
  // that is lost is never answered: the client times out with an unknown outcome.
  Command cmd;
  cmd.kind = op.input.kind == Kind::kWrite ? Command::Kind::kWrite : Command::Kind::kCas;
  cmd.client = op.client;
  cmd.op = op.op;
  cmd.key = op.input.key;
  cmd.value = op.input.value;
  cmd.expected = op.input.expected;
  if (n.replica->propose(cmd.encode()) != raft::Error::kOk) {
    reply(n, op, true, {});
    return;
  }
  n.proposals[{op.client, op.op}] = op;
  drive(n);
}

void Simulation::reply(SimNode& n, const ClientOp& op, bool definite_failure,
                       check::KvOutput output) {
  Event e;
  e.time = now_ + client_latency();
  e.kind = EventKind::kReply;
  e.node = n.id;
  e.reply.client = op.client;
  e.reply.op = op.op;
  e.reply.definite_failure = definite_failure;
  e.reply.output = std::move(output);
  e.reply.hint = n.core().lead();
  e.reply.from = n.id;
  schedule(std::move(e));
}

void Simulation::stop_on_damaged_log(SimNode& n) {
  std::string why = n.storage->read_failure();
  if (!n.storage->damaged() || why.find(n.storage->damaged_segment()) == std::string::npos) {
    fail(Check::kStorage,
         "n" + std::to_string(n.id) + "'s log reads back damaged where nothing damaged it: " + why);
    return;
  }
  ++result_.damage_found_running;
  note("n" + std::to_string(n.id) + " stops: its log reads back damaged (" + why + ")");
  go_down(n, false);
  // After the heal too: its restart finds the damage and the member is replaced.
  if (!faults_active_) schedule_node_event(now_ + 10'000, EventKind::kRestart, n);
}

void Simulation::crash(SimNode& n) {
  note("n" + std::to_string(n.id) + " crashes" +
       (n.storage->has_unsynced() ? " losing unsynced writes" : ""));
  go_down(n, true);
}

bool Simulation::maybe_inject_disk_failure(SimNode& n) {
  if (!faults_active_ || p_disk_failure_ == 0 || !disk_rng_.chance(p_disk_failure_)) return false;
  n.storage->fail_sync_after(disk_rng_.below(3));
  return true;
}

bool Simulation::disk_result(SimNode& n, const storage::Status& st, bool injected,
                             const char* what) {
  bool reached = injected && n.storage->clear_injected_failure();
  if (st.is_ok()) {
    if (reached)
      fail(Check::kStorage, "n" + std::to_string(n.id) + ": " + what + " hid a failed sync");
    return true;
  }
  if (!reached && n.storage->disk_full() && st.code() == storage::Status::Code::kNoSpace) {
    // As chorusd does: a write that does not fit stops the node (its Wal may hold a partial
    // batch), and it starts again through recovery. The page cache keeps what was written.
    ++result_.disk_full_stops;
    note("n" + std::to_string(n.id) + " stops: " + what + " failed (" + st.to_string() + ")");
    go_down(n, false);
    return false;
  }
  if (!reached) {
    fail(Check::kStorage, "n" + std::to_string(n.id) + ": " + what +
                              " failed without an injected fault: " + st.to_string());
    return false;
  }
  note("n" + std::to_string(n.id) + " stops: " + what + " failed (" + st.to_string() + ")");
  // The kernel may have dropped the pages it could not write, or kept them: either way the node
  // must not trust its Wal again, and comes back through recovery.
  go_down(n, disk_rng_.chance(0.5));
  return false;
}

void Simulation::go_down(SimNode& n, bool power_cut) {
  n.up = false;
  n.paused = false;
  n.replica = nullptr;
  n.engine.reset();
  std::string err = n.storage->crash(power_cut, disk_rng_.next());
  if (!err.empty()) {
    fail(Check::kStorage, "wal recovery: n" + std::to_string(n.id) + " " + err);
  } else if (!n.storage->needs_reopen()) {
    hash(n.storage->durable().last_index());
  }
  n.proposals.clear();
  n.reads.clear();
  n.deferred.clear();
  ++n.incarnation;
  if (faults_active_) {
    schedule_node_event(now_ + fault_rng_.range(10'000, 500'000), EventKind::kRestart, n);
  }
}

void Simulation::restart(SimNode& n) {
  if (n.up || n.lost || failed_) return;
  if (n.storage->needs_reopen()) {
    // Recovery itself ran out of space (the node stays down until the disk has room), or
    // refused a damaged log (the node is gone).
    std::string err = n.storage->reopen();
    if (!err.empty()) {
      fail(Check::kStorage, "wal recovery: n" + std::to_string(n.id) + " " + err);
      return;
    }
    if (n.storage->lost()) {
      mark_lost(n);
      return;
    }
    if (n.storage->needs_reopen()) {
      note("n" + std::to_string(n.id) + " cannot recover yet: its disk is full");
      schedule_node_event(now_ + fault_rng_.range(50'000, 500'000), EventKind::kRestart, n);
      return;
    }
  }
  n.up = true;
  start_node(n);
  note("n" + std::to_string(n.id) + " restarts at term " + std::to_string(n.core().term()) +
       ", log " + std::to_string(n.core().log().first_index()) + ".." +
       std::to_string(n.core().log().last_index()) + ", commit " +
       std::to_string(n.core().log().committed()));
  drive(n);
}

void Simulation::resume(SimNode& n) {
  n.paused = false;
  // A real driver reads a monotonic clock: the missed time arrives at once, before any message
  // or request waiting in the socket buffers is looked at.
  uint64_t missed = n.engine->on_clock(n.clock_us);
  note("n" + std::to_string(n.id) + " resumes after missing " + std::to_string(missed) + " ticks");
  expire_reads(n);
  std::vector<Event> waiting;
  waiting.swap(n.deferred);
  for (Event& e : waiting) {
    e.time = now_;
    schedule(std::move(e));
  }
  drive(n);
}

}  // namespace chorus::sim
