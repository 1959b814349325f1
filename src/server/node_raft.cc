// The raft thread: the inbox, ticks, each Ready persisted and sent, committed entries and read
// points handed to the apply thread; leadership transfers and membership changes.
#include "server/node.h"

#include <algorithm>
#include <set>

#include "kv/codec.h"
#include "kv/snapshots.h"
#include "server/log.h"

namespace chorus::server {

using Clock = std::chrono::steady_clock;
using storage::Status;

namespace {

// Lease revokes proposed by the leader are proposed again if not applied in this time.
constexpr auto kRevokeRetry = std::chrono::seconds(3);
constexpr size_t kMaxRevokesPerTick = 64;

}  // namespace

void Node::raft_loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lk(inbox_mu_);
      inbox_cv_.wait_until(lk, at_clock_us(engine_.next_tick_us()), [this] {
        return stopping_ || transfer_requested_ || !in_transfers_.empty() ||
               !in_conf_changes_.empty() || !in_snapshots_.empty() || !in_messages_.empty() ||
               !in_proposals_.empty() || !in_reads_.empty() || !in_unreachable_.empty() ||
               !in_fetched_.empty() || !in_group_infos_.empty() ||
               in_group_compactions_.has_value() || in_directory_changed_ ||
               !in_filled_snapshots_.empty() || !in_group_change_dones_.empty();
      });
      if (stopping_) return;
    }
    Clock::time_point now;
    bool tick_due = false;
    drain_inbox(&now, &tick_due);
    if (failed_) return;
    uint64_t now_us = clock_us(now);
    refresh_engine_peers(now_us);
    // One liveness heartbeat per member pair per interval, whatever the number of groups.
    std::vector<raft::Message> beats = engine_.liveness(now_us);
    if (!beats.empty()) send(std::move(beats));
    maybe_compact_groups(now);
    if (failed_) return;
    if (tick_due) {
      expire_requests(now);
      if (is_leader()) {
        propose_lease_revokes();
        if (options_.lease_checkpoint_interval_ms > 0) propose_lease_checkpoints();
      }
      if (now >= next_quota_check_) {
        next_quota_check_ = now + std::chrono::seconds(1);
        check_quota();
      }
      if (!published_ && leader_ != 0 && now >= next_publish_) {
        next_publish_ = now + std::chrono::seconds(1);
        publish_attributes();
      }
    }
    if (held_snapshot_) drive_snapshot_fetch(now);
    while (!failed_ && engine_.has_round())
      handle_ready();
    if (!failed_ && reconcile_due_) {
      reconcile_due_ = false;
      reconcile_groups(clock_us(Clock::now()));
    }
    if (!failed_ && tick_due && !groups_reshaping_.empty()) reshape_groups();
    if (!failed_ && replica_->core().storage_failed()) fail_on_damaged_log();
    if (failed_) return;
    if (replica_->take_snapshot_request()) {
      {
        std::lock_guard<std::mutex> lk(apply_mu_);
        snapshot_requested_ = true;
      }
      apply_cv_.notify_one();
    }
    if (!transfers_.empty()) check_transfers();
    groups_awake_ = engine_.awake() - (replica_->quiesced() ? 0 : 1);
    groups_peers_down_ = engine_.peers_down();
  }
}

