#include "server/node.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>

#include "base/thread_name.h"
#include "kv/codec.h"
#include "kv/snapshots.h"
#include "server/log.h"

namespace chorus::server {

using Clock = std::chrono::steady_clock;
using storage::Status;

namespace {

// The driver that ships never carries the simulator's deliberate protocol bugs (raft.h).
static_assert(!raft::kMutationsCompiledIn, "chorus_node must link chorus_raft, not the mutants");

// Committed but not yet applied entries beyond which proposals are refused (etcd's
// maxGapBetweenApplyAndCommitIndex).
constexpr raft::Index kMaxApplyLag = 5000;
constexpr const char* kClusterIdFile = "cluster_id";
constexpr const char* kMemberIdFile = "member_id";
// Where the log is, when --wal-dir put it outside the member directory.
constexpr const char* kWalDirFile = "wal_dir";

// A 64-bit id in hex, alone in `name` under `dir`; not_found if the file is absent.
Status read_id_file(storage::FileSystem* fs, const std::string& dir, const char* name,
                    uint64_t* id) {
  const std::string path = storage::join_path(dir, name);
  if (!fs->exists(path)) return Status::not_found(path);
  std::string text;
  CHORUS_RETURN_IF_ERROR(fs->read_file(path, &text));
  char* end = nullptr;
  *id = std::strtoull(text.c_str(), &end, 16);
  if (*id == 0 || end == text.c_str()) return Status::corruption(path + " does not hold an id");
  return Status::ok();
}

uint64_t wall_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// Member liveness runs at the heartbeat interval; a member silent for an election timeout is
// down, and the quiesced data groups it led wake and elect. The incarnation tells this life of
// the member from the previous ones.
engine::EngineOptions engine_options(const NodeOptions& o) {
  engine::EngineOptions e;
  e.id = o.id;
  e.incarnation = wall_ms();
  e.heartbeat_us = static_cast<uint64_t>(o.tick_ms) * 1000;
  e.dead_after_us = e.heartbeat_us * static_cast<uint64_t>(o.election_ticks);
  return e;
}

std::vector<raft::Entry> bootstrap_entries(const std::vector<InitialMember>& members,
                                           uint32_t initial_groups) {
  std::vector<raft::Entry> entries;
  // Members in id order, so every member writes the same entries.
  std::vector<InitialMember> sorted = members;
  std::sort(sorted.begin(), sorted.end(),
            [](const InitialMember& a, const InitialMember& b) { return a.id < b.id; });
  raft::Index index = 0;
  for (const InitialMember& m : sorted) {
    raft::ConfChange cc;
    cc.changes.push_back({raft::ConfChangeType::kAddNode, m.id});
    cc.context = encode_member_context(MemberContext{m.name, m.peer_urls});
    entries.push_back(raft::Entry{1, ++index, raft::EntryType::kConfChange, cc.encode()});
  }
  if (initial_groups > 0) {
    // The initial data groups enter the directory (each member created its own replicas
    // already, create_initial_groups).
    GroupChange c{GroupChange::Op::kCreateInitial, 0, {}, initial_groups};
    for (const InitialMember& m : sorted)
      c.replicas.push_back(m.id);
    entries.push_back(raft::Entry{
        1, ++index, raft::EntryType::kNormal,
        encode_proposal(ProposalHeader{ProposalKind::kGroupChange, 0, 0}, encode_group_change(c))});
  }
  return entries;
}

}  // namespace

void Node::adopt_cluster_id(uint64_t id) {
  uint64_t expected = 0;
  if (id == 0 || !cluster_id_.compare_exchange_strong(expected, id)) return;
  Status st = fs_->write_file_atomic(storage::join_path(options_.data_dir, "member"),
                                     kClusterIdFile, hex_id(id) + "\n");
  if (!st.is_ok()) fail_fatal("cannot record the cluster id: " + st.to_string());
  log(LogLevel::kInfo, "joined cluster " + hex_id(id));
}

Node::Node(const NodeOptions& options)
    : options_(options), engine_(engine_options(options)), start_time_(Clock::now()) {
  // Request ids and read contexts must not repeat across restarts: entries this member proposed
  // before a restart are applied again (or arrive late) carrying their old ids. The wall clock
  // in the high bits makes each boot's ids start past the previous boot's.
  uint64_t base = wall_ms() << 20;
  next_request_id_ = base;
  first_read_context_ = base;
}

uint64_t Node::new_fetch_ticket() {
  std::random_device rd;
  uint64_t t = 0;
  while (t == 0)
    t = (uint64_t{rd()} << 32) ^ rd();
  std::lock_guard<std::mutex> lk(tickets_mu_);
  Clock::time_point now = Clock::now();
  while (!fetch_tickets_.empty() &&
         (fetch_tickets_.size() >= kMaxFetchTickets || fetch_tickets_.front().second <= now))
    fetch_tickets_.pop_front();
  fetch_tickets_.emplace_back(t, now + kFetchTicketLife);
  return t;
}

bool Node::fetch_ticket_valid(const std::string& ticket) const {
  std::lock_guard<std::mutex> lk(tickets_mu_);
  Clock::time_point now = Clock::now();
  bool valid = false;
  for (const auto& [t, expires] : fetch_tickets_) {
    std::string mine = hex_id(t);
    // Every ticket compared in full, whatever matches: no timing to learn from.
    bool same = mine.size() == ticket.size();
    unsigned char diff = 0;
    for (size_t i = 0; same && i < mine.size(); ++i)
      diff = static_cast<unsigned char>(diff | (mine[i] ^ ticket[i]));
    if (same && diff == 0 && expires > now) valid = true;
  }
  return valid;
}

uint64_t Node::clock_us(Clock::time_point t) const {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(t - start_time_).count());
}

