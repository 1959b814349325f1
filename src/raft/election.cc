// Roles, timers and elections: Raft §5.2 (leader election), §9.6 of the dissertation (pre-vote)
// and §6 (check-quorum and ignoring disruptive servers).
#include <algorithm>

#include "raft/raft.h"

namespace chorus::raft {

void Raft::reset(Term term) {
  if (term_ != term) {
    term_ = term;
    vote_ = kNoNode;
  }
  lead_ = kNoNode;
  quiesced_ = false;
  quiesce_round_ = read_round_ + 1;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  reset_randomized_election_timeout();
  lead_transferee_ = kNoNode;
  tracker_.reset_votes();
  Index last = log_.last_index();
  for (auto& [id, pr] : tracker_.progress) {
    bool learner = pr.is_learner;
    pr = tracker_.make_progress();
    pr.is_learner = learner;
    pr.next = last + 1;
    if (id == id_) pr.match = log_.stable_last_index();
  }
  pending_conf_index_ = 0;
  self_removal_index_ = 0;
  campaign_after_apply_ = false;
  uncommitted_bytes_ = 0;
  pending_reads_.clear();
  reads_before_commit_.clear();
  acked_round_.clear();
  round_sent_tick_.clear();
  for (auto it = peer_clocks_.begin(); it != peer_clocks_.end();) {
    it = tracker_.progress.count(it->first) != 0 ? std::next(it) : peer_clocks_.erase(it);
  }
  lease_expiry_tick_ = 0;
  lease_disabled_ = false;
  needs_bcast_append_ = false;
  needs_read_round_ = false;
}

void Raft::reset_randomized_election_timeout() {
  randomized_election_timeout_ =
      config_.election_ticks +
      static_cast<int>(next_random() % static_cast<uint64_t>(config_.election_ticks));
}

void Raft::become_follower(Term term, NodeId lead) {
  reset(term);
  lead_ = lead;
  role_ = Role::kFollower;
}

void Raft::become_pre_candidate() {
  // Term and vote stay as they are: a pre-election changes nothing durable.
  role_ = Role::kPreCandidate;
  tracker_.reset_votes();
  lead_ = kNoNode;
}

void Raft::become_candidate() {
  reset(term_ + 1);
  vote_ = id_;
  role_ = Role::kCandidate;
}

void Raft::become_leader() {
  reset(term_);
  lead_ = id_;
  role_ = Role::kLeader;
  Progress& self = tracker_.progress.at(id_);
  self.become_replicate();
  self.match = log_.stable_last_index();
  self.next = log_.last_index() + 1;
  // No configuration change until every entry of earlier terms is applied: we cannot know
  // whether one of them is a configuration change.
  pending_conf_index_ = log_.last_index();
  // An inherited, unapplied change may remove us: then we must not append after it.
  if (log_.last_index() > log_.applied()) {
    std::vector<Entry> unapplied;
    Error err = log_.slice(log_.applied() + 1, log_.last_index() + 1, kNoLimit, &unapplied);
    if (check_storage(err)) return;
    if (err == Error::kOk) {
      for (const Entry& e : unapplied) {
        if (e.type == EntryType::kConfChange) note_conf_change(e);
      }
    }
    pending_conf_index_ = log_.last_index();
  }
  // The no-op of §8: committing an entry of this term commits everything before it, and
  // ReadIndex waits for it.
  scratch_entries_.clear();
  scratch_entries_.push_back(Entry{});
  (void)append_proposals(scratch_entries_);
}

bool Raft::in_lease_from_leader() const {
  if (!config_.check_quorum) return false;
  // Just started: before a restart this node may have acknowledged a leader whose lease is
  // still running, and it cannot know. Wait one election timeout before voting.
  if (restarted_ && ticks_ < static_cast<uint64_t>(config_.election_ticks)) return true;
  return lead_ != kNoNode && election_elapsed_ < config_.election_ticks;
}

bool Raft::past_election_timeout() const {
  return election_elapsed_ >= randomized_election_timeout_;
}

void Raft::tick_election() {
  ++election_elapsed_;
  if (promotable() && past_election_timeout()) {
    election_elapsed_ = 0;
    hup(false);
  }
}

void Raft::tick_heartbeat() {
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (election_elapsed_ >= config_.election_ticks) {
    election_elapsed_ = 0;
    if (config_.check_quorum && !check_quorum_active()) {
      become_follower(term_, kNoNode);
      return;
    }
    // A transfer that did not finish within an election timeout is abandoned.
    if (lead_transferee_ != kNoNode) abort_leader_transfer();
  }
  if (role_ != Role::kLeader) return;
  if (heartbeat_elapsed_ >= config_.heartbeat_ticks) {
    heartbeat_elapsed_ = 0;
    if (can_quiesce()) {
      quiesce();
    } else {
      bcast_heartbeat();
    }
  }
}

void Raft::hup(bool transfer) {
  if (role_ == Role::kLeader) return;
  if (!promotable()) return;
  // A configuration change committed but not yet applied could remove us or change the voters;
  // campaigning on the old configuration could elect a leader a new majority never agreed to.
  if (log_.committed() > log_.applied()) {
    std::vector<Entry> pending;
    Error err = log_.slice(log_.applied() + 1, log_.committed() + 1, kNoLimit, &pending);
    if (check_storage(err)) return;
    if (err == Error::kOk) {
      for (const Entry& e : pending) {
        if (e.type != EntryType::kConfChange) continue;
        // A leader asked us to take over (often because it removed itself): do it as soon as
        // the change is applied rather than an election timeout later.
        if (transfer) campaign_after_apply_ = true;
        return;
      }
    }
  }
  start_campaign(config_.pre_vote && !transfer, transfer);
}

void Raft::start_campaign(bool pre_vote, bool transfer) {
  Term vote_term;
  MessageType type;
  if (pre_vote) {
    become_pre_candidate();
    vote_term = term_ + 1;
    type = MessageType::kPreVote;
  } else {
    become_candidate();
    vote_term = term_;
    type = MessageType::kVote;
  }
  tracker_.record_vote(id_, true);
  if (tracker_.tally() == VoteResult::kWon) {
    // A single-voter group wins at once.
    if (pre_vote) {
      start_campaign(false, transfer);
    } else {
      become_leader();
    }
    return;
  }
  std::vector<NodeId> voters = tracker_.config.voters.incoming;
  for (NodeId id : tracker_.config.voters.outgoing) {
    if (std::find(voters.begin(), voters.end(), id) == voters.end()) voters.push_back(id);
  }
  for (NodeId id : voters) {
    if (id == id_) continue;
    Message m;
    m.to = id;
    m.type = type;
    m.term = vote_term;
    m.index = log_.last_index();
    m.log_term = log_.last_term();
    m.context = transfer ? kCampaignTransfer : 0;
    send(std::move(m));
  }
}

Error Raft::step_vote_request(const Message& m) {
  // §5.2 and §5.4.1: at most one vote per term, and only for a candidate whose log is at least
  // as up-to-date as ours. Pre-votes for a later term are granted freely: they bind nothing.
  bool can_vote = vote_ == m.from || (vote_ == kNoNode && lead_ == kNoNode) ||
                  (m.type == MessageType::kPreVote && m.term > term_);
  Message resp;
  resp.to = m.from;
  resp.type = m.type == MessageType::kVote ? MessageType::kVoteResp : MessageType::kPreVoteResp;
  if (can_vote && log_.is_up_to_date(m.index, m.log_term)) {
    resp.term = m.term;
    if (m.type == MessageType::kVote) {
      election_elapsed_ = 0;
      vote_ = m.from;
    }
  } else {
    resp.term = term_;
    resp.reject = true;
  }
  send(std::move(resp));
  return Error::kOk;
}

Error Raft::step_candidate(const Message& m) {
  switch (m.type) {
    case MessageType::kPropose:
    case MessageType::kReadIndex:
    case MessageType::kTransferLeader:
      return Error::kNoLeader;
    case MessageType::kApp:
      become_follower(m.term, m.from);
      handle_append(m);
      return Error::kOk;
    case MessageType::kHeartbeat:
      become_follower(m.term, m.from);
      handle_heartbeat(m);
      return Error::kOk;
    case MessageType::kSnap:
      become_follower(m.term, m.from);
      handle_snapshot(m);
      return Error::kOk;
    case MessageType::kVoteResp:
    case MessageType::kPreVoteResp: {
      bool expected = (role_ == Role::kPreCandidate && m.type == MessageType::kPreVoteResp) ||
                      (role_ == Role::kCandidate && m.type == MessageType::kVoteResp);
      if (!expected) return Error::kOk;
      tracker_.record_vote(m.from, !m.reject);
      switch (tracker_.tally()) {
        case VoteResult::kWon:
          if (role_ == Role::kPreCandidate) {
            start_campaign(false, false);
          } else {
            become_leader();
          }
          break;
        case VoteResult::kLost:
          become_follower(term_, kNoNode);
          break;
        case VoteResult::kPending:
          break;
      }
      return Error::kOk;
    }
    default:
      return Error::kOk;
  }
}

}  // namespace chorus::raft
