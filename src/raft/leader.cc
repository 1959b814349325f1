// The leader: log replication (§5.3), commitment (§5.4.2, Figure 8), flow control, ReadIndex
// and lease reads (dissertation §6.4), and leadership transfer (dissertation §3.10).
#include <algorithm>

#include "raft/raft.h"

namespace chorus::raft {

Error Raft::step_leader(Message& m) {
  switch (m.type) {
    case MessageType::kBeat:
      bcast_heartbeat();
      return Error::kOk;
    case MessageType::kCheckQuorum:
      if (!check_quorum_active()) become_follower(term_, kNoNode);
      return Error::kOk;
    case MessageType::kPropose: {
      if (m.entries.empty()) return Error::kOk;
      if (tracker_.progress.count(id_) == 0 || leaving_config()) return Error::kNotLeader;
      if (lead_transferee_ != kNoNode) return Error::kTransferInProgress;
      for (const Entry& e : m.entries) {
        if (e.data.size() > config_.max_entry_bytes) return Error::kEntryTooLarge;
        if (e.type == EntryType::kConfChange) {
          Error err = check_conf_change_proposal(e);
          if (err != Error::kOk) return err;
        }
      }
      Error err = append_proposals(m.entries);
      if (err != Error::kOk) return err;
      for (const Entry& e : m.entries) {
        if (e.type == EntryType::kConfChange) note_conf_change(e);
      }
      return Error::kOk;
    }
    case MessageType::kReadIndex:
      leader_read(m.from == kNoNode ? id_ : m.from, m.context);
      return Error::kOk;
    case MessageType::kTransferLeader: {
      NodeId transferee = m.context;
      auto it = tracker_.progress.find(transferee);
      if (it == tracker_.progress.end() || it->second.is_learner) return Error::kInvalidConfChange;
      if (lead_transferee_ != kNoNode) {
        if (lead_transferee_ == transferee) return Error::kOk;
        abort_leader_transfer();
      }
      if (transferee == id_) return Error::kOk;
      // The transfer must finish within one election timeout, else it is abandoned.
      election_elapsed_ = 0;
      lead_transferee_ = transferee;
      if (it->second.match == log_.last_index()) {
        send_timeout_now(transferee);
      } else {
        send_append(transferee);
      }
      return Error::kOk;
    }
    default:
      break;
  }

  auto it = tracker_.progress.find(m.from);
  if (it == tracker_.progress.end()) return Error::kStepUnknownPeer;
  Progress& pr = it->second;
  switch (m.type) {
    case MessageType::kAppResp:
      handle_append_response(m, pr);
      break;
    case MessageType::kHeartbeatResp:
      handle_heartbeat_response(m, pr);
      break;
    case MessageType::kSnapStatus:
      if (pr.state != ProgressState::kSnapshot) break;
      if (m.reject) pr.pending_snapshot = 0;
      pr.become_probe();
      // Wait for the next heartbeat response before probing again.
      pr.msg_app_flow_paused = true;
      break;
    case MessageType::kUnreachable:
      if (pr.state == ProgressState::kReplicate) pr.become_probe();
      break;
    default:
      break;
  }
  return Error::kOk;
}

Error Raft::append_proposals(std::vector<Entry>& entries) {
  uint64_t bytes = 0;
  for (const Entry& e : entries)
    bytes += e.data.size();
  // Bound the bytes proposed but not yet committed; always admit one proposal when nothing is
  // pending so that a single large entry can make progress.
  if (uncommitted_bytes_ > 0 && bytes > 0 &&
      uncommitted_bytes_ + bytes > config_.max_uncommitted_bytes) {
    return Error::kUncommittedLimit;
  }
  Index li = log_.last_index();
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i].term = term_;
    entries[i].index = li + 1 + i;
  }
  log_.append(entries);
  uncommitted_bytes_ += bytes;
  needs_bcast_append_ = true;
  return Error::kOk;
}

