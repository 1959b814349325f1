// The simulated node driver: the same contract a real driver follows (persist, sync, send,
// apply, advance), with fsync taking simulated time and crashes losing what was not synced.
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
  n.raft = std::make_unique<raft::Raft>(c);
  n.last_commit = n.raft->log().committed();
  n.last_role = raft::Role::kFollower;
  n.last_term = n.raft->term();
  n.sync_in_flight = false;
}

void Simulation::drive(SimNode& n) {
  if (!failed_ && n.up && n.raft->storage_failed()) {
    stop_on_damaged_log(n);
    return;
  }
  while (!failed_ && n.up && !n.paused && !n.sync_in_flight && n.raft->has_ready()) {
    raft::Ready& rd = n.raft->ready();
    if (n.raft->storage_failed()) {
      stop_on_damaged_log(n);
      return;
    }
    if (rd.soft_state) {
      const raft::SoftState& ss = *rd.soft_state;
      if (ss.role == raft::Role::kLeader && n.last_role != raft::Role::kLeader) {
        ++result_.elections;
        n.commit_floor = n.raft->log().committed();
        note("n" + std::to_string(n.id) + " becomes leader in term " +
             std::to_string(n.raft->term()));
      } else if (ss.role != raft::Role::kLeader && n.last_role == raft::Role::kLeader) {
        note("n" + std::to_string(n.id) + " steps down in term " + std::to_string(n.raft->term()));
      }
      n.last_role = ss.role;
    }
    bool vote_changed = false;
    raft::HardState hs;
    if (rd.hard_state) {
      hs = *rd.hard_state;
      raft::HardState before = n.storage->view()->hard_state();
      vote_changed = hs.vote != before.vote || hs.term != before.term;
      if (opt_.mutation == Mutation::kVoteNotPersisted) hs.vote = raft::kNoNode;
    }
    // As chorusd's driver: a leader's messages leave before its write (raft.h, messages_first);
    // the broken variant sends everyone's first, acknowledgements and votes included.
    n.messages_sent = false;
    if (rd.messages_first || opt_.mutation == Mutation::kAckBeforeDurable) {
      send_messages(n, rd.messages);
      n.messages_sent = true;
    }
    if (rd.must_write()) {
      // Failed syncs are injected into the writes that sync (a commit-only write does not).
      bool injected = rd.must_sync() && maybe_inject_disk_failure(n);
      storage::Status st = n.storage->write(rd.snapshot ? &*rd.snapshot : nullptr, rd.entries,
                                            rd.hard_state ? &hs : nullptr);
      if (!disk_result(n, st, injected, "write")) return;
    }
    if (!rd.must_sync()) {
      finish_ready(n);
      continue;
    }
    n.sync_in_flight = true;
    uint64_t fsync_us = 50 + fault_rng_.below(fsync_us_max_);
    if (faults_active_ && p_stall_ > 0 && fault_rng_.chance(p_stall_)) {
      // The disk stalls for seconds. The node keeps stepping messages and ticks meanwhile, so
      // whatever it decides is judged by its current clock (what chorusd's driver achieves by
      // catching up on ticks before stepping what queued during a stall; that ordering itself
      // is tested in node_test).
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

void Simulation::finish_ready(SimNode& n) {
  n.sync_in_flight = false;
  // The Ready stays valid until advance(): the core does not touch it in between.
  raft::Ready& rd = n.raft->ready_for_driver();
  if (!n.messages_sent) send_messages(n, rd.messages);
  if (rd.snapshot) {
    if (!n.sm.restore(rd.snapshot->data)) {
      fail(Check::kStorage, "node " + std::to_string(n.id) + ": received a corrupt snapshot");
      return;
    }
    n.conf = rd.snapshot->metadata.conf_state;
    ++result_.snapshots_installed;
    note("n" + std::to_string(n.id) + " installs snapshot at index " +
         std::to_string(rd.snapshot->metadata.index));
  }
  apply_committed(n, rd.committed_entries);
  for (const raft::ReadState& rs : rd.read_states) {
    auto it = n.reads.find(rs.context);
    if (it != n.reads.end()) {
      it->second.index = rs.index;
      it->second.ready = true;
    }
  }
  n.raft->advance();
  observe_commit(n);
  serve_reads(n);
  maybe_compact(n, n.raft->take_snapshot_request());
}

void Simulation::apply_committed(SimNode& n, const std::vector<raft::Entry>& entries) {
  for (const raft::Entry& e : entries) {
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
        if (other.up) bound = std::max(bound, other.raft->term());
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
      auto cc = raft::ConfChange::decode(e.data);
      if (!cc) {
        fail(Check::kStorage,
             "undecodable configuration change at index " + std::to_string(e.index));
        return;
      }
      n.conf = n.raft->apply_conf_change(*cc);
      n.commit_floor = n.raft->log().committed();
      if (n.id == 1 || n.raft->role() == raft::Role::kLeader) {
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
    if (opt_.mutation == Mutation::kReadWithoutReadIndex && n.raft->role() == raft::Role::kLeader) {
      auto v = n.sm.get(op.input.key);
      reply(n, op, false, v ? check::KvOutput::found(*v) : check::KvOutput::not_found());
      return;
    }
    uint64_t ctx = n.next_ctx++;
    if (n.raft->read_index(ctx) != raft::Error::kOk) {
      reply(n, op, true, {});
      return;
    }
    n.reads[ctx] = PendingRead{op, 0, false};
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
  if (n.raft->propose(cmd.encode()) != raft::Error::kOk) {
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
  e.reply.hint = n.raft->lead();
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
  n.raft.reset();
  std::string err = n.storage->crash(power_cut, disk_rng_.next());
  if (!err.empty()) {
    fail(Check::kStorage, "wal recovery: n" + std::to_string(n.id) + " " + err);
  } else if (!n.storage->needs_reopen()) {
    hash(n.storage->durable().last_index());
  }
  n.proposals.clear();
  n.reads.clear();
  n.deferred.clear();
  n.sync_in_flight = false;
  n.tick_debt = 0;
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
  note("n" + std::to_string(n.id) + " restarts at term " + std::to_string(n.raft->term()) +
       ", log " + std::to_string(n.raft->log().first_index()) + ".." +
       std::to_string(n.raft->log().last_index()) + ", commit " +
       std::to_string(n.raft->log().committed()));
  drive(n);
}

void Simulation::resume(SimNode& n) {
  n.paused = false;
  note("n" + std::to_string(n.id) + " resumes after missing " + std::to_string(n.tick_debt) +
       " ticks");
  // A real driver reads a monotonic clock: the missed time arrives at once, before any message
  // or request waiting in the socket buffers is looked at.
  for (; n.tick_debt > 0; --n.tick_debt)
    n.raft->tick();
  std::vector<Event> waiting;
  waiting.swap(n.deferred);
  for (Event& e : waiting) {
    e.time = now_;
    schedule(std::move(e));
  }
  drive(n);
}

}  // namespace chorus::sim
