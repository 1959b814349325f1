#include "server/config_settings.h"

#include <array>

namespace chorus::server::config_detail {
namespace {

// Appends `words` broken into lines of at most kWidth columns, each indented by `indent`.
void append_wrapped(std::string* text, std::string_view words, size_t indent) {
  constexpr size_t kWidth = 80;
  size_t column = kWidth;  // forces the first word onto a new line
  while (!words.empty()) {
    size_t space = words.find(' ');
    std::string_view word = words.substr(0, space);
    words = space == std::string_view::npos ? std::string_view() : words.substr(space + 1);
    if (column + 1 + word.size() > kWidth) {
      *text += "\n" + std::string(indent, ' ');
      column = indent;
    } else {
      *text += ' ';
      ++column;
    }
    *text += word;
    column += word.size();
  }
}

constexpr std::array kSettings = {
    Setting{"Member", "name", "<string>", "default", "Human-readable name for this member."},
    Setting{"Member", "data-dir", "<path>", "${name}.chorus", "Path to the data directory."},
    Setting{"Member", "wal-dir", "<path>", "<data-dir>/member/wal",
            "Directory of the write-ahead log, apart from the data directory (a disk of its "
            "own for the log's fdatasyncs). A member keeps its log where it was first made: "
            "to move it, stop the member and move the files."},
    Setting{"Member", "listen-peer-urls", "<urls>", kDefaultListenPeerUrls,
            "URLs to listen on for traffic from other members.", true},
    Setting{"Member", "listen-client-urls", "<urls>", kDefaultListenClientUrls,
            "URLs to listen on for client traffic.", true},
    Setting{"Member", "listen-metrics-urls", "<urls>", "",
            "Extra URLs serving only /metrics and /health.", true},
    Setting{"Member", "listen-redis-urls", "<urls>", "",
            "URLs serving the Redis protocol (RESP), as in redis://127.0.0.1:6379; off unless "
            "set. Keys are spread over the cluster's initial data groups (--initial-groups).",
            true},
    Setting{"Member", "heartbeat-interval", "<ms>", "100",
            "Time between leader heartbeats, in milliseconds."},
    Setting{"Member", "election-timeout", "<ms>", "1000",
            "Time without a leader before a follower starts an election, in milliseconds; at "
            "least 5 heartbeat intervals."},
    Setting{"Member", "snapshot-count", "<entries>", "100000",
            "Committed entries between snapshots."},
    Setting{"Member", "max-snapshots", "<count>", "5",
            "Snapshot files to keep (0: all). Accepted as etcd takes it; Chorus writes no "
            "snapshot files (a member's snapshot is a view of its store), so there is "
            "nothing to keep."},
    Setting{"Member", "max-wals", "<count>", "5",
            "Log files to keep (0: all). Accepted as etcd takes it; Chorus deletes a log "
            "segment once every group's snapshot covers it, so it never keeps more than it "
            "needs."},
    Setting{"Member", "quota-backend-bytes", "<bytes>", "2147483648",
            "Raise a space alarm when the backend grows past this size; 0 means the default."},
    Setting{"Member", "backend-batch-interval", "<duration>", "",
            "Longest time before the backend commits. Accepted as etcd takes it; Chorus "
            "writes each applied batch of entries to its store at once."},
    Setting{"Member", "backend-batch-limit", "<count>", "0",
            "Most operations before the backend commits. Accepted as etcd takes it, like "
            "--backend-batch-interval."},
    Setting{"Member", "max-request-bytes", "<bytes>", "1572864",
            "Largest client request accepted."},
    Setting{"Member", "max-txn-ops", "<count>", "128", "Most operations in one transaction."},
    Setting{"Member", "max-concurrent-streams", "<count>", "4294967295",
            "Most concurrent gRPC streams (calls and watch or keep-alive streams) one "
            "client connection may have open."},
    Setting{"Member", "grpc-keepalive-min-time", "<duration>", "5s",
            "Shortest interval between a client's keepalive pings; a client pinging more "
            "often is disconnected."},
    Setting{"Member", "grpc-keepalive-interval", "<duration>", "2h",
            "How often the member pings an idle client connection to see that it is alive; "
            "0 disables."},
    Setting{"Member", "grpc-keepalive-timeout", "<duration>", "20s",
            "How long the member waits for the answer to such a ping before closing the "
            "connection; 0 disables."},
    Setting{"Member", "auto-compaction-mode", "<periodic|revision>", "periodic",
            "How --auto-compaction-retention counts: periodic keeps that much time of key "
            "history, revision that many revisions."},
    Setting{"Member", "auto-compaction-retention", "<duration|count>", "0",
            "Key history the leader keeps before compacting it on its own: a duration such as "
            "30m or 1h (a bare number is hours) with periodic, a number of revisions with "
            "revision (checked every five minutes); 0 turns auto-compaction off."},
    Setting{"Clustering", "initial-advertise-peer-urls", "<urls>", "the listen peer URLs",
            "This member's peer URLs, as announced to the rest of the cluster.", true},
    Setting{"Clustering", "advertise-client-urls", "<urls>", "the listen client URLs",
            "This member's client URLs, as announced to clients and other members.", true},
    Setting{"Clustering", "initial-cluster", "<name=url,...>", kDefaultInitialCluster,
            "Every member's name and peer URLs, for bootstrapping; a name may repeat to give a "
            "member several URLs.",
            true},
    Setting{"Clustering", "initial-cluster-state", "<new|existing>", "new",
            "new to bootstrap a cluster; existing to join one."},
    Setting{"Clustering", "initial-cluster-token", "<string>", "etcd-cluster",
            "Clusters bootstrapped with different tokens get different ids, even with the same "
            "URLs."},
    Setting{"Clustering", "discovery-srv", "<domain>", "",
            "Bootstrap from DNS instead of --initial-cluster: the members are the targets "
            "of the SRV records _etcd-server-ssl._tcp.<domain> (https peer URLs) or "
            "_etcd-server._tcp.<domain> (http), this member the one whose address and port "
            "match its --initial-advertise-peer-urls."},
    Setting{"Clustering", "discovery-srv-name", "<suffix>", "",
            "Suffix of the SRV names --discovery-srv looks up: "
            "_etcd-server-ssl-<suffix>._tcp.<domain>."},
    Setting{"Clustering", "discovery", "<url>", "",
            "etcd's v2 discovery service: not supported, as Chorus serves no v2 API; "
            "setting it is an error. Use --discovery-srv or --initial-cluster."},
    Setting{"Clustering", "discovery-fallback", "<exit|proxy>", "proxy",
            "What to do when --discovery fails; only used with --discovery, so accepted and "
            "unused."},
    Setting{"Clustering", "discovery-proxy", "<url>", "",
            "HTTP proxy for --discovery; only used with --discovery, so accepted and "
            "unused."},
    Setting{"Clustering", "strict-reconfig-check", "", "true",
            "Refuse membership changes that could cost the cluster its quorum: adding a "
            "voting member while another is unreachable or too few have started, removing "
            "one when the reachable rest would fall short of a quorum."},
    Setting{"Clustering", "pre-vote", "", "true",
            "Ask for votes in a pre-election before a real one, so a member that was cut "
            "off does not depose a working leader when it returns (etcd 3.4 defaults to "
            "false)."},
    Setting{"Clustering", "initial-election-tick-advance", "", "true",
            "Accepted as etcd takes it. A starting Chorus member campaigns after one "
            "randomized election timeout without hearing from a leader, with or without it."},
    Setting{"Security", "cert-file", "<path>", "",
            "Certificate (PEM) served on https client URLs; read again when it changes."},
    Setting{"Security", "key-file", "<path>", "", "Private key (PEM) of --cert-file."},
    Setting{"Security", "trusted-ca-file", "<path>", "",
            "CA certificates (PEM): clients of https URLs must present a certificate it signed "
            "(as with --client-cert-auth, as in etcd); also what this member trusts when it "
            "calls other members' https client URLs."},
    Setting{"Security", "client-cert-auth", "", "false",
            "Refuse clients without a certificate signed by --trusted-ca-file, during the TLS "
            "handshake."},
    Setting{"Security", "auto-tls", "", "false",
            "Serve https client URLs with a self-signed certificate made in the data directory "
            "when no --cert-file is given (clients cannot verify it: for testing)."},
    Setting{"Security", "client-crl-file", "<path>", "",
            "Certificate revocation list (PEM) of the client CA: clients presenting a "
            "revoked certificate are refused in the handshake; read again when it changes."},
    Setting{"Security", "client-cert-allowed-hostname", "<name>", "",
            "With --client-cert-auth, a client certificate must also be valid for this host "
            "name (a DNS or IP subject alternative name)."},
    Setting{"Security", "peer-cert-file", "<path>", "",
            "Certificate (PEM) this member presents to its peers on https peer URLs, as "
            "acceptor and as dialer; read again for each new connection."},
    Setting{"Security", "peer-key-file", "<path>", "", "Private key (PEM) of --peer-cert-file."},
    Setting{"Security", "peer-trusted-ca-file", "<path>", "",
            "CA certificates (PEM) peers' certificates must be signed by: a peer without one "
            "is refused in the TLS handshake, and a dialed peer's certificate must name the "
            "host it was dialed at."},
    Setting{"Security", "peer-client-cert-auth", "", "false",
            "Refuse peers without a certificate signed by --peer-trusted-ca-file (already so "
            "whenever --peer-trusted-ca-file is set, as in etcd)."},
    Setting{"Security", "peer-auto-tls", "", "false",
            "Encrypt peer traffic with a self-signed certificate made in the data directory "
            "when no --peer-cert-file is given (peers are not verified: for testing)."},
    Setting{"Security", "peer-crl-file", "<path>", "",
            "Certificate revocation list (PEM) of the peer CA: a peer presenting a revoked "
            "certificate is refused in the handshake; read again for each connection."},
    Setting{"Security", "peer-cert-allowed-cn", "<name>", "",
            "A peer's certificate must have this common name."},
    Setting{"Security", "peer-cert-allowed-hostname", "<name>", "",
            "A peer's certificate must be valid for this host name (a DNS or IP subject "
            "alternative name)."},
    Setting{"Security", "experimental-peer-skip-client-san-verification", "", "false",
            "Do not check that a dialing peer's certificate names the address it dials from "
            "(a DNS or IP subject alternative name)."},
    Setting{"Security", "cipher-suites", "<names>", "",
            "TLS 1.2 cipher suites offered to clients and peers, by their IANA names as "
            "etcd takes them (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,...); empty: OpenSSL's "
            "defaults. TLS 1.3 suites are fixed.",
            true},
    Setting{"Security", "tls-min-version", "<TLS1.2|TLS1.3>", "TLS1.2",
            "Oldest TLS version accepted (TLS 1.0 and 1.1 are never offered)."},
    Setting{"Security", "tls-max-version", "<TLS1.2|TLS1.3>", "TLS1.3",
            "Newest TLS version offered."},
    Setting{"Security", "cors", "<origins>", "*",
            "Origins whose browser pages may call the HTTP/JSON gateway (CORS); * or empty: "
            "any.",
            true},
    Setting{"Security", "host-whitelist", "<hosts>", "*",
            "Host names plain-text HTTP requests may name in their Host header (against DNS "
            "rebinding); * or empty: any.",
            true},
    Setting{"Auth", "auth-token", "<type>", "simple",
            "How logins are proven: simple (random tokens, held in each member's memory and "
            "forgotten on restart, as in etcd), or "
            "jwt,pub-key=<file>,priv-key=<file>,sign-method=<RS256|PS256|ES256|...>[,ttl=5m] "
            "(signed tokens every member verifies with the public key; a member without "
            "priv-key verifies but cannot hand them out)."},
    Setting{"Auth", "bcrypt-cost", "<4..31>", "10",
            "bcrypt cost of the password hashes new and changed passwords get."},
    Setting{"Auth", "auth-token-ttl", "<seconds>", "300",
            "A simple token unused for this long stops working."},
    Setting{"Logging", "log-level", "<level>", "info",
            "debug, info, warn, error, panic or fatal (the last two log errors only)."},
    Setting{"Logging", "logger", "<zap|capnslog>", "zap",
            "Log format: Chorus writes structured JSON lines, as etcd's zap logger does; "
            "capnslog is accepted and writes the same."},
    Setting{"Logging", "log-outputs", "<outputs>", "default",
            "Where logs go: default (stderr), stderr, stdout, systemd/journal (the "
            "journal's socket), or file paths; several, comma separated.",
            true},
    Setting{"Logging", "debug", "", "false", "The same as --log-level debug (deprecated in etcd)."},
    Setting{"Logging", "log-package-levels", "<package=LEVEL,...>", "",
            "Per-package levels of etcd's capnslog: accepted, with a warning that they are "
            "ignored; use --log-level."},
    Setting{"Metrics", "metrics", "<basic|extensive>", "basic",
            "Detail of the metrics: extensive adds the per-method request duration "
            "histograms (grpc_server_handling_seconds)."},
    Setting{"Metrics", "enable-pprof", "", "false",
            "Go's profiling endpoints: not served by Chorus (a C++ program: profile it with "
            "perf); turning it on is an error."},
    Setting{"Experimental", "experimental-initial-corrupt-check", "", "false",
            "Before serving, compare this member's key-value hash with every reachable "
            "member's at the same revision; refuse to start on a mismatch."},
    Setting{"Experimental", "experimental-corrupt-check-time", "<duration>", "0s",
            "How often the leader compares the key-value hashes of all members at one "
            "revision and raises the CORRUPT alarm on a mismatch (writes and reads then "
            "fail until it is cleared); 0s: never."},
    Setting{"Experimental", "experimental-enable-lease-checkpoint", "", "false",
            "Have the leader record each lease's remaining time in the log (every "
            "--experimental-lease-checkpoint-interval, for leases with a longer TTL), so a new "
            "leader does not give every lease a full TTL again. Checkpoints live in the "
            "members' memory, as in etcd 3.4: a member restarted starts its leases afresh."},
    Setting{"Experimental", "experimental-lease-checkpoint-interval", "<duration>", "5m",
            "How often the leader records the time left on leases, with "
            "--experimental-enable-lease-checkpoint."},
    Setting{"Experimental", "experimental-compaction-batch-limit", "<count>", "1000",
            "Revisions deleted per compaction batch in etcd. Accepted as etcd takes it; "
            "Chorus compacts in the applying batch, with the index in memory."},
    Setting{"Experimental", "experimental-backend-bbolt-freelist-type", "<array|map>", "array",
            "bbolt's free list; accepted as etcd takes it (Chorus stores in RocksDB)."},
    Setting{"Experimental", "experimental-warning-apply-duration", "<duration>", "100ms",
            "Log a warning when applying a batch of committed entries takes longer."},
    Setting{"Experimental", "experimental-watch-progress-notify-interval", "<duration>", "10m",
            "How often watchers that asked for progress notifications get one."},
    Setting{"Unsafe", "force-new-cluster", "", "false",
            "Disaster recovery: start this member as the only member of its cluster, with "
            "its data, removing every other member from the log's configuration (entries "
            "not yet committed are dropped). Use it once, then add members back; it changes "
            "nothing once this member is alone."},
    Setting{"v2 API and proxy (not served)", "enable-v2", "", "false",
            "The v2 API: Chorus serves the v3 API only; true is an error."},
    Setting{"v2 API and proxy (not served)", "experimental-enable-v2v3", "<prefix>", "",
            "v2 requests through the v3 store: not served; setting it is an error."},
    Setting{"v2 API and proxy (not served)", "proxy", "<off|readonly|on>", "off",
            "etcd's v2 proxy mode: only off; anything else is an error."},
    Setting{"v2 API and proxy (not served)", "proxy-failure-wait", "<ms>", "5000",
            "Used by --proxy only: accepted and unused."},
    Setting{"v2 API and proxy (not served)", "proxy-refresh-interval", "<ms>", "30000",
            "Used by --proxy only: accepted and unused."},
    Setting{"v2 API and proxy (not served)", "proxy-dial-timeout", "<ms>", "1000",
            "Used by --proxy only: accepted and unused."},
    Setting{"v2 API and proxy (not served)", "proxy-write-timeout", "<ms>", "5000",
            "Used by --proxy only: accepted and unused."},
    Setting{"v2 API and proxy (not served)", "proxy-read-timeout", "<ms>", "0",
            "Used by --proxy only: accepted and unused."},
    Setting{"Chorus", "lease-reads", "", "false",
            "Serve linearizable reads under the leader's lease instead of confirming leadership "
            "with a ReadIndex round trip (faster). The leader trusts its lease only once "
            "heartbeat round trips prove a quorum of followers' clocks run slow enough for it "
            "(at most 9/8 as fast as its own with the default timeouts; about 20 heartbeats "
            "after an election); until then, and whenever clocks drift further, reads take the "
            "round trip."},
    Setting{"Chorus", "initial-groups", "<count>", "0",
            "Data groups a new cluster starts with beside the etcd keyspace (ids 2 and up), "
            "each replicated on three of the initial members; they share each member's log "
            "and fsyncs. Read only when the cluster is first created, and the same on every "
            "initial member (it is part of the cluster id)."},
    Setting{"Chorus", "group-metrics", "<count>", "0",
            "Series labelled by data group (chorus_group_writes_applied_total, "
            "chorus_group_applied_index) for the groups with the most writes applied on this "
            "member, at most this many; 0: the chorus_groups_* aggregates only."},
    Setting{"Chorus", "quiesce-groups", "", "true",
            "Idle data groups stop ticking and heartbeating until a write, a read or a "
            "member's failure wakes them."},
    Setting{"Chorus", "slow-request-ms", "<ms>", "100",
            "Log requests slower than this, in milliseconds; 0 logs none."},
    Setting{"Chorus", "watch-progress-notify-ms", "<ms>", "600000",
            "How often watchers that asked for progress notifications get one "
            "(as --experimental-watch-progress-notify-interval, which wins when set)."},
    Setting{"Chorus", "discovery-srv-resolver", "<host:port>", "",
            "DNS server --discovery-srv asks (UDP), instead of those /etc/resolv.conf "
            "names."},
    Setting{"Chorus", "unsafe-test-fault", "<mode>", "none",
            "UNSAFE, for testing the fault harness only: stale-reads serves linearizable reads "
            "from local state without ReadIndex; corrupt-writes stores every put's value "
            "altered on this member (for the corruption checks). Never set it on a real "
            "cluster."},
    Setting{"Chorus", "config-file", "<path>", "",
            "YAML file whose keys are these flag names, as in 'data-dir: /var/lib/chorus'."},
};

}  // namespace

std::span<const Setting> settings() {
  return kSettings;
}

const Setting* find_setting(std::string_view flag) {
  for (const Setting& s : settings()) {
    if (s.flag == flag) return &s;
  }
  return nullptr;
}

std::string help_text() {
  std::string text =
      "Usage: chorusd [flags]\n"
      "\n"
      "chorusd is a Chorus member: it serves the etcd v3 API. Every flag can also be\n"
      "set by an environment variable, CHORUS_ and the flag name in upper case with\n"
      "dashes as underscores (CHORUS_DATA_DIR for --data-dir), or by a key of the YAML\n"
      "file named by --config-file (data-dir: /var/lib/chorus). A flag beats the\n"
      "environment, which beats the file.\n";
  std::string_view group;
  for (const Setting& s : settings()) {
    if (s.group != group) {
      group = s.group;
      text += "\n" + std::string(group) + ":\n";
    }
    text += "  --" + std::string(s.flag);
    if (!s.value.empty()) text += " " + std::string(s.value);
    std::string help(s.help);
    if (!s.default_text.empty()) help += " Default: " + std::string(s.default_text) + ".";
    append_wrapped(&text, help, 6);
    text += "\n";
  }
  text +=
      "\nOther:\n"
      "  -h, --help\n      Print this help and exit.\n"
      "  --version\n      Print the version and exit.\n";
  return text;
}

}  // namespace chorus::server::config_detail
