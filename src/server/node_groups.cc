// Data groups: Raft groups beside the etcd group, hosted on the same engine (one log, one round
// and one fdatasync for all), each with a plain key-value state machine under its own prefix of
// one shared RocksDB, applied on the groups' own apply thread.
#include <algorithm>
#include <optional>
#include <tuple>
#include <unordered_map>

#include "base/thread_name.h"
#include "engine/reshape.h"
#include "server/log.h"
#include "server/node.h"

namespace chorus::server {

using Clock = std::chrono::steady_clock;
using storage::Status;

namespace {

// Committed entries of data groups waiting for the groups' apply thread beyond which writes are
// refused (etcd allows 5,000 between commit and apply for its one group).
constexpr uint64_t kMaxGroupApplyBacklog = 50'000;
// A data group's snapshot travels in one Raft message, within a transport frame (64 MiB):
// a group holding more cannot be snapshotted yet (a stream of its own comes later).
constexpr size_t kMaxGroupSnapshotBytes = 32u << 20;
// A data group's log starts after a snapshot at this index and term (storage::Wal::bootstrap).
constexpr raft::Index kDataGroupStart = 1;

// A snapshot record of the replica's group at `at` (an index its core has applied, so its
// configuration is the core's), compacting its log to `compact_to` (0: nothing).
std::optional<storage::WalCompaction> snapshot_record(const engine::Replica& r, raft::Index at,
                                                      raft::Index compact_to) {
  storage::WalCompaction c;
  c.group = r.group();
  c.snapshot.metadata.index = at;
  if (r.core().log().term(at, &c.snapshot.metadata.term) != raft::Error::kOk) return std::nullopt;
  c.snapshot.metadata.conf_state = r.core().status().config;
  c.compact_to = compact_to;
  return c;
}

}  // namespace

std::string Node::not_hosted(raft::GroupId group) {
  return "chorus: no replica of group " + std::to_string(group) + " on this member";
}

Status Node::create_initial_groups() {
  if (!options_.new_cluster || options_.initial_groups == 0) return Status::ok();
  std::vector<raft::NodeId> ids;
  for (const InitialMember& m : options_.initial_members)
    ids.push_back(m.id);
  std::vector<std::pair<raft::GroupId, raft::ConfState>> mine;
  for (raft::GroupId g = 2; g < 2 + raft::GroupId{options_.initial_groups}; ++g) {
    std::vector<raft::NodeId> voters = initial_placement(g, ids);
    if (std::find(voters.begin(), voters.end(), options_.id) == voters.end()) continue;
    if (voters.front() == options_.id) campaign_at_start_.push_back(g);
    // Created already by a first start that stopped before the etcd group's creation.
    if (wal_->group(g) != nullptr) continue;
    raft::ConfState cs;
    cs.voters = voters;
    std::sort(cs.voters.begin(), cs.voters.end());
    mine.emplace_back(g, std::move(cs));
  }
  // Every group's creation in one write and one fdatasync.
  return wal_->bootstrap(mine, kDataGroupStart);
}

Status Node::open_groups() {
  const std::string member_dir = storage::join_path(options_.data_dir, "member");
  // Always open: a group created on the running cluster may place a replica here at any time.
  CHORUS_RETURN_IF_ERROR(
      kv::GroupStore::open(storage::join_path(member_dir, "groups"), &group_store_));
  for (raft::GroupId g : wal_->groups()) {
    if (g != kGroup) data_groups_.push_back(g);
  }
  // State of a group with no log here: its replica was removed (the log's removal is written
  // first) and a crash came before its data went. A log is always created before any state.
  for (raft::GroupId g : group_store_->group_ids()) {
    if (wal_->group(g) != nullptr) continue;
    CHORUS_RETURN_IF_ERROR(group_store_->drop(g));
    log(LogLevel::kInfo, "group " + std::to_string(g) + ": dropped the state of a removed replica");
  }
  uint64_t now = clock_us(Clock::now());
  for (raft::GroupId g : data_groups_) {
    // The store records an index applied only once its entry was durable in the log: a store
    // ahead of the log means the log lost entries (a damaged tail cut away), and replaying what
    // the log now holds at those indexes would be skipped as already applied.
    // The one exception: a snapshot installed brought a state ahead of the snapshot's index.
    const raft::Index applied = group_store_->applied_index(g);
    if (applied > wal_->group(g)->last_index() && applied != group_store_->installed_index(g)) {
      return Status::corruption(
          "group " + std::to_string(g) + ": the store in " + member_dir + "/groups applied index " +
          std::to_string(group_store_->applied_index(g)) + ", past the log's last entry " +
          std::to_string(wal_->group(g)->last_index()) + " (the log lost entries)");
    }
    host_group(g, now);
  }
  if (!data_groups_.empty())
    log(LogLevel::kInfo, "hosting " + std::to_string(data_groups_.size()) + " data groups");
  return Status::ok();
}

void Node::host_group(raft::GroupId g, uint64_t now_us) {
  raft::Config c;
  c.id = options_.id;
  c.group = g;
  c.storage = wal_->group(g);
  c.election_ticks = options_.election_ticks;
  c.heartbeat_ticks = 1;
  c.pre_vote = true;
  c.check_quorum = true;
  c.quiesce = options_.quiesce_groups;
  c.max_entry_bytes = std::max<uint64_t>(options_.max_request_bytes + 4096, 1 << 20);
  // Every committed entry the log still holds replays after a restart; the store skips those
  // it holds. Randomness differs per group, so that groups started together do not time out
  // together.
  c.seed = (options_.id * 0x9e3779b97f4a7c15ull) ^ (g * 0xbf58476d1ce4e5b9ull) ^
           static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  engine::ReplicaOptions ro;
  ro.raft = c;
  ro.tick_us = static_cast<uint64_t>(options_.tick_ms) * 1000;
  ro.first_read_context = first_read_context_;
  engine_.add(ro, now_us);
}

bool Node::hosts_group(raft::GroupId group) const {
  std::shared_lock lk(hosted_mu_);
  return std::binary_search(data_groups_.begin(), data_groups_.end(), group);
}

uint32_t Node::initial_group_count() const {
  std::lock_guard<std::mutex> lk(directory_mu_);
  return directory_.initial_count();
}

std::vector<GroupDescriptor> Node::group_directory() const {
  std::lock_guard<std::mutex> lk(directory_mu_);
  std::vector<GroupDescriptor> out;
  directory_.for_each([&out](const GroupDescriptor& d) { out.push_back(d); });
  return out;
}

void Node::create_group(raft::GroupId id, std::vector<raft::NodeId> replicas,
                        GroupChangeDone done) {
  auto refuse = [&done](std::string why) {
    done(rpc_error(RpcCode::kInvalidArgument, std::move(why)), GroupDescriptor{});
  };
  if (id == kGroup) {  // 0 asks for the next free id
    return refuse("chorus: group " + std::to_string(id) +
                  " is not a data group (data groups are numbered from 2)");
  }
  std::vector<MemberInfo> all = members();
  std::vector<raft::NodeId> voters;
  for (const MemberInfo& m : all) {
    if (!m.is_learner) voters.push_back(m.id);
  }
  if (replicas.empty()) {
    // Placement: the members holding the fewest replicas; among them first, the one that is
    // the first replica (the one campaigning at creation) of the fewest groups.
    std::map<raft::NodeId, std::pair<size_t, size_t>> load;  // replicas, first replicas
    for (raft::NodeId v : voters)
      load[v] = {0, 0};
    {
      std::lock_guard<std::mutex> lk(directory_mu_);
      directory_.for_each([&load](const GroupDescriptor& d) {
        for (size_t i = 0; i < d.replicas.size(); ++i) {
          auto it = load.find(d.replicas[i]);
          if (it == load.end()) continue;
          ++it->second.first;
          if (i == 0) ++it->second.second;
        }
      });
    }
    std::vector<raft::NodeId> order = voters;
    std::sort(order.begin(), order.end(), [&load](raft::NodeId a, raft::NodeId b) {
      return std::tie(load[a].first, load[a].second, a) <
             std::tie(load[b].first, load[b].second, b);
    });
    order.resize(std::min(order.size(), kReplicasPerGroup));
    std::stable_sort(order.begin(), order.end(), [&load](raft::NodeId a, raft::NodeId b) {
      return load[a].second < load[b].second;
    });
    replicas = order;
  }
  if (replicas.empty()) return refuse("chorus: the cluster has no voting member yet");
  std::set<raft::NodeId> seen;
  for (raft::NodeId r : replicas) {
    if (!seen.insert(r).second)
      return refuse("chorus: member " + hex_id(r) + " is listed twice among the replicas");
    if (std::find(voters.begin(), voters.end(), r) == voters.end())
      return refuse("chorus: member " + hex_id(r) + " is not a voting member of the cluster");
  }
  propose_group_change(GroupChange{GroupChange::Op::kCreate, id, std::move(replicas), 0},
                       std::move(done));
}

void Node::delete_group(raft::GroupId id, GroupChangeDone done) {
  {
    std::lock_guard<std::mutex> lk(directory_mu_);
    if (!directory_.find(id)) {
      done(rpc_error(RpcCode::kNotFound, "chorus: no group " + std::to_string(id)),
           GroupDescriptor{});
      return;
    }
  }
  propose_group_change(GroupChange{GroupChange::Op::kDelete, id, {}, 0}, std::move(done));
}

void Node::add_group_replica(raft::GroupId id, raft::NodeId member, GroupChangeDone done) {
  bool voter = false;
  for (const MemberInfo& m : members()) {
    if (m.id == member && !m.is_learner) voter = true;
  }
  if (!voter) {
    done(rpc_error(RpcCode::kInvalidArgument,
                   "chorus: member " + hex_id(member) + " is not a voting member of the cluster"),
         GroupDescriptor{});
    return;
  }
  propose_group_change(GroupChange{GroupChange::Op::kAddReplica, id, {member}, 0}, std::move(done));
}

void Node::remove_group_replica(raft::GroupId id, raft::NodeId member, GroupChangeDone done) {
  propose_group_change(GroupChange{GroupChange::Op::kRemoveReplica, id, {member}, 0},
                       std::move(done));
}

void Node::propose_group_change(const GroupChange& change, GroupChangeDone done) {
  uint64_t request_id = next_request_id_.fetch_add(1);
  {
    std::lock_guard<std::mutex> lk(waiters_mu_);
    group_change_waiters_.emplace(request_id, std::move(done));
  }
  // Errors, timeouts and a stop come through the ordinary waiter; an applied change takes the
  // answer out of group_change_waiters_ first (apply_loop).
  submit(request_id,
         encode_proposal(ProposalHeader{ProposalKind::kGroupChange, options_.id, request_id},
                         encode_group_change(change)),
         [this, request_id](const RpcError& e, kv::Response&&) {
           GroupChangeDone d;
           {
             std::lock_guard<std::mutex> lk(waiters_mu_);
             auto it = group_change_waiters_.find(request_id);
             if (it == group_change_waiters_.end()) return;
             d = std::move(it->second);
             group_change_waiters_.erase(it);
           }
           d(e, GroupDescriptor{});
         });
}

RpcError Node::apply_group_change(const GroupChange& c, raft::Index index,
                                  GroupDescriptor* result) {
  std::lock_guard<std::mutex> lk(directory_mu_);
  // An entry the directory already reflects: committed before a snapshot installed since, and
  // still queued. Applying it again would, for one, give a second id to the same creation.
  if (index <= directory_index_) {
    return rpc_error(RpcCode::kUnavailable,
                     "chorus: the change arrived with a snapshot of the directory; look it up");
  }
  directory_index_ = index;
  return directory_.apply(c, result);
}

void Node::reconcile_groups(uint64_t now_us) {
  std::vector<GroupDescriptor> mine;    // placed here, no replica yet
  std::vector<raft::GroupId> deleted;   // deleted, data not dropped yet in this life
  std::vector<raft::GroupId> departed;  // this member left the group, its replica is still here
  std::set<raft::GroupId> gone_here;    // of those, the ones the group's leader reported gone
  {
    std::lock_guard<std::mutex> lk(directory_mu_);
    directory_.for_each([&](const GroupDescriptor& d) {
      const raft::GroupId id = d.id;
      const bool placed =
          std::find(d.replicas.begin(), d.replicas.end(), options_.id) != d.replicas.end();
      const bool here = engine_.find(id) != nullptr;
      if (placed && !here && directory_current_) mine.push_back(d);
      if (!placed && here &&
          std::find(d.removed.begin(), d.removed.end(), options_.id) != d.removed.end()) {
        departed.push_back(id);
        if (std::find(d.gone.begin(), d.gone.end(), options_.id) != d.gone.end())
          gone_here.insert(id);
      }
      if (placed || std::find(d.removed.begin(), d.removed.end(), options_.id) != d.removed.end())
        groups_reshaping_.insert(id);  // its leader, if here, matches its configuration
    });
    for (raft::GroupId g : directory_.deleted_ids()) {
      if (!groups_dropped_.contains(g)) deleted.push_back(g);
    }
  }
  // New replicas, in one write and one fdatasync. A founder is created with the group's first
  // configuration, its log starting after index 1 (also when created late: the leader still
  // holds every entry since, as a group quiesces, and only then compacts, once every replica
  // holds its whole log). A replica added later starts empty, with no configuration: it cannot
  // campaign, and its leader catches it up with a snapshot, the only way to index 1.
  std::vector<std::pair<raft::GroupId, raft::ConfState>> founded;
  std::vector<std::pair<raft::GroupId, raft::ConfState>> joining;
  for (const GroupDescriptor& d : mine) {
    if (std::find(d.founders.begin(), d.founders.end(), options_.id) != d.founders.end()) {
      raft::ConfState cs;
      cs.voters = d.founders;
      std::sort(cs.voters.begin(), cs.voters.end());
      founded.emplace_back(d.id, std::move(cs));
    } else {
      joining.emplace_back(d.id, raft::ConfState{});
    }
  }
  Status st = wal_->bootstrap(founded, kDataGroupStart);
  if (st.is_ok()) st = wal_->bootstrap(joining);
  if (!st.is_ok()) {
    fail_fatal("creating data groups in the write-ahead log: " + st.to_string());
    return;
  }
  for (const GroupDescriptor& d : mine) {
    host_group(d.id, now_us);
    if (d.founders.front() == options_.id && d.replicas.front() == options_.id)
      (void)engine_.find(d.id)->campaign();
  }
  // Replicas that go: those of deleted groups at once; those of groups this member left once
  // the group's configuration no longer holds it (its leader removed it), so the group never
  // counts on a vote that is gone. Their data goes on the groups' apply thread, after every
  // entry queued before. After a restart, every deleted group's data is dropped once more (a
  // no-op unless a crash came between the log's removal and the store's).
  std::vector<raft::GroupId> removed;  // replicas removed here now
  std::vector<raft::GroupId> to_drop;  // groups whose data goes
  auto remove_replica = [&](raft::GroupId g) {
    engine::Replica* r = engine_.find(g);
    // Reads waiting in the replica's ReadIndex rounds are answered, not forgotten.
    for (uint64_t token : r->expire_reads(UINT64_MAX))
      fail_reader(token, rpc_errors::kStopped);
    // The raft thread reconciles between rounds, where a replica can always go; were a round
    // open, its log would have to stay for the round's records.
    if (!engine_.remove(g)) {
      fail_fatal("group " + std::to_string(g) + ": removal attempted during a round");
      return false;
    }
    Status rs = wal_->remove(g);
    if (!rs.is_ok()) {
      fail_fatal("removing group " + std::to_string(g) +
                 " from the write-ahead log: " + rs.to_string());
      return false;
    }
    groups_led_.erase(g);
    groups_reading_.erase(g);
    removed.push_back(g);
    // Writes proposed here and not applied yet never will be, here: they fail now rather than
    // at their timeout (one of them may still commit elsewhere, as after any failed answer).
    std::vector<ProposeDone> orphans;
    {
      std::lock_guard<std::mutex> lk(waiters_mu_);
      for (auto w = waiters_.begin(); w != waiters_.end();) {
        if (w->second.group == g) {
          orphans.push_back(std::move(w->second.done));
          w = waiters_.erase(w);
        } else {
          ++w;
        }
      }
    }
    for (ProposeDone& done : orphans)
      done(rpc_error(RpcCode::kNotFound, not_hosted(g)), kv::Response{});
    return true;
  };
  for (raft::GroupId g : deleted) {
    if (engine_.find(g) != nullptr && !remove_replica(g)) return;
    to_drop.push_back(g);
    groups_dropped_.insert(g);
  }
  for (raft::GroupId g : departed) {
    // Its removal applied here, or reported by the group's leader (this member may have been
    // cut off when it happened, and a group does not talk to members it removed).
    const raft::Raft& core = engine_.find(g)->core();
    if (core.is_member(options_.id) && !gone_here.contains(g)) continue;
    if (!remove_replica(g)) return;
    to_drop.push_back(g);
  }
  if (!mine.empty() || !removed.empty()) {
    std::unique_lock lk(hosted_mu_);
    for (const GroupDescriptor& d : mine)
      data_groups_.push_back(d.id);
    std::erase_if(data_groups_, [&removed](raft::GroupId g) {
      return std::find(removed.begin(), removed.end(), g) != removed.end();
    });
    std::sort(data_groups_.begin(), data_groups_.end());
  }
  groups_leading_ = groups_led_.size();
  if (!mine.empty() || !removed.empty()) {
    log(LogLevel::kInfo, "data groups: " + std::to_string(mine.size()) + " created here, " +
                             std::to_string(removed.size()) + " removed; hosting " +
                             std::to_string(data_groups_.size()));
  }
  if (to_drop.empty()) return;
  {
    std::lock_guard<std::mutex> lk(group_apply_mu_);
    for (raft::GroupId g : to_drop) {
      GroupApplyItem item;
      item.group = g;
      item.drop = true;
      group_apply_queue_.push_back(std::move(item));
    }
  }
  group_apply_cv_.notify_one();
}

void Node::reshape_groups() {
  for (auto it = groups_reshaping_.begin(); it != groups_reshaping_.end();) {
    const raft::GroupId g = *it;
    engine::Replica* r = engine_.find(g);
    std::optional<GroupDescriptor> d;
    {
      std::lock_guard<std::mutex> lk(directory_mu_);
      d = directory_.find(g);
    }
    // Only the group's leader changes its configuration; a member that becomes leader later
    // looks again (start_data_round).
    if (r == nullptr || !d || r->core().role() != raft::Role::kLeader) {
      it = groups_reshaping_.erase(it);
      continue;
    }
    engine::ReshapeInput in = engine::reshape_input(r->core().status());
    in.wanted = d->replicas;
    in.removed = d->removed;
    in.gone = d->gone;
    const engine::ReshapeStep step = engine::plan_reshape(in);
    if (step.settled()) {
      for (raft::NodeId m : d->removed)
        gone_reported_.erase({g, m});
      it = groups_reshaping_.erase(it);  // matches the directory, which knows it
      continue;
    }
    // Removals out of the configuration go to the directory once every 10 s until it has them:
    // for members that never heard it from the group.
    for (raft::NodeId m : step.report_gone) {
      Clock::time_point& last = gone_reported_[{g, m}];
      if (Clock::now() - last < std::chrono::seconds(10)) continue;
      last = Clock::now();
      propose_group_change(GroupChange{GroupChange::Op::kReplicaGone, g, {m}, 0},
                           [](const RpcError&, const GroupDescriptor&) {});
    }
    if (step.transfer_to != raft::kNoNode) {
      (void)r->transfer_leader(step.transfer_to);
    } else if (step.change) {
      raft::ConfChange cc;
      cc.changes.push_back(*step.change);
      // Refused while the previous change is not applied, or without a leader: next tick.
      (void)r->propose_conf_change(cc);
    }
    ++it;
  }
}

void Node::group_propose(raft::GroupId group, const kv::GroupOp& op, GroupDone done) {
  propose_group_op(group, op,
                   [done = std::move(done)](const RpcError& e, kv::Response&&) { done(e); });
}

void Node::group_command(raft::GroupId group, std::string command, CommandDone done) {
  propose_group_op(group, kv::GroupOp{kv::GroupOp::Kind::kCommand, "", std::move(command)},
                   [done = std::move(done)](const RpcError& e, kv::Response&& r) {
                     redis::Reply* reply = std::get_if<redis::Reply>(&r.op);
                     if (e.ok() && reply == nullptr) {
                       done(
                           rpc_error(RpcCode::kInternal, "the command was applied without a reply"),
                           redis::Reply{});
                       return;
                     }
                     done(e, reply ? std::move(*reply) : redis::Reply{});
                   });
}

redis::Reply Node::group_read_command(raft::GroupId group, const std::vector<std::string>& argv,
                                      int64_t now_ms) const {
  if (!hosts_group(group)) return redis::Reply::error("CLUSTERDOWN " + not_hosted(group));
  return group_store_->read_command(group, argv, now_ms);
}

storage::Status Node::group_redis_keys(raft::GroupId group, std::string_view from, size_t limit,
                                       size_t tie_bytes, int64_t now_ms,
                                       std::vector<kv::GroupStore::RedisKey>* out,
                                       bool* more) const {
  if (!hosts_group(group)) return Status::not_found(not_hosted(group));
  return group_store_->redis_keys(group, from, limit, tie_bytes, now_ms, out, more);
}

storage::Status Node::group_redis_expired(raft::GroupId group, std::string_view from,
                                          size_t examine, int64_t now_ms,
                                          std::vector<std::string>* expired,
                                          std::string* next) const {
  if (!hosts_group(group)) return Status::not_found(not_hosted(group));
  return group_store_->redis_expired(group, from, examine, now_ms, expired, next);
}

void Node::propose_group_op(raft::GroupId group, const kv::GroupOp& op, ProposeDone done) {
  if (!hosts_group(group)) {
    done(rpc_error(RpcCode::kNotFound, not_hosted(group)), kv::Response{});
    return;
  }
  // Backpressure, as for the etcd group: while the groups' apply thread is this far behind,
  // new writes are refused at once instead of queueing into timeouts.
  if (group_apply_backlog_.load() > kMaxGroupApplyBacklog) {
    done(rpc_error(RpcCode::kResourceExhausted, rpc_errors::kTooManyRequests), kv::Response{});
    return;
  }
  std::string encoded = kv::encode_group_op(op);
  if (encoded.size() > options_.max_request_bytes) {
    done(rpc_error(RpcCode::kInvalidArgument, rpc_errors::kTooLarge), kv::Response{});
    return;
  }
  uint64_t request_id = next_request_id_.fetch_add(1);
  std::string data =
      encode_proposal(ProposalHeader{ProposalKind::kCommand, options_.id, request_id}, encoded);
  ProposeDone wrapped = std::move(done);
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    if (!failed_ && !stopping_) {
      {
        std::lock_guard<std::mutex> wl(waiters_mu_);
        waiters_.emplace(
            request_id,
            Waiter{std::move(wrapped),
                   Clock::now() + std::chrono::milliseconds(options_.request_timeout_ms), group});
      }
      in_proposals_.push_back(PendingProposal{request_id, std::move(data), group});
      wrapped = nullptr;
    }
  }
  if (wrapped) {
    wrapped(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped), kv::Response{});
    return;
  }
  inbox_cv_.notify_one();
}