bool Raft::maybe_commit() {
  Index mci = tracker_.committed();
  bool unsafe_commit = false;
#ifdef CHORUS_RAFT_MUTATIONS
  unsafe_commit = config_.unsafe.commit_previous_term_entries;
#endif
  if (unsafe_commit) {
    if (mci > log_.committed() && mci <= log_.last_index()) {
      log_.commit_to(mci);
    } else {
      return false;
    }
  } else if (!log_.maybe_commit(mci, term_)) {
    // §5.4.2: only entries of the current term are committed by counting replicas.
    return false;
  }
  if (!reads_before_commit_.empty() && committed_entry_in_current_term()) {
    auto waiting = std::move(reads_before_commit_);
    reads_before_commit_.clear();
    for (const auto& [from, context] : waiting)
      leader_read(from, context);
  }
  return true;
}

bool Raft::committed_entry_in_current_term() const {
  return log_.term_or_zero(log_.committed()) == term_;
}

// True while a configuration change that removes or demotes this leader is appended but not
// applied; it steps down once it applies it. Proposals appended after that change would leave
// its log longer than every remaining voter's, and voters that have not yet learned that the
// change committed may still need this node's vote (a 2-voter or joint configuration), which it
// would refuse them forever: the group could never elect a leader again.
bool Raft::leaving_config() const {
  if (self_removal_index_ > log_.applied()) return true;
  // Also while joint with only the outgoing side holding us: the leave may be among entries
  // inherited at election, whose effect on us the scan in become_leader() could not foresee.
  const JointConfig& voters = tracker_.config.voters;
  return voters.joint() && pending_conf_index_ > log_.applied() &&
         std::find(voters.incoming.begin(), voters.incoming.end(), id_) == voters.incoming.end();
}

void Raft::note_conf_change(const Entry& e) {
  pending_conf_index_ = e.index;
  auto cc = ConfChange::decode(e.data);
  if (!cc) return;
  bool removes_self = false;
  if (cc->leave_joint()) {
    const auto& incoming = tracker_.config.voters.incoming;
    removes_self = std::find(incoming.begin(), incoming.end(), id_) == incoming.end();
  }
  for (const ConfChangeSingle& c : cc->changes) {
    if (c.node == id_ && c.type != ConfChangeType::kAddNode) removes_self = true;
  }
  if (removes_self) self_removal_index_ = e.index;
}

void Raft::bcast_append() {
  needs_bcast_append_ = false;
  for (auto& [id, pr] : tracker_.progress) {
    if (id != id_) send_append(id);
  }
}

void Raft::send_append(NodeId to) {
  maybe_send_append(to, true);
}

bool Raft::maybe_send_append(NodeId to, bool send_if_empty) {
  Progress& pr = tracker_.progress.at(to);
  if (pr.is_paused()) return false;
  // Nothing new for this follower: the common case when filling the window after a response.
  if (!send_if_empty && pr.next > log_.last_index()) return false;
  Message m;
  m.to = to;
  if (!entry_buffers_.empty()) {
    m.entries = std::move(entry_buffers_.back());
    entry_buffers_.pop_back();
  }
  Term prev_term = 0;
  Error term_err = log_.term(pr.next - 1, &prev_term);
  Error ents_err = Error::kOk;
  if (term_err == Error::kOk) {
    ents_err = log_.entries_from(pr.next, config_.max_bytes_per_message, &m.entries);
  }
  if (check_storage(ents_err)) {
    // Not a compacted log: entries it holds read back damaged. A snapshot would hide that.
    recycle(std::move(m));
    return false;
  }
  if (term_err == Error::kOk && ents_err == Error::kOk) {
    if (m.entries.empty() && !send_if_empty) {
      recycle(std::move(m));
      return false;
    }
    m.type = MessageType::kApp;
    m.index = pr.next - 1;
    m.log_term = prev_term;
    m.commit = log_.committed();
    if (!m.entries.empty()) {
      uint64_t bytes = 0;
      for (const Entry& e : m.entries)
        bytes += e.size_bytes();
      pr.sent_entries(m.entries.size(), bytes, m.entries.back().index);
    }
    send(std::move(m));
    return true;
  }
  // The entries the follower needs are compacted: send a snapshot (§7).
  recycle(std::move(m));
  m.entries.clear();
  if (!pr.recent_active) return false;
  Snapshot snap;
  if (log_.snapshot(&snap) != Error::kOk || snap.empty()) return false;
  if (!snap.metadata.conf_state.includes(to)) {
    // The latest snapshot predates this member's addition, and the member would refuse it
    // (restore). The driver is asked for a newer one, which holds the applied configuration
    // and so the member; until then the member stays in probe and this is tried again.
    snapshot_requested_ = true;
    return false;
  }
  pr.become_snapshot(snap.metadata.index);
  m.type = MessageType::kSnap;
  m.snapshot = std::make_shared<const Snapshot>(std::move(snap));
  send(std::move(m));
  return true;
}