Clock::time_point Node::at_clock_us(uint64_t us) const {
  return start_time_ + std::chrono::microseconds(us);
}

Node::~Node() {
  stop(0);
}

int64_t Node::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_time_).count();
}

Status Node::stored_member_id(const std::string& data_dir, uint64_t* id) {
  auto fs = storage::make_posix_file_system();
  return read_id_file(fs.get(), storage::join_path(data_dir, "member"), kMemberIdFile, id);
}

bool Node::has_data(const std::string& data_dir) {
  auto fs = storage::make_posix_file_system();
  const std::string member_dir = storage::join_path(data_dir, "member");
  return fs->exists(storage::join_path(member_dir, "wal")) ||
         fs->exists(storage::join_path(member_dir, "kv"));
}

raft::NodeId Node::find_member(const std::vector<std::string>& peer_urls) const {
  std::vector<std::string> want = peer_urls;
  std::sort(want.begin(), want.end());
  std::lock_guard<std::mutex> lk(members_mu_);
  for (const auto& [id, m] : members_) {
    std::vector<std::string> have = m.peer_urls;
    std::sort(have.begin(), have.end());
    if (have == want) return id;
  }
  return raft::kNoNode;
}

Status Node::open(const NodeOptions& options, std::unique_ptr<Node>* out) {
  std::unique_ptr<Node> node(new Node(options));
  CHORUS_RETURN_IF_ERROR(node->recover());
  *out = std::move(node);
  return Status::ok();
}

