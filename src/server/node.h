// The node driver: one Raft group on real storage and a real network. It owns the pure core and
// feeds it time, messages and requests; it persists each Ready with one write and one fdatasync
// BEFORE sending that Ready's messages, and hands committed entries to the state machine.
//
// Threads (docs/ARCHITECTURE.md, "Threads"):
//   raft thread   owns raft::Raft and the Wal's writer side. Each turn drains the inbox (peer
//                 messages, proposals, read requests), ticks, then persists, sends and passes
//                 committed entries on. Everything that arrives during an fdatasync goes out in
//                 the next Ready: that is the batching of proposals, of log writes and of sends.
//   apply thread  applies committed entries to the MvccStore in batches (one RocksDB write per
//                 batch), answers the proposals made here, and runs linearizable reads once the
//                 store has reached their read index.
// Callers (gRPC threads, the transport's thread) only touch the inbox, under a mutex.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/engine.h"
#include "kv/group_store.h"
#include "kv/lessor.h"
#include "kv/mvcc.h"
#include "kv/snapshots.h"
#include "raft/raft.h"
#include "server/errors.h"
#include "server/group_directory.h"
#include "server/proposal.h"
#include "storage/file.h"
#include "storage/snapshot_stream.h"
#include "storage/wal.h"

namespace chorus::server {

// Where the node sends its messages; the real one is transport::PeerTransport.
class MessageSink {
 public:
  virtual ~MessageSink() = default;
  virtual void send(std::vector<raft::Message>&& messages) = 0;
  // A member's peer address became known or changed (configuration changes).
  virtual void set_peer(raft::NodeId id, const std::vector<std::string>& peer_urls) = 0;
  virtual void remove_peer(raft::NodeId id) = 0;
};

struct InitialMember {
  raft::NodeId id = 0;
  std::string name;
  std::vector<std::string> peer_urls;
};

struct NodeOptions {
  raft::NodeId id = 0;
  uint64_t cluster_id = 0;
  std::string name;
  std::string data_dir;
  std::vector<std::string> client_urls;  // advertised, published to the cluster
  // A new cluster writes every initial member's addition into its log (the same entries on
  // every member), so that the log alone describes the membership; a member joining an
  // existing cluster starts empty and learns it from the leader.
  bool new_cluster = true;
  std::vector<InitialMember> initial_members;
  // --initial-cluster-token: member ids of added members derive from it and their peer URLs.
  std::string cluster_token;

  // Data groups a new cluster starts with (--initial-groups): ids 2..N+1, each placed on up to
  // three initial members by initial_placement(). Their replicas share the log, the rounds and
  // the fdatasyncs of the etcd group; their state machines share one RocksDB (member/groups).
  uint32_t initial_groups = 0;
  // Idle data groups quiesce: no ticks and no heartbeats until something arrives (member
  // liveness, one heartbeat per member pair per tick, notices a dead leader's member).
  bool quiesce_groups = true;
  // How often the raft thread compacts the logs of quiesced data groups (every replica of such a
  // group holds its whole log, so none can need a snapshot for what goes), and how many log
  // segments there must be before it does (one: nothing to release).
  int group_compact_interval_ms = 5000;
  size_t group_compact_min_segments = 2;
  // A data group that never rests is compacted too, once its log holds this many entries, down
  // to `group_catch_up_entries` behind its applied index (a follower further behind gets a
  // snapshot of the group).
  uint64_t group_log_entries = 20'000;
  uint64_t group_catch_up_entries = 2'000;