void Raft::handle_append_response(const Message& m, Progress& pr) {
  pr.recent_active = true;
  if (m.reject) {
    // Fast backtracking: skip every entry of a term the follower cannot match.
    Index next_probe = m.reject_hint;
    if (m.log_term > 0) next_probe = log_.find_conflict_by_term(m.reject_hint, m.log_term).first;
    if (pr.maybe_decr_to(m.index, next_probe)) {
      if (pr.state == ProgressState::kReplicate) pr.become_probe();
      send_append(m.from);
    }
    return;
  }
  if (m.index > log_.last_index()) return;  // cannot acknowledge what we never sent
  bool was_paused = pr.is_paused();
  // An acknowledgement equal to match still proves a probing follower caught up: move it to
  // replicate so the window opens again.
  if (!pr.maybe_update(m.index) && !(pr.state == ProgressState::kProbe && pr.match == m.index)) {
    return;
  }
  switch (pr.state) {
    case ProgressState::kProbe:
      pr.become_replicate();
      break;
    case ProgressState::kSnapshot:
      if (pr.match + 1 >= log_.first_index()) {
        pr.become_probe();
        pr.become_replicate();
      }
      break;
    case ProgressState::kReplicate:
      pr.inflights.free_le(m.index);
      break;
  }
  if (maybe_commit()) {
    needs_bcast_append_ = true;
  } else if (was_paused) {
    send_append(m.from);
  }
  // The window may have opened for several messages (pipelining); fill it.
  while (maybe_send_append(m.from, false)) {
  }
  if (m.from == lead_transferee_ && pr.match == log_.last_index()) send_timeout_now(m.from);
}

void Raft::handle_heartbeat_response(const Message& m, Progress& pr) {
  // Clock samples serve the lease alone: without lease reads none is kept (a leader of each of
  // thousands of groups would otherwise hold a history per follower for nothing).
  if (config_.read_only == ReadOnlyOption::kLeaseBased && m.index != 0 && m.commit != 0 &&
      m.reject_hint != 0)
    note_peer_clock(m.from, m.index - 1, m.commit - 1, m.reject_hint);
  pr.recent_active = true;
  pr.msg_app_flow_paused = false;
  if (pr.state == ProgressState::kReplicate && pr.inflights.full()) pr.inflights.free_first_one();
  if (pr.match < log_.last_index() || pr.state == ProgressState::kProbe) send_append(m.from);
  if (pr.is_learner) return;
  uint64_t& acked = acked_round_[m.from];
  if (m.context > acked && m.context <= read_round_) {
    acked = m.context;
    advance_read_rounds();
  }
}

void Raft::bcast_heartbeat() {
  needs_read_round_ = false;
  ++read_round_;
  round_sent_tick_.emplace_back(read_round_, ticks_);
  constexpr size_t kMaxTrackedRounds = 4096;
  if (round_sent_tick_.size() > kMaxTrackedRounds) round_sent_tick_.pop_front();
  for (auto& [id, pr] : tracker_.progress) {
    if (id != id_) send_heartbeat(id, read_round_);
  }
  advance_read_rounds();
}

void Raft::send_heartbeat(NodeId to, uint64_t round) {
  const Progress& pr = tracker_.progress.at(to);
  Message m;
  m.to = to;
  m.type = MessageType::kHeartbeat;
  // Never tell a follower to commit past what it is known to hold.
  m.commit = std::min(pr.match, log_.committed());
  m.context = round;
  m.index = ticks_ + 1;
  send(std::move(m));
}

double Raft::max_peer_clock_rate() const {
  return static_cast<double>(config_.election_ticks - 1) /
         static_cast<double>(config_.election_ticks - config_.lease_drift_ticks);
}

bool Raft::clock_proven(NodeId id) const {
  auto it = peer_clocks_.find(id);
  return it != peer_clocks_.end() && it->second.rate_bound > 0 &&
         it->second.rate_bound <= max_peer_clock_rate();
}

