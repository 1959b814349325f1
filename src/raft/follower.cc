// The follower: AppendEntries (§5.3), heartbeats, InstallSnapshot (§7) and forwarding of
// requests to the leader.
#include "raft/raft.h"

#include "raft/confchange.h"

namespace chorus::raft {

Error Raft::step_follower(Message& m) {
  switch (m.type) {
    case MessageType::kPropose:
      if (lead_ == kNoNode) return Error::kNoLeader;
      if (config_.disable_proposal_forwarding) return Error::kNotLeader;
      m.to = lead_;
      m.term = 0;
      send(std::move(m));
      return Error::kOk;
    case MessageType::kApp:
      election_elapsed_ = 0;
      lead_ = m.from;
      handle_append(m);
      return Error::kOk;
    case MessageType::kHeartbeat:
      election_elapsed_ = 0;
      lead_ = m.from;
      handle_heartbeat(m);
      return Error::kOk;
    case MessageType::kSnap:
      election_elapsed_ = 0;
      lead_ = m.from;
      handle_snapshot(m);
      return Error::kOk;
    case MessageType::kTransferLeader:
    case MessageType::kReadIndex:
      if (lead_ == kNoNode) return Error::kNoLeader;
      m.to = lead_;
      m.term = 0;
      send(std::move(m));
      return Error::kOk;
    case MessageType::kTimeoutNow:
      // The leader asks us to start an election now, skipping pre-vote and follower leases.
      hup(true);
      return Error::kOk;
    case MessageType::kReadIndexResp:
      read_states_.push_back(ReadState{m.index, m.context});
      return Error::kOk;
    default:
      return Error::kOk;
  }
}

void Raft::handle_append(const Message& m) {
  Message resp;
  resp.to = m.from;
  resp.type = MessageType::kAppResp;
  if (m.index < log_.committed()) {
    resp.index = log_.committed();
    send(std::move(resp));
    return;
  }
  if (auto last_new = log_.maybe_append(m.index, m.log_term, m.commit, m.entries)) {
    resp.index = *last_new;
    send(std::move(resp));
    return;
  }
  // Reject with a hint: the largest index at or below the probe whose term is <= the leader's
  // term there. The leader can then skip a whole term of mismatching entries at once.
  Index hint = std::min(m.index, log_.last_index());
  auto [hint_index, hint_term] = log_.find_conflict_by_term(hint, m.log_term);
  resp.index = m.index;
  resp.reject = true;
  resp.reject_hint = hint_index;
  resp.log_term = hint_term;
  send(std::move(resp));
}

void Raft::handle_heartbeat(const Message& m) {
  // The leader caps the commit at our match index; a value beyond our log cannot be right.
  if (m.commit <= log_.last_index()) log_.commit_to(m.commit);
  // Asked to quiesce: only with exactly the leader's log, all of it committed (the leader asks
  // only when it knows every follower holds its last entry). Otherwise the answer wakes it.
  if (m.reject && config_.quiesce && log_.last_index() == m.commit &&
      log_.committed() == m.commit) {
    quiesced_ = true;
    release_idle_memory();
    return;
  }
  quiesced_ = false;  // a request it cannot take (a late one, a different log) wakes it
  Message resp;
  resp.to = m.from;
  resp.type = MessageType::kHeartbeatResp;
  resp.context = m.context;
  if (m.index != 0) {
    resp.index = m.index;
    resp.commit = ticks_ + 1;
    resp.reject_hint = clock_nonce_;
  }
  send(std::move(resp));
}

void Raft::handle_snapshot(const Message& m) {
  Message resp;
  resp.to = m.from;
  resp.type = MessageType::kAppResp;
  // A snapshot message without a snapshot still gets an answer, so the leader leaves the
  // snapshot state instead of waiting for a report that never comes.
  if (m.snapshot && restore(*m.snapshot)) {
    resp.index = log_.last_index();
  } else {
    resp.index = log_.committed();
  }
  send(std::move(resp));
}

bool Raft::restore(const Snapshot& s) {
  if (s.metadata.index <= log_.committed()) return false;
  if (role_ != Role::kFollower) {
    // Only a follower installs snapshots; anything else is a protocol error by the sender.
    become_follower(term_ + 1, kNoNode);
    return false;
  }
  // A snapshot whose configuration leaves this node out would leave it without a progress
  // entry of its own, which much of the core relies on; such a snapshot is refused (as in
  // etcd). A leader never sends one (see maybe_send_append).
  if (!s.metadata.conf_state.includes(id_)) return false;
  if (log_.match_term(s.metadata.index, s.metadata.term)) {
    // We already hold the snapshot's last entry: just move the commit index forward.
    log_.commit_to(s.metadata.index);
    return false;
  }
  TrackerConfig cfg;
  std::map<NodeId, Progress> prs;
  ConfChanger changer(tracker_, s.metadata.index);
  if (changer.restore(s.metadata.conf_state, &cfg, &prs) != Error::kOk) return false;
  log_.restore(s);
  switch_to_config(cfg, std::move(prs));
  return true;
}

}  // namespace chorus::raft
