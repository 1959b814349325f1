// The configuration of chorusd. Settings share etcd's flag names and defaults, so an etcd
// command line, environment (with CHORUS_ for ETCD_) or YAML file starts a Chorus member. Each
// setting comes from, in order of precedence: a command-line flag (--data-dir), an environment
// variable (CHORUS_DATA_DIR), a key of the YAML file named by --config-file (data-dir:), or the
// default. Everything is checked here, before the server touches a file or a socket, and every
// error names the setting and where its value came from.
//
// Parsing is a pure function of argv, the environment map and the config file, so tests pass
// their own environment and no global configuration exists.
#pragma once

#include <climits>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::server {

// An http or https URL with an explicit port: "http://10.0.0.1:2380", "http://[::1]:2379". Scheme
// and host are lower-cased; an IPv6 host is kept without its brackets.
struct Url {
  std::string scheme;
  std::string host;
  uint16_t port = 0;

  std::string to_string() const;
  bool operator==(const Url&) const = default;
};

// Parses "http://host:port" or "https://host:port" (a trailing "/" is allowed; paths, queries
// and user info are not); unix sockets are refused. Port 0 parses (a listener may ask for any
// free port); the configuration refuses it where it is advertised. Returns false and sets
// *error on bad input.
bool parse_url(std::string_view text, Url* out, std::string* error);

// A peer URL: parse_url (http, or https for peer TLS; a member's peer URLs all share the
// cluster's scheme, which check_peer_tls and MemberAdd enforce).
bool parse_peer_url(std::string_view text, Url* out, std::string* error);

bool has_https(const std::vector<Url>& urls);

// etcd's --auto-compaction-mode.
enum class CompactionMode { kPeriodic, kRevision };

// Parses etcd's --auto-compaction-retention for `mode`: "0" is off (*out = 0); periodic takes a
// Go duration ("90m", "1h30m", "10s") or a bare number of hours; revision a count. The unit of
// *out: milliseconds for periodic, revisions for revision.
bool parse_compaction_retention(CompactionMode mode, const std::string& text, int64_t* out,
                                std::string* error);

// A Go duration as etcd's flags take them ("500ms", "10s", "5m", "1h30m"), in milliseconds;
// false for anything else, zero included.
bool parse_go_duration(std::string_view text, int64_t* ms);

// "http://a:1,http://b:2"
std::string join_urls(const std::vector<Url>& urls);

struct Member {
  std::string name;
  std::vector<Url> peer_urls;
  uint64_t id = 0;
};

// Defaults are etcd's.
struct ServerConfig {
  std::string name = "default";
  std::string data_dir = "default.chorus";  // "${name}.chorus" when not set
  std::vector<Url> listen_client_urls;
  std::vector<Url> advertise_client_urls;
  std::vector<Url> listen_peer_urls;
  std::vector<Url> initial_advertise_peer_urls;
  std::vector<Url> listen_metrics_urls;  // extra listeners serving only /metrics and /health
  std::vector<Url> listen_redis_urls;    // redis://host:port listeners of the Redis face

  // In the order first listed, with ids filled in. A name listed twice gets both URLs.
  std::vector<Member> initial_cluster;
  bool initial_cluster_new = true;  // --initial-cluster-state: new, or existing
  std::string initial_cluster_token = "etcd-cluster";
  // Derived from the initial cluster and the token, so every member computes the same ids.
  // A member joining an existing cluster must take both from the cluster instead: the cluster
  // assigned the member its id when it was added, and its members may have changed since.
  uint64_t cluster_id = 0;
  uint64_t member_id = 0;

  // Client TLS, etcd's flags: https client URLs are served with this certificate and key;
  // with client_cert_auth a client must present a certificate the trusted CA signed. The files
  // are read again when they change (rotation without a restart).
  std::string cert_file;
  std::string key_file;
  std::string trusted_ca_file;
  bool client_cert_auth = false;
  // --auto-tls: without --cert-file, https client URLs are served with a self-signed
  // certificate the member makes in its data directory (clients cannot verify it).
  bool auto_tls = false;
  // Peer TLS: on when the peer URLs are https.
  bool peer_tls = false;
  std::string peer_cert_file;
  std::string peer_key_file;
  std::string peer_trusted_ca_file;
  bool peer_client_cert_auth = false;
  bool peer_auto_tls = false;
  // --auto-compaction-mode and --auto-compaction-retention (0: off; milliseconds for
  // periodic, revisions for revision).
  CompactionMode auto_compaction_mode = CompactionMode::kPeriodic;
  int64_t auto_compaction_retention = 0;
  std::string auth_token = "simple";  // --auth-token: simple, or jwt,<options>
  int64_t bcrypt_cost = 10;
  int64_t auth_token_ttl_s = 300;

