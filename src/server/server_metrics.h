// The metrics chorusd exports, under etcd's names where etcd has one, so that etcd's dashboards
// and alerts work on a Chorus cluster unchanged. Values owned by the node and the transport are
// read through the functions of ServerMetricsSource at each scrape; latencies and RPC counts are
// pushed by whoever measures them through the methods of ServerMetrics.
//
// Exported names. Peer ids appear as etcd prints them, lowercase hex without padding. Types are
// etcd's, including its two "_total" gauges.
//
// From ServerMetricsSource::node (NodeStatus), at each scrape:
//   etcd_server_has_leader (gauge)                1 if the member knows a leader, else 0
//   etcd_server_is_leader (gauge)                 1 if the member is the leader, else 0
//   etcd_server_is_learner (gauge)                1 if the member is a learner, else 0
//   etcd_server_leader_changes_seen_total (counter)  leader changes this member has seen
//   etcd_server_proposals_committed_total (gauge)    NodeStatus::proposals_committed
//   etcd_server_proposals_applied_total (gauge)      NodeStatus::proposals_applied
//   etcd_server_proposals_pending (gauge)            proposals made here, not yet applied
//   etcd_server_proposals_failed_total (counter)     proposals made here that failed
//   etcd_debugging_mvcc_current_revision (gauge)     the store's revision
//   etcd_debugging_mvcc_compact_revision (gauge)     the revision last compacted to
//   chorus_raft_term, chorus_raft_commit_index, chorus_raft_applied_index (gauges)
//
// From ServerMetricsSource::db_total_size_bytes, if given:
//   etcd_mvcc_db_total_size_in_bytes (gauge)      the store's size on disk
//
// From ServerMetricsSource::groups (GroupsStatus), if given: aggregates over the data groups,
// whatever their number (no label per group):
//   chorus_groups_hosted (gauge)                  data group replicas on this member
//   chorus_groups_leading (gauge)                 of which leaders
//   chorus_groups_awake (gauge)                   of which not quiesced
//   chorus_groups_peers_down (gauge)              members whose liveness heartbeats stopped
//   chorus_groups_writes_applied_total (counter)  data group writes applied here
//   chorus_groups_logs_compacted_total (counter)  compactions of quiesced groups' logs
//
// From ServerMetricsSource::transport (TransportStats), if given, all counters:
//   chorus_transport_sent_bytes_total, chorus_transport_received_bytes_total
//   chorus_transport_messages_sent_total, chorus_transport_messages_received_total
//   chorus_transport_messages_dropped_total     messages handed over and never written
//   chorus_transport_bad_frames_total           connections closed for an undecodable frame
//   chorus_transport_handshakes_rejected_total  inbound handshakes refused
//   chorus_transport_connects_total, chorus_transport_disconnects_total
//
// From ServerMetricsSource::peers, if given, one sample per peer:
//   etcd_network_active_peers{Local,Remote} (gauge)  1 while our connection to Remote is up
//   chorus_network_peer_last_round_trip_seconds{To} (gauge)  the latest round-trip sample
//   etcd_network_peer_sent_bytes_total{To} (counter)        bytes written to the peer
//   etcd_network_peer_received_bytes_total{From} (counter)  bytes read from the peer
//       (these two only for peers whose sample carries byte counts)
//
// Constant:
//   etcd_server_id{server_id} (gauge)             always 1; the label is this member's id
//   etcd_server_version{server_version} (gauge)   always 1; the label is the etcd version spoken
//
// Pushed through ServerMetrics's methods:
//   etcd_disk_wal_fsync_duration_seconds (histogram)       each fdatasync of the log
//   etcd_disk_backend_commit_duration_seconds (histogram)  each batch written to the store
//       both with etcd's buckets: 0.001 s doubling to 8.192 s
//   etcd_network_peer_round_trip_time_seconds{To} (histogram)  each round-trip sample;
//       etcd's buckets: 0.0001 s doubling to 0.8192 s
//   grpc_server_started_total{grpc_method,grpc_service,grpc_type} (counter)
//   grpc_server_handled_total{grpc_code,grpc_method,grpc_service,grpc_type} (counter)
//   grpc_server_handling_seconds{grpc_method,grpc_service,grpc_type} (histogram; --metrics
//     extensive only)
//       every RPC at its start and its end, labelled as go-grpc-prometheus labels them
//   etcd_server_health_success, etcd_server_health_failures (counters)  /health answers
//
// Together with register_process_metrics() (process_*), this is everything /metrics serves.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "raft/types.h"
#include "server/metrics.h"

