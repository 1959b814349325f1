// The etcd v3 gRPC API (KV, Lease, Cluster, Maintenance, and the standard health service) served
// by one node. gRPC's headers stay inside the chorus_api sources (api_internal.h).
#pragma once

#include <atomic>
#include <climits>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "server/http_server.h"
#include "server/tls.h"
#include "storage/status.h"

namespace chorus::storage {
class SnapshotReceiver;
}

namespace chorus::server {

class JwtTokens;
class Node;

// Fetches a member's state machine through its Maintenance.Snapshot stream into `receiver`,
// after waiting (a few seconds at most) for that member to have applied `min_index`. Used by a
// follower installing a snapshot (NodeOptions::fetch_snapshot); gives up soon after `stop`.
// An https URL is reached over TLS with `tls`.
// `ticket` (from the sender's snapshot message) lets the member through while auth is on.
storage::Status fetch_snapshot(const std::vector<std::string>& client_urls, uint64_t min_index,
                               const std::string& ticket, storage::SnapshotReceiver* receiver,
                               const std::atomic<bool>& stop, const ClientTls& tls);

struct ApiServerOptions {
  // host:port pairs to listen on, and whether each is https (served with `tls`). Each serves
  // gRPC and etcd's HTTP/JSON gateway (gateway.h).
  std::vector<std::string> listen_addresses;
  std::vector<bool> listen_tls;
  // The member's certificate, key and trusted CA: for its https listeners, and for its calls to
  // other members' https client URLs (forwarding to the leader, fetching a snapshot).
  ClientTls tls;
  uint64_t max_request_bytes = 1572864;
  int64_t max_txn_ops = 128;
  // Requests slower than this are logged.
  int64_t slow_request_ms = 100;
  std::string version = "3.5.0";
  // etcd's --bcrypt-cost and --auth-token-ttl (seconds).
  int bcrypt_cost = 10;
  int64_t auth_token_ttl_s = 300;
  // /health, /version and /metrics on the client URLs (beside gRPC and the JSON gateway, as
  // etcd serves them).
  HttpHandlers http;
  // Every member's peer URLs have this scheme (https with peer TLS): MemberAdd and
  // MemberUpdate refuse others.
  std::string peer_scheme = "http";
  // With --auth-token jwt,...: signed tokens instead of simple ones.
  std::shared_ptr<const JwtTokens> jwt;
  // Counted for each login: ok, refused (wrong user or password), or throttled.
  std::function<void(std::string_view outcome)> on_login;
  // Watchers created with progress_notify get an empty response this often.
  int64_t progress_notify_ms = 600'000;
  // Metrics hooks (may be empty) for every RPC, with the full method name
  // ("/etcdserverpb.KV/Range"), go-grpc-prometheus's grpc_type ("unary", "server_stream",
  // "bidi_stream"...) and, at the end, the gRPC status code. Called on gRPC's threads.
  std::function<void(std::string_view method, std::string_view type)> on_started;
  std::function<void(std::string_view method, std::string_view type, int code, double seconds)>
      on_handled;
  // etcd's --cors and --host-whitelist, for the JSON gateway ({"*"}: any).
  std::vector<std::string> cors = {"*"};
  std::vector<std::string> host_whitelist = {"*"};
  // etcd's gRPC flags, in milliseconds: the shortest ping interval a client may use, how often
  // the member pings an idle connection and how long it waits for the answer (0: never), and
  // the streams one connection may have open.
  int64_t keepalive_min_time_ms = 5000;
  int64_t keepalive_interval_ms = 2 * 3'600'000;
  int64_t keepalive_timeout_ms = 20'000;
  uint32_t max_concurrent_streams = UINT32_MAX;
  // etcd's --strict-reconfig-check: MemberAdd and MemberRemove refuse changes that could cost
  // the cluster its quorum, judged by which members `peer_connected` says this member reaches.
  bool strict_reconfig_check = true;
  std::function<bool(uint64_t member)> peer_connected;
};

class ApiServer {
 public:
  ApiServer(Node* node, ApiServerOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds every address; fails naming the one that could not be bound.
  storage::Status start();
  // Refuses new calls, ends open streams, waits for handlers.
  void stop();
  // Ports actually bound (for addresses with port 0), in listen_addresses order.
  std::vector<int> bound_ports() const;

  struct Impl;  // defined in api_server.cc

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace chorus::server