void Node::group_read_barrier(raft::GroupId group, GroupDone done) {
  if (!hosts_group(group)) {
    done(rpc_error(RpcCode::kNotFound, not_hosted(group)));
    return;
  }
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    if (!failed_ && !stopping_) {
      in_reads_.emplace_back(group, std::move(done));
      done = nullptr;
    }
  }
  if (done) {
    done(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
    return;
  }
  inbox_cv_.notify_one();
}

Status Node::group_get(raft::GroupId group, std::string_view key, std::string* value) const {
  if (!hosts_group(group)) return Status::not_found(not_hosted(group));
  return group_store_->get(group, key, value);
}

GroupsStatus Node::groups_status() const {
  GroupsStatus s;
  {
    std::shared_lock lk(hosted_mu_);
    s.hosted = data_groups_.size();
  }
  s.leading = groups_leading_;
  s.awake = groups_awake_;
  s.peers_down = groups_peers_down_;
  s.writes_applied = group_writes_applied_;
  s.logs_compacted = groups_compacted_;
  s.snapshots_sent = group_snapshots_sent_;
  s.snapshots_installed = group_snapshots_installed_;
  return s;
}

std::vector<GroupLoad> Node::busiest_groups(size_t n) const {
  std::vector<GroupLoad> out;
  {
    std::lock_guard<std::mutex> lk(group_writes_mu_);
    out.reserve(group_writes_.size());
    for (const auto& [g, writes] : group_writes_)
      out.push_back(GroupLoad{g, writes, 0});
  }
  auto busier = [](const GroupLoad& a, const GroupLoad& b) {
    return a.writes_applied != b.writes_applied ? a.writes_applied > b.writes_applied : a.id < b.id;
  };
  if (out.size() > n) {
    std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n), out.end(), busier);
    out.resize(n);
  } else {
    std::sort(out.begin(), out.end(), busier);
  }
  for (GroupLoad& l : out)
    l.applied = group_store_->applied_index(l.id);
  return out;
}