Status Node::recover() {
  fs_ = options_.file_system ? options_.file_system() : storage::make_posix_file_system();
  const std::string& dir = options_.data_dir;
  if (!fs_->exists(dir)) CHORUS_RETURN_IF_ERROR(fs_->create_dir(dir));
  const std::string member_dir = storage::join_path(dir, "member");
  if (!fs_->exists(member_dir)) CHORUS_RETURN_IF_ERROR(fs_->create_dir(member_dir));
  CHORUS_RETURN_IF_ERROR(fs_->sync_dir(dir));

  // A store without a log is a backup restored by chorus-snapshot (a member's own first start
  // writes the log before the store). It seeds a new cluster only: joining an existing one
  // would apply that cluster's log on top of data it never wrote. Refused before anything is
  // written, so the directory can still start a new cluster.
  const std::string default_wal_dir = storage::join_path(member_dir, "wal");
  const std::string wal_dir = options_.wal_dir.empty() ? default_wal_dir : options_.wal_dir;
  // The log stays where it is: a member started elsewhere (a --wal-dir added, changed or
  // forgotten) would begin an empty log beside a store that is ahead of it. Where it is: the
  // directory recorded when --wal-dir first put it outside the member directory, else there.
  auto holds_log = [&](const std::string& d) {
    std::vector<std::string> names;
    return fs_->exists(d) && fs_->list_dir(d, &names).is_ok() && !names.empty();
  };
  const std::string wal_dir_file = storage::join_path(member_dir, kWalDirFile);
  std::string recorded = default_wal_dir;
  if (fs_->exists(wal_dir_file)) {
    CHORUS_RETURN_IF_ERROR(fs_->read_file(wal_dir_file, &recorded));
    while (!recorded.empty() && recorded.back() == '\n')
      recorded.pop_back();
  }
  if (recorded != wal_dir) {
    if (holds_log(recorded)) {
      return Status::invalid_argument(
          "this member's log is in " + recorded + ": start it " +
          (recorded == default_wal_dir ? "without --wal-dir" : "with --wal-dir " + recorded) +
          " (or stop it, move that directory to " + wal_dir + ", and start it again)");
    }
    // Moved by the operator (the log is here and no longer there), or never written: the log
    // lives here from now on.
  }
  if (wal_dir != default_wal_dir && !fs_->exists(wal_dir)) {
    CHORUS_RETURN_IF_ERROR(fs_->create_dir(wal_dir));
    std::string parent = std::filesystem::path(wal_dir).parent_path().string();
    CHORUS_RETURN_IF_ERROR(fs_->sync_dir(parent.empty() ? "." : parent));
  }
  if (recorded != wal_dir || (wal_dir != default_wal_dir && !fs_->exists(wal_dir_file))) {
    CHORUS_RETURN_IF_ERROR(fs_->write_file_atomic(member_dir, kWalDirFile, wal_dir + "\n"));
  }
  if (!options_.new_cluster && !fs_->exists(wal_dir) &&
      fs_->exists(storage::join_path(member_dir, "kv"))) {
    return Status::invalid_argument(
        member_dir +
        "/kv holds data but no log, as a restored backup does: start this member with "
        "--initial-cluster-state new, as part of a new cluster");
  }

  // The cluster id is fixed when a member first starts (or first hears from its cluster) and
  // kept in the data directory; later flags cannot change it. The member id likewise.
  uint64_t id = 0;
  Status st = read_id_file(fs_.get(), member_dir, kClusterIdFile, &id);
  if (st.is_ok()) {
    cluster_id_ = id;
  } else if (st.code() != Status::Code::kNotFound) {
    return st;
  } else if (options_.cluster_id != 0) {
    CHORUS_RETURN_IF_ERROR(
        fs_->write_file_atomic(member_dir, kClusterIdFile, hex_id(options_.cluster_id) + "\n"));
    cluster_id_ = options_.cluster_id;
  }
  st = read_id_file(fs_.get(), member_dir, kMemberIdFile, &id);
  if (st.is_ok() && id != options_.id) {
    return Status::invalid_argument(member_dir + " belongs to member " + hex_id(id) + ", not to " +
                                    hex_id(options_.id));
  }
  if (st.code() == Status::Code::kNotFound) {
    CHORUS_RETURN_IF_ERROR(
        fs_->write_file_atomic(member_dir, kMemberIdFile, hex_id(options_.id) + "\n"));
  } else if (!st.is_ok()) {
    return st;
  }

  // The ids are recorded before the log and the store exist: a directory holding either has
  // its ids (main() relies on it to tell a member that joined from one that never started).
  CHORUS_RETURN_IF_ERROR(storage::Wal::open(fs_.get(), wal_dir, storage::WalOptions{}, &wal_));
  for (const std::string& w : wal_->recovery_warnings())
    log(LogLevel::kWarn, "write-ahead log recovery: " + w);
  const bool first_start = wal_->group(kGroup) == nullptr;
  CHORUS_RETURN_IF_ERROR(kv::open_store(fs_.get(), member_dir, "kv", options_.mvcc, &store_));
  if (first_start && store_->applied_index() > 0) {
    // A restored backup starts its log at 0 (chorus-snapshot restore); a store that applied
    // entries of a log that is not there lost its log, or finds it elsewhere (--wal-dir).
    return Status::invalid_argument(member_dir + "/kv applied the log up to index " +
                                    std::to_string(store_->applied_index()) + ", but " + wal_dir +
                                    " holds no log: was it lost, or is it in another --wal-dir?");
  }
  if (first_start) {
    CHORUS_RETURN_IF_ERROR(create_initial_groups());
    // The log is created with an empty configuration; a new cluster then writes the additions
    // of its initial members as committed entries of term 1, identical on every member, so
    // that a member added later learns the whole membership by replaying the log.
    CHORUS_RETURN_IF_ERROR(wal_->bootstrap(kGroup, raft::ConfState{}));
    if (options_.new_cluster) {
      storage::WalBatch batch;
      std::vector<raft::Entry> entries =
          bootstrap_entries(options_.initial_members, options_.initial_groups);
      batch.append(kGroup, entries);
      batch.set_hard_state(kGroup, raft::HardState{1, raft::kNoNode, entries.size()});
      CHORUS_RETURN_IF_ERROR(wal_->commit(batch));
    }
  }

  if (options_.force_new_cluster && !first_start) CHORUS_RETURN_IF_ERROR(force_new_cluster());

  const raft::LogStorage* log = wal_->group(kGroup);
  raft::Snapshot snap;
  if (log->snapshot(&snap) != raft::Error::kOk) {
    return Status::corruption("the log's snapshot record cannot be read");
  }
  if (!snap.data.empty()) {
    std::optional<ServerState> state = decode_server_state(snap.data);
    if (!state) return Status::corruption("the log's snapshot record holds no server state");
    restore_server_state(*state);
  }
  applied_conf_ = snap.metadata.conf_state;
  last_snapshot_index_ = snap.metadata.index;
  directory_replay_target_ = log->hard_state().commit;
  directory_current_ = directory_replay_target_ <= snap.metadata.index;
  if (store_->applied_index() < snap.metadata.index) {
    return Status::corruption("the store in " + member_dir + "/kv is at index " +
                              std::to_string(store_->applied_index()) +
                              ", behind the log's snapshot at " +
                              std::to_string(snap.metadata.index));
  }
  raft::Config c;
  c.id = options_.id;
  c.group = kGroup;
  c.storage = log;
  c.election_ticks = options_.election_ticks;
  c.heartbeat_ticks = 1;
  c.pre_vote = options_.pre_vote;
  c.check_quorum = true;
  c.read_only =
      options_.lease_reads ? raft::ReadOnlyOption::kLeaseBased : raft::ReadOnlyOption::kSafe;
  c.max_entry_bytes = std::max<uint64_t>(options_.max_request_bytes + 4096, 1 << 20);
  // Configuration changes after the snapshot replay through the driver as they are applied;
  // the store skips the commands it already holds.
  c.applied = snap.metadata.index;
  c.seed = options_.id ^ static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  engine::ReplicaOptions ro;
  ro.raft = c;
  ro.tick_us = static_cast<uint64_t>(options_.tick_ms) * 1000;
  ro.first_read_context = first_read_context_;
  replica_ = &engine_.add(ro, clock_us(Clock::now()));
  applied_ = store_->applied_index();
  commit_ = replica_->core().log().committed();
  term_ = replica_->core().term();

  rebuild_lessor();
  return open_groups();
}