  // etcd's --experimental-enable-lease-checkpoint: how often the leader records the time left
  // on each lease through the log (kv::Lessor), in milliseconds; 0: never.
  int64_t lease_checkpoint_interval_ms = 0;
  // etcd's --wal-dir: the log's directory; empty: <data_dir>/member/wal.
  std::string wal_dir;
  // etcd's --force-new-cluster: at start, every other member is removed from the configuration
  // through entries appended to the log and committed with it, so this member alone forms the
  // cluster, with its data and its whole log (disaster recovery).
  bool force_new_cluster = false;
  // etcd's --pre-vote, for the etcd keyspace's group (data groups always pre-vote: a quiesced
  // group's replica waking alone must not depose a leader).
  bool pre_vote = true;
  int tick_ms = 100;  // etcd's --heartbeat-interval
  int election_ticks = 10;
  bool lease_reads = false;
  // --unsafe-test-fault stale-reads: read_barrier answers at once, from whatever this member
  // has applied. Only for proving that the fault harness catches stale reads.
  bool unsafe_stale_reads = false;
  // --unsafe-test-fault corrupt-writes: this replica alters every put's value as it applies it.
  // Only for proving that the corruption checks catch a diverged store.
  bool unsafe_corrupt_writes = false;
  kv::MvccOptions mvcc;
  kv::SnapshotPolicy snapshots;
  uint64_t max_request_bytes = 1572864;
  // etcd's --quota-backend-bytes: past it the member raises the NOSPACE alarm.
  int64_t quota_backend_bytes = int64_t{2} << 30;
  // A request not answered in this time fails with etcd's "request timed out".
  int request_timeout_ms = 7000;
  // Fetches the state machine of the member at `client_urls` into `receiver`, once that
  // member has applied at least `min_index` (a follower installing a snapshot). Blocking, on
  // the node's fetch thread; it gives up soon after `stop` turns true. Set by the API layer,
  // which owns the gRPC client. Empty: snapshots cannot be installed.
  // `ticket` is the one the sender's snapshot message carried (fetch_ticket_valid() on the
  // sender accepts it).
  std::function<storage::Status(const std::vector<std::string>& client_urls, raft::Index min_index,
                                const std::string& ticket, storage::SnapshotReceiver* receiver,
                                const std::atomic<bool>& stop)>
      fetch_snapshot;
  // The file system the log and the node's own files go through; empty: the local disk. Tests
  // wrap the local disk to stall or fail its syncs.
  std::function<std::unique_ptr<storage::FileSystem>()> file_system;
  // Timings for metrics (may be empty): each log write with its fdatasync, each applied batch.
  std::function<void(double seconds)> observe_wal_sync;
  std::function<void(double seconds)> observe_apply;
};

// The data groups of a member, read without locks.
struct GroupsStatus {
  uint64_t hosted = 0;   // replicas here
  uint64_t leading = 0;  // of which leaders
  uint64_t awake = 0;    // replicas whose timers run (the others are quiesced)
  uint64_t peers_down = 0;
  uint64_t writes_applied = 0;
  uint64_t logs_compacted = 0;       // compactions of a data group's log, in all
  uint64_t snapshots_sent = 0;       // data groups' snapshots filled and sent from here
  uint64_t snapshots_installed = 0;  // and installed here
};

// A data group's share of this member's work (Node::busiest_groups).
struct GroupLoad {
  raft::GroupId id = 0;
  uint64_t writes_applied = 0;  // since this member started
  raft::Index applied = 0;
};

// One data group as this member sees it.
struct GroupInfo {
  raft::GroupId id = 0;
  raft::NodeId leader = 0;
  raft::Term term = 0;
  raft::Index commit = 0;
  raft::Index applied = 0;
  bool quiesced = false;
  std::vector<raft::NodeId> voters;
};

// What the node reports about itself, read without locks.
struct NodeStatus {
  raft::NodeId leader = 0;
  raft::Term term = 0;
  raft::Index commit = 0;
  raft::Index applied = 0;
  int64_t revision = 0;
  int64_t compact_revision = 0;
  bool is_learner = false;
  uint64_t leader_changes = 0;
  uint64_t proposals_committed = 0;
  uint64_t proposals_applied = 0;
  uint64_t proposals_pending = 0;
  uint64_t proposals_failed = 0;
};

class Node {
 public:
  // Opens (or creates) the log and the store in options.data_dir and recovers. A damaged log or
  // store is an error naming what is damaged; the node does not start.
  static storage::Status open(const NodeOptions& options, std::unique_ptr<Node>* out);
  // The member id recorded in a data directory (not_found if none is), and whether the
  // directory holds a member's log or store at all.
  static storage::Status stored_member_id(const std::string& data_dir, uint64_t* id);
  static bool has_data(const std::string& data_dir);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Starts the raft and apply threads. `sink` must outlive the node. `on_fatal` runs once if
  // storage fails (a failed fsync): the node has stopped and the process should exit.
  void start(MessageSink* sink, std::function<void(const std::string&)> on_fatal);
  // Hands leadership to the most up-to-date follower (waiting at most `transfer_wait_ms`),
  // then stops both threads. Requests still waiting fail with "server stopped".
  void stop(int transfer_wait_ms);

  // Whether `ticket` is one this member's snapshot messages carried in the last ten minutes: a
  // member fetching the store shows it (the Snapshot call needs the root role otherwise, while
  // auth is on). Each snapshot message gets a fresh random ticket, sent over the peer
  // connection; the fetch shows it on the client connection that carries the store itself.
  bool fetch_ticket_valid(const std::string& ticket) const;