void Node::group_infos(GroupInfosDone done) {
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    if (!failed_ && !stopping_) {
      in_group_infos_.push_back(std::move(done));
      done = nullptr;
    }
  }
  if (done) {
    done(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped), {});
    return;
  }
  inbox_cv_.notify_one();
}

// Raft thread: the members this one exchanges liveness heartbeats with follow the member table.
void Node::refresh_engine_peers(uint64_t now_us) {
  uint64_t version = members_version_.load();
  if (version == engine_peers_version_) return;
  engine_peers_version_ = version;
  std::vector<raft::NodeId> peers;
  {
    std::lock_guard<std::mutex> lk(members_mu_);
    for (const auto& [id, m] : members_) {
      if (id != options_.id) peers.push_back(id);
    }
  }
  engine_.set_peers(peers, now_us);
}

// Raft thread: status requests for the data groups, taken from the inbox.
void Node::answer_group_infos(std::vector<GroupInfosDone>&& infos) {
  std::vector<GroupInfo> out;
  out.reserve(data_groups_.size());
  for (raft::GroupId g : data_groups_) {
    const engine::Replica* r = engine_.find(g);
    if (r == nullptr) continue;
    GroupInfo info;
    info.id = g;
    info.leader = r->core().lead();
    info.term = r->core().term();
    info.commit = r->core().log().committed();
    info.applied = group_store_->applied_index(g);
    info.quiesced = r->quiesced();
    info.voters = r->core().status().config.voters;
    out.push_back(std::move(info));
  }
  for (size_t i = 0; i < infos.size(); ++i) {
    if (i + 1 == infos.size()) {
      infos[i](RpcError{}, std::move(out));
    } else {
      std::vector<GroupInfo> copy = out;
      infos[i](RpcError{}, std::move(copy));
    }
  }
}

