// The simulated member: chorusd's engine and its replica driver (engine::Replica) around the
// cores of every group it hosts, on the real write-ahead log over a simulated disk, with fsync
// taking simulated time and crashes losing what was not synced. What is simulated here is only what
// a host supplies: the disk, the network, the clock and the state machine.
#include <algorithm>

#include "sim/simulation.h"

namespace chorus::sim {

void Simulation::start_node(SimNode& n) {
  // Exactly what a restarting node has: the Wal's recovered logs and nothing else.
  engine::EngineOptions eo;
  eo.id = n.id;
  eo.incarnation = hash_mix(hash_mix(opt_.seed, n.id), n.incarnation) | 1;
  if (quiesce_) {
    eo.heartbeat_us = kHeartbeatTicks * kTickUs;
    eo.dead_after_us = kElectionTicks * kTickUs;
  }
  n.engine = std::make_unique<engine::Engine>(eo);
  n.engine->set_peers(member_ids(), n.clock_us);
  n.groups.clear();
  for (const auto& [group, initial] : initial_confs_) {
    SimReplica& r = n.groups[group];
    r.group = group;
    const raft::LogStorage* recovered = n.storage->view(group);
    raft::Snapshot snap;
    (void)recovered->snapshot(&snap);
    if (!snap.empty() && !r.sm.restore(snap.data))
      fail(Check::kStorage, who(n.id, group) + ": corrupt snapshot");
    r.conf = recovered->conf_state();
    raft::Config c;
    c.id = n.id;
    c.group = group;
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
    c.quiesce = quiesce_;
    c.applied = snap.metadata.index;
    c.seed = hash_mix(hash_mix(opt_.seed, n.id), n.incarnation);
    if (group != 1) c.seed = hash_mix(c.seed, group);
    c.unsafe.commit_previous_term_entries = opt_.mutation == Mutation::kCommitPreviousTerm;
    c.unsafe.forget_vote = opt_.mutation == Mutation::kVoteNotPersisted;
    c.unsafe.ack_before_durable = opt_.mutation == Mutation::kAckBeforeDurable;
    c.unsafe.quiesced_clock_stops = opt_.mutation == Mutation::kQuiescedClockStops;
    engine::ReplicaOptions ro;
    ro.raft = c;
    ro.tick_us = kTickUs;
    ro.first_read_context = hash_mix(c.seed, 0x5eed) | 1;
    r.replica = &n.engine->add(ro, n.clock_us);
    r.last_commit = r.core().log().committed();
    r.last_role = raft::Role::kFollower;
  }
}

void Simulation::drive(SimNode& n) {
  if (!failed_ && n.up) {
    for (const auto& [group, r] : n.groups) {
      if (r.core().storage_failed()) {
        stop_on_damaged_log(n);
        return;
      }
    }
  }
  while (!failed_ && n.up && !n.paused && n.engine->has_round()) {
    std::vector<raft::GroupId> damaged;
    const std::vector<engine::GroupRound>& rounds = n.engine->begin_round(&damaged);
    if (!damaged.empty()) {
      stop_on_damaged_log(n);
      return;
    }
    // One round of every group with work: one batch, one write, one fdatasync.
    bool vote_changed = false;
    for (const engine::GroupRound& g : rounds) {
      if (!start_group_round(n, n.group(g.replica->group()), *g.round, &vote_changed)) return;
    }
    if (n.engine->must_write()) {
      // Failed syncs are injected into the writes that sync (a commit-only write does not).
      bool injected = n.engine->must_sync() && maybe_inject_disk_failure(n);
      storage::WalBatch batch;
      n.engine->append_to(&batch);
      std::vector<SimStorage::GroupWrite> writes;
      for (const engine::GroupRound& g : rounds) {
        const engine::Round& rd = *g.round;
        if (!rd.write) continue;
        writes.push_back({g.replica->group(), rd.snapshot, rd.entries,
                          rd.hard_state ? &*rd.hard_state : nullptr});
      }
      if (!disk_result(n, n.storage->write(batch, writes), injected, "write")) return;
    }
    if (!n.engine->must_sync()) {
      finish_ready(n);
      continue;
    }
    uint64_t fsync_us = 50 + fault_rng_.below(fsync_us_max_);
    if (faults_active_ && p_stall_ > 0 && fault_rng_.chance(p_stall_)) {
      // The disk stalls for seconds. The node keeps stepping messages meanwhile, and its
      // replicas catch up on the ticks they missed before they step anything
      // (Replica::on_clock).
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

bool Simulation::start_group_round(SimNode& n, SimReplica& r, engine::Round& round,
                                   bool* vote_changed) {
  if (round.soft_state) {
    const raft::SoftState& ss = *round.soft_state;
    if (ss.role == raft::Role::kLeader && r.last_role != raft::Role::kLeader) {
      ++result_.elections;
      if (quiesced_leader_down_.erase(r.group) != 0) {
        ++result_.reelected_after_quiesced_leader_down;
        note(who(n.id, r.group) + " is elected after the quiesced leader's member went down");
      }
      if (r.floor_term != r.core().term()) {
        r.floor_term = r.core().term();
        r.commit_floor = r.core().log().committed();
      }
      note(who(n.id, r.group) + " becomes leader in term " + std::to_string(r.core().term()));
    } else if (ss.role != raft::Role::kLeader && r.last_role == raft::Role::kLeader) {
      note(who(n.id, r.group) + " steps down in term " + std::to_string(r.core().term()));
    }
    r.last_role = ss.role;
  }
  if (round.hard_state) {
    raft::HardState before = n.storage->view(r.group)->hard_state();
    *vote_changed = *vote_changed || round.hard_state->vote != before.vote ||
                    round.hard_state->term != before.term;
  }
  send_messages(n, round.early_messages);
  if (round.snapshot != nullptr) {
    // As chorusd: the state machine is replaced before the log records the snapshot.
    if (!r.sm.restore(round.snapshot->data)) {
      fail(Check::kStorage, who(n.id, r.group) + ": received a corrupt snapshot");
      return false;
    }
    r.conf = round.snapshot->metadata.conf_state;
    ++result_.snapshots_installed;
    note(who(n.id, r.group) + " installs snapshot at index " +
         std::to_string(round.snapshot->metadata.index));
  }
  return true;
}

void Simulation::finish_ready(SimNode& n) {
  std::vector<std::pair<raft::GroupId, engine::RoundResult>> results;
  n.engine->finish_round(&results);
  for (auto& [group, out] : results) {
    SimReplica& r = n.group(group);
    if (!out.error.empty()) {
      fail(Check::kStorage, who(n.id, group) + ": " + out.error);
      return;
    }
    send_messages(n, out.messages);
    apply_committed(n, r, out);
    for (const engine::ReadPoint& p : out.reads) {
      for (uint64_t reader : p.readers) {
        auto it = r.reads.find(reader);
        if (it != r.reads.end()) {
          it->second.index = p.index;
          it->second.ready = true;
        }
      }
    }
  }
  for (auto& [group, r] : n.groups) {
    observe_commit(n, r);
    serve_reads(n, r);
    maybe_compact(n, r, r.replica->take_snapshot_request());
    if (failed_ || !n.up) return;
  }
}

void Simulation::apply_committed(SimNode& n, SimReplica& r, const engine::RoundResult& round) {
  GroupChecks& gc = checks_[r.group];
  size_t next_conf = 0;
  for (const raft::Entry& e : round.committed) {
    if (failed_) return;
    if (e.index != r.sm.applied() + 1) {
      fail(Check::kApplyOrder, who(n.id, r.group) + " applies index " + std::to_string(e.index) +
                                   " after " + std::to_string(r.sm.applied()));
      return;
    }
    std::optional<Command> cmd;
    bool effect = r.sm.apply(e, &cmd);
    // State machine safety: every replica applies the same entry at the same index.
    if (gc.registry.size() <= e.index) gc.registry.resize(e.index + 1024);
    auto& slot = gc.registry[e.index];
    const bool first = !slot;
    if (first) {
      slot = GroupChecks::Applied{e.term, r.sm.chain()};
      gc.registry_max = std::max(gc.registry_max, e.index);
      raft::Term bound = 0;
      for (const auto& [id, other] : nodes_) {
        if (other.up) bound = std::max(bound, other.core(r.group).term());
      }
      if (e.index % 100 == 0) {
        note(std::string("committed ") +
             (opt_.groups > 1 ? "in g" + std::to_string(r.group) + " " : "") + "through index " +
             std::to_string(e.index) + " (term " + std::to_string(e.term) + ")");
      }
      raft::Index& max_index = gc.max_index_by_term_bound[bound];
      max_index = std::max(max_index, e.index);
    } else if (slot->chain != r.sm.chain()) {
      fail(Check::kStateMachineSafety,
           "state machine safety: " + who(n.id, r.group) + " applied a different entry at index " +
               std::to_string(e.index) + " (term " + std::to_string(e.term) + " vs " +
               std::to_string(slot->term) + ")");
      return;
    }
    if (e.type == raft::EntryType::kConfChange) {
      // The replica applied it to the core already; the state machine takes its result.
      if (next_conf >= round.confs.size() || round.confs[next_conf].index != e.index) {
        fail(Check::kStorage, who(n.id, r.group) + ": no configuration for the change at " +
                                  std::to_string(e.index));
        return;
      }
      r.conf = round.confs[next_conf++].conf;
      r.commit_floor = r.core().log().committed();
      if (first) {
        ++result_.conf_changes;
        const std::vector<raft::NodeId>& start = initial_confs_.at(r.group).voters;
        if (std::any_of(r.conf.voters.begin(), r.conf.voters.end(), [&](raft::NodeId id) {
              return std::find(start.begin(), start.end(), id) == start.end();
            })) {
          ++result_.replicas_moved;
        }
      }
      if (n.id == 1 || r.core().role() == raft::Role::kLeader) {
        std::string v;
        for (auto id : r.conf.voters)
          v += std::to_string(id) + " ";
        std::string o;
        for (auto id : r.conf.voters_outgoing)
          o += std::to_string(id) + " ";
        std::string l;
        for (auto id : r.conf.learners)
          l += std::to_string(id) + " ";
        note(who(n.id, r.group) + " applies config at " + std::to_string(e.index) + ": voters {" +
             v + "}" + (o.empty() ? "" : " outgoing {" + o + "}") + " learners {" + l + "}");
      }
    }
    if (cmd) {
      auto it = r.proposals.find({cmd->client, cmd->op});
      if (it != r.proposals.end()) {
        check::KvOutput out;
        if (cmd->kind == Command::Kind::kWrite) {
          out = check::KvOutput::write_ok();
        } else {
          out = effect ? check::KvOutput::cas_ok() : check::KvOutput::cas_failed();
        }
        if (effect) gc.acked.emplace_back(e.index, r.sm.chain());
        reply(n, r.group, it->second, false, out);
        r.proposals.erase(it);
      }
    }
  }
}

void Simulation::serve_reads(SimNode& n, SimReplica& r) {
  for (auto it = r.reads.begin(); it != r.reads.end();) {
    if (it->second.ready && r.sm.applied() >= it->second.index) {
      auto v = r.sm.get(it->second.op.input.key);
      reply(n, r.group, it->second.op, false,
            v ? check::KvOutput::found(*v) : check::KvOutput::not_found());
      it = r.reads.erase(it);
    } else {
      ++it;
    }
  }
}

void Simulation::expire_reads(SimNode& n) {
  for (auto& [group, r] : n.groups) {
    for (uint64_t reader : r.replica->expire_reads(n.clock_us)) {
      auto it = r.reads.find(reader);
      if (it == r.reads.end()) continue;
      reply(n, group, it->second.op, true, {});
      r.reads.erase(it);
    }
  }
}

void Simulation::maybe_compact(SimNode& n, SimReplica& r, bool requested) {
  raft::Index first = n.storage->view(r.group)->first_index();
  raft::Index applied = r.sm.applied();
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
      n.storage->snapshot_and_compact(r.group, applied, r.conf, r.sm.snapshot(), compact_to);
  (void)disk_result(n, st, injected, "compaction");
}

void Simulation::on_request(SimNode& n, const ClientOp& op) {
  using Kind = check::KvInput::Kind;
  raft::GroupId group = group_of(op.input.key);
  SimReplica& r = n.group(group);
  if (op.input.kind == Kind::kRead) {
    if (opt_.mutation == Mutation::kReadWithoutReadIndex &&
        r.core().role() == raft::Role::kLeader) {
      auto v = r.sm.get(op.input.key);
      reply(n, group, op, false, v ? check::KvOutput::found(*v) : check::KvOutput::not_found());
      return;
    }
    uint64_t reader = n.next_reader++;
    r.replica->read(reader);
    if (!r.replica->start_reads(n.clock_us + kClientTimeoutUs).empty()) {
      reply(n, group, op, true, {});
      return;
    }
    r.reads[reader] = PendingRead{op, 0, false};
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
  if (r.replica->propose(cmd.encode()) != raft::Error::kOk) {
    reply(n, group, op, true, {});
    return;
  }
  r.proposals[{op.client, op.op}] = op;
  drive(n);
}

void Simulation::reply(SimNode& n, raft::GroupId group, const ClientOp& op, bool definite_failure,
                       check::KvOutput output) {
  Event e;
  e.time = now_ + client_latency();
  e.kind = EventKind::kReply;
  e.node = n.id;
  e.reply.client = op.client;
  e.reply.op = op.op;
  e.reply.definite_failure = definite_failure;
  e.reply.output = std::move(output);
  e.reply.hint = n.core(group).lead();
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
  for (const auto& [group, r] : n.groups) {
    if (r.core().role() == raft::Role::kLeader && r.core().quiesced()) {
      quiesced_leader_down_.insert(group);
      note(who(n.id, group) + ", a quiesced leader, goes down");
    }
  }
  n.up = false;
  n.paused = false;
  n.groups.clear();
  n.engine.reset();
  std::string err = n.storage->crash(power_cut, disk_rng_.next());
  if (!err.empty()) {
    fail(Check::kStorage, "wal recovery: n" + std::to_string(n.id) + " " + err);
  } else if (!n.storage->needs_reopen()) {
    for (const auto& [group, initial] : initial_confs_)
      hash(n.storage->durable(group).last_index());
  }
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
  for (const auto& [group, r] : n.groups) {
    note(who(n.id, group) + " restarts at term " + std::to_string(r.core().term()) + ", log " +
         std::to_string(r.core().log().first_index()) + ".." +
         std::to_string(r.core().log().last_index()) + ", commit " +
         std::to_string(r.core().log().committed()));
  }
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