namespace chorus::transport {
struct TransportStats;
}  // namespace chorus::transport

namespace chorus::server {

struct NodeStatus;
struct GroupsStatus;
struct GroupLoad;

// What the transport knows about one peer at scrape time.
struct PeerMetricsSample {
  raft::NodeId id = raft::kNoNode;
  bool connected = false;
  double round_trip_seconds = 0;  // the latest sample; 0 before the first
  // Per-peer byte counts, where the transport keeps them; without them the two etcd byte
  // metrics leave this peer out.
  std::optional<uint64_t> sent_bytes;
  std::optional<uint64_t> received_bytes;
};

// Read at every scrape, on the HTTP server's thread: each must be thread-safe and cheap, and
// what they capture must outlive every scrape (stop the HTTP server before destroying it).
struct ServerMetricsSource {
  std::function<NodeStatus()> node;                              // required
  std::function<transport::TransportStats()> transport;          // optional
  std::function<std::vector<PeerMetricsSample>()> peers;         // optional
  std::function<std::optional<uint64_t>()> db_total_size_bytes;  // optional
  std::function<GroupsStatus()> groups;                          // optional
  std::function<std::vector<GroupLoad>()> busiest_groups;        // optional (--group-metrics)
};

// go-grpc-prometheus's grpc_type values.
inline constexpr std::string_view kGrpcUnary = "unary";
inline constexpr std::string_view kGrpcClientStream = "client_stream";
inline constexpr std::string_view kGrpcServerStream = "server_stream";
inline constexpr std::string_view kGrpcBidiStream = "bidi_stream";

// The name grpc-go gives a status code ("OK", "NotFound", "Unavailable", ...): the grpc_code
// label. Codes outside 0..16 are "Code(n)", as in grpc-go.
std::string grpc_code_name(int code);

// A member id as etcd prints it: lowercase hex, no padding.
std::string member_id_hex(raft::NodeId id);

// Registers every metric listed above in `registry`, which owns them and must outlive this
// object. The methods are thread-safe and lock-free except for the first use of a new label set.
class ServerMetrics {
 public:
  // `extensive` (etcd's --metrics extensive) adds grpc_server_handling_seconds.
  ServerMetrics(MetricsRegistry* registry, raft::NodeId self, const std::string& server_version,
                ServerMetricsSource source, bool extensive = false);

  void observe_wal_fsync(double seconds) { wal_fsync_->observe(seconds); }
  void observe_backend_commit(double seconds) { backend_commit_->observe(seconds); }
  void observe_peer_round_trip(raft::NodeId peer, double seconds);

  // At the start and at the end of every RPC. `type` is one of kGrpc*; `service` the full
  // service name ("etcdserverpb.KV"); `method` the bare method ("Range").
  void grpc_started(std::string_view type, std::string_view service, std::string_view method);
  void grpc_handled(std::string_view type, std::string_view service, std::string_view method,
                    int code);
  // With `extensive`: how long the RPC took, as go-grpc-prometheus's histogram; else nothing.
  void grpc_handling(std::string_view type, std::string_view service, std::string_view method,
                     double seconds);

  // From the /health handler, once per answer.
  void health_checked(bool healthy);
  // Once per Authenticate call: "ok", "refused" (unknown user or wrong password) or
  // "throttled" (too many failures in a row for that name).
  void login(std::string_view outcome);

  // For a caller that times something itself (the log's writer, say).
  Histogram* wal_fsync_duration_seconds() const { return wal_fsync_; }
  Histogram* backend_commit_duration_seconds() const { return backend_commit_; }

 private:
  Histogram* wal_fsync_ = nullptr;
  Histogram* backend_commit_ = nullptr;
  HistogramFamily* peer_round_trip_ = nullptr;
  CounterFamily* grpc_started_ = nullptr;
  CounterFamily* grpc_handled_ = nullptr;
  HistogramFamily* grpc_handling_ = nullptr;
  Counter* health_success_ = nullptr;
  Counter* health_failures_ = nullptr;
  CounterFamily* logins_ = nullptr;
};

}  // namespace chorus::server
