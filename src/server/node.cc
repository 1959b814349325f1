#include "server/node.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
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

constexpr raft::GroupId kGroup = 1;
// Lease revokes proposed by the leader are proposed again if not applied in this time.
constexpr auto kRevokeRetry = std::chrono::seconds(3);
constexpr size_t kMaxRevokesPerTick = 64;
// Committed but not yet applied entries beyond which proposals are refused (etcd's
// maxGapBetweenApplyAndCommitIndex).
constexpr raft::Index kMaxApplyLag = 5000;
constexpr const char* kClusterIdFile = "cluster_id";
constexpr const char* kMemberIdFile = "member_id";

std::string hex_id(uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

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

std::vector<raft::Entry> bootstrap_entries(const std::vector<InitialMember>& members) {
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

Node::Node(const NodeOptions& options) : options_(options), start_time_(Clock::now()) {
  // Request ids and read contexts must not repeat across restarts: entries this member proposed
  // before a restart are applied again (or arrive late) carrying their old ids. The wall clock
  // in the high bits makes each boot's ids start past the previous boot's.
  auto wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  uint64_t base = static_cast<uint64_t>(wall_ms) << 20;
  next_request_id_ = base;
  next_read_context_ = base;
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

storage::WalBatch ready_batch(raft::GroupId group, const raft::Ready& rd) {
  storage::WalBatch batch;
  if (rd.snapshot) batch.apply_snapshot(group, *rd.snapshot);
  if (!rd.entries.empty()) batch.append(group, rd.entries);
  if (rd.hard_state) batch.set_hard_state(group, *rd.hard_state);
  return batch;
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
  const std::string wal_dir = storage::join_path(member_dir, "wal");
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
  if (first_start) {
    // The log is created with an empty configuration; a new cluster then writes the additions
    // of its initial members as committed entries of term 1, identical on every member, so
    // that a member added later learns the whole membership by replaying the log.
    CHORUS_RETURN_IF_ERROR(wal_->bootstrap(kGroup, raft::ConfState{}));
    if (options_.new_cluster) {
      storage::WalBatch batch;
      std::vector<raft::Entry> entries = bootstrap_entries(options_.initial_members);
      batch.append(kGroup, entries);
      batch.set_hard_state(kGroup, raft::HardState{1, raft::kNoNode, entries.size()});
      CHORUS_RETURN_IF_ERROR(wal_->commit(batch));
    }
  }

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
  c.pre_vote = true;
  c.check_quorum = true;
  c.read_only =
      options_.lease_reads ? raft::ReadOnlyOption::kLeaseBased : raft::ReadOnlyOption::kSafe;
  c.max_entry_bytes = std::max<uint64_t>(options_.max_request_bytes + 4096, 1 << 20);
  // Configuration changes after the snapshot replay through the driver as they are applied;
  // the store skips the commands it already holds.
  c.applied = snap.metadata.index;
  c.seed = options_.id ^ static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  raft_ = std::make_unique<raft::Raft>(c);
  applied_ = store_->applied_index();
  commit_ = raft_->log().committed();
  term_ = raft_->term();

  rebuild_lessor();
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
  next_tick_ = Clock::now() + std::chrono::milliseconds(options_.tick_ms);
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
  started_ = false;

  // Whoever still waits gets an answer.
  std::unordered_map<uint64_t, Waiter> waiters;
  {
    std::lock_guard<std::mutex> lk(waiters_mu_);
    waiters.swap(waiters_);
  }
  for (auto& [id, w] : waiters)
    w.done(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped), kv::Response{});
  for (auto& [ctx, round] : read_rounds_) {
    for (auto& r : round.readers)
      r(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
  }
  read_rounds_.clear();
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
  for (auto& r : in_reads_)
    r(rpc_error(RpcCode::kUnavailable, rpc_errors::kStopped));
  in_reads_.clear();
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
  std::lock_guard<std::mutex> lk(alarms_mu_);
  for (const Alarm& a : alarms_) {
    if (a.type == type) return true;
  }
  return false;
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
    in_reads_.push_back(std::move(done));
  }
  inbox_cv_.notify_one();
}

void Node::set_events_listener(EventsFn fn) {
  std::lock_guard<std::mutex> lk(apply_mu_);
  events_fn_ = std::move(fn);
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

int64_t Node::lease_renew(int64_t id) {
  std::lock_guard<std::mutex> lk(lessor_mu_);
  return lessor_.renew(id, now_ms());
}

int64_t Node::lease_remaining(int64_t id) const {
  std::lock_guard<std::mutex> lk(lessor_mu_);
  return lessor_.remaining_seconds(id, now_ms());
}

// ---- raft thread ----

void Node::raft_loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lk(inbox_mu_);
      inbox_cv_.wait_until(lk, next_tick_, [this] {
        return stopping_ || transfer_requested_ || !in_transfers_.empty() ||
               !in_conf_changes_.empty() || !in_snapshots_.empty() || !in_messages_.empty() ||
               !in_proposals_.empty() || !in_reads_.empty() || !in_unreachable_.empty() ||
               !in_fetched_.empty();
      });
      if (stopping_) return;
    }
    Clock::time_point now;
    bool tick_due = false;
    drain_inbox(&now, &tick_due);
    if (tick_due) {
      expire_requests(now);
      if (is_leader()) propose_lease_revokes();
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
    while (!failed_ && raft_->has_ready())
      handle_ready();
    if (!failed_ && raft_->storage_failed()) fail_on_damaged_log();
    if (failed_) return;
    if (raft_->take_snapshot_request()) {
      {
        std::lock_guard<std::mutex> lk(apply_mu_);
        snapshot_requested_ = true;
      }
      apply_cv_.notify_one();
    }
    if (!transfers_.empty()) check_transfers();
  }
}

void Node::drain_inbox(Clock::time_point* now, bool* tick_due) {
  std::vector<raft::Message> messages;
  std::vector<PendingProposal> proposals;
  std::vector<ReadDone> reads;
  std::vector<raft::NodeId> unreachable;
  std::vector<ConfRequest> conf_requests;
  std::vector<raft::Snapshot> snapshots;
  std::vector<FetchResult> fetched;
  bool transfer = false;
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    messages.swap(in_messages_);
    proposals.swap(in_proposals_);
    reads.swap(in_reads_);
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
  *tick_due = *now >= next_tick_;
  while (*now >= next_tick_) {
    raft_->tick();
    next_tick_ += std::chrono::milliseconds(options_.tick_ms);
  }
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
      return;
    }
  }
  if (!conf_requests.empty()) start_conf_changes(std::move(conf_requests));
  for (auto& m : messages) {
    if (hold_snapshot_message(m)) continue;
    // A malformed or stray message is the peer's problem; the core refuses it safely.
    (void)raft_->step(std::move(m));
  }
  for (raft::NodeId id : unreachable) {
    raft_->report_unreachable(id);
    // A snapshot message lost with its connection would otherwise leave the follower waiting
    // for it forever: the leader sends nothing else to a follower in snapshot state.
    raft_->report_snapshot(id, true);
  }
  for (auto& p : proposals) {
    raft::Error err = raft_->propose(std::move(p.data));
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
  if (!reads.empty()) {
    // Every read that arrived since the last turn shares one ReadIndex round.
    uint64_t ctx = next_read_context_++;
    raft::Error err = raft_->read_index(ctx);
    if (err != raft::Error::kOk) {
      for (auto& r : reads)
        r(rpc_error(RpcCode::kUnavailable, rpc_errors::kNoLeader));
    } else {
      read_rounds_[ctx] = ReadRound{
          std::move(reads), Clock::now() + std::chrono::milliseconds(options_.request_timeout_ms)};
    }
  }
  if (transfer && raft_->role() == raft::Role::kLeader) {
    raft::Status st = raft_->status();
    raft::NodeId best = raft::kNoNode;
    raft::Index best_match = 0;
    for (const auto& [id, pr] : st.progress) {
      if (id == options_.id || pr.is_learner) continue;
      if (best == raft::kNoNode || pr.match > best_match) {
        best = id;
        best_match = pr.match;
      }
    }
    if (best != raft::kNoNode) (void)raft_->transfer_leader(best);
  }
}