  // From the transport.
  void receive(std::vector<raft::Message>&& messages);
  void report_unreachable(raft::NodeId id);

  // Proposes a command. `done` runs once: on the apply thread with the state machine's response
  // when applied, or with an error (no leader, too large, timed out, stopped) from any thread.
  using ProposeDone = std::function<void(const RpcError& error, kv::Response&& response)>;
  void propose(kv::Command command, ProposeDone done);

  // Waits for a point at which a read reflects every write acknowledged before this call
  // (ReadIndex, or the leader lease with lease_reads). `done` runs on the apply thread once the
  // store has applied that point, so a read made inside `done` is linearizable; or with an error.
  using ReadDone = std::function<void(const RpcError& error)>;
  void read_barrier(ReadDone done);

  // The state machine, for reads. Thread-safe.
  const kv::MvccStore& store() const { return *store_; }
  // Event sink for watches: called on the apply thread after each applied batch.
  using EventsFn = std::function<void(const std::vector<kv::Event>& events, int64_t revision)>;
  void set_events_listener(EventsFn fn);
  // Called on the apply thread for each auth change applied that touches tokens (a login, a
  // user deleted, auth turned on or off), on every member.
  using AuthFn = std::function<void(const kv::AuthResponse& change)>;
  void set_auth_listener(AuthFn fn);
  // Called (on the raft thread) after the store was replaced by a snapshot from the leader.
  void set_store_replaced_listener(std::function<void(int64_t revision)> fn) {
    store_replaced_fn_ = std::move(fn);
  }

  // Called on the data groups' apply thread after each applied batch, with the groups whose
  // commands it applied (the Redis face wakes its blocked clients) and the messages PUBLISH
  // commands of the batch published (it delivers them to its subscribers). Thread-safe.
  using GroupsAppliedFn = std::function<void(const std::vector<raft::GroupId>& groups,
                                             kv::GroupStore::Published&& published)>;
  void set_groups_applied_listener(GroupsAppliedFn fn) {
    std::lock_guard<std::mutex> lk(groups_applied_mu_);
    groups_applied_fn_ = std::make_shared<const GroupsAppliedFn>(std::move(fn));
  }

  NodeStatus status() const;
  raft::NodeId id() const { return options_.id; }
  const std::string& data_dir() const { return options_.data_dir; }
  // 0 until a member joining an existing cluster has learned it (adopt_cluster_id).
  uint64_t cluster_id() const { return cluster_id_.load(); }
  // Records the cluster id learned from the first peer's handshake, durably, so a restart
  // knows it.
  void adopt_cluster_id(uint64_t id);
  std::vector<MemberInfo> members() const;
  // The member whose peer URLs are exactly these (in any order), or kNoNode.
  raft::NodeId find_member(const std::vector<std::string>& peer_urls) const;
  // Leases: remaining seconds and keep-alive on the leader (-1 if unknown or not leader).
  // *clear_checkpoint (may be null): a checkpoint of the lease is set, which the caller must
  // clear through the log (lease_clear_checkpoint) before it answers the keep-alive.
  int64_t lease_renew(int64_t id, bool* clear_checkpoint = nullptr);
  void lease_clear_checkpoint(int64_t id, std::function<void(const RpcError&)> done);
  int64_t lease_remaining(int64_t id) const;
  bool is_leader() const { return leader_.load() == options_.id; }
  int64_t now_ms() const;

  // Alarms are cluster state, raised and cleared through the log. `done` runs once the change
  // is applied (or failed).
  struct Alarm {
    uint64_t member = 0;
    AlarmType type = AlarmType::kNone;
  };
  // Whether the entries committed when the node opened have all been applied (or superseded
  // by a snapshot): from then on members(), alarms() and the groups are as of then at least.
  bool replayed() const { return directory_current_.load(); }
  std::vector<Alarm> alarms() const;
  bool has_alarm(AlarmType type) const;
  using Done = std::function<void(const RpcError& error)>;
  void change_alarm(const AlarmChange& change, Done done);

  // Proposes a configuration change and waits until it is applied here. With
  // `check_learner_ready` (a promotion) the leader first checks the learner is nearly caught up.
  void change_membership(const raft::ConfChange& cc, bool check_learner_ready, Done done);
  // MemberUpdate: new peer URLs for a member, through the log.
  void update_peer_urls(const MemberPeerUrls& u, Done done);
  // Ids once members and since removed: never reused, as in etcd.
  bool member_removed(raft::NodeId id) const;
  // A peer refused this member as removed: it stops, as it would on applying its removal.
  void removed_by_peer() { fail_fatal("this member was removed from the cluster"); }
  const std::string& cluster_token() const { return options_.cluster_token; }