Status Node::force_new_cluster() {
  const raft::LogStorage* stored = wal_->group(kGroup);
  raft::Snapshot snap;
  if (stored->snapshot(&snap) != raft::Error::kOk) {
    return Status::corruption("the log's snapshot record cannot be read");
  }
  // Every entry of the log is kept and becomes committed: the member alone is a quorum, and a
  // leader commits its whole log anyway. Entries the old quorum had committed may lie past the
  // commit index recorded here (a moved commit index alone is written without an fdatasync),
  // so cutting the log there could drop acknowledged writes; entries it never committed had
  // no answer, and may take effect. The configuration is therefore the one at the log's end.
  const raft::ConfState& conf = snap.metadata.conf_state;
  std::set<raft::NodeId> members;
  for (const auto* ids : {&conf.voters, &conf.voters_outgoing, &conf.learners})
    members.insert(ids->begin(), ids->end());
  std::set<raft::NodeId> learners(conf.learners.begin(), conf.learners.end());
  // Voters that become learners when the joint configuration is left.
  std::set<raft::NodeId> learners_next(conf.learners_next.begin(), conf.learners_next.end());
  bool joint = !conf.voters_outgoing.empty();
  const raft::Index last = stored->last_index();
  for (raft::Index i = snap.metadata.index + 1; i <= last;) {
    std::vector<raft::Entry> entries;
    if (stored->entries(i, last + 1, 8 << 20, &entries) != raft::Error::kOk || entries.empty()) {
      return Status::corruption("the log's entries from " + std::to_string(i) + " cannot be read");
    }
    for (const raft::Entry& e : entries) {
      i = e.index + 1;
      if (e.type != raft::EntryType::kConfChange) continue;
      std::optional<raft::ConfChange> cc = raft::ConfChange::decode(e.data);
      if (!cc) return Status::corruption("entry " + std::to_string(e.index) + " is malformed");
      if (cc->leave_joint()) {
        learners.insert(learners_next.begin(), learners_next.end());
        learners_next.clear();
        joint = false;
        continue;
      }
      joint = cc->transition != raft::ConfChangeTransition::kAuto || cc->changes.size() > 1;
      for (const raft::ConfChangeSingle& c : cc->changes) {
        const bool voter = members.contains(c.node) && !learners.contains(c.node);
        switch (c.type) {
          case raft::ConfChangeType::kRemoveNode:
            members.erase(c.node);
            learners.erase(c.node);
            learners_next.erase(c.node);
            break;
          case raft::ConfChangeType::kAddNode:
            members.insert(c.node);
            learners.erase(c.node);
            learners_next.erase(c.node);
            break;
          case raft::ConfChangeType::kAddLearner:
            members.insert(c.node);
            // A voter made a learner jointly stays a voter until the joint state is left.
            (joint && voter ? learners_next : learners).insert(c.node);
            break;
        }
      }
    }
  }
  if (!members.contains(options_.id)) {
    return Status::invalid_argument(
        "--force-new-cluster: this member is not in its own log's configuration (it was "
        "removed)");
  }
  if (learners.contains(options_.id) || learners_next.contains(options_.id)) {
    return Status::invalid_argument(
        "--force-new-cluster: this member is a learner, which holds no vote and may lack "
        "committed entries");
  }
  raft::Term term = stored->hard_state().term;
  raft::Term last_term = 0;
  if (stored->term(last, &last_term) == raft::Error::kOk) term = std::max(term, last_term);
  std::vector<raft::Entry> entries;
  raft::Index index = last;
  if (joint) {
    entries.push_back(
        raft::Entry{term, ++index, raft::EntryType::kConfChange, raft::ConfChange{}.encode()});
  }
  for (raft::NodeId id : members) {
    if (id == options_.id) continue;
    raft::ConfChange cc;
    cc.changes.push_back({raft::ConfChangeType::kRemoveNode, id});
    entries.push_back(raft::Entry{term, ++index, raft::EntryType::kConfChange, cc.encode()});
  }
  if (entries.empty()) return Status::ok();  // alone already: it commits its log by itself
  // Committed entries of the current term after the whole log: applied as the member starts,
  // after which it elects itself alone.
  storage::WalBatch batch;
  batch.append(kGroup, entries);
  raft::HardState hs = stored->hard_state();
  batch.set_hard_state(kGroup,
                       raft::HardState{term, term == hs.term ? hs.vote : raft::kNoNode, index});
  CHORUS_RETURN_IF_ERROR(wal_->commit(batch));
  log(LogLevel::kWarn, "--force-new-cluster: this member now forms its cluster alone",
      {{"removed-members", std::to_string(members.size() - 1)},
       {"entries-kept", std::to_string(last - snap.metadata.index)}});
  return Status::ok();
}