bool Node::start_data_round(engine::Replica& replica, engine::Round& round) {
  if (round.soft_state) {
    if (round.soft_state->role == raft::Role::kLeader) {
      groups_led_.insert(replica.group());
      groups_reshaping_.insert(replica.group());
    } else {
      groups_led_.erase(replica.group());
    }
    groups_leading_ = groups_led_.size();
  }
  // A leader's appends leave before its own fdatasync, which then overlaps the followers'.
  if (!round.early_messages.empty()) {
    fill_group_snapshots(replica, round.early_messages);
    sink_->send(std::move(round.early_messages));
  }
  if (round.snapshot != nullptr) {
    // The group's state from the leader replaces this replica's, durably, before the log
    // records the snapshot (without the data: the store holds it).
    const raft::Index index = round.snapshot->metadata.index;
    Status st = group_store_->install(replica.group(), replica.take_snapshot_data());
    if (!st.is_ok()) {
      fail_fatal("group " + std::to_string(replica.group()) +
                 ": installing the snapshot at index " + std::to_string(index) + ": " +
                 st.to_string());
      return false;
    }
    ++group_snapshots_installed_;
    // Reads waiting for the group's store to reach their index are looked at again.
    {
      GroupApplyItem item;
      item.group = replica.group();
      std::lock_guard<std::mutex> lk(group_apply_mu_);
      group_apply_queue_.push_back(std::move(item));
    }
    group_apply_cv_.notify_one();
    log(LogLevel::kInfo, "group " + std::to_string(replica.group()) +
                             ": installed a snapshot at index " + std::to_string(index) +
                             " (store at index " +
                             std::to_string(group_store_->applied_index(replica.group())) + ")");
  }
  return true;
}