  // Moves leadership to `target`; `done` runs once it has moved, or with etcd's errors (not the
  // leader, bad transferee, took too long).
  void transfer_leadership(raft::NodeId target, Done done);

  // Data groups (docs/ARCHITECTURE.md, "Data groups"). Whether a replica of `group` is here.
  bool hosts_group(raft::GroupId group) const;
  // The error text for a group with no replica here (NOT_FOUND).
  static std::string not_hosted(raft::GroupId group);
  // Proposes `op` to the group; `done` runs once it is applied here, or with an error.
  using GroupDone = std::function<void(const RpcError& error)>;
  void group_propose(raft::GroupId group, const kv::GroupOp& op, GroupDone done);
  // Proposes a Redis command (redis::encode_command: the command and the proposer's time) to
  // the group; `done` gets its reply once it is applied here, or an error.
  using CommandDone = std::function<void(const RpcError& error, redis::Reply&& reply)>;
  void group_command(raft::GroupId group, std::string command, CommandDone done);
  // Runs a read-only Redis command against the group's state here (after group_read_barrier:
  // linearizably).
  redis::Reply group_read_command(raft::GroupId group, const std::vector<std::string>& argv,
                                  int64_t now_ms) const;
  // Redis keys of the group expired here (kv::GroupStore::redis_expired).
  storage::Status group_redis_expired(raft::GroupId group, std::string_view from, size_t examine,
                                      int64_t now_ms, std::vector<std::string>* expired,
                                      std::string* next) const;
  // The group's live Redis keys here (kv::GroupStore::redis_keys).
  storage::Status group_redis_keys(raft::GroupId group, std::string_view from, size_t limit,
                                   size_t tie_bytes, int64_t now_ms,
                                   std::vector<kv::GroupStore::RedisKey>* out, bool* more) const;
  // As read_barrier, for a data group: `done` runs once this member's replica of the group has
  // applied a point that reflects every write acknowledged before the call.
  void group_read_barrier(raft::GroupId group, GroupDone done);
  // Reads the group's state machine here (after group_read_barrier: linearizably).
  storage::Status group_get(raft::GroupId group, std::string_view key, std::string* value) const;
  GroupsStatus groups_status() const;
  // The `n` data groups hosted here with the most writes applied since start (ties by id).
  std::vector<GroupLoad> busiest_groups(size_t n) const;
  // The group lifecycle (docs/ARCHITECTURE.md, "Group lifecycle"). The directory of data
  // groups as applied here: every group of the cluster and its replicas.
  std::vector<GroupDescriptor> group_directory() const;
  // The number of initial data groups (--initial-groups of the cluster's creation), as the
  // directory holds it: the Redis face spreads its slots over them.
  uint32_t initial_group_count() const;
  // Creates a data group through the etcd group's log: id `id` (0: the next free one) on
  // `replicas` (empty: the min(3, members) members holding the fewest replicas, the one first
  // in the fewest groups first, as the first replica campaigns). `done` runs once the change is
  // applied here and this member's replica, if it holds one, is up; or with an error.
  using GroupChangeDone = std::function<void(const RpcError& error, const GroupDescriptor& group)>;
  void create_group(raft::GroupId id, std::vector<raft::NodeId> replicas, GroupChangeDone done);
  // Deletes a data group: every member removes its replica and the replica's data; the id is
  // never given again. `done` as for create_group.
  void delete_group(raft::GroupId id, GroupChangeDone done);
  // Places a replica of the group on `member` (a voting member of the cluster), or takes it off.
  // `done` runs once the directory says so; the group's leader then changes the group's
  // configuration (a new replica joins as a learner, is caught up by a snapshot and promoted; a
  // replica leaving is removed, its member then drops it). A member does not return to a group
  // it left.
  void add_group_replica(raft::GroupId id, raft::NodeId member, GroupChangeDone done);
  void remove_group_replica(raft::GroupId id, raft::NodeId member, GroupChangeDone done);
  // Every data group hosted here, from the raft thread; `done` runs there (or at once, with
  // nothing, if the node has stopped).
  using GroupInfosDone = std::function<void(const RpcError& error, std::vector<GroupInfo>&& infos)>;
  void group_infos(GroupInfosDone done);