void Raft::note_peer_clock(NodeId from, uint64_t sent, uint64_t peer_ticks, uint64_t nonce) {
  // An echo of a heartbeat we have not sent yet is forged or from another term's clock.
  if (sent > ticks_) return;
  ClockSample s{sent, ticks_, peer_ticks};
  PeerClock& pc = peer_clocks_[from];
  if (pc.nonce != nonce) {
    // A new incarnation: its count restarted, and nothing before says anything about it.
    pc = PeerClock{};
    pc.nonce = nonce;
  } else if (peer_ticks < pc.last.peer) {
    return;  // an answer that arrived late or twice
  }
  pc.last = s;
  // Samples every history/16 ticks over the last `history` ticks (at least 400, and 40 election
  // timeouts): windows long enough for a tight bound, and a change of rate shows once the
  // history has moved past it.
  const uint64_t history =
      std::max<uint64_t>(400, 40 * static_cast<uint64_t>(config_.election_ticks));
  while (!pc.refs.empty() && s.sent > pc.refs.front().received + history)
    pc.refs.pop_front();
  auto bound = [](const ClockSample& a, const ClockSample& b) {
    return static_cast<double>(b.peer - a.peer + 1) / static_cast<double>(b.sent - a.received - 1);
  };
  // The tightest bound between any two samples held (a slow round trip loosens only the bounds
  // it takes part in), the newest included.
  pc.rate_bound = 0;
  pc.window = 0;
  for (size_t j = 0; j <= pc.refs.size(); ++j) {
    const ClockSample& b = j < pc.refs.size() ? pc.refs[j] : s;
    for (size_t i = 0; i < j; ++i) {
      const ClockSample& a = pc.refs[i];
      if (b.sent <= a.received + 1) continue;
      double r = bound(a, b);
      if (pc.rate_bound == 0 || r < pc.rate_bound) {
        pc.rate_bound = r;
        pc.window = b.sent - a.received;
      }
    }
  }
  if (pc.refs.empty() || s.sent >= pc.refs.back().received + history / 16) pc.refs.push_back(s);
}

void Raft::advance_read_rounds() {
  Index quorum_round = tracker_.config.voters.committed([this](NodeId id) -> Index {
    if (id == id_) return read_round_;
    auto it = acked_round_.find(id);
    return it == acked_round_.end() ? 0 : it->second;
  });
  if (quorum_round == kNoLimit || quorum_round == 0) return;
  // The lease counts only followers whose clock is proven slow enough (note_peer_clock).
  Index lease_round = tracker_.config.voters.committed([this](NodeId id) -> Index {
    if (id == id_) return read_round_;
    if (!clock_proven(id)) return 0;
    auto it = acked_round_.find(id);
    return it == acked_round_.end() ? 0 : it->second;
  });
  bool lease_quorum = lease_round != kNoLimit && lease_round != 0;
  if (lease_quorum && !lease_disabled_ && lead_transferee_ == kNoNode) {
    for (const auto& [round, sent] : round_sent_tick_) {
      if (round != lease_round) continue;
      // Every follower that acknowledged this round reset its election timer after we sent it,
      // so none of them votes before sent + election timeout by its clock, which runs at most
      // max_peer_clock_rate() times ours: the lease ends (election - drift) ticks after sent.
      uint64_t expiry =
          sent + static_cast<uint64_t>(config_.election_ticks - config_.lease_drift_ticks);
      lease_expiry_tick_ = std::max(lease_expiry_tick_, expiry);
      break;
    }
  }
  // Rounds below both quorums are done with (the lease's may lag the reads').
  Index done = lease_quorum ? std::min(quorum_round, lease_round) : quorum_round;
  while (!round_sent_tick_.empty() && round_sent_tick_.front().first < done) {
    round_sent_tick_.pop_front();
  }
  while (!pending_reads_.empty() && pending_reads_.front().round <= quorum_round) {
    const PendingRead& r = pending_reads_.front();
    respond_read(r.from, r.index, r.context);
    pending_reads_.pop_front();
  }
}