void Node::start(MessageSink* sink, std::function<void(const std::string&)> on_fatal) {
  sink_ = sink;
  std::string early_failure;
  {
    std::lock_guard<std::mutex> lk(fatal_mu_);
    on_fatal_ = std::move(on_fatal);
    if (failed_) early_failure = fatal_reason_;
  }
  // A failure reported before start (by the transport) still stops the process.
  if (!early_failure.empty() && on_fatal_) on_fatal_(early_failure);
  started_ = true;
  {
    std::lock_guard<std::mutex> lk(members_mu_);
    for (const auto& [id, m] : members_) {
      if (id != options_.id && !m.peer_urls.empty()) sink_->set_peer(id, m.peer_urls);
    }
  }
  uint64_t now = clock_us(Clock::now());
  for (const auto& [group, replica] : engine_.replicas())
    replica->restart_clock(now);
  {
    // The directory as recovered may place replicas here that a crash kept from being created,
    // or hold groups deleted whose data a crash kept.
    std::lock_guard<std::mutex> lk(inbox_mu_);
    in_directory_changed_ = true;
  }
  refresh_engine_peers(now);
  // A new cluster's data groups elect their first leaders at once, spread over the members.
  for (raft::GroupId g : campaign_at_start_) {
    if (engine::Replica* r = engine_.find(g)) (void)r->campaign();
  }
  campaign_at_start_.clear();
  groups_apply_thread_ = std::thread([this] {
    base::set_thread_name("chorus-gapply");
    groups_apply_loop();
  });
  apply_thread_ = std::thread([this] {
    base::set_thread_name("chorus-apply");
    apply_loop();
  });
  raft_thread_ = std::thread([this] {
    base::set_thread_name("chorus-raft");
    raft_loop();
  });
}

