// Snapshots: the server state that travels with the store, taking them on the apply thread,
// fetching and installing the leader's on the raft and fetch threads.
#include "server/node.h"

#include <cstdio>
#include <cstdlib>
#include <set>

#include "base/thread_name.h"
#include "kv/codec.h"
#include "kv/snapshots.h"
#include "server/log.h"

namespace chorus::server {

using Clock = std::chrono::steady_clock;
using storage::Status;

void Node::rebuild_lessor() {
  std::lock_guard<std::mutex> lk(lessor_mu_);
  bool primary = lessor_.is_primary();
  lessor_ = kv::Lessor();
  int64_t now = now_ms();
  for (const kv::LeaseInfo& l : store_->leases())
    lessor_.granted(l.id, l.ttl, now);
  if (primary) lessor_.promote(now);
}

ServerState Node::server_state() {
  ServerState st;
  st.index = store_->applied_index();
  st.revision = store_->revision();
  {
    std::lock_guard<std::mutex> lk(members_mu_);
    for (const auto& [id, m] : members_)
      st.members.push_back(m);
    st.removed.assign(removed_.begin(), removed_.end());
  }
  {
    std::lock_guard<std::mutex> lk(alarms_mu_);
    for (const Alarm& a : alarms_)
      st.alarms.push_back(AlarmChange{true, a.member, a.type});
  }
  std::lock_guard<std::mutex> lk(directory_mu_);
  directory_.save(&st);
  return st;
}

void Node::restore_server_state(const ServerState& st) {
  {
    std::lock_guard<std::mutex> lk(members_mu_);
    members_.clear();
    for (const MemberInfo& m : st.members)
      members_[m.id] = m;
    removed_ = std::set<raft::NodeId>(st.removed.begin(), st.removed.end());
    auto self = members_.find(options_.id);
    is_learner_ = self != members_.end() && self->second.is_learner;
    ++members_version_;
    if (sink_ != nullptr) {
      for (const auto& [id, m] : members_) {
        if (id != options_.id && !m.peer_urls.empty()) sink_->set_peer(id, m.peer_urls);
      }
    }
  }
  {
    std::lock_guard<std::mutex> lk(alarms_mu_);
    alarms_.clear();
    for (const AlarmChange& a : st.alarms)
      alarms_.push_back(Alarm{a.member, a.type});
    refresh_alarm_types();
  }
  {
    std::lock_guard<std::mutex> lk(directory_mu_);
    directory_.restore(st);
    directory_index_ = st.index;
  }
  // The raft thread matches this member's replicas to the directory at its next turn.
  std::lock_guard<std::mutex> lk(inbox_mu_);
  in_directory_changed_ = true;
}

// Apply thread, holding apply_exec_mu_.
void Node::maybe_snapshot() {
  raft::Index applied = store_->applied_index();
  // A request is taken (and cleared) at once, so the apply thread's wait does not spin on it; one
  // that cannot be served now is asked for again by the leader at its next heartbeat response.
  const bool requested = snapshot_requested_.exchange(false) && applied > last_snapshot_index_;
  // Until replay after a restart has passed the store's index, applied_conf_ is older than
  // the store: no snapshot before that.
  if (seen_index_ < applied) return;
  if (!requested && !kv::snapshot_due(applied, last_snapshot_index_, options_.snapshots)) return;
  // RocksDB's WAL is off: the store's memtables reach disk here, so the log before this point
  // is no longer needed to rebuild the store.
  Status st = store_->flush();
  if (!st.is_ok()) {
    fail_fatal("state machine flush: " + st.to_string());
    return;
  }
  raft::Snapshot snap;
  snap.metadata.index = applied;
  snap.metadata.term = store_->applied_term();
  snap.metadata.conf_state = applied_conf_;
  snap.data = encode_server_state(server_state());
  last_snapshot_index_ = applied;
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    in_snapshots_.push_back(std::move(snap));
  }
  inbox_cv_.notify_one();
}

bool Node::hold_snapshot_message(raft::Message& m) {
  if (m.type != raft::MessageType::kSnap || !m.snapshot) return false;
  raft::Index index = m.snapshot->metadata.index;
  // A store already this far (after a restart, say) or staged needs nothing fetched; the core
  // decides whether the snapshot is taken at all.
  if (store_->applied_index() >= index || (staged_ && staged_index_ >= index)) return false;
  if (!options_.fetch_snapshot) return false;  // install_snapshot() reports it
  // The newest wins: a later term (a new leader, whose snapshot may be older), or a later
  // snapshot of the same term, replaces the one held.
  if (!held_snapshot_ || m.term > held_snapshot_->term ||
      (m.term == held_snapshot_->term && held_snapshot_->snapshot->metadata.index <= index)) {
    held_snapshot_ = std::move(m);
  }
  return true;
}