void Node::drain_inbox(Clock::time_point* now, bool* tick_due) {
  std::vector<raft::Message> messages;
  std::vector<PendingProposal> proposals;
  std::vector<std::pair<raft::GroupId, ReadDone>> reads;
  std::vector<GroupInfosDone> group_infos;
  std::optional<std::vector<storage::WalCompaction>> group_compactions;
  std::vector<raft::NodeId> unreachable;
  std::vector<ConfRequest> conf_requests;
  std::vector<raft::Snapshot> snapshots;
  std::vector<FetchResult> fetched;
  bool transfer = false;
  bool directory_changed = false;
  std::vector<std::function<void()>> group_change_dones;
  std::vector<std::pair<raft::Message, storage::Status>> filled_snapshots;
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    filled_snapshots.swap(in_filled_snapshots_);
    directory_changed = in_directory_changed_;
    in_directory_changed_ = false;
    group_change_dones.swap(in_group_change_dones_);
    messages.swap(in_messages_);
    proposals.swap(in_proposals_);
    reads.swap(in_reads_);
    group_infos.swap(in_group_infos_);
    group_compactions.swap(in_group_compactions_);
    unreachable.swap(in_unreachable_);
    transfer = transfer_requested_;
    transfer_requested_ = false;
    for (auto& t : in_transfers_)
      transfers_.push_back(std::move(t));
    in_transfers_.clear();
    conf_requests.swap(in_conf_changes_);
    snapshots.swap(in_snapshots_);
    fetched.swap(in_fetched_);
  }
  // Time first, once the inbox is taken: every tick due by now (after an fdatasync stall or a
  // paused process, all the ticks missed) is delivered before anything taken is stepped, so a
  // read is judged against a lease aged by all the real time that passed before it arrived
  // (raft.h, tick()).
  *now = Clock::now();
  *tick_due = engine_.on_clock(clock_us(*now)) > 0;
  for (FetchResult& f : fetched) {
    fetching_ = false;
    if (fetch_thread_.joinable()) fetch_thread_.join();  // it has handed over its result
    if (f.status.is_ok()) {
      staged_ = std::move(f.receiver);
      staged_index_ = f.index;
    } else {
      log(LogLevel::kWarn, "fetching the leader's store for the snapshot at index " +
                               std::to_string(f.index) + " failed: " + f.status.to_string() +
                               "; retrying in 1 s");
      next_fetch_ = Clock::now() + std::chrono::seconds(1);
    }
  }
  for (const raft::Snapshot& snap : snapshots) {
    // The store is flushed through the snapshot's index, so the log may let go of what is
    // before it, keeping catch_up_entries for followers slightly behind.
    Status st =
        wal_->compact(kGroup, snap, kv::compact_index(snap.metadata.index, options_.snapshots));
    if (!st.is_ok()) {
      fail_fatal("write-ahead log compaction: " + st.to_string());
      for (auto& [group, r] : reads)
        r(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
      for (auto& f : group_infos)
        f(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped), {});
      for (auto& answer : group_change_dones)
        answer();
      return;
    }
  }
  if (group_compactions) {
    group_compaction_in_flight_ = false;
    compact_groups(std::move(*group_compactions));
  }
  if (!conf_requests.empty()) start_conf_changes(std::move(conf_requests));
  const uint64_t now_us = clock_us(*now);

  std::set<raft::GroupId> snapshot_groups;
  for (auto& m : messages) {
    if (m.group == kGroup && hold_snapshot_message(m)) continue;
    if (m.group != kGroup && m.type == raft::MessageType::kSnap &&
        (m.snapshot == nullptr || !kv::GroupStore::valid_export(m.snapshot->data) ||
         kv::GroupStore::export_index(m.snapshot->data) < m.snapshot->metadata.index)) {
      // A data group's snapshot carries the group's state, at or after the snapshot's index
      // (the log then starts after that index); one that does not is refused here, before the
      // core could accept it.
      log(LogLevel::kWarn, "group " + std::to_string(m.group) + ": a malformed snapshot from " +
                               hex_id(m.from) + " refused");
      continue;
    }
    // A malformed or stray message, or one for a group not here, is the peer's problem; the
    // core refuses it safely. Any message counts as hearing from its sender (member liveness).
    const raft::GroupId group = m.group;
    // A follower's answer is what makes a leader send it entries, or a snapshot: one older than
    // a member it added makes the leader ask for a newer one (raft.h, take_snapshot_request).
    const bool answer =
        m.type == raft::MessageType::kAppResp || m.type == raft::MessageType::kHeartbeatResp;
    (void)engine_.step(std::move(m), now_us);
    if (answer && group != kGroup) {
      engine::Replica* r = engine_.find(group);
      if (r != nullptr && r->take_snapshot_request()) snapshot_groups.insert(group);
    }
  }
  if (!snapshot_groups.empty()) record_group_snapshots(snapshot_groups);
  if (!filled_snapshots.empty()) send_filled_snapshots(std::move(filled_snapshots));
  for (raft::NodeId id : unreachable) {
    replica_->report_unreachable(id);
    // Only the data groups led here and awake: a quiesced leader sends nothing, so nothing of
    // its was lost (and the report would wake it).
    for (raft::GroupId g : groups_led_) {
      engine::Replica* r = engine_.find(g);
      if (!r->quiesced() && r->core().is_member(id)) r->report_unreachable(id);
    }
  }
  for (auto& p : proposals) {
    engine::Replica* target = p.group == kGroup ? replica_ : engine_.find(p.group);
    if (target == nullptr) {
      finish_proposal(p.request_id, rpc_error(RpcCode::kNotFound, not_hosted(p.group)),
                      kv::Response{});
      continue;
    }
    raft::Error err = target->propose(std::move(p.data));
    if (err == raft::Error::kOk) continue;
    RpcError e = err == raft::Error::kNoLeader
                     ? rpc_error(RpcCode::kUnavailable, rpc_errors::kNoLeader)
                 : err == raft::Error::kEntryTooLarge
                     ? rpc_error(RpcCode::kInvalidArgument, rpc_errors::kTooLarge)
                 : err == raft::Error::kUncommittedLimit
                     ? rpc_error(RpcCode::kResourceExhausted, rpc_errors::kTooManyRequests)
                     : rpc_error(RpcCode::kUnavailable, rpc_errors::kLeaderChanged);
    finish_proposal(p.request_id, e, kv::Response{});
  }
  if (!reads.empty()) start_reads(now_us, std::move(reads));
  if (!group_infos.empty()) answer_group_infos(std::move(group_infos));
  if (transfer && replica_->core().role() == raft::Role::kLeader) {
    raft::Status st = replica_->core().status();
    raft::NodeId best = raft::kNoNode;
    raft::Index best_match = 0;
    for (const auto& [id, pr] : st.progress) {
      if (id == options_.id || pr.is_learner) continue;
      if (best == raft::kNoNode || pr.match > best_match) {
        best = id;
        best_match = pr.match;
      }
    }
    if (best != raft::kNoNode) (void)replica_->transfer_leader(best);
  }
  // Last, so that everything taken above is answered whatever happens here.
  if (directory_changed) reconcile_groups(now_us);
  for (auto& answer : group_change_dones)
    answer();
}