void Raft::respond_read(NodeId to, Index index, uint64_t context) {
  if (to == id_) {
    read_states_.push_back(ReadState{index, context});
    return;
  }
  Message resp;
  resp.to = to;
  resp.type = MessageType::kReadIndexResp;
  resp.index = index;
  resp.context = context;
  send(std::move(resp));
}

bool Raft::lease_valid() const {
  return role_ == Role::kLeader && config_.check_quorum &&
         config_.read_only == ReadOnlyOption::kLeaseBased && !lease_disabled_ &&
         lead_transferee_ == kNoNode && ticks_ < lease_expiry_tick_ &&
         committed_entry_in_current_term();
}

void Raft::leader_read(NodeId from, uint64_t context) {
  // §6.4: until an entry of this term commits, our commit index may be behind the last leader's.
  if (!tracker_.is_singleton() && !committed_entry_in_current_term()) {
    constexpr size_t kMaxWaitingReads = 1 << 16;
    if (reads_before_commit_.size() < kMaxWaitingReads)
      reads_before_commit_.emplace_back(from, context);
    return;
  }
  if (tracker_.is_singleton() || lease_valid()) {
    respond_read(from, log_.committed(), context);
    return;
  }
  pending_reads_.push_back(PendingRead{read_round_ + 1, log_.committed(), from, context});
  needs_read_round_ = true;
}

bool Raft::check_quorum_active() {
  auto self = tracker_.progress.find(id_);
  if (self != tracker_.progress.end()) self->second.recent_active = true;
  bool active = tracker_.quorum_active();
  for (auto& [id, pr] : tracker_.progress) {
    if (id != id_) pr.recent_active = false;
  }
  return active;
}

bool Raft::can_quiesce() const {
  if (!config_.quiesce || role_ != Role::kLeader || quiesced_) return false;
  const Index last = log_.last_index();
  if (log_.committed() != last || log_.applied() != last || !committed_entry_in_current_term())
    return false;
  if (!pending_reads_.empty() || !reads_before_commit_.empty() || needs_read_round_ ||
      needs_bcast_append_ || lead_transferee_ != kNoNode || tracker_.config.voters.joint())
    return false;
  for (const auto& [id, pr] : tracker_.progress) {
    if (id == id_) continue;
    if (pr.match != last || pr.state != ProgressState::kReplicate || pr.inflights.count() != 0)
      return false;
    // Every voter answered a round sent since this leader was elected or woke: they are there.
    if (!pr.is_learner) {
      auto acked = acked_round_.find(id);
      if (acked == acked_round_.end() || acked->second < quiesce_round_) return false;
    }
  }
  return true;
}

void Raft::quiesce() {
  const Index commit = log_.committed();
  for (const auto& [id, pr] : tracker_.progress) {
    if (id == id_) continue;
    Message m;
    m.to = id;
    m.type = MessageType::kHeartbeat;
    m.commit = commit;
    m.reject = true;  // quiesce
    send(std::move(m));
  }
  quiesced_ = true;
  // Silence renews no lease: after waking, reads go through a heartbeat round until one
  // renews it. (The clock keeps counting while quiesced, so the lease would run out anyway.)
#ifdef CHORUS_RAFT_MUTATIONS
  if (config_.unsafe.quiesced_clock_stops) return;
#endif
  lease_expiry_tick_ = 0;
}

void Raft::wake() {
  if (!quiesced_) return;
  quiesced_ = false;
  if (role_ == Role::kLeader) {
    // A fresh quorum check period: followers answered before this leader quiesced and will
    // answer its next heartbeat; none had cause to while it was silent. It quiesces again only
    // once a new round proves its voters are still there: a leader cut off meanwhile keeps
    // heartbeating, and steps down at the quorum check.
    election_elapsed_ = 0;
    heartbeat_elapsed_ = config_.heartbeat_ticks;
    quiesce_round_ = read_round_ + 1;
    for (auto& [id, pr] : tracker_.progress)
      pr.recent_active = true;
  }
}

void Raft::send_timeout_now(NodeId to) {
  lease_disabled_ = true;
  Message m;
  m.to = to;
  m.type = MessageType::kTimeoutNow;
  send(std::move(m));
}

void Raft::abort_leader_transfer() {
  lead_transferee_ = kNoNode;
}

}  // namespace chorus::raft