void Node::drive_snapshot_fetch(Clock::time_point now) {
  raft::Index index = held_snapshot_->snapshot->metadata.index;
  // Caught up through the log meanwhile, or sent by a leader since replaced: nothing to fetch,
  // and the core answers or ignores the message as it would have at once.
  bool stale = store_->applied_index() >= index || held_snapshot_->term < replica_->core().term();
  if (stale || (staged_ && staged_index_ >= index)) {
    raft::Message m = std::move(*held_snapshot_);
    held_snapshot_.reset();
    (void)replica_->step(std::move(m));
    return;
  }
  if (fetching_ || now < next_fetch_) return;
  std::optional<ServerState> state = decode_server_state(held_snapshot_->snapshot->data);
  std::vector<std::string> urls;
  if (state) {
    for (const MemberInfo& m : state->members) {
      if (m.id == held_snapshot_->from) urls = m.client_urls;
    }
  }
  if (urls.empty()) {
    // Nothing to fetch from: the core refuses or installs it, and install_snapshot() reports.
    log(LogLevel::kWarn,
        "the snapshot at index " + std::to_string(index) + " names no client URL for its sender");
    raft::Message m = std::move(*held_snapshot_);
    held_snapshot_.reset();
    (void)replica_->step(std::move(m));
    return;
  }
  if (staged_) {
    (void)staged_->abort();  // too old for this snapshot
    staged_.reset();
  }
  log(LogLevel::kInfo,
      "fetching the leader's store for the snapshot at index " + std::to_string(index));
  fetching_ = true;
  auto receiver = std::make_unique<storage::SnapshotReceiver>(
      fs_.get(), storage::join_path(options_.data_dir, "member"), "kv");
  std::string ticket = hex_id(held_snapshot_->context);
  fetch_thread_ = std::thread([this, urls, index, ticket, r = receiver.release()] {
    base::set_thread_name("chorus-fetch");
    FetchResult f;
    f.index = index;
    f.receiver.reset(r);
    f.status = options_.fetch_snapshot(urls, index, ticket, f.receiver.get(), fetch_stop_);
    if (f.status.is_ok() && !f.receiver->complete())
      f.status = Status::io_error("the snapshot stream ended early");
    if (!f.status.is_ok()) (void)f.receiver->abort();
    {
      std::lock_guard<std::mutex> lk(inbox_mu_);
      in_fetched_.push_back(std::move(f));
    }
    inbox_cv_.notify_one();
  });
}

void Node::stop_snapshot_fetch() {
  fetch_stop_ = true;
  if (fetch_thread_.joinable()) fetch_thread_.join();
  in_fetched_.clear();
  if (staged_) (void)staged_->abort();
  staged_.reset();
}

// Raft thread. Replaces the store with the leader's; false after a fatal error.
bool Node::install_snapshot(const raft::Snapshot& snap) {
  std::optional<ServerState> state = decode_server_state(snap.data);
  if (!state) {
    fail_fatal("the snapshot from the leader holds no readable server state");
    return false;
  }
  const raft::Index index = snap.metadata.index;
  std::lock_guard<std::mutex> exec(apply_exec_mu_);
  if (store_->applied_index() < index) {
    // hold_snapshot_message() let this snapshot through only with a store staged for it.
    if (!staged_ || staged_index_ < index) {
      fail_fatal("a snapshot at index " + std::to_string(index) +
                 " reached the log without the leader's store fetched for it");
      return false;
    }
    std::unique_ptr<storage::SnapshotReceiver> receiver = std::move(staged_);
    Status st = store_->install(
        receiver.get(), storage::join_path(storage::join_path(options_.data_dir, "member"), "kv"));
    if (!st.is_ok()) {
      fail_fatal("installing the snapshot: " + st.to_string());
      return false;
    }
    if (store_->applied_index() < index) {
      fail_fatal("the fetched store is at index " + std::to_string(store_->applied_index()) +
                 ", behind the snapshot at " + std::to_string(index));
      return false;
    }
    log(LogLevel::kInfo, "installed a snapshot at index " + std::to_string(index) +
                             " (store at index " + std::to_string(store_->applied_index()) + ")");
    if (store_replaced_fn_) store_replaced_fn_(store_->revision());
  }
  restore_server_state(*state);
  applied_conf_ = snap.metadata.conf_state;
  last_snapshot_index_ = index;
  // The log now starts at the snapshot: the store may be further on, but no snapshot may be
  // taken beyond what the log holds, so replay must pass the store's index first.
  seen_index_ = index;
  installed_index_ = index;
  if (index >= directory_replay_target_) directory_current_ = true;
  applied_ = store_->applied_index();
  rebuild_lessor();
  return true;
}

}  // namespace chorus::server