void Node::expire_requests(Clock::time_point now) {
  for (auto it = groups_reading_.begin(); it != groups_reading_.end();) {
    engine::Replica* r = engine_.find(*it);
    for (uint64_t token : r->expire_reads(clock_us(now)))
      fail_reader(token, rpc_errors::kTimeout);
    it = r->reads_waiting() == 0 ? groups_reading_.erase(it) : std::next(it);
  }
  for (auto it = conf_waiters_.begin(); it != conf_waiters_.end();) {
    if (it->deadline <= now) {
      Done done = std::move(it->done);
      it = conf_waiters_.erase(it);
      done(rpc_error(RpcCode::kUnavailable, rpc_errors::kTimeout));
    } else {
      ++it;
    }
  }
  std::vector<ProposeDone> expired;
  {
    std::lock_guard<std::mutex> lk(waiters_mu_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.deadline <= now) {
        expired.push_back(std::move(it->second.done));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  proposals_failed_ += expired.size();
  for (auto& d : expired)
    d(rpc_error(RpcCode::kUnavailable, rpc_errors::kTimeout), kv::Response{});
}

void Node::propose_lease_revokes() {
  std::vector<int64_t> expired;
  int64_t now = now_ms();
  {
    std::lock_guard<std::mutex> lk(lessor_mu_);
    expired = lessor_.expired(now, kMaxRevokesPerTick);
  }
  auto t = Clock::now();
  for (int64_t id : expired) {
    auto it = revokes_in_flight_.find(id);
    if (it != revokes_in_flight_.end() && t < it->second + kRevokeRetry) continue;
    revokes_in_flight_[id] = t;
    kv::Command c;
    c.log_time_ms = now;
    c.op = kv::LeaseRevokeRequest{id};
    std::string data =
        encode_proposal(ProposalHeader{ProposalKind::kCommand, 0, 0}, kv::encode_command(c));
    (void)replica_->propose(std::move(data));
  }
}

void Node::propose_lease_checkpoints() {
  // At most etcd's batch of checkpoints per entry; the rest follow on the next ticks.
  constexpr size_t kMaxCheckpointsPerEntry = 1000;
  kv::LeaseCheckpointRequest cp;
  {
    std::lock_guard<std::mutex> lk(lessor_mu_);
    cp.checkpoints = lessor_.due_checkpoints(now_ms(), options_.lease_checkpoint_interval_ms,
                                             kMaxCheckpointsPerEntry);
  }
  if (cp.checkpoints.empty()) return;
  kv::Command c;
  c.log_time_ms = now_ms();
  c.op = std::move(cp);
  (void)replica_->propose(
      encode_proposal(ProposalHeader{ProposalKind::kCommand, 0, 0}, kv::encode_command(c)));
}

void Node::publish_attributes() {
  MemberAttributes a{options_.id, options_.name, options_.client_urls};
  std::string data = encode_proposal(ProposalHeader{ProposalKind::kMemberAttributes, 0, 0},
                                     encode_member_attributes(a));
  // Retried every tick until it is applied (apply_loop sets published_ through the member
  // table), so a proposal lost in an election is proposed again.
  (void)replica_->propose(std::move(data));
  std::lock_guard<std::mutex> lk(members_mu_);
  auto it = members_.find(options_.id);
  if (it != members_.end() && it->second.name == options_.name &&
      it->second.client_urls == options_.client_urls) {
    published_ = true;
  }
}

void Node::check_quota() {
  if (options_.quota_backend_bytes <= 0 || leader_ == 0) return;
  if (store_->size_bytes() <= static_cast<uint64_t>(options_.quota_backend_bytes)) return;
  {
    std::lock_guard<std::mutex> lk(alarms_mu_);
    for (const Alarm& a : alarms_) {
      if (a.member == options_.id && a.type == AlarmType::kNoSpace) return;
    }
  }
  // Raised through the log so every member refuses writes alike; cleared by an operator
  // (etcdctl alarm disarm) once space has been reclaimed.
  AlarmChange change{true, options_.id, AlarmType::kNoSpace};
  std::string data =
      encode_proposal(ProposalHeader{ProposalKind::kAlarm, 0, 0}, encode_alarm_change(change));
  (void)replica_->propose(std::move(data));
}

void Node::check_transfers() {
  auto now = Clock::now();
  for (auto it = transfers_.begin(); it != transfers_.end();) {
    Transfer& t = *it;
    RpcError result;
    bool finished = false;
    if (!t.started) {
      t.started = true;
      if (replica_->core().role() != raft::Role::kLeader) {
        result = rpc_error(RpcCode::kFailedPrecondition, rpc_errors::kNotLeader);
        finished = true;
      } else if (t.target == options_.id) {
        finished = true;  // already there
      } else {
        raft::Status st = replica_->core().status();
        auto pr = st.progress.find(t.target);
        if (pr == st.progress.end() || pr->second.is_learner) {
          result = rpc_error(RpcCode::kFailedPrecondition, rpc_errors::kBadTransferee);
          finished = true;
        } else if (replica_->transfer_leader(t.target) != raft::Error::kOk) {
          result = rpc_error(RpcCode::kFailedPrecondition, rpc_errors::kBadTransferee);
          finished = true;
        }
      }
    } else if (leader_.load() == t.target) {
      finished = true;
    } else if (now >= t.deadline) {
      result = rpc_error(RpcCode::kDeadlineExceeded, rpc_errors::kTransferTimeout);
      finished = true;
    }
    if (finished) {
      Done done = std::move(t.done);
      it = transfers_.erase(it);
      done(result);
    } else {
      ++it;
    }
  }
}

void Node::start_reads(uint64_t now_us, std::vector<std::pair<raft::GroupId, ReadDone>>&& reads) {
  std::set<raft::GroupId> started;
  for (auto& [group, done] : reads) {
    engine::Replica* r = group == kGroup ? replica_ : engine_.find(group);
    if (r == nullptr) {
      done(rpc_error(RpcCode::kNotFound, not_hosted(group)));
      continue;
    }
    uint64_t token = next_reader_++;
    readers_.emplace(token, std::move(done));
    r->read(token);
    started.insert(group);
  }
  const uint64_t deadline = now_us + static_cast<uint64_t>(options_.request_timeout_ms) * 1000;
  for (raft::GroupId g : started) {
    engine::Replica* r = g == kGroup ? replica_ : engine_.find(g);
    // Every read of the group that arrived since the last turn shares one ReadIndex round.
    for (uint64_t token : r->start_reads(deadline))
      fail_reader(token, rpc_errors::kNoLeader);
    if (r->reads_waiting() > 0) groups_reading_.insert(g);
  }
}

std::vector<Node::ReadDone> Node::take_readers(const std::vector<uint64_t>& tokens) {
  std::vector<ReadDone> out;
  for (uint64_t token : tokens) {
    auto it = readers_.find(token);
    if (it == readers_.end()) continue;
    out.push_back(std::move(it->second));
    readers_.erase(it);
  }
  return out;
}

void Node::fail_reader(uint64_t token, const char* message) {
  auto it = readers_.find(token);
  if (it == readers_.end()) return;
  ReadDone done = std::move(it->second);
  readers_.erase(it);
  done(rpc_error(RpcCode::kUnavailable, message));
}

void Node::handle_ready() {
  std::vector<raft::GroupId> damaged;
  const std::vector<engine::GroupRound>& rounds = engine_.begin_round(&damaged);
  if (!damaged.empty()) {
    fail_on_damaged_log();
    return;
  }
  for (const engine::GroupRound& g : rounds) {
    if (g.replica->group() != kGroup) {
      if (!start_data_round(*g.replica, *g.round)) return;
      continue;
    }
    if (!start_group_round(*g.round)) return;
  }
  if (engine_.must_write()) {
    // Every group's records in one batch: one write, and one fdatasync for all.
    storage::WalBatch batch;
    engine_.append_to(&batch);
    Status st;
    if (engine_.must_sync()) {
      auto sync_start = Clock::now();
      st = wal_->commit(batch);
      if (options_.observe_wal_sync) {
        options_.observe_wal_sync(std::chrono::duration<double>(Clock::now() - sync_start).count());
      }
    } else {
      // Only commit indexes moved: written, and made durable by the next fdatasync. A store
      // that applied past the commit index the log recovers after a power cut is tolerated:
      // replay skips what the store holds.
      st = wal_->write(batch);
    }
    if (!st.is_ok()) {
      fail_fatal("write-ahead log: " + st.to_string());
      return;
    }
  }
  for (const engine::GroupRound& g : rounds) {
    if (g.replica->group() == kGroup && g.round->hard_state) {
      term_ = g.round->hard_state->term;
      commit_ = g.round->hard_state->commit;
    }
  }
  std::vector<std::pair<raft::GroupId, engine::RoundResult>> results;
  engine_.finish_round(&results);
  for (auto& [group, out] : results) {
    if (group == kGroup) {
      finish_group_round(out);
    } else {
      finish_data_round(group, out);
    }
    if (failed_) return;
  }
}

bool Node::start_group_round(engine::Round& round) {
  if (round.soft_state) {
    raft::NodeId lead = round.soft_state->lead;
    bool was_leader = is_leader();
    if (lead != leader_.load()) {
      if (lead != raft::kNoNode) ++leader_changes_;
      leader_ = lead;
    }
    bool now_leader = round.soft_state->role == raft::Role::kLeader;
    if (now_leader != was_leader) {
      std::lock_guard<std::mutex> lk(lessor_mu_);
      if (now_leader) {
        lessor_.promote(now_ms());
      } else {
        lessor_.demote();
      }
      revokes_in_flight_.clear();
    }
  }
  // A leader's appends leave before its own fdatasync, which then overlaps the followers'.
  if (!round.early_messages.empty()) send(std::move(round.early_messages));
  // A snapshot from the leader: the store is replaced first, then the log records the
  // snapshot. A crash in between leaves a store ahead of the log, which replay tolerates
  // (kv/snapshots.h).
  return round.snapshot == nullptr || install_snapshot(*round.snapshot);
}

void Node::send(std::vector<raft::Message>&& messages) {
  for (raft::Message& m : messages) {
    if (m.type == raft::MessageType::kSnap && m.group == kGroup) m.context = new_fetch_ticket();
  }
  sink_->send(std::move(messages));
}

void Node::finish_group_round(engine::RoundResult& out) {
  if (!out.messages.empty()) send(std::move(out.messages));
  ApplyItem item;
  for (const engine::AppliedConf& c : out.confs) {
    apply_member_change(c);
    item.confs.push_back(c.conf);
  }
  if (!out.error.empty()) {
    fail_fatal(out.error);
    return;
  }
  item.entries = std::move(out.committed);
  bool has_entries = !item.entries.empty();
  if (has_entries) proposals_committed_ += item.entries.size();
  std::vector<ApplyItem> reads;
  for (engine::ReadPoint& p : out.reads) {
    ApplyItem r;
    r.read_index = p.index;
    r.readers = take_readers(p.readers);
    if (!r.readers.empty()) reads.push_back(std::move(r));
  }
  if (has_entries || !reads.empty()) {
    {
      std::lock_guard<std::mutex> lk(apply_mu_);
      if (has_entries) apply_queue_.push_back(std::move(item));
      for (auto& r : reads)
        apply_queue_.push_back(std::move(r));
    }
    apply_cv_.notify_one();
  }
}

void Node::apply_member_change(const engine::AppliedConf& applied) {
  const raft::ConfChange* cc = &applied.change;
  const raft::ConfState& conf = applied.conf;
  // The member table follows the configuration the core reports: a change the core ignored
  // (invalid, the same on every replica) changes nothing here either.
  std::set<raft::NodeId> ids;
  for (const auto* list :
       {&conf.voters, &conf.voters_outgoing, &conf.learners, &conf.learners_next})
    ids.insert(list->begin(), list->end());
  std::optional<MemberContext> ctx;
  if (!cc->context.empty()) ctx = decode_member_context(cc->context);
  bool self_removed = false;
  {
    std::lock_guard<std::mutex> lk(members_mu_);
    for (auto it = members_.begin(); it != members_.end();) {
      if (ids.count(it->first) != 0) {
        ++it;
        continue;
      }
      removed_.insert(it->first);
      if (it->first == options_.id) {
        self_removed = true;
      } else {
        sink_->remove_peer(it->first);
      }
      it = members_.erase(it);
    }
    for (const raft::ConfChangeSingle& ch : cc->changes) {
      if (ch.type == raft::ConfChangeType::kRemoveNode || ids.count(ch.node) == 0) continue;
      MemberInfo& m = members_[ch.node];
      m.id = ch.node;
      if (ctx) {
        if (!ctx->name.empty()) m.name = ctx->name;
        if (!ctx->peer_urls.empty()) m.peer_urls = ctx->peer_urls;
      }
      if (ch.node != options_.id && !m.peer_urls.empty()) sink_->set_peer(ch.node, m.peer_urls);
    }
    for (auto& [id, m] : members_) {
      m.is_learner =
          std::find(conf.learners.begin(), conf.learners.end(), id) != conf.learners.end();
    }
    auto self = members_.find(options_.id);
    is_learner_ = self != members_.end() && self->second.is_learner;
    ++members_version_;
  }
  for (auto it = conf_waiters_.begin(); it != conf_waiters_.end(); ++it) {
    if (it->cc.changes == cc->changes) {
      Done done = std::move(it->done);
      conf_waiters_.erase(it);
      done(RpcError{});
      break;
    }
  }
  if (self_removed) {
    // As etcd: a removed member stops for good rather than disturb the cluster it left.
    fail_fatal("this member was removed from the cluster");
  }
}

void Node::change_membership(const raft::ConfChange& cc, bool check_learner_ready, Done done) {
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    if (!stopping_) {
      in_conf_changes_.push_back(
          ConfRequest{cc, check_learner_ready, std::move(done),
                      Clock::now() + std::chrono::milliseconds(options_.request_timeout_ms)});
      done = nullptr;
    }
  }
  if (done) {
    done(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
    return;
  }
  inbox_cv_.notify_one();
}

bool Node::member_removed(raft::NodeId id) const {
  std::lock_guard<std::mutex> lk(members_mu_);
  return removed_.count(id) != 0;
}

void Node::start_conf_changes(std::vector<ConfRequest>&& requests) {
  for (ConfRequest& r : requests) {
    if (r.check_learner_ready) {
      // etcd promotes a learner only once it holds 90% of the leader's log, so the promotion
      // cannot leave the cluster waiting on a voter far behind. Only the leader can tell.
      if (replica_->core().role() != raft::Role::kLeader) {
        r.done(rpc_error(RpcCode::kFailedPrecondition, rpc_errors::kNotLeader));
        continue;
      }
      raft::Status st = replica_->core().status();
      raft::NodeId id = r.cc.changes.empty() ? 0 : r.cc.changes.front().node;
      auto pr = st.progress.find(id);
      if (pr == st.progress.end() || !pr->second.is_learner) {
        r.done(rpc_error(RpcCode::kFailedPrecondition, rpc_errors::kMemberNotLearner));
        continue;
      }
      if (static_cast<double>(pr->second.match) < 0.9 * static_cast<double>(st.last_index)) {
        r.done(rpc_error(RpcCode::kFailedPrecondition, rpc_errors::kLearnerNotReady));
        continue;
      }
    }
    raft::Error err = replica_->propose_conf_change(r.cc);
    if (err == raft::Error::kOk) {
      conf_waiters_.push_back(std::move(r));
    } else if (err == raft::Error::kNoLeader) {
      r.done(rpc_error(RpcCode::kUnavailable, rpc_errors::kNoLeader));
    } else if (err == raft::Error::kConfChangePending) {
      r.done(rpc_error(RpcCode::kUnavailable, rpc_errors::kConfChangePending));
    } else {
      r.done(rpc_error(RpcCode::kFailedPrecondition,
                       std::string("etcdserver: ") + raft::to_string(err)));
    }
  }
}

void Node::apply_peer_urls(const MemberPeerUrls& u) {
  std::lock_guard<std::mutex> lk(members_mu_);
  auto it = members_.find(u.id);
  if (it == members_.end() || u.peer_urls.empty()) return;
  it->second.peer_urls = u.peer_urls;
  if (u.id != options_.id) sink_->set_peer(u.id, u.peer_urls);
}

void Node::update_peer_urls(const MemberPeerUrls& u, Done done) {
  propose_envelope(ProposalKind::kMemberPeerUrls, encode_member_peer_urls(u),
                   [done = std::move(done)](const RpcError& e, kv::Response&&) { done(e); });
}

void Node::apply_alarm(const AlarmChange& change) {
  std::lock_guard<std::mutex> lk(alarms_mu_);
  auto same = [&](const Alarm& a) { return a.member == change.member && a.type == change.type; };
  auto it = std::find_if(alarms_.begin(), alarms_.end(), same);
  if (change.activate && it == alarms_.end()) alarms_.push_back(Alarm{change.member, change.type});
  if (!change.activate && it != alarms_.end()) alarms_.erase(it);
  refresh_alarm_types();
}

}  // namespace chorus::server