void Node::fill_group_snapshots(engine::Replica& replica, std::vector<raft::Message>& messages) {
  std::vector<GroupApplyItem> exports;
  for (auto it = messages.begin(); it != messages.end();) {
    if (it->type != raft::MessageType::kSnap || it->snapshot == nullptr) {
      ++it;
      continue;
    }
    GroupApplyItem item;
    item.group = replica.group();
    item.snapshot = std::move(*it);
    exports.push_back(std::move(item));
    it = messages.erase(it);
  }
  if (exports.empty()) return;
  {
    std::lock_guard<std::mutex> lk(group_apply_mu_);
    for (GroupApplyItem& item : exports)
      group_apply_queue_.push_back(std::move(item));
  }
  group_apply_cv_.notify_one();
}

void Node::export_group_snapshot(raft::Message&& m) {
  // The store must have applied the snapshot's index (it may lag a snapshot just recorded): a
  // state before it would lack entries the follower's log then starts after. Checked before
  // the export, which scans the group, and again on what was exported.
  const raft::Index index = m.snapshot->metadata.index;
  std::string data;
  Status st = Status::ok();
  if (group_store_->applied_index(m.group) < index) {
    st = Status::not_found("the store has not reached the snapshot's index yet");
  } else {
    st = group_store_->export_group(m.group, kMaxGroupSnapshotBytes, &data);
    if (st.is_ok() && kv::GroupStore::export_index(data) < index)
      st = Status::not_found("the store has not reached the snapshot's index yet");
  }
  if (st.is_ok()) {
    auto snap = std::make_shared<raft::Snapshot>(*m.snapshot);
    snap->data = std::move(data);
    m.snapshot = std::move(snap);
  }
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    in_filled_snapshots_.emplace_back(std::move(m), std::move(st));
  }
  inbox_cv_.notify_one();
}