  // A consistent copy of the state machine in `dir` (for the Snapshot RPC), and a rewrite of its
  // files to reclaim space (Defragment).
  storage::Status checkpoint(const std::string& dir) { return store_->checkpoint(dir); }
  storage::Status defragment() { return store_->defragment(); }

 private:
  explicit Node(const NodeOptions& options);
  storage::Status recover();
  // --force-new-cluster on a log that names other members (see NodeOptions).
  storage::Status force_new_cluster();
  // A new cluster's first start: creates this member's share of options_.initial_groups
  // (before the etcd group, so a start cut short creates what is missing the next time).
  storage::Status create_initial_groups();
  // Opens the data groups' store and hosts a replica of every data group in the log.
  storage::Status open_groups();
  void groups_apply_loop();
  // The raft thread's parts of a data group's round (the etcd group has its own).
  bool start_data_round(engine::Replica& replica, engine::Round& round);
  // Raft thread: a data group's snapshot messages are taken out of `messages` and leave later
  // with the group's whole state, exported on the groups apply thread (GroupStore
  // export_group: a scan of the group); one that cannot be filled is reported failed, so the
  // leader tries again later.
  void fill_group_snapshots(engine::Replica& replica, std::vector<raft::Message>& messages);
  // Groups apply thread: the export for one of those.
  void export_group_snapshot(raft::Message&& m);
  // Raft thread: what came back.
  void send_filled_snapshots(std::vector<std::pair<raft::Message, storage::Status>>&& filled);
  // Raft thread: the groups' logs record a snapshot at each replica's applied index, with its
  // configuration (the log keeps its entries): asked for by a leader whose latest snapshot
  // predates a member it added.
  void record_group_snapshots(const std::set<raft::GroupId>& groups);
  void finish_data_round(raft::GroupId group, engine::RoundResult& out);
  // Raft thread: every read taken from the inbox, of any group, joins its group's next ReadIndex
  // round (one round per group per turn).
  void start_reads(uint64_t now_us, std::vector<std::pair<raft::GroupId, ReadDone>>&& reads);
  // The readers waiting on these tokens, taken out of readers_ (an expired one is gone).
  std::vector<ReadDone> take_readers(const std::vector<uint64_t>& tokens);
  void answer_group_infos(std::vector<GroupInfosDone>&& infos);
  // Apply thread: one change of the directory (every member alike); the error for its proposer.
  RpcError apply_group_change(const GroupChange& change, raft::Index index,
                              GroupDescriptor* result);
  void propose_group_change(const GroupChange& change, GroupChangeDone done);
  // Raft thread: creates the replicas the directory places here and this member lacks, and
  // removes those of deleted groups (their data goes on the groups' apply thread).
  void reconcile_groups(uint64_t now_us);
  // Raft thread: a replica of `group`, whose log exists, joins the engine.
  void host_group(raft::GroupId group, uint64_t now_us);
  // Raft thread, each tick: the leaders here move their groups' configurations one change at a
  // time towards the directory's replicas (add as learner, promote once caught up, remove).
  void reshape_groups();
  void refresh_engine_peers(uint64_t now_us);
  // Raft thread: asks the groups apply thread to flush what the quiesced data groups applied;
  // its answer, taken from the inbox, goes to compact_groups.
  void maybe_compact_groups(std::chrono::steady_clock::time_point now);
  void compact_groups(std::vector<storage::WalCompaction>&& list);
  void raft_loop();
  void apply_loop();
  void handle_ready();
  // One group's part of a round before the write: leadership changes, the messages that may
  // leave first, a snapshot from the leader installed. False if the node failed.
  bool start_group_round(engine::Round& rd);
  // One group's part after the write: messages, membership changes, committed entries and read
  // points handed to the apply thread.
  void finish_group_round(engine::RoundResult& out);
  // Fails the reader with this token (if still waiting) with etcd's `message`.
  void fail_reader(uint64_t token, const char* message);
  // Takes everything queued, delivers the ticks due by now (`now`, `tick_due`), then steps what
  // it took.
  void drain_inbox(std::chrono::steady_clock::time_point* now, bool* tick_due);
  void expire_requests(std::chrono::steady_clock::time_point now);
  void propose_lease_revokes();
  void propose_lease_checkpoints();
  // A committed membership change (already applied to the core by the replica): the member
  // table and the transport's peers follow it.
  void apply_member_change(const engine::AppliedConf& applied);
  void fail_fatal(const std::string& why);
  // The Raft core found log entries that read back damaged (raft::Error::kStorageFailed).
  void fail_on_damaged_log();
  void finish_proposal(uint64_t request_id, const RpcError& error, kv::Response&& response);
  void publish_attributes();
  void propose_envelope(ProposalKind kind, const std::string& payload, ProposeDone done);
  void submit(uint64_t request_id, std::string data, ProposeDone done);
  void check_quota();
  void check_transfers();
  void apply_alarm(const AlarmChange& change);
  void apply_peer_urls(const MemberPeerUrls& u);
  // The server's state for a snapshot at the store's current applied index.
  ServerState server_state();
  void restore_server_state(const ServerState& st);
  void rebuild_lessor();
  void maybe_snapshot();
  bool install_snapshot(const raft::Snapshot& snap);
  // Raft thread: holds back a snapshot message whose store must first be fetched, and starts
  // or retries that fetch. True if `m` was held back.
  bool hold_snapshot_message(raft::Message& m);
  void drive_snapshot_fetch(std::chrono::steady_clock::time_point now);
  void stop_snapshot_fetch();

