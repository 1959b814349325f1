#include "server/server_metrics.h"

#include <array>
#include <cstdio>
#include <utility>

#include "server/node.h"
#include "transport/transport.h"

namespace chorus::server {
namespace {

// etcd's buckets: 1 ms to 8.192 s for disk latencies, 0.1 ms to 0.8192 s for peer round trips.
std::vector<double> disk_buckets() {
  return exponential_buckets(0.001, 2, 14);
}
std::vector<double> round_trip_buckets() {
  return exponential_buckets(0.0001, 2, 14);
}

double as_double(uint64_t v) {
  return static_cast<double>(v);
}
double as_double(int64_t v) {
  return static_cast<double>(v);
}

void register_node(MetricsRegistry* r, raft::NodeId self, const std::function<NodeStatus()>& node) {
  r->gauge_fn("etcd_server_has_leader", "Whether a leader exists: 1 if one does, 0 if not.",
              [node] { return node().leader != raft::kNoNode ? 1.0 : 0.0; });
  r->gauge_fn("etcd_server_is_leader", "Whether this member is the leader: 1 if it is, 0 if not.",
              [node, self] { return node().leader == self ? 1.0 : 0.0; });
  r->gauge_fn("etcd_server_is_learner", "Whether this member is a learner: 1 if it is, 0 if not.",
              [node] { return node().is_learner ? 1.0 : 0.0; });
  r->counter_fn("etcd_server_leader_changes_seen_total", "Leader changes this member has seen.",
                [node] { return as_double(node().leader_changes); });
  // etcd makes these two "_total" metrics gauges; dashboards built on etcd expect that type.
  r->gauge_fn("etcd_server_proposals_committed_total", "Consensus proposals committed.",
              [node] { return as_double(node().proposals_committed); });
  r->gauge_fn("etcd_server_proposals_applied_total", "Consensus proposals applied.",
              [node] { return as_double(node().proposals_applied); });
  r->gauge_fn("etcd_server_proposals_pending", "Proposals made here and not yet applied.",
              [node] { return as_double(node().proposals_pending); });
  r->counter_fn("etcd_server_proposals_failed_total", "Proposals made here that failed.",
                [node] { return as_double(node().proposals_failed); });
  r->gauge_fn("etcd_debugging_mvcc_current_revision", "The store's current revision.",
              [node] { return as_double(node().revision); });
  r->gauge_fn("etcd_debugging_mvcc_compact_revision", "The revision the store last compacted to.",
              [node] { return as_double(node().compact_revision); });
  r->gauge_fn("chorus_raft_term", "The member's current Raft term.",
              [node] { return as_double(node().term); });
  r->gauge_fn("chorus_raft_commit_index", "The highest log index known to be committed.",
              [node] { return as_double(node().commit); });
  r->gauge_fn("chorus_raft_applied_index", "The highest log index applied to the store.",
              [node] { return as_double(node().applied); });
}

// Labelled by group, for a bounded number of groups: those with the most writes applied.
void register_busiest_groups(MetricsRegistry* r,
                             const std::function<std::vector<GroupLoad>()>& busiest) {
  auto series = [r, &busiest](const char* name, const char* help, MetricType type,
                              uint64_t GroupLoad::*field) {
    r->samples_fn(name, help, type, {"group"}, [busiest, field] {
      std::vector<Sample> out;
      for (const GroupLoad& g : busiest())
        out.push_back(Sample{{std::to_string(g.id)}, as_double(g.*field)});
      return out;
    });
  };
  series("chorus_group_writes_applied_total",
         "Writes applied here, for the data groups with the most (--group-metrics).",
         MetricType::kCounter, &GroupLoad::writes_applied);
  series("chorus_group_applied_index",
         "Applied index of the data groups with the most writes (--group-metrics).",
         MetricType::kGauge, &GroupLoad::applied);
}

void register_groups(MetricsRegistry* r, const std::function<GroupsStatus()>& groups) {
  r->gauge_fn("chorus_groups_hosted", "Data group replicas on this member.",
              [groups] { return as_double(groups().hosted); });
  r->gauge_fn("chorus_groups_leading", "Data group replicas on this member that lead.",
              [groups] { return as_double(groups().leading); });
  r->gauge_fn("chorus_groups_awake", "Data group replicas on this member not quiesced.",
              [groups] { return as_double(groups().awake); });
  r->gauge_fn("chorus_groups_peers_down",
              "Members whose liveness heartbeats this member no longer hears.",
              [groups] { return as_double(groups().peers_down); });
  r->counter_fn("chorus_groups_writes_applied_total", "Data group writes applied here.",
                [groups] { return as_double(groups().writes_applied); });
  r->counter_fn("chorus_groups_snapshots_sent_total",
                "Data group snapshots (each the group's whole state) sent from this member.",
                [groups] { return as_double(groups().snapshots_sent); });
  r->counter_fn("chorus_groups_snapshots_installed_total",
                "Data group snapshots installed on this member.",
                [groups] { return as_double(groups().snapshots_installed); });
  r->counter_fn("chorus_groups_logs_compacted_total",
                "Compactions of data groups' logs on this member.",
                [groups] { return as_double(groups().logs_compacted); });
}

void register_transport(MetricsRegistry* r,
                        const std::function<transport::TransportStats()>& stats) {
  using transport::TransportStats;
  struct Field {
    const char* name;
    const char* help;
    uint64_t TransportStats::*member;
  };
  const std::array<Field, 9> fields = {{
      {"chorus_transport_sent_bytes_total", "Bytes written to peer connections.",
       &TransportStats::bytes_sent},
      {"chorus_transport_received_bytes_total", "Bytes read from peer connections.",
       &TransportStats::bytes_received},
      {"chorus_transport_messages_sent_total", "Raft messages written to peers.",
       &TransportStats::messages_sent},
      {"chorus_transport_messages_received_total", "Raft messages received from peers.",
       &TransportStats::messages_received},
      {"chorus_transport_messages_dropped_total",
       "Raft messages given to the transport that were never written.",
       &TransportStats::messages_dropped},
      {"chorus_transport_bad_frames_total",
       "Peer connections closed for a frame that did not decode.", &TransportStats::bad_frames},
      {"chorus_transport_handshakes_rejected_total", "Inbound peer handshakes refused.",
       &TransportStats::handshakes_rejected},
      {"chorus_transport_connects_total", "Peer connections that completed a handshake.",
       &TransportStats::connects},
      {"chorus_transport_disconnects_total", "Handshaken peer connections that closed.",
       &TransportStats::disconnects},
  }};
  for (const Field& f : fields) {
    r->counter_fn(f.name, f.help,
                  [stats, member = f.member] { return as_double(stats().*member); });
  }
}

void register_peers(MetricsRegistry* r, raft::NodeId self,
                    const std::function<std::vector<PeerMetricsSample>()>& peers) {
  const std::string local = member_id_hex(self);
  r->samples_fn("etcd_network_active_peers", "1 while this member's connection to Remote is up.",
                MetricType::kGauge, {"Local", "Remote"}, [peers, local] {
                  std::vector<Sample> out;
                  for (const PeerMetricsSample& p : peers())
                    out.push_back({{local, member_id_hex(p.id)}, p.connected ? 1.0 : 0.0});
                  return out;
                });
  r->samples_fn("chorus_network_peer_last_round_trip_seconds",
                "The latest round-trip time measured to a peer.", MetricType::kGauge, {"To"},
                [peers] {
                  std::vector<Sample> out;
                  for (const PeerMetricsSample& p : peers())
                    if (p.round_trip_seconds > 0)
                      out.push_back({{member_id_hex(p.id)}, p.round_trip_seconds});
                  return out;
                });
  r->samples_fn("etcd_network_peer_sent_bytes_total", "Bytes sent to a peer.", MetricType::kCounter,
                {"To"}, [peers] {
                  std::vector<Sample> out;
                  for (const PeerMetricsSample& p : peers())
                    if (p.sent_bytes)
                      out.push_back({{member_id_hex(p.id)}, as_double(*p.sent_bytes)});
                  return out;
                });
  r->samples_fn("etcd_network_peer_received_bytes_total", "Bytes received from a peer.",
                MetricType::kCounter, {"From"}, [peers] {
                  std::vector<Sample> out;
                  for (const PeerMetricsSample& p : peers())
                    if (p.received_bytes)
                      out.push_back({{member_id_hex(p.id)}, as_double(*p.received_bytes)});
                  return out;
                });
}

}  // namespace

std::string grpc_code_name(int code) {
  static constexpr std::array<const char*, 17> kNames = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  if (code >= 0 && static_cast<size_t>(code) < kNames.size())
    return kNames[static_cast<size_t>(code)];
  return "Code(" + std::to_string(code) + ")";
}

std::string member_id_hex(raft::NodeId id) {
  char buffer[17];
  int n = std::snprintf(buffer, sizeof(buffer), "%llx", static_cast<unsigned long long>(id));
  return std::string(buffer, static_cast<size_t>(n));
}

ServerMetrics::ServerMetrics(MetricsRegistry* registry, raft::NodeId self,
                             const std::string& server_version, ServerMetricsSource source,
                             bool extensive) {
  if (extensive) {
    // go-grpc-prometheus's default buckets, which etcd's --metrics extensive uses.
    grpc_handling_ = registry->histogram_family(
        "grpc_server_handling_seconds",
        "Histogram of response latency (seconds) of gRPC that had been application-level "
        "handled by the server.",
        {"grpc_method", "grpc_service", "grpc_type"},
        {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  }
  if (!source.node) metrics_die("ServerMetricsSource::node is required");
  register_node(registry, self, source.node);
  if (source.transport) register_transport(registry, source.transport);
  if (source.groups) register_groups(registry, source.groups);
  if (source.busiest_groups) register_busiest_groups(registry, source.busiest_groups);
  if (source.peers) register_peers(registry, self, source.peers);
  if (source.db_total_size_bytes) {
    registry->samples_fn("etcd_mvcc_db_total_size_in_bytes", "Size of the store on disk in bytes.",
                         MetricType::kGauge, {}, [fn = source.db_total_size_bytes] {
                           std::optional<uint64_t> bytes = fn();
                           if (!bytes) return std::vector<Sample>{};
                           return std::vector<Sample>{{{}, as_double(*bytes)}};
                         });
  }
  registry
      ->gauge("etcd_server_id", "This member's id, in the server_id label; always 1.",
              {{"server_id", member_id_hex(self)}})
      ->set(1);
  registry
      ->gauge("etcd_server_version", "The etcd version this member speaks, in the label; always 1.",
              {{"server_version", server_version}})
      ->set(1);
  health_success_ = registry->counter("etcd_server_health_success", "Healthy /health answers.");
  health_failures_ = registry->counter("etcd_server_health_failures", "Unhealthy /health answers.");
  wal_fsync_ = registry->histogram("etcd_disk_wal_fsync_duration_seconds",
                                   "Latency of the log's fdatasync calls.", disk_buckets());
  backend_commit_ = registry->histogram("etcd_disk_backend_commit_duration_seconds",
                                        "Latency of the store's batch commits.", disk_buckets());
  peer_round_trip_ =
      registry->histogram_family("etcd_network_peer_round_trip_time_seconds",
                                 "Round-trip time to a peer.", {"To"}, round_trip_buckets());
  grpc_started_ =
      registry->counter_family("grpc_server_started_total", "RPCs started on the server.",
                               {"grpc_method", "grpc_service", "grpc_type"});
  grpc_handled_ = registry->counter_family(
      "grpc_server_handled_total", "RPCs completed on the server, whatever their status.",
      {"grpc_code", "grpc_method", "grpc_service", "grpc_type"});
  logins_ = registry->counter_family("chorus_auth_logins_total",
                                     "Logins (Authenticate calls), by outcome: ok, refused or "
                                     "throttled.",
                                     {"outcome"});
}

void ServerMetrics::observe_peer_round_trip(raft::NodeId peer, double seconds) {
  peer_round_trip_->with({member_id_hex(peer)})->observe(seconds);
}

void ServerMetrics::grpc_started(std::string_view type, std::string_view service,
                                 std::string_view method) {
  grpc_started_->with({std::string(method), std::string(service), std::string(type)})->inc();
}

void ServerMetrics::grpc_handled(std::string_view type, std::string_view service,
                                 std::string_view method, int code) {
  grpc_handled_
      ->with({grpc_code_name(code), std::string(method), std::string(service), std::string(type)})
      ->inc();
}

void ServerMetrics::grpc_handling(std::string_view type, std::string_view service,
                                  std::string_view method, double seconds) {
  if (grpc_handling_ == nullptr) return;
  grpc_handling_->with({std::string(method), std::string(service), std::string(type)})
      ->observe(seconds);
}

void ServerMetrics::login(std::string_view outcome) {
  logins_->with({std::string(outcome)})->inc();
}

void ServerMetrics::health_checked(bool healthy) {
  (healthy ? health_success_ : health_failures_)->inc();
}

}  // namespace chorus::server