void Node::expire_requests(Clock::time_point now) {
  for (auto it = read_rounds_.begin(); it != read_rounds_.end();) {
    if (it->second.deadline <= now) {
      for (auto& r : it->second.readers)
        r(rpc_error(RpcCode::kUnavailable, rpc_errors::kTimeout));
      it = read_rounds_.erase(it);
    } else {
      ++it;
    }
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
    (void)raft_->propose(std::move(data));
  }
}

void Node::publish_attributes() {
  MemberAttributes a{options_.id, options_.name, options_.client_urls};
  std::string data = encode_proposal(ProposalHeader{ProposalKind::kMemberAttributes, 0, 0},
                                     encode_member_attributes(a));
  // Retried every tick until it is applied (apply_loop sets published_ through the member
  // table), so a proposal lost in an election is proposed again.
  (void)raft_->propose(std::move(data));
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
  (void)raft_->propose(std::move(data));
}

void Node::check_transfers() {
  auto now = Clock::now();
  for (auto it = transfers_.begin(); it != transfers_.end();) {
    Transfer& t = *it;
    RpcError result;
    bool finished = false;
    if (!t.started) {
      t.started = true;
      if (raft_->role() != raft::Role::kLeader) {
        result = rpc_error(RpcCode::kFailedPrecondition, rpc_errors::kNotLeader);
        finished = true;
      } else if (t.target == options_.id) {
        finished = true;  // already there
      } else {
        raft::Status st = raft_->status();
        auto pr = st.progress.find(t.target);
        if (pr == st.progress.end() || pr->second.is_learner) {
          result = rpc_error(RpcCode::kFailedPrecondition, rpc_errors::kBadTransferee);
          finished = true;
        } else if (raft_->transfer_leader(t.target) != raft::Error::kOk) {
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

void Node::handle_ready() {
  raft::Ready& rd = raft_->ready();
  if (raft_->storage_failed()) {
    fail_on_damaged_log();
    return;
  }
  if (rd.soft_state) {
    raft::NodeId lead = rd.soft_state->lead;
    bool was_leader = is_leader();
    if (lead != leader_.load()) {
      if (lead != raft::kNoNode) ++leader_changes_;
      leader_ = lead;
    }
    bool now_leader = rd.soft_state->role == raft::Role::kLeader;
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
  if (rd.messages_first && !rd.messages.empty()) {
    sink_->send(std::move(rd.messages));
    rd.messages.clear();
  }
  if (rd.must_write()) {
    // A snapshot from the leader: the store is replaced first, then the log records the
    // snapshot. A crash in between leaves a store ahead of the log, which replay tolerates
    // (kv/snapshots.h).
    if (rd.snapshot && !install_snapshot(*rd.snapshot)) return;
    storage::WalBatch batch = ready_batch(kGroup, rd);
    Status st;
    if (rd.must_sync()) {
      auto sync_start = Clock::now();
      st = wal_->commit(batch);
      if (options_.observe_wal_sync) {
        options_.observe_wal_sync(std::chrono::duration<double>(Clock::now() - sync_start).count());
      }
    } else {
      // Only the commit index moved: written, and made durable by the next fdatasync. A store
      // that applied past the commit index the log recovers after a power cut is tolerated:
      // replay skips what the store holds.
      st = wal_->write(batch);
    }
    if (!st.is_ok()) {
      fail_fatal("write-ahead log: " + st.to_string());
      return;
    }
  }
  if (rd.hard_state) {
    term_ = rd.hard_state->term;
    commit_ = rd.hard_state->commit;
  }
  if (!rd.messages.empty()) sink_->send(std::move(rd.messages));

  ApplyItem item;
  for (const raft::Entry& e : rd.committed_entries) {
    if (e.type == raft::EntryType::kConfChange) item.confs.push_back(apply_conf_change_entry(e));
  }
  std::vector<raft::ReadState> read_states = std::move(rd.read_states);
  raft_->advance();

  item.entries.swap(raft_->ready_for_driver().committed_entries);
  bool has_entries = !item.entries.empty();
  if (has_entries) proposals_committed_ += item.entries.size();
  std::vector<ApplyItem> reads;
  for (const raft::ReadState& rs : read_states) {
    auto it = read_rounds_.find(rs.context);
    if (it == read_rounds_.end()) continue;
    ApplyItem r;
    r.read_index = rs.index;
    r.readers = std::move(it->second.readers);
    read_rounds_.erase(it);
    reads.push_back(std::move(r));
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

raft::ConfState Node::apply_conf_change_entry(const raft::Entry& e) {
  std::optional<raft::ConfChange> cc = raft::ConfChange::decode(e.data);
  if (!cc) {
    fail_fatal("undecodable configuration change at index " + std::to_string(e.index));
    return raft_->status().config;
  }
  // The member table follows the configuration the core reports: a change the core ignored
  // (invalid, the same on every replica) changes nothing here either.
  raft::ConfState conf = raft_->apply_conf_change(*cc);
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
  return conf;
}

// The lessor's leases from the store (at start, or after the store was replaced); a leader
// keeps leading them, each with a full TTL from now.
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
  std::lock_guard<std::mutex> lk(alarms_mu_);
  for (const Alarm& a : alarms_)
    st.alarms.push_back(AlarmChange{true, a.member, a.type});
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
    if (sink_ != nullptr) {
      for (const auto& [id, m] : members_) {
        if (id != options_.id && !m.peer_urls.empty()) sink_->set_peer(id, m.peer_urls);
      }
    }
  }
  std::lock_guard<std::mutex> lk(alarms_mu_);
  alarms_.clear();
  for (const AlarmChange& a : st.alarms)
    alarms_.push_back(Alarm{a.member, a.type});
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
  bool stale = store_->applied_index() >= index || held_snapshot_->term < raft_->term();
  if (stale || (staged_ && staged_index_ >= index)) {
    raft::Message m = std::move(*held_snapshot_);
    held_snapshot_.reset();
    (void)raft_->step(std::move(m));
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
    (void)raft_->step(std::move(m));
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
  fetch_thread_ = std::thread([this, urls, index, r = receiver.release()] {
    base::set_thread_name("chorus-fetch");
    FetchResult f;
    f.index = index;
    f.receiver.reset(r);
    f.status = options_.fetch_snapshot(urls, index, f.receiver.get(), fetch_stop_);
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
  applied_ = store_->applied_index();
  rebuild_lessor();
  return true;
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
      if (raft_->role() != raft::Role::kLeader) {
        r.done(rpc_error(RpcCode::kFailedPrecondition, rpc_errors::kNotLeader));
        continue;
      }
      raft::Status st = raft_->status();
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
    raft::Error err = raft_->propose_conf_change(r.cc);
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

// ---- apply thread ----

void Node::apply_loop() {
  std::vector<kv::AppliedEntry> batch;
  std::vector<ProposalHeader> headers;
  while (true) {
    std::deque<ApplyItem> items;
    EventsFn events_fn;
    {
      std::unique_lock<std::mutex> lk(apply_mu_);
      apply_cv_.wait(lk, [this] {
        return apply_stop_ || !apply_queue_.empty() || snapshot_requested_.load();
      });
      if (apply_stop_) return;
      items.swap(apply_queue_);
      events_fn = events_fn_;
    }
    std::lock_guard<std::mutex> exec(apply_exec_mu_);
    // Every committed entry waiting is applied as one batch: one RocksDB write.
    batch.clear();
    headers.clear();
    std::vector<MemberAttributes> attributes;
    std::vector<uint64_t> other_done;  // envelopes other than commands made here
    for (ApplyItem& item : items) {
      for (const raft::Entry& e : item.entries) {
        kv::AppliedEntry a{e.index, e.term, {}};
        ProposalHeader h;
        if (e.type == raft::EntryType::kNormal && !e.data.empty()) {
          std::string_view payload;
          std::optional<ProposalHeader> decoded = decode_proposal(e.data, &payload);
          if (decoded && decoded->kind == ProposalKind::kCommand) {
            h = *decoded;
            a.data = payload;
          } else if (decoded && decoded->kind == ProposalKind::kMemberAttributes) {
            if (auto attr = decode_member_attributes(payload)) attributes.push_back(*attr);
          } else if (decoded && decoded->kind == ProposalKind::kMemberPeerUrls) {
            if (auto u = decode_member_peer_urls(payload)) apply_peer_urls(*u);
            if (decoded->proposer == options_.id && decoded->request_id != 0) {
              other_done.push_back(decoded->request_id);
            }
          } else if (decoded && decoded->kind == ProposalKind::kAlarm) {
            if (auto change = decode_alarm_change(payload)) apply_alarm(*change);
            if (decoded->proposer == options_.id && decoded->request_id != 0) {
              other_done.push_back(decoded->request_id);
            }
          } else {
            // Not a proposal of this server: applied as a no-op so every replica agrees.
            log(LogLevel::kWarn, "entry " + std::to_string(e.index) + " has an unknown format");
          }
        }
        batch.push_back(a);
        headers.push_back(h);
      }
      for (ReadDone& r : item.readers)
        waiting_reads_.emplace(item.read_index, std::move(r));
      item.readers.clear();
      // Items committed before an installed snapshot describe an older configuration.
      bool superseded = !item.entries.empty() && item.entries.back().index <= installed_index_;
      if (!item.confs.empty() && !superseded) applied_conf_ = item.confs.back();
      if (!item.entries.empty()) seen_index_ = std::max(seen_index_, item.entries.back().index);
    }
    // Entries the store already holds (replayed after a restart) are left out, so that the
    // store's responses line up with the batch.
    raft::Index store_applied = store_->applied_index();
    size_t skip = 0;
    while (skip < batch.size() && batch[skip].index <= store_applied)
      ++skip;
    if (skip > 0) {
      batch.erase(batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(skip));
      headers.erase(headers.begin(), headers.begin() + static_cast<std::ptrdiff_t>(skip));
    }
    if (!batch.empty()) {
      kv::MvccStore::ApplyResult result;
      auto apply_start = Clock::now();
      Status st = store_->apply(batch, &result);
      if (options_.observe_apply) {
        options_.observe_apply(std::chrono::duration<double>(Clock::now() - apply_start).count());
      }
      if (!st.is_ok()) {
        fail_fatal("state machine: " + st.to_string());
        return;
      }
      if (result.responses.size() != batch.size()) {
        fail_fatal("state machine answered " + std::to_string(result.responses.size()) + " of " +
                   std::to_string(batch.size()) + " entries");
        return;
      }
      applied_ = store_->applied_index();
      proposals_applied_ += batch.size();
      for (size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].data.empty()) continue;
        const kv::Response& resp = result.responses[i];
        // Lease bookkeeping for the leader's expiry clock, on every replica.
        if (const auto* g = std::get_if<kv::LeaseGrantResponse>(&resp.op)) {
          if (resp.error.ok()) {
            std::lock_guard<std::mutex> lk(lessor_mu_);
            lessor_.granted(g->id, g->ttl, now_ms());
          }
        } else if (std::holds_alternative<kv::LeaseRevokeResponse>(resp.op) ||
                   resp.error.message == kv::errors::kLeaseNotFound) {
          if (auto cmd = kv::decode_command(batch[i].data)) {
            if (const auto* rv = std::get_if<kv::LeaseRevokeRequest>(&cmd->op)) {
              std::lock_guard<std::mutex> lk(lessor_mu_);
              lessor_.revoked(rv->id);
            }
          }
        }
      }
      if (events_fn && !result.events.empty()) events_fn(result.events, store_->revision());
      for (size_t i = 0; i < batch.size(); ++i) {
        if (headers[i].proposer != options_.id || headers[i].request_id == 0) continue;
        finish_proposal(headers[i].request_id, RpcError{}, std::move(result.responses[i]));
      }
    }
    for (uint64_t id : other_done)
      finish_proposal(id, RpcError{}, kv::Response{});
    if (!attributes.empty()) {
      std::lock_guard<std::mutex> lk(members_mu_);
      for (const MemberAttributes& a : attributes) {
        auto it = members_.find(a.id);
        if (it == members_.end()) continue;  // removed since
        it->second.name = a.name;
        it->second.client_urls = a.client_urls;
      }
    }
    maybe_snapshot();
    if (failed_) return;
    raft::Index applied = applied_;
    while (!waiting_reads_.empty() && waiting_reads_.begin()->first <= applied) {
      ReadDone r = std::move(waiting_reads_.begin()->second);
      waiting_reads_.erase(waiting_reads_.begin());
      r(RpcError{});
    }
  }
}

}  // namespace chorus::server