  // The one Raft group this node drives; the write-ahead log is shared by groups.
  static constexpr raft::GroupId kGroup = 1;

  NodeOptions options_;
  std::unique_ptr<storage::FileSystem> fs_;
  std::unique_ptr<storage::Wal> wal_;
  std::unique_ptr<kv::MvccStore> store_;
  // The engine over the log, and the group's replica in it: the core and the driver logic the
  // simulator runs too. Raft thread only.
  engine::Engine engine_;
  engine::Replica* replica_ = nullptr;
  MessageSink* sink_ = nullptr;
  std::mutex fatal_mu_;
  std::function<void(const std::string&)> on_fatal_;
  std::string fatal_reason_;
  std::chrono::steady_clock::time_point start_time_;

  // Inbox: everything other threads hand to the raft thread.
  struct PendingProposal {
    uint64_t request_id = 0;
    std::string data;
    raft::GroupId group = kGroup;
  };
  std::mutex inbox_mu_;
  std::condition_variable inbox_cv_;
  std::vector<raft::Message> in_messages_;
  std::vector<PendingProposal> in_proposals_;
  std::vector<std::pair<raft::GroupId, ReadDone>> in_reads_;  // the etcd group's and the others'
  std::vector<GroupInfosDone> in_group_infos_;
  std::vector<raft::NodeId> in_unreachable_;
  bool stopping_ = false;
  bool transfer_requested_ = false;
  struct Transfer {
    raft::NodeId target = 0;
    Done done;
    std::chrono::steady_clock::time_point deadline;
    bool started = false;
  };
  std::vector<Transfer> in_transfers_;
  struct ConfRequest {
    raft::ConfChange cc;
    bool check_learner_ready = false;
    Done done;
    std::chrono::steady_clock::time_point deadline;
  };
  std::vector<ConfRequest> in_conf_changes_;
  void start_conf_changes(std::vector<ConfRequest>&& requests);

  // Proposals made here, waiting to be applied (any thread inserts; apply thread completes).
  void propose_group_op(raft::GroupId group, const kv::GroupOp& op, ProposeDone done);
  struct Waiter {
    ProposeDone done;
    std::chrono::steady_clock::time_point deadline;
    raft::GroupId group = kGroup;  // a data group's write fails at once if its replica goes
  };
  mutable std::mutex waiters_mu_;
  std::unordered_map<uint64_t, Waiter> waiters_;
  std::atomic<uint64_t> next_request_id_{1};

  // Raft thread only.
  uint64_t clock_us(std::chrono::steady_clock::time_point t) const;
  std::chrono::steady_clock::time_point at_clock_us(uint64_t us) const;
  // Readers in the replica's ReadIndex rounds, by their token there.
  std::unordered_map<uint64_t, ReadDone> readers_;
  uint64_t next_reader_ = 1;
  uint64_t first_read_context_ = 1;
  std::map<int64_t, std::chrono::steady_clock::time_point> revokes_in_flight_;
  bool published_ = false;
  std::chrono::steady_clock::time_point next_publish_;
  std::chrono::steady_clock::time_point next_quota_check_;
  std::vector<Transfer> transfers_;
  std::vector<ConfRequest> conf_waiters_;  // proposed, waiting to be applied