void Node::send_filled_snapshots(std::vector<std::pair<raft::Message, Status>>&& filled) {
  std::vector<raft::Message> out;
  for (auto& [m, st] : filled) {
    if (st.is_ok()) {
      out.push_back(std::move(m));
      ++group_snapshots_sent_;
      continue;
    }
    log(LogLevel::kWarn, "group " + std::to_string(m.group) + ": no snapshot for member " +
                             hex_id(m.to) + ": " + st.to_string());
    if (engine::Replica* r = engine_.find(m.group)) r->report_snapshot(m.to, /*failed=*/true);
  }
  if (!out.empty()) sink_->send(std::move(out));
}

void Node::record_group_snapshots(const std::set<raft::GroupId>& groups) {
  std::vector<storage::WalCompaction> list;
  for (raft::GroupId g : groups) {
    const engine::Replica* r = engine_.find(g);
    if (r == nullptr) continue;
    // Nothing compacted: a newer snapshot record only.
    if (auto c = snapshot_record(*r, r->core().log().applied(), 0)) list.push_back(std::move(*c));
  }
  if (list.empty()) return;
  Status st = wal_->compact(list);
  if (!st.is_ok()) fail_fatal("write-ahead log snapshot of data groups: " + st.to_string());
}

void Node::maybe_compact_groups(Clock::time_point now) {
  if (group_compaction_in_flight_ || now < next_group_compaction_) return;
  next_group_compaction_ = now + std::chrono::milliseconds(options_.group_compact_interval_ms);
  if (wal_->segment_count() < options_.group_compact_min_segments) return;
  // Quiesced groups entirely: a leader quiesces once every replica holds its whole log,
  // committed, and a follower once it holds exactly that log, so no replica of the group needs
  // a snapshot for the entries that go. A group that never rests, once its log is long, down to
  // a few entries behind its applied index: a replica further behind then gets a snapshot of
  // the group (fill_group_snapshots), as does a replica added later.
  std::vector<storage::WalCompaction> list;
  for (raft::GroupId g : data_groups_) {
    const engine::Replica* r = engine_.find(g);
    const raft::RaftLog& log = r->core().log();
    const raft::Index first = wal_->group(g)->first_index();
    raft::Index at = 0;
    raft::Index compact_to = 0;
    if (r->quiesced()) {
      at = compact_to = log.committed();
    } else if (log.applied() >= first && log.applied() - first + 1 >= options_.group_log_entries) {
      // The configuration the core holds is the one as of its applied index.
      at = log.applied();
      compact_to = at - std::min(at, options_.group_catch_up_entries);
    }
    if (at < first || compact_to < first) continue;  // nothing to let go
    if (auto c = snapshot_record(*r, at, compact_to)) list.push_back(std::move(*c));
  }
  if (list.empty()) return;
  GroupApplyItem item;
  item.compactions = std::move(list);
  group_compaction_in_flight_ = true;
  {
    std::lock_guard<std::mutex> lk(group_apply_mu_);
    group_apply_queue_.push_back(std::move(item));
  }
  group_apply_cv_.notify_one();
}