  // --cipher-suites as OpenSSL names (ECDHE-RSA-AES128-GCM-SHA256), in the order given; empty:
  // OpenSSL's defaults. --tls-min-version and --tls-max-version: 12 or 13.
  std::vector<std::string> cipher_suites;
  int tls_min_version = 12;
  int tls_max_version = 13;
  // Revocation lists (PEM) checked in the handshake, and names certificates must carry.
  std::string client_crl_file;
  std::string client_cert_allowed_hostname;
  std::string peer_crl_file;
  std::string peer_cert_allowed_cn;
  std::string peer_cert_allowed_hostname;
  // A dialing peer's certificate must name the address it dials from, unless this is set.
  bool peer_skip_client_san_verification = false;
  // The HTTP/JSON gateway: origins allowed to call it from a browser, and the Host headers
  // plain-text requests may carry. {"*"}: any.
  std::vector<std::string> cors = {"*"};
  std::vector<std::string> host_whitelist = {"*"};

  std::string wal_dir;  // empty: <data-dir>/member/wal
  bool force_new_cluster = false;
  bool strict_reconfig_check = true;
  bool pre_vote = true;
  // gRPC's keepalive and stream limits, in milliseconds (0: off, for interval and timeout).
  int64_t grpc_keepalive_min_time_ms = 5000;
  int64_t grpc_keepalive_interval_ms = 2 * 3'600'000;
  int64_t grpc_keepalive_timeout_ms = 20'000;
  uint32_t max_concurrent_streams = UINT32_MAX;
  // Corruption checks: at start, and every corrupt_check_ms on the leader (0: never).
  bool initial_corrupt_check = false;
  int64_t corrupt_check_ms = 0;
  bool lease_checkpoint = false;
  int64_t lease_checkpoint_interval_ms = 5 * 60'000;
  int64_t warning_apply_ms = 100;
  bool extensive_metrics = false;  // --metrics extensive
  // --discovery-srv: the initial cluster comes from DNS SRV records of this domain.
  std::string discovery_srv;
  std::string discovery_srv_name;
  std::string discovery_srv_resolver;  // host:port; empty: /etc/resolv.conf's
  // --log-outputs: "stderr", "stdout", "systemd/journal" or file paths.
  std::vector<std::string> log_outputs = {"stderr"};
  std::string log_package_levels;  // accepted, ignored (warned about at start)

  int heartbeat_interval_ms = 100;
  int election_timeout_ms = 1000;
  uint64_t snapshot_count = 100'000;  // applied entries between snapshots
  int64_t quota_backend_bytes = int64_t{2} << 30;
  uint64_t max_request_bytes = 1'572'864;  // 1.5 MiB
  int64_t max_txn_ops = 128;
  std::string log_level = "info";  // debug, info, warn, error, panic or fatal

  // Chorus only. Linearizable reads confirm leadership with a ReadIndex round trip when false;
  // when true, the leader serves them under its lease (clock-dependent, one round trip less).
  bool lease_reads = false;
  int64_t initial_groups = 0;  // data groups of a new cluster
  int64_t group_metrics = 0;   // labelled series for at most this many data groups
  bool quiesce_groups = true;
  int64_t slow_request_ms = 100;  // requests slower than this are logged; 0 logs none
  int64_t watch_progress_notify_ms = 600'000;
  std::string config_file;  // empty when none was given
  // A deliberately unsafe mode that exists only so the fault harness (make chaos) can show it
  // catches a broken member: "stale-reads" answers linearizable reads from local state without
  // confirming leadership. "none" (the default) in every real deployment.
  std::string unsafe_test_fault = "none";
};

enum class ParseOutcome { kRun, kHelp, kVersion, kError };

// argv[0] is the program name. `env` is the process environment as name -> value (see
// process_environment); an empty value counts as unset, as in etcd. On kRun, *out is complete
// and checked. On kHelp and kVersion, *message is the text to print before exiting with 0; on
// kError, *message says which setting, from which source, is wrong and why. Never throws.
ParseOutcome parse_config(int argc, const char* const* argv,
                          const std::map<std::string, std::string>& env, ServerConfig* out,
                          std::string* message);

std::map<std::string, std::string> process_environment();

// --discovery-srv: `initial_cluster` as found in DNS ("name=https://host:port,..."), this member's
// entry under its --name. Fills in initial_cluster and the ids as --initial-cluster would have.
bool adopt_discovered_cluster(const std::string& initial_cluster, ServerConfig* c,
                              std::string* error);

// As etcd does, a member's id is a hash of its sorted peer URLs and the cluster token, and the
// cluster's id a hash of its sorted member ids (and the token): every member derives the same
// ids from the same --initial-cluster, without talking. Never 0 (raft's "no node"). The hash is
// written here and must never change: ids are stored in every data directory.
uint64_t compute_member_id(const std::vector<Url>& peer_urls, std::string_view token);
// A member added later (MemberAdd): the same inputs and a salt (the time), so that adding back
// a removed member at the same address gives it a new id.
uint64_t compute_added_member_id(const std::vector<Url>& peer_urls, std::string_view token,
                                 uint64_t salt);
uint64_t compute_cluster_id(const std::vector<uint64_t>& member_ids, std::string_view token);

}  // namespace chorus::server