  // Apply queue: committed entries and read points, in the order the raft thread saw them.
  struct ApplyItem {
    std::vector<raft::Entry> entries;
    // The configuration after each configuration change among `entries`, in order.
    std::vector<raft::ConfState> confs;
    raft::Index read_index = 0;  // with `readers`: run them once applied >= read_index
    std::vector<ReadDone> readers;
  };
  std::mutex apply_mu_;
  std::condition_variable apply_cv_;
  std::deque<ApplyItem> apply_queue_;
  bool apply_stop_ = false;
  EventsFn events_fn_;
  AuthFn auth_fn_;
  // Tickets carried in the context of the etcd group's snapshot messages: a fresh random one
  // per message, each good for kFetchTicketLife (guarded by tickets_mu_).
  static constexpr auto kFetchTicketLife = std::chrono::minutes(10);
  static constexpr size_t kMaxFetchTickets = 64;
  mutable std::mutex tickets_mu_;
  std::deque<std::pair<uint64_t, std::chrono::steady_clock::time_point>> fetch_tickets_;
  uint64_t new_fetch_ticket();
  // Sends to the peers, stamping snapshot messages with the fetch ticket.
  void send(std::vector<raft::Message>&& messages);
  std::function<void(int64_t revision)> store_replaced_fn_;
  mutable std::mutex groups_applied_mu_;
  std::shared_ptr<const GroupsAppliedFn> groups_applied_fn_;
  std::multimap<raft::Index, ReadDone> waiting_reads_;  // apply thread only
  // Held by the apply thread while it applies, and by the raft thread while it replaces the
  // store with a snapshot: the two never overlap.
  std::mutex apply_exec_mu_;
  // Snapshots (apply thread): the configuration as of the store's applied index, and where the
  // last snapshot stands.
  raft::ConfState applied_conf_;
  raft::Index last_snapshot_index_ = 0;
  // The core asked for a snapshot newer than the log's (a member added since the last one
  // needs one): the apply thread takes it at its next turn, due or not.
  std::atomic<bool> snapshot_requested_{false};
  raft::Index seen_index_ = 0;                // the last entry handed to the apply thread
  raft::Index installed_index_ = 0;           // the last snapshot installed from the leader
  std::vector<raft::Snapshot> in_snapshots_;  // taken, for the raft thread to record (inbox)

  // A follower far behind fetches the leader's store on the fetch thread, so its raft thread
  // keeps ticking, answering heartbeats and expiring requests meanwhile; the snapshot message
  // is stepped into the core once the store is staged, and installing it is then quick.
  struct FetchResult {
    raft::Index index = 0;
    std::unique_ptr<storage::SnapshotReceiver> receiver;
    storage::Status status;
  };
  std::vector<FetchResult> in_fetched_;         // inbox
  std::optional<raft::Message> held_snapshot_;  // raft thread, and the rest below
  bool fetching_ = false;
  std::unique_ptr<storage::SnapshotReceiver> staged_;  // a complete store at staged_index_
  raft::Index staged_index_ = 0;
  std::chrono::steady_clock::time_point next_fetch_;
  std::atomic<bool> fetch_stop_{false};
  std::thread fetch_thread_;

  // Membership as applied (raft thread writes, readers copy under the mutex).
  mutable std::mutex members_mu_;
  std::map<raft::NodeId, MemberInfo> members_;
  std::set<raft::NodeId> removed_;

  mutable std::mutex alarms_mu_;
  std::vector<Alarm> alarms_;
  // Bit (1 << type) set while an alarm of that type is raised: derived from alarms_ under
  // alarms_mu_ (refresh_alarm_types), read by has_alarm on every request without the lock.
  std::atomic<uint32_t> alarm_types_{0};
  void refresh_alarm_types();

  mutable std::mutex lessor_mu_;
  kv::Lessor lessor_;

  std::atomic<uint64_t> cluster_id_{0};
  std::atomic<raft::NodeId> leader_{0};
  std::atomic<raft::Term> term_{0};
  std::atomic<raft::Index> commit_{0};
  std::atomic<raft::Index> applied_{0};
  std::atomic<bool> is_learner_{false};
  std::atomic<uint64_t> leader_changes_{0};
  std::atomic<uint64_t> proposals_committed_{0};
  std::atomic<uint64_t> proposals_applied_{0};
  std::atomic<uint64_t> proposals_failed_{0};
  std::atomic<bool> failed_{false};