void Node::stop(int transfer_wait_ms) {
  if (!started_) return;
  if (transfer_wait_ms > 0 && is_leader() && !failed_) {
    // Hand leadership over before leaving (etcd does the same on SIGTERM), so clients see a
    // new leader at once instead of after an election timeout.
    {
      std::lock_guard<std::mutex> lk(inbox_mu_);
      transfer_requested_ = true;
    }
    inbox_cv_.notify_one();
    auto deadline = Clock::now() + std::chrono::milliseconds(transfer_wait_ms);
    while (is_leader() && Clock::now() < deadline && !failed_)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    stopping_ = true;
  }
  inbox_cv_.notify_one();
  if (raft_thread_.joinable()) raft_thread_.join();
  stop_snapshot_fetch();
  {
    std::lock_guard<std::mutex> lk(apply_mu_);
    apply_stop_ = true;
  }
  apply_cv_.notify_one();
  if (apply_thread_.joinable()) apply_thread_.join();
  {
    std::lock_guard<std::mutex> lk(group_apply_mu_);
    group_apply_stop_ = true;
  }
  group_apply_cv_.notify_one();
  if (groups_apply_thread_.joinable()) groups_apply_thread_.join();
  started_ = false;

  // Whoever still waits gets an answer.
  std::unordered_map<uint64_t, Waiter> waiters;
  {
    std::lock_guard<std::mutex> lk(waiters_mu_);
    waiters.swap(waiters_);
  }
  for (auto& [id, w] : waiters)
    w.done(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped), kv::Response{});
  for (auto& [token, r] : readers_)
    r(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
  readers_.clear();
  for (auto& c : conf_waiters_)
    c.done(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
  conf_waiters_.clear();
  for (auto& c : in_conf_changes_)
    c.done(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
  in_conf_changes_.clear();
  for (auto& t : transfers_)
    t.done(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
  transfers_.clear();
  for (auto& t : in_transfers_)
    t.done(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
  in_transfers_.clear();
  for (auto& [index, r] : waiting_reads_)
    r(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
  waiting_reads_.clear();
  for (auto& item : apply_queue_) {
    for (auto& r : item.readers)
      r(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
  }
  apply_queue_.clear();
  for (auto& [group, r] : in_reads_)
    r(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
  in_reads_.clear();
  for (auto& f : in_group_infos_)
    f(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped), {});
  in_group_infos_.clear();
  // Group changes applied here and not yet answered: applied they are.
  for (auto& answer : in_group_change_dones_)
    answer();
  in_group_change_dones_.clear();
  for (auto& item : group_apply_queue_) {
    for (auto& r : item.readers)
      r(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
  }
  group_apply_queue_.clear();
  for (auto& [group, waiting] : group_waiting_reads_) {
    for (auto& [index, r] : waiting)
      r(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
  }
  group_waiting_reads_.clear();
}

void Node::receive(std::vector<raft::Message>&& messages) {
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    if (in_messages_.empty()) {
      in_messages_ = std::move(messages);
    } else {
      for (auto& m : messages)
        in_messages_.push_back(std::move(m));
    }
  }
  inbox_cv_.notify_one();
}

void Node::report_unreachable(raft::NodeId id) {
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    in_unreachable_.push_back(id);
  }
  inbox_cv_.notify_one();
}

void Node::propose(kv::Command command, ProposeDone done) {
  command.log_time_ms = now_ms();
  uint64_t request_id = next_request_id_.fetch_add(1);
  std::string encoded = kv::encode_command(command);
  // etcd's --max-request-bytes bounds the request as it enters the log.
  if (encoded.size() > options_.max_request_bytes) {
    done(rpc_error(RpcCode::kInvalidArgument, rpc_errors::kTooLarge), kv::Response{});
    return;
  }
  std::string data =
      encode_proposal(ProposalHeader{ProposalKind::kCommand, options_.id, request_id}, encoded);
  submit(request_id, std::move(data), std::move(done));
}

void Node::propose_envelope(ProposalKind kind, const std::string& payload, ProposeDone done) {
  uint64_t request_id = next_request_id_.fetch_add(1);
  submit(request_id, encode_proposal(ProposalHeader{kind, options_.id, request_id}, payload),
         std::move(done));
}

void Node::submit(uint64_t request_id, std::string data, ProposeDone done) {
  bool overloaded = false;
  {
    // Checked and registered under the inbox lock: once stop() has set stopping_, no waiter
    // can be added that nothing would ever answer.
    std::lock_guard<std::mutex> lk(inbox_mu_);
    // Backpressure, as etcd: while the state machine is this far behind the log, new proposals
    // are refused at once instead of queueing into timeouts.
    if (commit_.load() > applied_.load() + kMaxApplyLag) {
      overloaded = true;
    } else if (!failed_ && !stopping_) {
      {
        std::lock_guard<std::mutex> wl(waiters_mu_);
        waiters_.emplace(request_id,
                         Waiter{std::move(done), Clock::now() + std::chrono::milliseconds(
                                                                    options_.request_timeout_ms)});
      }
      in_proposals_.push_back(PendingProposal{request_id, std::move(data)});
      done = nullptr;
    }
  }
  if (done) {
    ++proposals_failed_;
    done(overloaded ? rpc_error(RpcCode::kResourceExhausted, rpc_errors::kTooManyRequests)
                    : rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped),
         kv::Response{});
    return;
  }
  inbox_cv_.notify_one();
}

std::vector<Node::Alarm> Node::alarms() const {
  std::lock_guard<std::mutex> lk(alarms_mu_);
  return alarms_;
}

bool Node::has_alarm(AlarmType type) const {
  return (alarm_types_.load(std::memory_order_acquire) >> static_cast<unsigned>(type)) & 1u;
}

void Node::refresh_alarm_types() {
  uint32_t types = 0;
  for (const Alarm& a : alarms_)
    types |= 1u << static_cast<unsigned>(a.type);
  alarm_types_.store(types, std::memory_order_release);
}

void Node::change_alarm(const AlarmChange& change, Done done) {
  propose_envelope(ProposalKind::kAlarm, encode_alarm_change(change),
                   [done = std::move(done)](const RpcError& e, kv::Response&&) { done(e); });
}

void Node::transfer_leadership(raft::NodeId target, Done done) {
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    if (!stopping_) {
      in_transfers_.push_back(Transfer{
          target, std::move(done),
          Clock::now() + std::chrono::milliseconds(options_.tick_ms * options_.election_ticks * 2),
          false});
      done = nullptr;
    }
  }
  if (done) {
    done(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
    return;
  }
  inbox_cv_.notify_one();
}

void Node::read_barrier(ReadDone done) {
  if (failed_) {
    done(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
    return;
  }
  if (options_.unsafe_stale_reads) {
    done(RpcError{});
    return;
  }
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    if (stopping_) {
      done(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
      return;
    }
    in_reads_.emplace_back(kGroup, std::move(done));
  }
  inbox_cv_.notify_one();
}

void Node::set_events_listener(EventsFn fn) {
  std::lock_guard<std::mutex> lk(apply_mu_);
  events_fn_ = std::move(fn);
}

void Node::set_auth_listener(AuthFn fn) {
  std::lock_guard<std::mutex> lk(apply_mu_);
  auth_fn_ = std::move(fn);
}

NodeStatus Node::status() const {
  NodeStatus s;
  s.leader = leader_;
  s.term = term_;
  s.commit = commit_;
  s.applied = applied_;
  s.revision = store_->revision();
  s.compact_revision = store_->compact_revision();
  s.is_learner = is_learner_;
  s.leader_changes = leader_changes_;
  s.proposals_committed = proposals_committed_;
  s.proposals_applied = proposals_applied_;
  s.proposals_failed = proposals_failed_;
  {
    std::lock_guard<std::mutex> lk(waiters_mu_);
    s.proposals_pending = waiters_.size();
  }
  return s;
}

std::vector<MemberInfo> Node::members() const {
  std::lock_guard<std::mutex> lk(members_mu_);
  std::vector<MemberInfo> out;
  for (const auto& [id, m] : members_)
    out.push_back(m);
  return out;
}

int64_t Node::lease_renew(int64_t id, bool* clear_checkpoint) {
  std::lock_guard<std::mutex> lk(lessor_mu_);
  int64_t ttl = lessor_.renew(id, now_ms());
  if (clear_checkpoint != nullptr) *clear_checkpoint = ttl >= 0 && lessor_.has_checkpoint(id);
  return ttl;
}

void Node::lease_clear_checkpoint(int64_t id, std::function<void(const RpcError&)> done) {
  kv::Command c;
  c.log_time_ms = now_ms();
  c.op = kv::LeaseCheckpointRequest{{{id, 0}}};
  propose(std::move(c), [done = std::move(done)](const RpcError& e, kv::Response&&) { done(e); });
}

int64_t Node::lease_remaining(int64_t id) const {
  std::lock_guard<std::mutex> lk(lessor_mu_);
  return lessor_.remaining_seconds(id, now_ms());
}

void Node::fail_on_damaged_log() {
  std::string why = wal_->read_failure();
  std::string next = why.rfind("Corruption", 0) == 0
                         ? "See docs/OPERATIONS.md, \"A damaged write-ahead log\""
                         : "Check the disk and the data directory, then restart the member";
  fail_fatal("the write-ahead log cannot read back entries it holds (" + why +
             "); this member stops rather than vote or acknowledge without its log. " + next);
}

void Node::fail_fatal(const std::string& why) {
  if (failed_.exchange(true)) return;
  log(LogLevel::kFatal, why);
  std::function<void(const std::string&)> fn;
  {
    std::lock_guard<std::mutex> lk(fatal_mu_);
    fatal_reason_ = why;
    fn = on_fatal_;
  }
  if (fn) fn(why);
}

void Node::finish_proposal(uint64_t request_id, const RpcError& error, kv::Response&& response) {
  ProposeDone done;
  {
    std::lock_guard<std::mutex> lk(waiters_mu_);
    auto it = waiters_.find(request_id);
    if (it == waiters_.end()) return;
    done = std::move(it->second.done);
    waiters_.erase(it);
  }
  if (!error.ok()) ++proposals_failed_;
  done(error, std::move(response));
}

}  // namespace chorus::server