void Node::compact_groups(std::vector<storage::WalCompaction>&& list) {
  // A group removed here while the compaction was on the apply thread has no log left.
  std::erase_if(
      list, [this](const storage::WalCompaction& c) { return wal_->group(c.group) == nullptr; });
  if (list.empty()) return;
  // The snapshot records carry the group's configuration and nothing else: the state is the
  // groups' store, flushed through these indexes by the apply thread.
  Status st = wal_->compact(list);
  if (!st.is_ok()) {
    fail_fatal("write-ahead log compaction of data groups: " + st.to_string());
    return;
  }
  groups_compacted_ += list.size();
}

void Node::finish_data_round(raft::GroupId group, engine::RoundResult& out) {
  if (!out.messages.empty()) {
    if (engine::Replica* r = engine_.find(group)) fill_group_snapshots(*r, out.messages);
    sink_->send(std::move(out.messages));
  }
  if (!out.error.empty()) {
    fail_fatal("group " + std::to_string(group) + ": " + out.error);
    return;
  }
  // A membership change of the group: a replica that left may go now, and the leader takes
  // the next step towards the directory.
  if (!out.confs.empty()) {
    reconcile_due_ = true;
    groups_reshaping_.insert(group);
  }
  GroupApplyItem item;
  item.group = group;
  item.entries = std::move(out.committed);
  std::vector<GroupApplyItem> reads;
  for (engine::ReadPoint& p : out.reads) {
    GroupApplyItem r;
    r.group = group;
    r.read_index = p.index;
    r.readers = take_readers(p.readers);
    if (!r.readers.empty()) reads.push_back(std::move(r));
  }
  if (item.entries.empty() && reads.empty()) return;
  group_apply_backlog_ += item.entries.size();
  {
    std::lock_guard<std::mutex> lk(group_apply_mu_);
    if (!item.entries.empty()) group_apply_queue_.push_back(std::move(item));
    for (auto& r : reads)
      group_apply_queue_.push_back(std::move(r));
  }
  group_apply_cv_.notify_one();
}