  // Data groups. The raft thread changes the hosted set (under hosted_mu_, which other threads
  // read it under).
  mutable std::shared_mutex hosted_mu_;
  std::vector<raft::GroupId> data_groups_;  // sorted
  // The directory (the apply thread changes it, in log order; any thread reads it).
  mutable std::mutex directory_mu_;
  GroupDirectory directory_;
  raft::Index directory_index_ = 0;  // the etcd group's log index the directory reflects
  // After a restart the directory is the snapshot's, then replayed entry by entry: replicas are
  // created only once it has caught up with what the log had committed at open (an older
  // directory may place here a replica this member has left, and dropped, since). Removals
  // need no wait: a member never returns to a group, and a deleted group never comes back.
  raft::Index directory_replay_target_ = 0;
  std::atomic<bool> directory_current_{false};
  // Group changes proposed here, answered once applied and reconciled (under waiters_mu_; the
  // Waiter in waiters_ of the same request id answers errors and timeouts).
  std::unordered_map<uint64_t, GroupChangeDone> group_change_waiters_;
  // Inbox: the directory changed; the answers to give once the raft thread has reconciled.
  bool in_directory_changed_ = false;
  std::vector<std::function<void()>> in_group_change_dones_;
  std::set<raft::GroupId> groups_dropped_;  // raft thread: deleted groups whose data went
  // Raft thread: groups whose configuration may differ from the directory (reshape_groups), and
  // a data group's membership changed since the last reconcile.
  std::set<raft::GroupId> groups_reshaping_;
  bool reconcile_due_ = false;
  // Raft thread: when each (group, member) removal was last reported to the directory.
  std::map<std::pair<raft::GroupId, raft::NodeId>, std::chrono::steady_clock::time_point>
      gone_reported_;
  std::unique_ptr<kv::GroupStore> group_store_;
  std::vector<raft::GroupId> campaign_at_start_;  // groups this member leads first
  std::set<raft::GroupId> groups_reading_;        // raft thread: groups with reads in rounds
  std::set<raft::GroupId> groups_led_;            // raft thread: groups led here
  std::atomic<uint64_t> members_version_{0};      // bumped when the member table changes
  uint64_t engine_peers_version_ = UINT64_MAX;    // raft thread
  std::atomic<uint64_t> groups_leading_{0};
  std::atomic<uint64_t> groups_awake_{0};
  std::atomic<uint64_t> groups_peers_down_{0};
  std::atomic<uint64_t> group_writes_applied_{0};
  // Writes applied per data group (the groups apply thread counts, scrapes read).
  mutable std::mutex group_writes_mu_;
  std::unordered_map<raft::GroupId, uint64_t> group_writes_;
  std::atomic<uint64_t> group_apply_backlog_{0};  // committed entries queued for the apply thread
  // The groups' apply thread: committed entries of every data group, applied as one RocksDB
  // write per turn; proposals made here answered; reads run once their group reached them.
  struct GroupApplyItem {
    raft::GroupId group = 0;
    std::vector<raft::Entry> entries;
    raft::Index read_index = 0;
    std::vector<ReadDone> readers;
    // A compaction request: flush, then hand back those whose group applied their index.
    std::vector<storage::WalCompaction> compactions;
    // The group was removed here: its waiting reads fail, its data goes.
    bool drop = false;
    // A snapshot message of the group to fill with its state (fill_group_snapshots): exported
    // here, off the raft thread, and handed back through in_filled_snapshots_.
    std::optional<raft::Message> snapshot;
  };
  // Raft thread: a compaction is between the two threads; when the next may start.
  bool group_compaction_in_flight_ = false;
  std::chrono::steady_clock::time_point next_group_compaction_;
  std::atomic<uint64_t> groups_compacted_{0};  // group logs compacted, in all
  std::atomic<uint64_t> group_snapshots_sent_{0};
  std::atomic<uint64_t> group_snapshots_installed_{0};
  // Inbox: the apply thread's answer (possibly empty).
  std::optional<std::vector<storage::WalCompaction>> in_group_compactions_;
  // Inbox: snapshot messages filled with their group's state, or why they could not be.
  std::vector<std::pair<raft::Message, storage::Status>> in_filled_snapshots_;
  std::mutex group_apply_mu_;
  std::condition_variable group_apply_cv_;
  std::vector<GroupApplyItem> group_apply_queue_;
  bool group_apply_stop_ = false;
  // Groups apply thread only: reads waiting for their group to apply their index.
  std::map<raft::GroupId, std::multimap<raft::Index, ReadDone>> group_waiting_reads_;
  std::thread groups_apply_thread_;

  std::thread raft_thread_;
  std::thread apply_thread_;
  bool started_ = false;
};

}  // namespace chorus::server
