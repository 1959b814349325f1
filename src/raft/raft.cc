// Construction, the public API, configuration switches and the Ready/advance cycle.
#include "raft/raft.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "raft/confchange.h"

namespace chorus::raft {
namespace {

[[noreturn]] void fatal(const char* what) {
  std::fprintf(stderr, "raft: %s\n", what);
  std::abort();
}

}  // namespace

void Ready::clear() {
  soft_state.reset();
  hard_state.reset();
  snapshot.reset();
  entries.clear();
  committed_entries.clear();
  messages.clear();
  read_states.clear();
  hard_state_must_sync = false;
  messages_first = false;
}

Raft::Raft(const Config& config)
    : config_(config),
      id_(config.id),
      group_(config.group),
      log_(config.storage, config.max_committed_bytes_per_ready),
      tracker_(config.max_inflight_messages, config.max_inflight_bytes),
      rng_state_(config.seed ^ (config.id * 0x9E3779B97F4A7C15ULL)) {
  if (id_ == kNoNode) fatal("config: id must not be 0");
  if (config.storage == nullptr) fatal("config: storage is required");
  if (config.heartbeat_ticks <= 0) fatal("config: heartbeat_ticks must be > 0");
  if (config.election_ticks <= config.heartbeat_ticks) {
    fatal("config: election_ticks must be greater than heartbeat_ticks");
  }
  if (config.lease_drift_ticks < 0 || config.lease_drift_ticks >= config.election_ticks) {
    fatal("config: lease_drift_ticks must be in [0, election_ticks)");
  }
  if (config.read_only == ReadOnlyOption::kLeaseBased && config.lease_drift_ticks < 2) {
    // A tick marks a moment somewhere within one tick interval: a follower may vote up to one
    // tick early by the leader's clock, before any clock-rate drift; with one tick of margin
    // no follower's clock could ever be proven slow enough (max_peer_clock_rate() would be 1).
    fatal("config: lease-based reads need lease_drift_ticks >= 2");
  }
  if (config.read_only == ReadOnlyOption::kLeaseBased && !config.check_quorum) {
    fatal("config: lease-based reads require check_quorum");
  }
  if (config.quiesce && !config.check_quorum) {
    // Without it a follower woken by a stray message would unseat a healthy quiesced leader.
    fatal("config: quiescence requires check_quorum");
  }
  if (config.max_inflight_messages == 0) fatal("config: max_inflight_messages must be > 0");

  ConfChanger changer(tracker_, log_.last_index());
  TrackerConfig cfg;
  std::map<NodeId, Progress> prs;
  if (changer.restore(config.storage->conf_state(), &cfg, &prs) != Error::kOk) {
    fatal("storage holds an invalid configuration");
  }
  switch_to_config(cfg, std::move(prs));
  HardState hs = config.storage->hard_state();
  if (!hs.empty()) {
    load_state(hs);
    restarted_ = true;
  }
  if (config.applied > 0) log_.applied_to(std::max(config.applied, log_.applied()));
  // splitmix64 of the seed, apart from the election randomness; never 0 (0 means "no clock").
  uint64_t z = config.seed + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  clock_nonce_ = (z ^ (z >> 31)) | 1;
  become_follower(term_, kNoNode);
  prev_hard_state_ = hard_state();
  prev_soft_state_ = soft_state();
}

void Raft::load_state(const HardState& hs) {
  if (hs.commit > log_.last_index()) fatal("hard state commit is beyond the last log index");
  log_.commit_to(hs.commit);
  term_ = hs.term;
  vote_ = hs.vote;
}

uint64_t Raft::next_random() {
  // splitmix64: small, fast and deterministic from the configured seed.
  uint64_t z = (rng_state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

bool Raft::promotable() const {
  auto it = tracker_.progress.find(id_);
  return it != tracker_.progress.end() && !it->second.is_learner && !log_.unstable().snapshot;
}

void Raft::tick() {
  if (storage_failed_) return;
#ifdef CHORUS_RAFT_MUTATIONS
  if (quiesced_ && config_.unsafe.quiesced_clock_stops) return;
#endif
  ++ticks_;
  if (quiesced_) return;  // the clock counts; no timer runs
  if (role_ == Role::kLeader) {
    tick_heartbeat();
  } else {
    tick_election();
  }
}

void Raft::tick(uint64_t n) {
  while (n > 0 && !quiesced_) {
    tick();
    --n;
  }
  // Quiesced, the rest only counts on the clock: one step however long it slept.
  if (n == 0 || storage_failed_) return;
#ifdef CHORUS_RAFT_MUTATIONS
  if (config_.unsafe.quiesced_clock_stops) return;
#endif
  ticks_ += n;
}

Error Raft::step(const Message& m) {
  Message copy = m;
  return step(std::move(copy));
}

Error Raft::step(Message&& m) {
  if (storage_failed_) return Error::kStorageFailed;
  if (is_local(m.type)) return Error::kStepLocalMessage;
  if (m.group != group_) return Error::kWrongGroup;
  if (m.to != id_) return Error::kStepUnknownPeer;
  if (m.from == kNoNode || m.from == id_) return Error::kInvalidMessage;
  // Only forwarded requests travel without a term; anything else would bypass the term rules.
  bool forwarded = m.type == MessageType::kPropose || m.type == MessageType::kReadIndex ||
                   m.type == MessageType::kTransferLeader;
  if ((m.term == 0) != forwarded) return Error::kInvalidMessage;
  if (m.type == MessageType::kApp && !well_formed_append(m)) return Error::kInvalidMessage;
  return step_internal(m);
}

bool Raft::well_formed_append(const Message& m) {
  // Entries follow the probed index without gaps, in non-decreasing terms no older than the
  // probed entry and no newer than the sender's term.
  Term prev = m.log_term;
  for (size_t i = 0; i < m.entries.size(); ++i) {
    const Entry& e = m.entries[i];
    if (e.index != m.index + 1 + i || e.term < prev || e.term > m.term) return false;
    prev = e.term;
  }
  return true;
}

Error Raft::step_internal(Message& m) {
  if (storage_failed_) return Error::kStorageFailed;
  // Anything wakes a quiesced replica, except the leader's request to quiesce itself, and at a
  // quiesced leader, a late answer to a heartbeat round sent before it quiesced. Rounds overlap
  // when answers take longer than a heartbeat interval (a loaded member hosting thousands of
  // groups): woken by each late answer, a leader would quiesce again at the next, and never
  // stay quiet. Such an answer carries nothing it needs (every follower held its whole log);
  // a follower that cannot take the request answers the request itself (context 0), which
  // wakes the leader.
  if (quiesced_) {
    const bool quiesce_request = m.type == MessageType::kHeartbeat && m.reject && m.term == term_;
    const bool late_answer = role_ == Role::kLeader && m.type == MessageType::kHeartbeatResp &&
                             m.term == term_ && m.context != 0 && m.context <= read_round_;
    if (late_answer) return Error::kOk;
    if (!quiesce_request) wake();
  }
  if (m.term == 0) {
    // Local message, or a forwarded proposal / read / transfer request.
  } else if (m.term > term_) {
    if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
      bool force = m.context == kCampaignTransfer;
      // §6 of the dissertation: a server that heard from a leader within the minimum election
      // timeout ignores elections, so removed or partitioned servers cannot disrupt, and the
      // leader lease holds.
      if (!force && in_lease_from_leader()) return Error::kOk;
    }
    if (m.type == MessageType::kPreVote) {
      // A pre-vote never changes our term.
    } else if (m.type == MessageType::kPreVoteResp && !m.reject) {
      // Granted pre-votes carry the future term; we move to it only by winning.
    } else if (m.type == MessageType::kApp || m.type == MessageType::kHeartbeat ||
               m.type == MessageType::kSnap) {
      become_follower(m.term, m.from);
    } else {
      become_follower(m.term, kNoNode);
    }
  } else if (m.term < term_) {
    if ((config_.check_quorum || config_.pre_vote) &&
        (m.type == MessageType::kHeartbeat || m.type == MessageType::kApp)) {
      // A deposed leader learns the current term from this reply and steps down.
      Message resp;
      resp.to = m.from;
      resp.type = MessageType::kAppResp;
      send(std::move(resp));
    } else if (m.type == MessageType::kPreVote) {
      Message resp;
      resp.to = m.from;
      resp.type = MessageType::kPreVoteResp;
      resp.term = term_;
      resp.reject = true;
      send(std::move(resp));
    }
    return Error::kOk;
  }

  switch (m.type) {
    case MessageType::kHup:
      hup(false);
      return Error::kOk;
    case MessageType::kVote:
    case MessageType::kPreVote:
      return step_vote_request(m);
    default:
      break;
  }
  switch (role_) {
    case Role::kLeader:
      return step_leader(m);
    case Role::kCandidate:
    case Role::kPreCandidate:
      return step_candidate(m);
    case Role::kFollower:
      return step_follower(m);
  }
  return Error::kOk;
}

Error Raft::propose(std::string data) {
  if (storage_failed_) return Error::kStorageFailed;
  if (data.size() > config_.max_entry_bytes) return Error::kEntryTooLarge;
  if (role_ == Role::kLeader) {
    if (quiesced_) wake();
    if (lead_transferee_ != kNoNode) return Error::kTransferInProgress;
    if (tracker_.progress.count(id_) == 0 || leaving_config()) return Error::kNotLeader;
    scratch_entries_.clear();
    scratch_entries_.push_back(Entry{0, 0, EntryType::kNormal, std::move(data)});
    return append_proposals(scratch_entries_);
  }
  Message m;
  m.type = MessageType::kPropose;
  m.entries.push_back(Entry{0, 0, EntryType::kNormal, std::move(data)});
  return step_internal(m);
}

Error Raft::propose_conf_change(const ConfChange& cc) {
  Message m;
  m.type = MessageType::kPropose;
  m.entries.push_back(Entry{0, 0, EntryType::kConfChange, cc.encode()});
  return step_internal(m);
}

Error Raft::check_conf_change_proposal(const Entry& e) const {
  auto cc = ConfChange::decode(e.data);
  if (!cc) return Error::kInvalidConfChange;
  // One change at a time: the previous one must be applied first (§4.1 of the dissertation).
  if (pending_conf_index_ > log_.applied()) return Error::kConfChangePending;
  bool joint = tracker_.config.voters.joint();
  if (cc->leave_joint() != joint) return Error::kInvalidConfChange;
  return Error::kOk;
}

Error Raft::read_index(uint64_t context) {
  Message m;
  m.type = MessageType::kReadIndex;
  m.context = context;
  return step_internal(m);
}

Error Raft::transfer_leader(NodeId transferee) {
  Message m;
  m.type = MessageType::kTransferLeader;
  m.context = transferee;
  return step_internal(m);
}

Error Raft::campaign() {
  // With leader leases an election asked for by the application must not cut a lease short:
  // a node that heard from the leader within the election timeout may not help unseat it.
  if (config_.read_only == ReadOnlyOption::kLeaseBased && in_lease_from_leader()) {
    return Error::kNotLeader;
  }
  Message m;
  m.type = MessageType::kHup;
  return step_internal(m);
}

void Raft::report_snapshot(NodeId to, bool failed) {
  Message m;
  m.type = MessageType::kSnapStatus;
  m.from = to;
  m.reject = failed;
  (void)step_internal(m);
}

void Raft::report_unreachable(NodeId to) {
  Message m;
  m.type = MessageType::kUnreachable;
  m.from = to;
  (void)step_internal(m);
}

void Raft::recycle(Message&& m) {
  if (m.entries.capacity() == 0 || m.entries.capacity() > kMaxPooledBufferEntries) return;
  if (entry_buffers_.size() >= kMaxPooledBuffers) return;
  m.entries.clear();
  entry_buffers_.push_back(std::move(m.entries));
}

ConfState Raft::apply_conf_change(const ConfChange& cc) {
  ConfChanger changer(tracker_, log_.last_index());
  TrackerConfig cfg;
  std::map<NodeId, Progress> prs;
  Error err;
  if (cc.leave_joint()) {
    err = changer.leave_joint(&cfg, &prs);
  } else if (cc.transition != ConfChangeTransition::kAuto || cc.changes.size() > 1) {
    bool auto_leave = cc.transition != ConfChangeTransition::kJointExplicit;
    err = changer.enter_joint(auto_leave, cc.changes, &cfg, &prs);
  } else {
    err = changer.simple(cc.changes, &cfg, &prs);
  }
  // An invalid change that reached the log is ignored the same way on every replica.
  if (err == Error::kOk) switch_to_config(cfg, std::move(prs));
  return tracker_.config.to_conf_state();
}

void Raft::switch_to_config(const TrackerConfig& cfg, std::map<NodeId, Progress> prs) {
  tracker_.config = cfg;
  tracker_.progress = std::move(prs);
  auto self = tracker_.progress.find(id_);
  is_learner_ = self != tracker_.progress.end() && self->second.is_learner;
  if ((self == tracker_.progress.end() || is_learner_) && role_ == Role::kLeader) {
    // This leader was removed or demoted. Hand over to the most caught-up voter so the group
    // does not wait an election timeout, then step down.
    NodeId best = kNoNode;
    Index best_match = 0;
    for (NodeId id : tracker_.config.voters.incoming) {
      const Progress& pr = tracker_.progress.at(id);
      if (id != id_ && pr.match > best_match) {
        best = id;
        best_match = pr.match;
      }
    }
    if (best != kNoNode && best_match == log_.last_index()) send_timeout_now(best);
    become_follower(term_, kNoNode);
    return;
  }
  if (role_ != Role::kLeader || tracker_.config.voters.incoming.empty()) return;
  if (maybe_commit()) {
    needs_bcast_append_ = true;
  } else {
    for (auto& [id, pr] : tracker_.progress) {
      if (id != id_) maybe_send_append(id, false);
    }
  }
  if (lead_transferee_ != kNoNode && !tracker_.config.voters.contains(lead_transferee_)) {
    abort_leader_transfer();
  }
}

void Raft::send(Message m) {
  m.group = group_;
  // Forwarded requests keep their original sender, so the leader answers the node that asked.
  if (m.from == kNoNode) m.from = id_;
  if (m.type == MessageType::kVote || m.type == MessageType::kPreVote ||
      m.type == MessageType::kVoteResp || m.type == MessageType::kPreVoteResp) {
    if (m.term == 0) fatal("vote messages must carry an explicit term");
  } else if (m.type != MessageType::kPropose && m.type != MessageType::kReadIndex &&
             m.type != MessageType::kTransferLeader) {
    // Forwarded requests travel with term 0 and are treated like local requests.
    m.term = term_;
  }
  msgs_.push_back(std::move(m));
}

void Raft::reduce_uncommitted(const std::vector<Entry>& committed) {
  if (role_ != Role::kLeader) return;
  uint64_t bytes = 0;
  for (const Entry& e : committed)
    bytes += e.data.size();
  uncommitted_bytes_ = bytes > uncommitted_bytes_ ? 0 : uncommitted_bytes_ - bytes;
}

bool Raft::has_ready() const {
  if (storage_failed_) return false;
  if (soft_state() != prev_soft_state_) return true;
  HardState hs = hard_state();
  if (!hs.empty() && hs != prev_hard_state_) return true;
  if (log_.unstable().snapshot) return true;
  if (needs_bcast_append_ || needs_read_round_) return true;
  return !msgs_.empty() || log_.has_unstable_entries() || log_.has_next_committed_entries() ||
         !read_states_.empty();
}

Ready& Raft::ready() {
  if (ready_outstanding_) fatal("ready() called again before advance()");
  if (role_ == Role::kLeader) {
    if (needs_bcast_append_) bcast_append();
    if (needs_read_round_) bcast_heartbeat();
  }
  needs_bcast_append_ = false;
  needs_read_round_ = false;
  if (!ready_) ready_ = std::make_unique<Ready>();
  ready_->clear();
  SoftState ss = soft_state();
  if (ss != prev_soft_state_) ready_->soft_state = ss;
  HardState hs = hard_state();
  if (hs != prev_hard_state_) {
    ready_->hard_state = hs;
    ready_->hard_state_must_sync =
        hs.term != prev_hard_state_.term || hs.vote != prev_hard_state_.vote;
  }
  if (log_.unstable().snapshot) ready_->snapshot = *log_.unstable().snapshot;
  ready_->entries.assign(log_.unstable().entries.begin(), log_.unstable().entries.end());
  if (Error err = log_.next_committed_entries(&ready_->committed_entries); err != Error::kOk) {
    // Committed entries the log holds but cannot read: nothing may be applied or sent.
    storage_failed_ = true;
    ready_->committed_entries.clear();
  }
  // A commit index that lets a configuration change apply is made durable first (with this
  // Ready's hard state, or an earlier one written unsynced), so a member never restarts with a
  // configuration older than one it acted on (it may have removed itself).
  if (!ready_->hard_state_must_sync) {
    for (const Entry& e : ready_->committed_entries) {
      if (e.type == EntryType::kConfChange) {
        ready_->hard_state_must_sync = true;
        break;
      }
    }
  }
  // Only with every configuration change in the log applied, and outside a joint
  // configuration. Otherwise a follower may have applied a change that removes it (it no longer
  // campaigns) while this leader, not having applied it, still needs its vote: had that
  // follower stored an entry this leader lost in a crash, it would refuse the vote for good.
  // (A new leader counts as having an unapplied change until it applied its whole log.)
  ready_->messages_first = role_ == Role::kLeader && !tracker_.config.voters.joint() &&
                           pending_conf_index_ <= log_.applied() && !ready_->hard_state_must_sync &&
                           !ready_->snapshot;
  if (storage_failed_) msgs_.clear();
  ready_->messages.swap(msgs_);
  ready_->read_states.swap(read_states_);
  ready_outstanding_ = true;
  return *ready_;
}

void Raft::advance() {
  if (!ready_outstanding_) fatal("advance() without an outstanding ready()");
  ready_outstanding_ = false;
  if (ready_->soft_state) prev_soft_state_ = *ready_->soft_state;
  if (ready_->hard_state) prev_hard_state_ = *ready_->hard_state;
  if (ready_->snapshot) {
    Index si = ready_->snapshot->metadata.index;
    log_.stable_snap_to(si);
    if (si > log_.applied() && si <= log_.committed()) log_.applied_to(si);
  }
  if (!ready_->entries.empty()) {
    const Entry& last = ready_->entries.back();
    log_.stable_to(last.index, last.term);
    if (role_ == Role::kLeader) {
      // The leader counts itself toward a quorum only for entries it has made durable.
      auto self = tracker_.progress.find(id_);
      if (self != tracker_.progress.end() && self->second.maybe_update(log_.stable_last_index())) {
        if (maybe_commit()) needs_bcast_append_ = true;
      }
    }
  }
  if (!ready_->committed_entries.empty()) {
    Index last = ready_->committed_entries.back().index;
    if (last > log_.applied()) log_.applied_to(last);
    reduce_uncommitted(ready_->committed_entries);
    if (campaign_after_apply_ && role_ != Role::kLeader) {
      campaign_after_apply_ = false;
      hup(true);
    }
    if (role_ == Role::kLeader && tracker_.config.auto_leave &&
        log_.applied() >= pending_conf_index_) {
      // Leave the joint configuration once it is applied (auto-leave).
      scratch_entries_.clear();
      scratch_entries_.push_back(Entry{0, 0, EntryType::kConfChange, ConfChange{}.encode()});
      if (append_proposals(scratch_entries_) == Error::kOk) note_conf_change(scratch_entries_[0]);
    }
  }
  ready_->messages.clear();
  ready_->read_states.clear();
}

void Raft::trim_if_quiesced() {
  if (quiesced_) release_idle_memory();
}

void Raft::release_idle_memory() {
  if (ready_outstanding_) return;
  // A quiesced replica may sleep for hours among thousands: the Ready and the buffers kept for
  // the next round go, and the next round allocates them again.
  ready_.reset();
  if (msgs_.empty()) std::vector<Message>().swap(msgs_);
  if (read_states_.empty()) std::vector<ReadState>().swap(read_states_);
  std::vector<Entry>().swap(scratch_entries_);
  std::vector<std::vector<Entry>>().swap(entry_buffers_);
}

Status Raft::status() const {
  Status s;
  s.id = id_;
  s.hard_state = hard_state();
  s.soft_state = soft_state();
  s.applied = log_.applied();
  s.last_index = log_.last_index();
  s.lead_transferee = lead_transferee_;
  s.config = tracker_.config.to_conf_state();
  if (role_ == Role::kLeader) {
    for (const auto& [id, pr] : tracker_.progress) {
      s.progress[id] = ProgressInfo{pr.match,
                                    pr.next,
                                    pr.state,
                                    pr.is_learner,
                                    pr.recent_active,
                                    pr.inflights.count(),
                                    pr.inflights.bytes(),
                                    0,
                                    0};
      auto clock = peer_clocks_.find(id);
      if (clock != peer_clocks_.end() && clock->second.rate_bound > 0) {
        s.progress[id].clock_rate_bound = clock->second.rate_bound;
        s.progress[id].clock_window_ticks = clock->second.window;
      }
    }
  }
  return s;
}

}  // namespace chorus::raft