void Node::groups_apply_loop() {
  std::vector<kv::GroupEntry> batch;
  std::vector<std::optional<redis::Reply>> replies;
  kv::GroupStore::Published published;
  // The proposals of this member applied in this turn: request id and place in the batch.
  std::vector<std::pair<uint64_t, size_t>> answered;
  while (true) {
    std::vector<GroupApplyItem> items;
    {
      std::unique_lock<std::mutex> lk(group_apply_mu_);
      group_apply_cv_.wait(lk, [this] { return group_apply_stop_ || !group_apply_queue_.empty(); });
      if (group_apply_stop_) return;
      items.swap(group_apply_queue_);
    }
    // Every committed entry of every data group waiting now: one RocksDB write.
    batch.clear();
    answered.clear();
    published.clear();
    std::set<raft::GroupId> touched;
    uint64_t writes = 0;
    std::unordered_map<raft::GroupId, uint64_t> writes_by_group;
    for (GroupApplyItem& item : items) {
      touched.insert(item.group);
      for (const raft::Entry& e : item.entries) {
        kv::GroupEntry ge{item.group, e.index, e.term, {}};
        if (e.type == raft::EntryType::kNormal && !e.data.empty()) {
          std::string_view payload;
          std::optional<ProposalHeader> h = decode_proposal(e.data, &payload);
          if (h && h->kind == ProposalKind::kCommand) {
            ge.op = payload;
            ++writes;
            ++writes_by_group[item.group];
            if (h->proposer == options_.id && h->request_id != 0)
              answered.emplace_back(h->request_id, batch.size());
          } else {
            log(LogLevel::kWarn, "group " + std::to_string(item.group) + " entry " +
                                     std::to_string(e.index) + " has an unknown format");
          }
        }
        batch.push_back(ge);
      }
      for (ReadDone& r : item.readers)
        group_waiting_reads_[item.group].emplace(item.read_index, std::move(r));
    }
    if (!batch.empty()) {
      auto start = Clock::now();
      Status st = group_store_->apply(batch, &replies, &published);
      if (options_.observe_apply) {
        options_.observe_apply(std::chrono::duration<double>(Clock::now() - start).count());
      }
      if (!st.is_ok()) {
        fail_fatal("data groups' state machine: " + st.to_string());
        return;
      }
      group_writes_applied_ += writes;
      std::lock_guard<std::mutex> lk(group_writes_mu_);
      for (const auto& [g, n] : writes_by_group)
        group_writes_[g] += n;
    }
    group_apply_backlog_ -= batch.size();
    std::shared_ptr<const GroupsAppliedFn> on_applied;
    if (!writes_by_group.empty()) {
      std::lock_guard<std::mutex> lk(groups_applied_mu_);
      on_applied = groups_applied_fn_;
    }
    if (on_applied && *on_applied) {
      std::vector<raft::GroupId> applied;
      applied.reserve(writes_by_group.size());
      for (const auto& [g, n] : writes_by_group)
        applied.push_back(g);
      (*on_applied)(applied, std::move(published));
    }
    for (const auto& [id, at] : answered) {
      kv::Response response;
      if (at < replies.size() && replies[at]) response.op = std::move(*replies[at]);
      finish_proposal(id, RpcError{}, std::move(response));
    }
    // Compaction requests, after every entry queued before them is applied: flushed, then
    // handed back for the groups that reached the index (all of them, unless one was lost).
    for (GroupApplyItem& item : items) {
      if (item.compactions.empty()) continue;
      std::vector<storage::WalCompaction> ready;
      for (storage::WalCompaction& c : item.compactions) {
        if (group_store_->applied_index(c.group) >= c.snapshot.metadata.index)
          ready.push_back(std::move(c));
      }
      if (!ready.empty()) {
        Status st = group_store_->flush();
        if (!st.is_ok()) {
          fail_fatal("data groups' state machine: " + st.to_string());
          return;
        }
      }
      {
        std::lock_guard<std::mutex> lk(inbox_mu_);
        in_group_compactions_ = std::move(ready);
      }
      inbox_cv_.notify_one();
    }
    // Snapshots to fill, once every entry queued before is applied.
    for (GroupApplyItem& item : items) {
      if (item.snapshot) export_group_snapshot(std::move(*item.snapshot));
    }
    // Removed groups: after every entry queued before the removal.
    for (GroupApplyItem& item : items) {
      if (!item.drop) continue;
      auto it = group_waiting_reads_.find(item.group);
      if (it != group_waiting_reads_.end()) {
        for (auto& [index, done] : it->second)
          done(rpc_error(RpcCode::kNotFound, not_hosted(item.group)));
        group_waiting_reads_.erase(it);
      }
      {
        std::lock_guard<std::mutex> lk(group_writes_mu_);
        group_writes_.erase(item.group);
      }
      Status st = group_store_->drop(item.group);
      if (!st.is_ok()) {
        fail_fatal("data groups' state machine: " + st.to_string());
        return;
      }
    }
    for (raft::GroupId g : touched) {
      auto it = group_waiting_reads_.find(g);
      if (it == group_waiting_reads_.end()) continue;
      raft::Index applied = group_store_->applied_index(g);
      auto& waiting = it->second;
      while (!waiting.empty() && waiting.begin()->first <= applied) {
        ReadDone done = std::move(waiting.begin()->second);
        waiting.erase(waiting.begin());
        done(RpcError{});
      }
      if (waiting.empty()) group_waiting_reads_.erase(it);
    }
  }
}

}  // namespace chorus::server
