// chorusd: one member of a Chorus cluster. Takes etcd's flags (src/server/config.h), serves the
// etcd v3 gRPC API on its client URLs and talks Raft to its peers on its peer URL.
#include <pthread.h>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <future>
#include <thread>

#include <absl/synchronization/mutex.h>

#include "server/api_server.h"
#include "server/compactor.h"
#include "server/config.h"
#include "server/corrupt_check.h"
#include "server/http_server.h"
#include "server/jwt.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/node.h"
#include "server/redis_port.h"
#include "server/server_metrics.h"
#include "server/srv_discovery.h"
#include "server/tls.h"
#include "transport/codec.h"
#include "transport/transport.h"

#ifdef CHORUS_JEMALLOC
// jemalloc's options, read when it starts: a background thread hands pages freed for a few
// seconds back to the system, so memory taken by a burst (elections of thousands of groups, a
// write spike) does not stay with the process once it is idle.
extern "C" {
// NOLINTNEXTLINE: the name and type jemalloc looks for.
const char* malloc_conf = "background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:5000";
}
#endif

namespace chorus::server {
namespace {

// How long a corruption check waits for one member's hash.
constexpr int kPeerHashTimeoutMs = 10'000;

std::string host_port(const Url& u) {
  if (u.host.find(':') != std::string::npos) return "[" + u.host + "]:" + std::to_string(u.port);
  return u.host + ":" + std::to_string(u.port);
}

// "/etcdserverpb.KV/Range" -> ("etcdserverpb.KV", "Range")
std::pair<std::string_view, std::string_view> split_method(std::string_view full) {
  if (!full.empty() && full.front() == '/') full.remove_prefix(1);
  auto slash = full.find('/');
  if (slash == std::string_view::npos) return {full, ""};
  return {full.substr(0, slash), full.substr(slash + 1)};
}

// The node's messages go out through the peer transport; peer URLs become host and port.
class PeerSink final : public MessageSink {
 public:
  explicit PeerSink(transport::PeerTransport* t) : t_(t) {}
  void send(std::vector<raft::Message>&& messages) override { t_->send(std::move(messages)); }
  void set_peer(raft::NodeId id, const std::vector<std::string>& peer_urls) override {
    for (const std::string& text : peer_urls) {
      Url u;
      std::string error;
      if (parse_peer_url(text, &u, &error)) {
        t_->set_peer(id, u.host, u.port);
        return;
      }
      log(LogLevel::kWarn, "unusable peer URL",
          {{"member", member_id_hex(id)}, {"url", text}, {"error", error}});
    }
  }
  void remove_peer(raft::NodeId id) override { t_->remove_peer(id); }

