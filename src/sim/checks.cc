// Clients with a recorded history, and the safety and liveness checks.
#include <algorithm>
#include <iterator>

#include "check/linearizability.h"
#include "sim/simulation.h"

namespace chorus::sim {

void Simulation::clients_step(bool liveness_phase) {
  // With quiescence, clients fall quiet now and then for long enough that groups quiesce.
  if (quiesce_ && !liveness_phase && now_ >= quiet_until_ && client_rng_.chance(0.01)) {
    quiet_until_ = now_ + client_rng_.range(500'000, 3'000'000);
    note("clients fall quiet for " + std::to_string((quiet_until_ - now_) / 1000) + " ms");
  }
  for (SimClient& c : clients_) {
    if (c.busy && now_ >= c.deadline) {
      // No answer: the outcome is unknown. A write may still take effect at any later time.
      HistoryEntry& h = history_[c.history_index];
      if (h.op.input.kind == check::KvInput::Kind::kRead) h.dropped = true;
      c.busy = false;
      c.leader_guess.erase(group_of(h.op.input.key));
      ++result_.ops_unknown;
    }
    if (c.busy) continue;
    if (!liveness_phase && now_ < quiet_until_) continue;
    if (liveness_phase) {
      if (!c.liveness_done) issue(c, true);
    } else if (client_rng_.chance(p_client_)) {
      issue(c, false);
    }
  }
}

void Simulation::issue(SimClient& c, bool write_only) {
  ++c.op;
  std::string key = "k" + std::to_string(client_rng_.below(keys_));
  raft::GroupId group = group_of(key);
  std::string value = "c" + std::to_string(c.id) + "-" + std::to_string(c.op);
  check::KvInput input;
  uint64_t r = write_only ? 5 : client_rng_.below(10);
  if (r < 4) {
    input = check::KvInput::read(key);
  } else if (r < 8) {
    input = check::KvInput::write(key, value);
  } else {
    auto it = c.last_seen.find(key);
    std::string expected = it != c.last_seen.end() ? it->second : "none";
    input = check::KvInput::cas(key, expected, value);
  }
  HistoryEntry h;
  h.op.client_id = c.id;
  h.op.call_time = now_;
  h.op.input = input;
  history_.push_back(std::move(h));
  c.history_index = history_.size() - 1;
  c.busy = true;
  c.deadline = now_ + kClientTimeoutUs;
  auto guess = c.leader_guess.find(group);
  raft::NodeId target = guess != c.leader_guess.end() ? guess->second : raft::kNoNode;
  // Now and then any member: reads there go through ReadIndex, writes are forwarded.
  if (target == raft::kNoNode ||
      client_rng_.chance(input.kind == check::KvInput::Kind::kRead ? 0.3 : 0.15)) {
    // Any node, replacements of lost members included. After the heal, only the members of
    // the configuration (as clients are pointed at the cluster's members): a member that was
    // removed keeps running here, and a client that kept picking it could wait out the whole
    // recovery bound by chance.
    std::vector<raft::NodeId> pool;
    if (write_only) {
      if (SimNode* l = highest_leader(group)) {
        raft::ConfState cs = l->core(group).status().config;
        pool = cs.voters;
        pool.insert(pool.end(), cs.learners.begin(), cs.learners.end());
      }
    }
    if (pool.empty()) {
      for (const auto& [id, n] : nodes_)
        pool.push_back(id);
    }
    target = pool[client_rng_.below(pool.size())];
  }
  Event e;
  e.time = now_ + client_latency();
  e.kind = EventKind::kRequest;
  e.node = target;
  e.request = ClientOp{c.id, c.op, std::move(input)};
  schedule(std::move(e));
}

void Simulation::on_reply(const Reply& r) {
  if (r.client == 0 || r.client > clients_.size()) return;
  SimClient& c = clients_[r.client - 1];
  if (!c.busy || c.op != r.op) return;  // a late answer to an operation given up on
  hash(r.client);
  hash(r.op);
  hash(r.definite_failure ? 1 : 2);
  hash(r.output.ok ? 1 : 2);
  HistoryEntry& h = history_[c.history_index];
  c.busy = false;
  if (r.definite_failure) {
    // Not leader, no leader, or the proposal was refused: it certainly did not happen.
    h.dropped = true;
    ++result_.ops_failed;
    c.leader_guess[group_of(h.op.input.key)] = r.hint;
    return;
  }
  ++result_.ops_ok;
  h.op.return_time = now_;
  h.op.output = r.output;
  const check::KvInput& in = h.op.input;
  switch (in.kind) {
    case check::KvInput::Kind::kRead:
      if (r.output.ok) c.last_seen[in.key] = r.output.value;
      break;
    case check::KvInput::Kind::kWrite:
      c.last_seen[in.key] = in.value;
      // The node that answered names the leader it follows (it may have forwarded the write).
      c.leader_guess[group_of(in.key)] = r.hint != raft::kNoNode ? r.hint : r.from;
      if (!faults_active_) c.liveness_done = true;
      break;
    case check::KvInput::Kind::kCas:
      if (r.output.ok) c.last_seen[in.key] = in.value;
      // The node that answered names the leader it follows (it may have forwarded the write).
      c.leader_guess[group_of(in.key)] = r.hint != raft::kNoNode ? r.hint : r.from;
      break;
  }
}

// The commit index never decreases within a replica's life, and every commit is locked.
void Simulation::observe_commit(SimNode& n, SimReplica& r) {
  raft::Index c = r.core().log().committed();
  if (c < r.last_commit) {
    fail(Check::kCommitMonotonic, "commit index of " + who(n.id, r.group) + " went back from " +
                                      std::to_string(r.last_commit) + " to " + std::to_string(c));
    return;
  }
  if (c > r.last_commit) check_commit_locked(n, r.group);
  r.last_commit = c;
}

void Simulation::check_invariants() {
  for (const auto& [group, initial] : initial_confs_) {
    check_group(group);
    if (failed_) return;
  }
}

void Simulation::check_group(raft::GroupId group) {
  GroupChecks& gc = checks_[group];
  std::vector<SimNode*> up;
  for (auto& [id, n] : nodes_) {
    if (!n.up) continue;
    up.push_back(&n);
    SimReplica& r = n.group(group);
    bool quiesced_leader = r.core().role() == raft::Role::kLeader && r.core().quiesced();
    if (quiesced_leader && !r.was_quiesced) ++result_.quiescences;
    r.was_quiesced = quiesced_leader;
    // Election safety: no two replicas of a group believe they lead the same term.
    if (r.core().role() == raft::Role::kLeader) {
      auto [it, inserted] = gc.leader_of_term.emplace(r.core().term(), n.id);
      if (!inserted && it->second != n.id) {
        fail(Check::kElectionSafety, "election safety: " + who(it->second, group) + " and " +
                                         who(n.id, group) + " are both leaders of term " +
                                         std::to_string(r.core().term()));
        return;
      }
    }
    observe_commit(n, r);
    if (failed_) return;
  }
  // Leader completeness: the newest leader holds every entry committed before its term began.
  if (SimNode* l = highest_leader(group)) {
    const raft::Raft& core = l->core(group);
    raft::Index must_have = 0;
    for (const auto& [bound, index] : gc.max_index_by_term_bound) {
      if (bound < core.term()) must_have = std::max(must_have, index);
    }
    if (must_have > 0) {
      raft::Term t = 0;
      raft::Error err = core.log().term(must_have, &t);
      if (err == raft::Error::kUnavailable ||
          (err == raft::Error::kOk && t != gc.registry[must_have]->term)) {
        fail(Check::kLeaderCompleteness, "leader completeness: " + who(l->id, group) +
                                             ", leader of term " + std::to_string(core.term()) +
                                             ", lacks committed entry " +
                                             std::to_string(must_have));
        return;
      }
    }
  }
  check_electable_hold_committed(group);
  if (failed_) return;
  if (SimNode* l = highest_leader(group)) check_commit_locked(*l, group);
  if (failed_) return;
  // Log matching: two logs with the same term at an index are identical up to it. Checked at
  // the end of the shorter log and at one random earlier index per pair and step.
  for (size_t a = 0; a < up.size(); ++a) {
    for (size_t b = a + 1; b < up.size(); ++b) {
      const raft::RaftLog& la = up[a]->core(group).log();
      const raft::RaftLog& lb = up[b]->core(group).log();
      raft::Index hi = std::min(la.last_index(), lb.last_index());
      raft::Index lo = std::max(la.first_index(), lb.first_index());
      if (hi < lo) continue;
      raft::Term ta = la.term_or_zero(hi);
      if (ta == 0 || ta != lb.term_or_zero(hi)) continue;
      for (raft::Index j : {hi, lo + check_rng_.below(hi - lo + 1)}) {
        std::vector<raft::Entry> ea;
        std::vector<raft::Entry> eb;
        if (la.slice(j, j + 1, raft::kNoLimit, &ea) != raft::Error::kOk ||
            lb.slice(j, j + 1, raft::kNoLimit, &eb) != raft::Error::kOk || ea.size() != 1 ||
            eb.size() != 1) {
          continue;
        }
        if (!(ea[0] == eb[0])) {
          fail(Check::kLogMatching, "log matching: " + who(up[a]->id, group) + " and " +
                                        who(up[b]->id, group) + " agree on term " +
                                        std::to_string(ta) + " at index " + std::to_string(hi) +
                                        " but differ at index " + std::to_string(j));
          return;
        }
      }
    }
  }
}

// Every committed entry is held by every voter that could win an election now. A voter can win
// when a majority of voters have logs no more up-to-date than its own (§5.4.1). In a correct
// Raft this always holds (the proof of Leader Completeness, §5.4.3); it fails the moment a leader
// commits an entry that a later leader could overwrite (Figure 8), before the overwrite happens.
// Checked with the newest leader's configuration, outside joint consensus.
void Simulation::check_electable_hold_committed(raft::GroupId group) {
  const GroupChecks& gc = checks_[group];
  if (gc.registry_max == 0) return;
  SimNode* l = highest_leader(group);
  if (l == nullptr) return;
  const raft::JointConfig& voters = l->core(group).voters();
  if (voters.joint()) return;
  struct LogEnd {
    raft::NodeId id;
    raft::Term term;
    raft::Index index;
  };
  std::vector<LogEnd> ends;
  for (raft::NodeId id : voters.incoming) {
    const SimNode& n = nodes_.at(id);
    if (n.lost) continue;  // never votes or runs again
    if (n.up) {
      const raft::RaftLog& log = n.core(group).log();
      ends.push_back({id, log.last_term(), log.last_index()});
    } else {
      const raft::LogStorage& d = n.storage->durable(group);
      raft::Term t = 0;
      (void)d.term(d.last_index(), &t);
      ends.push_back({id, t, d.last_index()});
    }
  }
  size_t majority = voters.incoming.size() / 2 + 1;
  raft::Index a = gc.registry_max;
  raft::Term want = gc.registry[a]->term;
  for (const LogEnd& n : ends) {
    size_t below = 0;
    for (const LogEnd& m : ends) {
      if (m.term < n.term || (m.term == n.term && m.index <= n.index)) ++below;
    }
    if (below < majority) continue;
    const SimNode& node = nodes_.at(n.id);
    raft::Term t = 0;
    raft::Error err;
    if (node.up) {
      err = node.core(group).log().term(a, &t);
    } else {
      err = node.storage->durable(group).term(a, &t);
    }
    if (err == raft::Error::kCompacted) continue;
    if (err != raft::Error::kOk || t != want) {
      fail(Check::kCompletenessAtRisk, "leader completeness at risk: " + who(n.id, group) +
                                           " could win an election but lacks committed entry " +
                                           std::to_string(a) + " (term " + std::to_string(want) +
                                           ")");
      return;
    }
  }
}

// When a leader of term T commits index c, a majority of voters hold entry c and an entry of
// term T (§5.4.2: only current-term entries are committed by counting replicas). Those logs end
// in term T or later, so no node lacking c can collect their votes. Checked for commits a leader
// made in its current configuration, at the moment it commits and after every step.
void Simulation::check_commit_locked(SimNode& leader, raft::GroupId group) {
  SimReplica& lr = leader.group(group);
  if (lr.core().role() != raft::Role::kLeader) return;
  const raft::RaftLog& log = lr.core().log();
  raft::Index c = log.committed();
  if (lr.floor_term != lr.core().term()) {
    // Leadership not seen before: what it commits from now on is its own.
    lr.floor_term = lr.core().term();
    lr.commit_floor = c;
    return;
  }
  if (c <= lr.commit_floor) return;
  const raft::JointConfig& voters = lr.core().voters();
  if (voters.joint()) return;
  raft::Term term = lr.core().term();
  raft::Term want = log.term_or_zero(c);
  size_t holding = 0;
  for (raft::NodeId id : voters.incoming) {
    const SimNode& n = nodes_.at(id);
    if (n.lost) {
      // A lost member never votes again: no election can use it against the commit.
      ++holding;
      continue;
    }
    raft::Term t = 0;
    raft::Term last = 0;
    raft::Error err;
    if (n.up) {
      err = n.core(group).log().term(c, &t);
      last = n.core(group).log().last_term();
    } else {
      const raft::LogStorage& d = n.storage->durable(group);
      err = d.term(c, &t);
      (void)d.term(d.last_index(), &last);
    }
    bool has_c = err == raft::Error::kCompacted || (err == raft::Error::kOk && t == want);
    if (has_c && last >= term) ++holding;
  }
  if (holding < voters.incoming.size() / 2 + 1) {
    fail(Check::kCommitLocked, "commit not locked: " + who(leader.id, group) + ", leader of term " +
                                   std::to_string(term) + ", committed index " + std::to_string(c) +
                                   " (term " + std::to_string(want) + ") but only " +
                                   std::to_string(holding) +
                                   " voters hold it in logs ending in its term");
  }
}

std::string Simulation::members_state(raft::GroupId group) const {
  std::string out;
  for (const auto& [id, n] : nodes_) {
    out += " " + who(id, group);
    if (!n.up || n.lost) {
      out += n.lost ? " lost;" : " down;";
      continue;
    }
    const raft::Raft& core = n.core(group);
    raft::Status st = core.status();
    out += std::string(" ") + raft::to_string(core.role()) + " term " +
           std::to_string(core.term()) + " lead n" + std::to_string(core.lead()) + " last " +
           std::to_string(core.log().last_index()) + " commit " +
           std::to_string(core.log().committed()) + " voters " +
           std::to_string(st.config.voters.size()) + (core.quiesced() ? " quiesced" : "") + ";";
  }
  return out;
}

bool Simulation::liveness_reached(std::string* waiting) {
  for (const auto& [group, initial] : initial_confs_) {
    if (highest_leader(group) == nullptr) {
      // What each member believes, to tell a split vote from a member that cannot be elected.
      *waiting = (opt_.groups > 1 ? "group " + std::to_string(group) + ": " : "") +
                 "no leader:" + members_state(group);
      return false;
    }
  }
  if (replacing_ || !to_replace_.empty()) {
    raft::NodeId old = replacing_ ? replacing_->old_id : to_replace_.front();
    *waiting = "the replacement of lost n" + std::to_string(old);
    return false;
  }
  for (const SimClient& c : clients_) {
    if (!c.liveness_done) {
      std::string guesses;
      for (const auto& [group, id] : c.leader_guess)
        guesses += " " + who(id, group);
      *waiting = "client " + std::to_string(c.id) +
                 " has no write acknowledged since the heal (it sends to" + guesses + ";" +
                 members_state(1) + ")";
      return false;
    }
  }
  for (const auto& [group, initial] : initial_confs_) {
    if (!group_live(group, waiting)) return false;
  }
  return true;
}

bool Simulation::group_live(raft::GroupId group, std::string* waiting) {
  SimNode* l = highest_leader(group);
  const raft::Raft& core = l->core(group);
  raft::ConfState cs = core.status().config;
  if (!cs.voters_outgoing.empty()) {
    *waiting = "leader " + who(l->id, group) + " is still in a joint configuration";
    return false;
  }
  raft::Index commit = core.log().committed();
  for (const auto& [index, chain] : checks_[group].acked) {
    if (index > commit) {
      *waiting = "acknowledged index " + std::to_string(index) + " is past leader " +
                 who(l->id, group) + "'s commit " + std::to_string(commit);
      return false;
    }
  }
  std::vector<raft::NodeId> members = cs.voters;
  members.insert(members.end(), cs.learners.begin(), cs.learners.end());
  for (raft::NodeId id : members) {
    const SimNode& n = nodes_.at(id);
    raft::Index applied = n.up ? n.group(group).sm.applied() : 0;
    if (!n.up || applied != commit) {
      *waiting = who(id, group) + (n.up ? " applied " : " is down, applied ") +
                 std::to_string(applied) + " of leader " + who(l->id, group) + "'s commit " +
                 std::to_string(commit);
      raft::Status st = core.status();
      auto pr = st.progress.find(id);
      if (pr != st.progress.end()) {
        *waiting += "; the leader sees it " + std::string(raft::to_string(pr->second.state)) +
                    ", match " + std::to_string(pr->second.match) + ", next " +
                    std::to_string(pr->second.next) + ", log from " +
                    std::to_string(core.log().first_index());
      }
      *waiting += ";" + members_state(group);
      return false;
    }
  }
  return true;
}

check::CheckReport Simulation::check_history(size_t* operations) {
  std::vector<check::KvOperation> ops;
  for (const HistoryEntry& h : history_) {
    if (!h.dropped) ops.push_back(h.op);
  }
  *operations = ops.size();
  check::CheckOptions copt;
  copt.max_steps = opt_.checker_max_steps;
  check::CheckReport report = check::check_linearizable<check::KvModel>(ops, copt);
  result_.linearizability = check::to_string(report.result);
  return report;
}

void Simulation::final_checks() {
  for (const auto& [group, initial] : initial_confs_) {
    final_group_checks(group);
    if (failed_) return;
  }
  size_t checked = 0;
  check::CheckReport report = check_history(&checked);
  if (report.result == check::CheckResult::kIllegal) {
    fail(Check::kLinearizability, "linearizability: " + report.explanation);
  } else if (report.result != check::CheckResult::kOk) {
    // A history the checker could not decide proves nothing: the seed fails, and the workload
    // must be bounded so that it can decide.
    fail(Check::kLinearizabilityUnknown,
         "linearizability: no verdict within " + std::to_string(opt_.checker_max_steps) +
             " search steps (" + std::to_string(checked) + " operations)");
  }
}

void Simulation::final_group_checks(raft::GroupId group) {
  SimNode* l = highest_leader(group);
  if (l == nullptr) {
    fail(Check::kLiveness,
         "no leader at the end" + (opt_.groups > 1 ? " of group " + std::to_string(group) : ""));
    return;
  }
  // Replicas that caught up are identical.
  const SimReplica& lr = l->group(group);
  raft::ConfState cs = lr.core().status().config;
  std::vector<raft::NodeId> members = cs.voters;
  members.insert(members.end(), cs.learners.begin(), cs.learners.end());
  for (raft::NodeId id : members) {
    const SimNode& n = nodes_.at(id);
    if (!n.up) {
      fail(Check::kLiveness, who(id, group) + " is down at the end");
      return;
    }
    const SimReplica& r = n.group(group);
    if (r.sm.chain() != lr.sm.chain() || r.sm.data() != lr.sm.data()) {
      fail(Check::kReplicasDiffer,
           "replicas differ at the end: " + who(id, group) + " vs leader " + who(l->id, group));
      return;
    }
  }
  // No acknowledged write lost.
  const GroupChecks& gc = checks_[group];
  for (const auto& [index, chain] : gc.acked) {
    if (index >= gc.registry.size() || !gc.registry[index] || gc.registry[index]->chain != chain) {
      fail(Check::kLostWrite, "acknowledged write at index " + std::to_string(index) +
                                  (opt_.groups > 1 ? " of group " + std::to_string(group) : "") +
                                  " was lost");
      return;
    }
  }
}

}  // namespace chorus::sim