 private:
  transport::PeerTransport* t_;
};

// A member starting with an empty data directory to join an existing cluster asks the members
// named in --initial-cluster which id MemberAdd gave its peer URLs, and who the members are
// (etcd asks its peers for the member list the same way). Every reachable member is asked and
// the answer of the one that has applied the most wins: a member that has not applied a recent
// removal and re-addition would name the removed id. Retried for a while: the member may have
// been added a moment ago, through a member that applied the change before the ones asked.
bool join_existing_cluster(ServerConfig* cfg, const transport::PeerTls* peer_tls,
                           transport::JoinAck* chosen) {
  std::vector<std::string> mine;
  for (const Url& u : cfg->initial_advertise_peer_urls)
    mine.push_back(u.to_string());
  std::string last_error = "no other member in --initial-cluster to ask";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (true) {
    bool answered = false;
    std::string asked;
    for (const Member& m : cfg->initial_cluster) {
      if (m.name == cfg->name) continue;
      for (const Url& u : m.peer_urls) {
        transport::JoinAck ack;
        storage::Status st = transport::ask_to_join(u.host, u.port, mine, 2000, &ack, peer_tls);
        if (!st.is_ok()) {
          last_error = u.to_string() + ": " + st.message();
          continue;
        }
        if (!answered || ack.applied_index > chosen->applied_index) {
          *chosen = std::move(ack);
          asked = u.to_string();
        }
        answered = true;
        break;  // one answer per member
      }
    }
    if (answered) {
      cfg->member_id = chosen->member_id;
      cfg->cluster_id = chosen->cluster_id;
      log(LogLevel::kInfo, "joining an existing cluster",
          {{"member-id", member_id_hex(chosen->member_id)},
           {"cluster-id", member_id_hex(chosen->cluster_id)},
           {"members", std::to_string(chosen->members.size())},
           {"asked", asked}});
      return true;
    }
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  log(LogLevel::kFatal, "cannot join the existing cluster",
      {{"peer-urls", join_urls(cfg->initial_advertise_peer_urls)}, {"error", last_error}});
  return false;
}

// --discovery-srv, for a member without a data directory yet: the initial cluster from DNS.
bool discover_cluster(ServerConfig* cfg) {
  std::string text, error;
  storage::Status st = discover_srv_cluster(*cfg, &text);
  if (!st.is_ok() || !adopt_discovered_cluster(text, cfg, &error)) {
    log(LogLevel::kFatal, "cannot bootstrap from DNS",
        {{"discovery-srv", cfg->discovery_srv}, {"error", st.is_ok() ? error : st.to_string()}});
    return false;
  }
  log(LogLevel::kInfo, "found the initial cluster in DNS",
      {{"discovery-srv", cfg->discovery_srv}, {"initial-cluster", text}});
  return true;
}

int run(ServerConfig cfg) {
  // Signals are taken by this thread alone (sigwait below); every thread started from here on
  // inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // raised by the node when it must stop (storage, removal)
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // Certificates are checked before anything starts: a member that cannot serve its https URLs
  // says why at once instead of failing every handshake.
  if (!cfg.log_package_levels.empty()) {
    log(LogLevel::kWarn, "--log-package-levels is ignored: Chorus has one level, --log-level",
        {{"log-package-levels", cfg.log_package_levels}});
  }
  // --cipher-suites: the client and peer ports take it directly; gRPC, for this member's calls
  // to other members' https client URLs, reads it from the environment when it first makes a
  // TLS context, so it is set before anything touches gRPC.
  std::string cipher_list;
  for (const std::string& c : cfg.cipher_suites)
    cipher_list += (cipher_list.empty() ? "" : ":") + c;
  if (!cipher_list.empty()) setenv("GRPC_SSL_CIPHER_SUITES", cipher_list.c_str(), 1);

  ClientTls tls;
  tls.cert_file = cfg.cert_file;
  tls.key_file = cfg.key_file;
  tls.trusted_ca_file = cfg.trusted_ca_file;
  tls.cipher_list = cipher_list;
  tls.min_version = cfg.tls_min_version;
  tls.max_version = cfg.tls_max_version;
  tls.client_cert_auth = cfg.client_cert_auth;
  tls.allowed_hostname = cfg.client_cert_allowed_hostname;
  bool https_clients = has_https(cfg.listen_client_urls);
  if (https_clients) tls.crl_file = cfg.client_crl_file;
  if (cfg.auto_tls && https_clients && !tls.has_identity()) {
    std::vector<std::string> hosts{"127.0.0.1", "localhost"};
    for (const auto* urls : {&cfg.listen_client_urls, &cfg.advertise_client_urls}) {
      for (const Url& u : *urls) {
        if (std::find(hosts.begin(), hosts.end(), u.host) == hosts.end()) hosts.push_back(u.host);
      }
    }
    storage::Status st = make_self_signed(cfg.data_dir + "/fixtures/client", hosts, &tls);
    if (!st.is_ok()) {
      log(LogLevel::kFatal, "cannot make the --auto-tls certificate", {{"error", st.to_string()}});
      return 1;
    }
    log(LogLevel::kWarn, "serving https client URLs with a self-signed certificate (--auto-tls)",
        {{"cert-file", tls.cert_file}});
  }
  std::shared_ptr<const JwtTokens> jwt;
  if (is_jwt_spec(cfg.auth_token)) {
    std::unique_ptr<JwtTokens> j;
    storage::Status st = JwtTokens::create(cfg.auth_token, &j);
    if (!st.is_ok()) {
      log(LogLevel::kFatal, "cannot use --auth-token", {{"error", st.to_string()}});
      return 1;
    }
    if (!j->can_sign()) {
      log(LogLevel::kWarn,
          "--auth-token jwt without priv-key: this member verifies tokens but "
          "refuses logins");
    }
    jwt = std::move(j);
  }
  if (tls.has_identity() || !tls.trusted_ca_file.empty()) {
    std::string expiry;
    storage::Status st = check_tls_files(tls, &expiry);
    if (!st.is_ok()) {
      log(LogLevel::kFatal, "cannot use the TLS files", {{"error", st.to_string()}});
      return 1;
    }
    if (!expiry.empty()) log(LogLevel::kError, expiry);
  }
  if (https_clients) {
    // The client port builds a context for each connection; one now proves the files, the
    // revocation list and the cipher suites usable before the member serves.
    std::string problem;
    if (!transport::make_tls_context(tls, /*server=*/true, "client", &problem)) {
      log(LogLevel::kFatal, "cannot use the client TLS settings", {{"error", problem}});
      return 1;
    }
  }
  if (tls.has_identity() && !https_clients) {
    log(LogLevel::kWarn,
        "--cert-file and --key-file are set, but no --listen-client-urls is https: clients are "
        "served in plain text");
  }

  // Peer TLS: the files checked now, so a bad one stops the member with its name rather than
  // failing every connection later.
  std::optional<transport::PeerTls> peer_tls;
  if (cfg.peer_tls) {
    ClientTls files;
    files.cert_file = cfg.peer_cert_file;
    files.key_file = cfg.peer_key_file;
    files.trusted_ca_file = cfg.peer_trusted_ca_file;
    if (files.cert_file.empty()) {  // --peer-auto-tls
      std::vector<std::string> hosts = {"127.0.0.1", "::1", "localhost"};
      for (const auto* urls : {&cfg.listen_peer_urls, &cfg.initial_advertise_peer_urls}) {
        for (const Url& u : *urls) {
          if (std::find(hosts.begin(), hosts.end(), u.host) == hosts.end()) hosts.push_back(u.host);
        }
      }
      storage::Status st = make_self_signed(cfg.data_dir + "/fixtures/peer", hosts, &files);
      if (!st.is_ok()) {
        log(LogLevel::kFatal, "cannot make the --peer-auto-tls certificate",
            {{"error", st.to_string()}});
        return 1;
      }
      log(LogLevel::kWarn,
          "encrypting peer traffic with a self-signed certificate, verifying "
          "no peer (--peer-auto-tls)");
    }
    std::string expiry;
    storage::Status st = check_tls_files(files, &expiry);
    if (!st.is_ok()) {
      log(LogLevel::kFatal, "cannot use the peer TLS files", {{"error", st.to_string()}});
      return 1;
    }
    if (!expiry.empty()) log(LogLevel::kError, "peer " + expiry);
    transport::PeerTls p;
    p.cert_file = files.cert_file;
    p.key_file = files.key_file;
    p.trusted_ca_file = files.trusted_ca_file;
    p.crl_file = cfg.peer_crl_file;
    p.cipher_list = cipher_list;
    p.min_version = cfg.tls_min_version;
    p.max_version = cfg.tls_max_version;
    p.allowed_cn = cfg.peer_cert_allowed_cn;
    p.allowed_hostname = cfg.peer_cert_allowed_hostname;
    p.check_dialer_address = !cfg.peer_skip_client_san_verification;
    // The context is built for each connection; building one now proves the files and the
    // cipher suites usable before the member serves.
    std::string problem = transport::check_peer_tls(p);
    if (!problem.empty()) {
      log(LogLevel::kFatal, "cannot use the peer TLS settings", {{"error", problem}});
      return 1;
    }
    peer_tls = std::move(p);
  }

  // The member's id: the one its data directory records; else, for a new cluster, the one
  // derived from --initial-cluster; else the one the cluster gave it when it was added.
  uint64_t stored_id = 0;
  storage::Status ids = Node::stored_member_id(cfg.data_dir, &stored_id);
  bool joined = false;
  transport::JoinAck join_answer;
  if (ids.is_ok()) {
    cfg.member_id = stored_id;
  } else if (ids.code() != storage::Status::Code::kNotFound) {
    log(LogLevel::kFatal, "cannot read the data directory",
        {{"data-dir", cfg.data_dir}, {"error", ids.to_string()}});
    return 1;
  } else if (!cfg.discovery_srv.empty() && !discover_cluster(&cfg)) {
    return 1;
  } else if (!cfg.initial_cluster_new && !Node::has_data(cfg.data_dir)) {
    if (!join_existing_cluster(&cfg, peer_tls ? &*peer_tls : nullptr, &join_answer)) return 1;
    joined = true;
  }

  NodeOptions o;
  o.id = cfg.member_id;
  // Recorded in the data directory at the first start; from then on the directory's wins.
  o.cluster_id = cfg.initial_cluster_new || joined ? cfg.cluster_id : 0;
  o.cluster_token = cfg.initial_cluster_token;
  o.name = cfg.name;
  o.data_dir = cfg.data_dir;
  for (const Url& u : cfg.advertise_client_urls)
    o.client_urls.push_back(u.to_string());
  o.new_cluster = cfg.initial_cluster_new;
  for (const Member& m : cfg.initial_cluster) {
    InitialMember im{m.id, m.name, {}};
    for (const Url& u : m.peer_urls)
      im.peer_urls.push_back(u.to_string());
    o.initial_members.push_back(std::move(im));
  }
  o.wal_dir = cfg.wal_dir;
  o.lease_checkpoint_interval_ms = cfg.lease_checkpoint ? cfg.lease_checkpoint_interval_ms : 0;
  o.force_new_cluster = cfg.force_new_cluster;
  o.pre_vote = cfg.pre_vote;
  o.tick_ms = cfg.heartbeat_interval_ms;
  o.election_ticks = std::max(2, cfg.election_timeout_ms / cfg.heartbeat_interval_ms);
  o.lease_reads = cfg.lease_reads;
  o.initial_groups = static_cast<uint32_t>(cfg.initial_groups);
  o.quiesce_groups = cfg.quiesce_groups;
  o.unsafe_stale_reads = cfg.unsafe_test_fault == "stale-reads";
  o.unsafe_corrupt_writes = cfg.unsafe_test_fault == "corrupt-writes";
  if (o.unsafe_corrupt_writes) {
    log(LogLevel::kWarn,
        "UNSAFE: --unsafe-test-fault corrupt-writes alters every value this member stores; "
        "it is broken on purpose, for testing only");
  }
  if (o.unsafe_stale_reads) {
    log(LogLevel::kWarn,
        "UNSAFE: --unsafe-test-fault stale-reads serves linearizable reads from "
        "local state; this member is broken on purpose, for testing only");
  }
  o.mvcc.max_txn_ops = cfg.max_txn_ops;
  o.snapshots.snapshot_entries = cfg.snapshot_count;
  // etcd keeps 5,000 entries behind a snapshot for slow followers; never more than a snapshot's
  // worth, so a small --snapshot-count still bounds the log.
  o.snapshots.catch_up_entries = std::min<uint64_t>(5000, cfg.snapshot_count);
  o.fetch_snapshot = [tls](const std::vector<std::string>& urls, raft::Index min_index,
                           const std::string& ticket, storage::SnapshotReceiver* receiver,
                           const std::atomic<bool>& stop) {
    return fetch_snapshot(urls, min_index, ticket, receiver, stop, tls);
  };
  o.max_request_bytes = cfg.max_request_bytes;
  o.quota_backend_bytes = cfg.quota_backend_bytes;
  // etcd's request timeout: 5 s plus two election timeouts.
  o.request_timeout_ms = 5000 + 2 * cfg.election_timeout_ms;

  // Metrics exist before the node so its timings have somewhere to go; the sources they read
  // are set once everything exists.
  MetricsRegistry registry;
  register_process_metrics(&registry);
  std::unique_ptr<ServerMetrics> metrics;
  o.observe_wal_sync = [&metrics](double s) {
    if (metrics) metrics->observe_wal_fsync(s);
  };
  o.observe_apply = [&metrics, warn_s = cfg.warning_apply_ms / 1000.0](double s) {
    if (metrics) metrics->observe_backend_commit(s);
    if (s > warn_s) {
      log(LogLevel::kWarn, "apply request took too long",
          {{"took", std::to_string(static_cast<int64_t>(s * 1000)) + "ms"},
           {"expected-duration", std::to_string(static_cast<int64_t>(warn_s * 1000)) + "ms"}});
    }
  };

  std::unique_ptr<Node> node;
  storage::Status st = Node::open(o, &node);
  if (!st.is_ok()) {
    log(LogLevel::kFatal, "cannot open the data directory",
        {{"data-dir", cfg.data_dir}, {"error", st.to_string()}});
    return 1;
  }

  transport::TransportOptions to;
  to.cluster_id = node->cluster_id();
  to.self = cfg.member_id;
  to.on_cluster_id = [&node](uint64_t id) { node->adopt_cluster_id(id); };
  to.is_removed = [&node](raft::NodeId id) { return node->member_removed(id); };
  to.on_round_trip = [&metrics](raft::NodeId peer, double seconds) {
    if (metrics) metrics->observe_peer_round_trip(peer, seconds);
  };
  to.answer_join = [&node](const std::vector<std::string>& urls, transport::JoinAck* out) {
    out->member_id = node->find_member(urls);
    if (out->member_id == raft::kNoNode) return false;
    out->applied_index = node->status().applied;
    for (const MemberInfo& m : node->members())
      out->members.push_back({m.id, m.peer_urls});
    return true;
  };
  to.on_removed = [&node] { node->removed_by_peer(); };
  // Other members' corruption checks ask for this member's hash on the peer port (as etcd's
  // /members/hashkv), so neither client TLS nor auth stands between members.
  auto hasher =
      std::make_unique<HashResponder>([&node](int64_t revision, KvHash* out, std::string* error) {
        int64_t hashed = 0;
        kv::ApiError e = node->store().hash_kv(revision, &out->hash, &hashed);
        if (!e.ok()) {
          *error = e.message;
          return false;
        }
        out->revision = node->store().revision();
        out->compact_revision = node->store().compact_revision();
        return true;
      });
  to.answer_hash_kv = [&hasher](int64_t revision,
                                std::function<void(const transport::HashKvAnswer&)> reply) {
    hasher->submit(revision, [reply](bool ok, const KvHash& h, const std::string& error) {
      reply(transport::HashKvAnswer{ok, h.hash, h.revision, h.compact_revision, error});
    });
  };
  to.tls = peer_tls;
  to.on_peer_error = [](raft::NodeId peer, const std::string& why) {
    log(LogLevel::kWarn, "cannot reach a peer", {{"peer", member_id_hex(peer)}, {"error", why}});
  };
  transport::PeerTransport peers(
      to, [&node](std::vector<raft::Message>&& m) { node->receive(std::move(m)); },
      [&node](raft::NodeId id) { node->report_unreachable(id); });
  const Url& peer_listen = cfg.listen_peer_urls.front();
  uint16_t peer_port = 0;
  st = peers.listen(peer_listen.host, peer_listen.port, &peer_port);
  if (!st.is_ok()) {
    log(LogLevel::kFatal, "cannot listen for peers",
        {{"url", peer_listen.to_string()}, {"error", st.to_string()}});
    return 1;
  }
  // The peers to dial at once. A new cluster's are in --initial-cluster, with the ids every
  // member derives alike; a joining member has them from the member that answered it. A
  // member restarting learns them from its snapshot and log as it starts (Node::start).
  PeerSink sink(&peers);
  if (joined) {
    for (const transport::JoinAck::Member& m : join_answer.members) {
      if (m.id != cfg.member_id) sink.set_peer(m.id, m.peer_urls);
    }
  } else if (cfg.initial_cluster_new) {
    for (const Member& m : cfg.initial_cluster) {
      if (m.name == cfg.name) continue;
      std::vector<std::string> urls;
      for (const Url& u : m.peer_urls)
        urls.push_back(u.to_string());
      sink.set_peer(m.id, urls);
    }
  }

  ServerMetricsSource source;
  source.node = [&node] { return node->status(); };
  source.transport = [&peers] { return peers.stats(); };
  source.groups = [&node] { return node->groups_status(); };
  if (cfg.group_metrics > 0) {
    source.busiest_groups = [&node, n = static_cast<size_t>(cfg.group_metrics)] {
      return node->busiest_groups(n);
    };
  }
  source.peers = [&node, &peers] {
    std::vector<PeerMetricsSample> out;
    for (const MemberInfo& m : node->members()) {
      if (m.id == node->id()) continue;
      if (auto ps = peers.peer_status(m.id)) {
        out.push_back(
            {m.id, ps->connected, ps->round_trip_seconds, ps->sent_bytes, ps->received_bytes});
      }
    }
    return out;
  };
  source.db_total_size_bytes = [&node]() -> std::optional<uint64_t> {
    return node->store().size_bytes();
  };
  metrics = std::make_unique<ServerMetrics>(&registry, cfg.member_id, "3.5.0", source,
                                            cfg.extensive_metrics);
  // After the metrics exist: the transport's thread reports round trips to them.
  peers.start();

  // /health, /metrics and /version: on --listen-metrics-urls, and on the plain-text client
  // URLs beside the gRPC API and the JSON gateway.
  std::unique_ptr<TlsFileWatch> tls_watch;
  HttpHandlers handlers;
  handlers.health = [&node, &metrics, &tls_watch](bool) {
    HealthResult r{true, ""};
    std::string tls_problem = tls_watch ? tls_watch->problem() : "";
    if (!tls_problem.empty()) {
      r = HealthResult{false, "TLS: " + tls_problem};
    } else if (node->status().leader == raft::kNoNode) {
      r = HealthResult{false, "RAFT NO LEADER"};
    } else if (!node->alarms().empty()) {
      r = HealthResult{false, node->alarms().front().type == AlarmType::kNoSpace ? "ALARM NOSPACE"
                                                                                 : "ALARM CORRUPT"};
    }
    metrics->health_checked(r.healthy);
    return r;
  };
  handlers.metrics = [&registry] { return registry.render(); };

  // Certificates replaced while the member runs are checked as gRPC reads them: a file that
  // turns bad is logged, and reported by /health, until it is fixed.
  if (https_clients) {
    tls_watch = std::make_unique<TlsFileWatch>(tls, [](const std::string& problem) {
      if (problem.empty()) {
        log(LogLevel::kInfo, "the TLS files are usable again");
      } else {
        log(LogLevel::kError, "TLS files", {{"error", problem}});
      }
    });
  }
  ApiServerOptions ao;
  for (const Url& u : cfg.listen_client_urls) {
    ao.listen_addresses.push_back(host_port(u));
    ao.listen_tls.push_back(u.scheme == "https");
  }
  ao.tls = tls;
  ao.on_started = [&metrics](std::string_view method, std::string_view type) {
    auto [service, name] = split_method(method);
    metrics->grpc_started(type, service, name);
  };
  ao.on_handled = [&metrics, extensive = cfg.extensive_metrics](
                      std::string_view method, std::string_view type, int code, double seconds) {
    auto [service, name] = split_method(method);
    metrics->grpc_handled(type, service, name, code);
    if (extensive) metrics->grpc_handling(type, service, name, seconds);
  };
  ao.cors = cfg.cors;
  ao.host_whitelist = cfg.host_whitelist;
  ao.keepalive_min_time_ms = cfg.grpc_keepalive_min_time_ms;
  ao.keepalive_interval_ms = cfg.grpc_keepalive_interval_ms;
  ao.keepalive_timeout_ms = cfg.grpc_keepalive_timeout_ms;
  ao.max_concurrent_streams = cfg.max_concurrent_streams;
  ao.strict_reconfig_check = cfg.strict_reconfig_check;
  ao.peer_connected = [&peers](uint64_t id) {
    auto status = peers.peer_status(id);
    return status && status->connected;
  };
  ao.on_login = [&metrics](std::string_view outcome) { metrics->login(outcome); };
  ao.bcrypt_cost = cfg.bcrypt_cost;
  ao.auth_token_ttl_s = cfg.auth_token_ttl_s;
  ao.jwt = jwt;
  ao.peer_scheme = cfg.peer_tls ? "https" : "http";
  ao.max_request_bytes = cfg.max_request_bytes;
  ao.max_txn_ops = cfg.max_txn_ops;
  ao.slow_request_ms = cfg.slow_request_ms;
  ao.progress_notify_ms = cfg.watch_progress_notify_ms;
  ao.http = handlers;
  // Before the node starts, so that its watchers see every batch the node applies.
  ApiServer api(node.get(), ao);

  node->start(&sink, [](const std::string&) { kill(getpid(), SIGUSR1); });

  // The corruption checks compare HashKV answers: this member's store against every other
  // member's, asked on their peer URLs.
  auto local_hash = [&node](KvHash* out) {
    int64_t revision = 0;
    if (!node->store().hash_kv(0, &out->hash, &revision).ok()) return false;
    out->revision = revision;
    out->compact_revision = node->store().compact_revision();
    return true;
  };
  auto peer_hashes = [&node, &peer_tls](int64_t revision) {
    std::vector<MemberHash> out;
    for (const MemberInfo& m : node->members()) {
      if (m.id == node->id()) continue;
      MemberHash h;
      h.member = m.id;
      h.error = "no usable peer URL";
      for (const std::string& text : m.peer_urls) {
        Url u;
        if (!parse_peer_url(text, &u, &h.error)) continue;
        transport::HashKvAnswer a;
        storage::Status asked =
            transport::ask_hash_kv(u.host, u.port, node->cluster_id(), revision, kPeerHashTimeoutMs,
                                   &a, peer_tls ? &*peer_tls : nullptr);
        if (!asked.is_ok()) {
          h.error = text + ": " + a.error;
          continue;
        }
        h.answered = true;
        h.error.clear();
        h.kv = KvHash{a.hash, a.revision, a.compact_revision};
        break;
      }
      out.push_back(std::move(h));
    }
    return out;
  };
  if (cfg.initial_corrupt_check) {
    // Before this member serves a client: a store that differs from its peers' stops here.
    // The members and their client URLs are known once the log recovered is applied.
    for (int i = 0; i < 200 && !node->replayed(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    KvHash mine;
    if (!local_hash(&mine)) {
      log(LogLevel::kFatal, "cannot hash this member's store for the corruption check");
      node->stop(0);
      peers.stop();
      return 1;
    }
    std::vector<MemberHash> others = peer_hashes(mine.revision);
    size_t compared = 0;
    for (const MemberHash& p : others) {
      if (p.answered) {
        ++compared;
      } else {
        log(LogLevel::kWarn, "corruption check: cannot compare with a member",
            {{"member", member_id_hex(p.member)}, {"error", p.error}});
      }
    }
    std::vector<uint64_t> bad = initial_mismatches(mine, others);
    if (!bad.empty()) {
      log(LogLevel::kFatal, "found data inconsistency with peers",
          {{"member", member_id_hex(bad.front())},
           {"revision", std::to_string(mine.revision)},
           {"local-hash", std::to_string(mine.hash)}});
      node->stop(0);
      peers.stop();
      return 1;
    }
    log(LogLevel::kInfo, "corruption check passed",
        {{"revision", std::to_string(mine.revision)},
         {"members-compared", std::to_string(compared)}});
  }
  std::unique_ptr<CorruptionChecker> corruption_checker;
  if (cfg.corrupt_check_ms > 0) {
    CorruptionChecker::Hooks hooks;
    hooks.is_leader = [&node] { return node->is_leader(); };
    hooks.local_hash = local_hash;
    hooks.peer_hashes = peer_hashes;
    hooks.catch_up = [&node] {
      auto done = std::make_shared<std::promise<bool>>();
      std::future<bool> ok = done->get_future();
      node->read_barrier([done](const RpcError& e) { done->set_value(e.ok()); });
      return ok.wait_for(std::chrono::seconds(10)) == std::future_status::ready && ok.get();
    };
    hooks.raise = [&node](uint64_t member) {
      for (const Node::Alarm& a : node->alarms()) {
        if (a.member == member && a.type == AlarmType::kCorrupt) return;
      }
      node->change_alarm(AlarmChange{true, member, AlarmType::kCorrupt}, [](const RpcError&) {});
    };
    corruption_checker = std::make_unique<CorruptionChecker>(
        cfg.member_id, std::chrono::milliseconds(cfg.corrupt_check_ms), hooks);
  }

  st = api.start();
  if (!st.is_ok()) {
    log(LogLevel::kFatal, "cannot serve the client API", {{"error", st.to_string()}});
    node->stop(0);
    peers.stop();
    return 1;
  }
  HttpServer http(std::move(handlers));
  for (const Url& u : cfg.listen_metrics_urls) {
    st = http.listen(u.host, u.port, nullptr);
    if (!st.is_ok()) {
      log(LogLevel::kFatal, "cannot listen for metrics",
          {{"url", u.to_string()}, {"error", st.to_string()}});
      api.stop();
      node->stop(0);
      peers.stop();
      return 1;
    }
  }
  http.start();

  // --listen-redis-urls: the Redis face, on the data groups.
  RedisOptions redis_options;
  redis_options.max_bulk_bytes = cfg.max_request_bytes;
  redis_options.bcrypt_cost = static_cast<int>(cfg.bcrypt_cost);
  RedisPort redis_port(node.get(), redis_options);
  for (const Url& u : cfg.listen_redis_urls) {
    st = redis_port.listen(u.host, u.port, nullptr);
    if (!st.is_ok()) {
      log(LogLevel::kFatal, "cannot listen for Redis clients",
          {{"url", u.to_string()}, {"error", st.to_string()}});
      http.stop();
      api.stop();
      node->stop(0);
      peers.stop();
      return 1;
    }
  }
  if (!cfg.listen_redis_urls.empty()) {
    if (cfg.initial_groups == 0 && node->initial_group_count() == 0) {
      log(LogLevel::kWarn,
          "the Redis face has no data groups to keep keys in: start a new cluster with "
          "--initial-groups");
    }
    redis_port.start();
  }

  // --auto-compaction-*: the leader compacts the key history through the log.
  std::unique_ptr<AutoCompactor> compactor;
  if (cfg.auto_compaction_retention > 0) {
    AutoCompactor::Hooks hooks;
    hooks.is_leader = [&node] { return node->is_leader(); };
    hooks.revision = [&node] { return node->store().revision(); };
    hooks.compact = [&node](int64_t revision, std::function<void(bool, const std::string&)> done) {
      kv::Command c;
      c.op = kv::CompactionRequest{revision};
      node->propose(std::move(c), [done](const RpcError& e, kv::Response&& r) {
        if (!e.ok()) return done(false, e.message);
        if (!r.error.ok()) return done(false, r.error.message);
        done(true, "");
      });
    };
    compactor = std::make_unique<AutoCompactor>(cfg.auto_compaction_mode,
                                                cfg.auto_compaction_retention, hooks);
  }

  log(LogLevel::kInfo, "serving",
      {{"name", cfg.name},
       {"member-id", member_id_hex(cfg.member_id)},
       {"cluster-id", member_id_hex(node->cluster_id())},
       {"client-urls", join_urls(cfg.listen_client_urls)},
       {"peer-url", peer_listen.to_string()},
       {"metrics-urls", join_urls(cfg.listen_metrics_urls)},
       {"redis-urls", join_urls(cfg.listen_redis_urls)}});

  int sig = 0;
  sigwait(&signals, &sig);
  int code = 0;
  if (sig == SIGUSR1) {
    log(LogLevel::kFatal, "stopping after the error above");
    code = 2;
  } else {
    log(LogLevel::kInfo, "stopping", {{"signal", std::to_string(sig)}});
  }
  // The HTTP thread reads the node: it stops first. Leadership moves next, while peers are
  // still reachable; then the API drains.
  http.stop();
  redis_port.stop();
  compactor.reset();
  corruption_checker.reset();
  node->stop(sig == SIGUSR1 ? 0 : cfg.election_timeout_ms);
  api.stop();
  peers.stop();
  hasher.reset();
  node.reset();
  return code;
}

}  // namespace
}  // namespace chorus::server

int main(int argc, char** argv) {
  using namespace chorus::server;
  // gRPC's mutexes are absl's, and Debian's absl tracks the order every one of them is taken in
  // (a deadlock detector: a graph update under a global lock per acquisition), which a profile
  // of a busy member put at 2 to 3 % of its CPU. It is a debugging aid: off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  ServerConfig cfg;
  std::string message;
  switch (parse_config(argc, argv, process_environment(), &cfg, &message)) {
    case ParseOutcome::kHelp:
    case ParseOutcome::kVersion:
      std::printf("%s\n", message.c_str());
      return 0;
    case ParseOutcome::kError:
      std::fprintf(stderr, "chorusd: %s\n", message.c_str());
      return 1;
    case ParseOutcome::kRun:
      break;
  }
  // parse_config has refused any other value.
  LogLevel level = LogLevel::kInfo;
  (void)parse_log_level(cfg.log_level, &level);
  set_log_level(level);
  if (std::string error = set_log_outputs(cfg.log_outputs); !error.empty()) {
    std::fprintf(stderr, "chorusd: %s\n", error.c_str());
    return 1;
  }
  return run(cfg);
}
