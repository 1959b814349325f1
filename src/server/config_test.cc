#include "server/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <set>

namespace chorus::server {
namespace {

using Env = std::map<std::string, std::string>;

struct Parsed {
  ParseOutcome outcome = ParseOutcome::kError;
  ServerConfig config;
  std::string message;
};

Parsed parse(std::vector<std::string> args, const Env& env = {}) {
  std::vector<const char*> argv{"chorusd"};
  for (const std::string& a : args)
    argv.push_back(a.c_str());
  Parsed p;
  p.outcome = parse_config(static_cast<int>(argv.size()), argv.data(), env, &p.config, &p.message);
  return p;
}

// Expects an error whose message names every one of `parts` (the setting and its source).
void expect_error(const Parsed& p, std::initializer_list<std::string_view> parts) {
  ASSERT_EQ(p.outcome, ParseOutcome::kError) << "parsed, but should have failed";
  for (std::string_view part : parts) {
    EXPECT_NE(p.message.find(part), std::string::npos)
        << "error message '" << p.message << "' does not mention '" << part << "'";
  }
}

Url url(std::string_view text) {
  Url u;
  std::string error;
  EXPECT_TRUE(parse_url(text, &u, &error)) << error;
  return u;
}

std::vector<std::string> strings(const std::vector<Url>& urls) {
  std::vector<std::string> out;
  for (const Url& u : urls)
    out.push_back(u.to_string());
  return out;
}

const std::string kCluster3 =
    "infra1=http://10.0.0.1:2380,infra2=http://10.0.0.2:2380,infra3=http://10.0.0.3:2380";

// The flags node `i` (1..3) of kCluster3 is started with.
std::vector<std::string> member_flags(int i) {
  const std::string peer = "http://10.0.0." + std::to_string(i) + ":2380";
  return {"--name",
          "infra" + std::to_string(i),
          "--listen-peer-urls",
          peer,
          "--initial-advertise-peer-urls",
          peer,
          "--initial-cluster",
          kCluster3};
}

class ConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "chorus-config-XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& text) {
    std::string path = dir_ / ("c" + std::to_string(files_++) + ".yaml");
    std::ofstream(path) << text;
    return path;
  }
  std::filesystem::path dir_;
  int files_ = 0;
};

// ---- defaults and flags ------------------------------------------------------------------------

TEST(Config, DefaultsAreEtcds) {
  Parsed p = parse({});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  const ServerConfig& c = p.config;
  EXPECT_EQ(c.name, "default");
  EXPECT_EQ(c.data_dir, "default.chorus");
  EXPECT_EQ(strings(c.listen_client_urls), std::vector<std::string>{"http://localhost:2379"});
  EXPECT_EQ(c.advertise_client_urls, c.listen_client_urls);
  EXPECT_EQ(strings(c.listen_peer_urls), std::vector<std::string>{"http://localhost:2380"});
  EXPECT_EQ(c.initial_advertise_peer_urls, c.listen_peer_urls);
  EXPECT_TRUE(c.listen_metrics_urls.empty());
  ASSERT_EQ(c.initial_cluster.size(), 1u);
  EXPECT_EQ(c.initial_cluster[0].name, "default");
  EXPECT_EQ(strings(c.initial_cluster[0].peer_urls),
            std::vector<std::string>{"http://localhost:2380"});
  EXPECT_TRUE(c.initial_cluster_new);
  EXPECT_EQ(c.initial_cluster_token, "etcd-cluster");
  EXPECT_EQ(c.heartbeat_interval_ms, 100);
  EXPECT_EQ(c.election_timeout_ms, 1000);
  EXPECT_EQ(c.snapshot_count, 100'000u);
  EXPECT_EQ(c.quota_backend_bytes, int64_t{2} * 1024 * 1024 * 1024);
  EXPECT_EQ(c.max_request_bytes, 1'572'864u);
  EXPECT_EQ(c.max_txn_ops, 128);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_FALSE(c.lease_reads);
  EXPECT_EQ(c.initial_groups, 0);
  EXPECT_EQ(c.group_metrics, 0);
  EXPECT_TRUE(c.quiesce_groups);
  EXPECT_EQ(c.slow_request_ms, 100);
  EXPECT_EQ(c.config_file, "");
  EXPECT_NE(c.member_id, 0u);
  EXPECT_EQ(c.member_id, c.initial_cluster[0].id);
  EXPECT_NE(c.cluster_id, 0u);
}

TEST(Config, DataDirDefaultsToTheName) {
  Parsed p = parse({"--name", "infra1", "--initial-cluster", "infra1=http://localhost:2380"});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  EXPECT_EQ(p.config.data_dir, "infra1.chorus");
}

TEST(Config, EveryFlagParses) {
  Parsed p = parse({"--name=infra2",
                    "--data-dir=/var/lib/chorus",
                    "--listen-client-urls=http://10.0.0.2:2379,http://127.0.0.1:2379",
                    "--advertise-client-urls=http://node2.example:2379",
                    "--listen-peer-urls=http://10.0.0.2:2380",
                    "--initial-advertise-peer-urls=http://10.0.0.2:2380",
                    "--listen-metrics-urls=http://0.0.0.0:9090",
                    "--initial-cluster=" + kCluster3,
                    "--initial-cluster-state=existing",
                    "--initial-cluster-token=prod",
                    "--heartbeat-interval=50",
                    "--election-timeout=500",
                    "--snapshot-count=10000",
                    "--quota-backend-bytes=8589934592",
                    "--max-request-bytes=10485760",
                    "--max-txn-ops=1024",
                    "--log-level=debug",
                    "--lease-reads",
                    "--slow-request-ms=0",
                    "--initial-groups=10000",
                    "--group-metrics=20",
                    "--quiesce-groups=false"});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  const ServerConfig& c = p.config;
  EXPECT_EQ(c.name, "infra2");
  EXPECT_EQ(c.data_dir, "/var/lib/chorus");
  EXPECT_EQ(join_urls(c.listen_client_urls), "http://10.0.0.2:2379,http://127.0.0.1:2379");
  EXPECT_EQ(join_urls(c.advertise_client_urls), "http://node2.example:2379");
  EXPECT_EQ(join_urls(c.listen_peer_urls), "http://10.0.0.2:2380");
  EXPECT_EQ(join_urls(c.initial_advertise_peer_urls), "http://10.0.0.2:2380");
  EXPECT_EQ(join_urls(c.listen_metrics_urls), "http://0.0.0.0:9090");
  EXPECT_EQ(c.initial_cluster.size(), 3u);
  EXPECT_FALSE(c.initial_cluster_new);
  EXPECT_EQ(c.initial_cluster_token, "prod");
  EXPECT_EQ(c.heartbeat_interval_ms, 50);
  EXPECT_EQ(c.election_timeout_ms, 500);
  EXPECT_EQ(c.snapshot_count, 10'000u);
  EXPECT_EQ(c.quota_backend_bytes, int64_t{8} << 30);
  EXPECT_EQ(c.max_request_bytes, 10'485'760u);
  EXPECT_EQ(c.max_txn_ops, 1024);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_TRUE(c.lease_reads);
  EXPECT_EQ(c.slow_request_ms, 0);
  EXPECT_EQ(c.initial_groups, 10000);
  EXPECT_EQ(c.group_metrics, 20);
  EXPECT_FALSE(c.quiesce_groups);
  EXPECT_EQ(c.member_id, c.initial_cluster[1].id);
}

TEST(Config, FlagsTakeGoFlagForms) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--name", "x"}, {"--name=x"}, {"-name", "x"}, {"-name=x"}, {"--name=y", "--name=x"}}) {
    std::vector<std::string> full = args;
    full.insert(full.end(), {"--initial-cluster", "x=http://localhost:2380"});
    Parsed p = parse(full);
    ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
    EXPECT_EQ(p.config.name, "x") << "the last of repeated flags wins, as in Go's flag package";
  }
}

TEST(Config, UnsafeTestFaultIsOffUnlessNamed) {
  EXPECT_EQ(parse({}).config.unsafe_test_fault, "none");
  EXPECT_EQ(parse({"--unsafe-test-fault=stale-reads"}).config.unsafe_test_fault, "stale-reads");
  expect_error(parse({"--unsafe-test-fault=everything"}),
               {"flag --unsafe-test-fault", "'everything'"});
}

TEST(Config, BooleanFlagForms) {
  EXPECT_TRUE(parse({"--lease-reads"}).config.lease_reads);
  EXPECT_TRUE(parse({"--lease-reads=true"}).config.lease_reads);
  Parsed off = parse({"--lease-reads=false"});
  ASSERT_EQ(off.outcome, ParseOutcome::kRun) << off.message;
  EXPECT_FALSE(off.config.lease_reads);
  expect_error(parse({"--lease-reads=maybe"}), {"flag --lease-reads", "'maybe'"});
  expect_error(parse({"--lease-reads", "false"}), {"unexpected argument 'false'"});
}

TEST(Config, QuotaZeroMeansTheDefault) {
  Parsed p = parse({"--quota-backend-bytes", "0"});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  EXPECT_EQ(p.config.quota_backend_bytes, int64_t{2} << 30);
}

TEST(Config, MetricsUrlsMayBeClearedAndNameMayNot) {
  Parsed p = parse({"--listen-metrics-urls="}, {{"CHORUS_LISTEN_METRICS_URLS", "http::1"}});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  EXPECT_TRUE(p.config.listen_metrics_urls.empty());
  expect_error(parse({"--name="}), {"flag --name", "must not be empty"});
}

TEST(Config, RedisUrlsFromFlagsEnvironmentAndFile) {
  Parsed p = parse({});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  EXPECT_TRUE(p.config.listen_redis_urls.empty());  // off unless set
  p = parse({"--listen-redis-urls", "redis://127.0.0.1:6379,redis://[::1]:6380"});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  EXPECT_EQ(join_urls(p.config.listen_redis_urls), "redis://127.0.0.1:6379,redis://[::1]:6380");
  p = parse({}, {{"CHORUS_LISTEN_REDIS_URLS", "redis://0.0.0.0:6379"}});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  EXPECT_EQ(join_urls(p.config.listen_redis_urls), "redis://0.0.0.0:6379");
  expect_error(parse({"--listen-redis-urls", "http://127.0.0.1:6379"}),
               {"flag --listen-redis-urls", "not a redis:// URL"});
  expect_error(parse({"--listen-redis-urls", "rediss://127.0.0.1:6379"}),
               {"flag --listen-redis-urls", "TLS"});
  expect_error(parse({"--listen-redis-urls", "redis://example.com:6379"}),
               {"flag --listen-redis-urls", "IP address"});
  expect_error(parse({"--listen-redis-urls", "redis://127.0.0.1:1,redis://127.0.0.1:1"}),
               {"flag --listen-redis-urls", "twice"});
}

TEST_F(ConfigFile, RedisUrlsInTheFile) {
  Parsed p = parse({"--config-file", write("listen-redis-urls: redis://127.0.0.1:7000\n")});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  EXPECT_EQ(join_urls(p.config.listen_redis_urls), "redis://127.0.0.1:7000");
}

TEST(Config, HelpAndVersion) {
  for (const char* flag : {"--help", "-h", "-help"}) {
    Parsed p = parse({"--name", "x", flag}, {{"CHORUS_BOGUS", "ignored by --help"}});
    ASSERT_EQ(p.outcome, ParseOutcome::kHelp) << flag;
    for (std::string_view part : {"--initial-cluster <", "--lease-reads", "--config-file",
                                  "CHORUS_DATA_DIR", "http://localhost:2379", "--version"}) {
      EXPECT_NE(p.message.find(part), std::string::npos) << part;
    }
  }
  Parsed v = parse({"--version"});
  ASSERT_EQ(v.outcome, ParseOutcome::kVersion);
  EXPECT_EQ(v.message.rfind("chorusd version ", 0), 0u) << v.message;
}

// ---- membership and ids ------------------------------------------------------------------------

TEST(Config, AThreeMemberClusterParses) {
  Parsed p = parse(member_flags(1));
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  const auto& members = p.config.initial_cluster;
  ASSERT_EQ(members.size(), 3u);
  std::set<uint64_t> ids;
  for (size_t i = 0; i < members.size(); ++i) {
    EXPECT_EQ(members[i].name, "infra" + std::to_string(i + 1));
    EXPECT_EQ(join_urls(members[i].peer_urls), "http://10.0.0." + std::to_string(i + 1) + ":2380");
    EXPECT_EQ(members[i].id, compute_member_id(members[i].peer_urls, "etcd-cluster"));
    ids.insert(members[i].id);
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(p.config.member_id, members[0].id);
  EXPECT_EQ(p.config.cluster_id,
            compute_cluster_id({members[2].id, members[0].id, members[1].id}, "etcd-cluster"));
}

TEST(Config, EveryMemberDerivesTheSameIds) {
  std::vector<ServerConfig> views;
  for (int i = 1; i <= 3; ++i) {
    Parsed p = parse(member_flags(i));
    ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
    views.push_back(p.config);
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(views[i].cluster_id, views[0].cluster_id);
    EXPECT_EQ(views[i].member_id, views[0].initial_cluster[i].id);
    for (int m = 0; m < 3; ++m)
      EXPECT_EQ(views[i].initial_cluster[m].id, views[0].initial_cluster[m].id);
  }
}

// A new cluster's first log entries describe its initial data groups, so members started with
// different counts must not take each other for the same cluster; member ids stay as they were.
TEST(Config, InitialGroupsArePartOfTheClusterId) {
  std::vector<std::string> flags = member_flags(1);
  Parsed plain = parse(flags);
  flags.push_back("--initial-groups=10");
  Parsed ten = parse(flags);
  flags.back() = "--initial-groups=11";
  Parsed eleven = parse(flags);
  ASSERT_EQ(ten.outcome, ParseOutcome::kRun) << ten.message;
  ASSERT_EQ(eleven.outcome, ParseOutcome::kRun) << eleven.message;
  EXPECT_NE(ten.config.cluster_id, plain.config.cluster_id);
  EXPECT_NE(ten.config.cluster_id, eleven.config.cluster_id);
  EXPECT_EQ(ten.config.member_id, plain.config.member_id);
  flags.back() = "--group-metrics=1001";
  EXPECT_EQ(parse(flags).outcome, ParseOutcome::kError);
}

TEST(Config, ANameMayRepeatToListSeveralUrls) {
  Parsed p = parse({"--name", "a", "--listen-peer-urls",
                    "http://10.0.0.2:2380,http://10.0.0.1:2380", "--initial-cluster",
                    "a=http://10.0.0.1:2380,b=http://10.0.1.1:2380,a=http://10.0.0.2:2380"});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  ASSERT_EQ(p.config.initial_cluster.size(), 2u);
  EXPECT_EQ(join_urls(p.config.initial_cluster[0].peer_urls),
            "http://10.0.0.1:2380,http://10.0.0.2:2380");
  EXPECT_EQ(p.config.initial_cluster[1].name, "b");
}

TEST(Ids, StableDeterministicAndNeverZero) {
  const std::vector<Url> urls{url("http://10.0.0.1:2380"), url("http://10.0.0.2:2380")};
  const std::vector<Url> reversed{urls[1], urls[0]};
  const uint64_t id = compute_member_id(urls, "etcd-cluster");
  EXPECT_EQ(id, compute_member_id(urls, "etcd-cluster"));
  EXPECT_EQ(id, compute_member_id(reversed, "etcd-cluster")) << "URL order must not matter";
  EXPECT_NE(id, 0u);
  EXPECT_EQ(compute_cluster_id({1, 2, 3}, "t"), compute_cluster_id({3, 1, 2}, "t"));
  // Ids are stored in every data directory: the hash is a format and must not change.
  EXPECT_EQ(compute_member_id({url("http://localhost:2380")}, "etcd-cluster"), 0xe371946854c3faf4u);
  EXPECT_EQ(compute_cluster_id({1}, "etcd-cluster"), 0x523f496089425cb6u);
}

TEST(Ids, DistinctPerMemberAndPerToken) {
  const std::vector<Url> a{url("http://10.0.0.1:2380")};
  const std::vector<Url> b{url("http://10.0.0.2:2380")};
  EXPECT_NE(compute_member_id(a, "t"), compute_member_id(b, "t"));
  EXPECT_NE(compute_member_id(a, "t"), compute_member_id(a, "u"));
  EXPECT_NE(compute_cluster_id({1, 2}, "t"), compute_cluster_id({1, 2}, "u"));
  EXPECT_NE(compute_cluster_id({1, 2}, "t"), compute_cluster_id({1, 3}, "t"));
  // Field boundaries count: ("ab", "c") and ("a", "bc") hash differently.
  EXPECT_NE(compute_member_id({url("http://a:1")}, "0"),
            compute_member_id({url("http://a:10")}, ""));

  std::vector<std::string> flags = member_flags(1);
  flags.insert(flags.end(), {"--initial-cluster-token", "other"});
  Parsed other = parse(flags);
  Parsed same = parse(member_flags(1));
  ASSERT_EQ(other.outcome, ParseOutcome::kRun) << other.message;
  EXPECT_NE(other.config.cluster_id, same.config.cluster_id);
  EXPECT_NE(other.config.member_id, same.config.member_id);
}

// ---- environment and file ----------------------------------------------------------------------

TEST(Config, EnvironmentVariablesSetSettings) {
  Parsed p = parse({}, {{"CHORUS_NAME", "infra3"},
                        {"CHORUS_DATA_DIR", "/data"},
                        {"CHORUS_LISTEN_PEER_URLS", "http://10.0.0.3:2380"},
                        {"CHORUS_INITIAL_CLUSTER", kCluster3},
                        {"CHORUS_INITIAL_CLUSTER_STATE", "existing"},
                        {"CHORUS_HEARTBEAT_INTERVAL", "20"},
                        {"CHORUS_ELECTION_TIMEOUT", "200"},
                        {"CHORUS_LEASE_READS", "true"},
                        {"CHORUS_LOG_LEVEL", "warn"},
                        {"CHORUS_MAX_TXN_OPS", "7"},
                        {"ETCD_NAME", "not ours"},
                        {"PATH", "/usr/bin"}});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  EXPECT_EQ(p.config.name, "infra3");
  EXPECT_EQ(p.config.data_dir, "/data");
  EXPECT_EQ(p.config.member_id, p.config.initial_cluster[2].id);
  EXPECT_FALSE(p.config.initial_cluster_new);
  EXPECT_EQ(p.config.heartbeat_interval_ms, 20);
  EXPECT_EQ(p.config.election_timeout_ms, 200);
  EXPECT_TRUE(p.config.lease_reads);
  EXPECT_EQ(p.config.log_level, "warn");
  EXPECT_EQ(p.config.max_txn_ops, 7);
}

TEST(Config, AFlagBeatsTheEnvironmentAndAnEmptyVariableIsUnset) {
  Parsed p = parse({"--data-dir", "/flag"}, {{"CHORUS_DATA_DIR", "/env"}, {"CHORUS_NAME", ""}});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  EXPECT_EQ(p.config.data_dir, "/flag");
  EXPECT_EQ(p.config.name, "default");
}

TEST_F(ConfigFile, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
  std::string path = write(
      "name: infra1\n"
      "data-dir: /file\n"
      "heartbeat-interval: 10\n"
      "election-timeout: 100\n"
      "initial-cluster: infra1=http://localhost:2380\n");
  Parsed p = parse({"--config-file", path, "--heartbeat-interval", "20"},
                   {{"CHORUS_DATA_DIR", "/env"}, {"CHORUS_HEARTBEAT_INTERVAL", "15"}});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  EXPECT_EQ(p.config.name, "infra1");
  EXPECT_EQ(p.config.data_dir, "/env");
  EXPECT_EQ(p.config.heartbeat_interval_ms, 20);
  EXPECT_EQ(p.config.election_timeout_ms, 100);
  EXPECT_EQ(p.config.snapshot_count, 100'000u);
  EXPECT_EQ(p.config.config_file, path);
}

TEST_F(ConfigFile, NamedByTheEnvironment) {
  std::string path = write("log-level: error\n");
  Parsed p = parse({}, {{"CHORUS_CONFIG_FILE", path}});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  EXPECT_EQ(p.config.log_level, "error");
  EXPECT_EQ(p.config.config_file, path);
}

TEST_F(ConfigFile, ListsAsSequencesOrStrings) {
  std::string path = write(
      "name: infra2\n"
      "listen-client-urls:\n"
      "  - http://10.0.0.2:2379\n"
      "  - http://127.0.0.1:2379\n"
      "listen-peer-urls: 'http://10.0.0.2:2380'\n"
      "listen-metrics-urls: []\n"
      "initial-cluster:\n"
      "  - infra1=http://10.0.0.1:2380\n"
      "  - infra2=http://10.0.0.2:2380\n"
      "advertise-client-urls: http://10.0.0.2:2379, http://127.0.0.1:2379\n"
      "lease-reads: yes\n"
      "quota-backend-bytes: 1073741824\n");
  Parsed p = parse({"--config-file=" + path});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  EXPECT_EQ(join_urls(p.config.listen_client_urls), "http://10.0.0.2:2379,http://127.0.0.1:2379");
  EXPECT_EQ(p.config.advertise_client_urls, p.config.listen_client_urls);
  EXPECT_EQ(p.config.initial_cluster.size(), 2u);
  EXPECT_TRUE(p.config.listen_metrics_urls.empty());
  EXPECT_TRUE(p.config.lease_reads);
  EXPECT_EQ(p.config.quota_backend_bytes, int64_t{1} << 30);
}

TEST_F(ConfigFile, EmptyOrCommentsOnly) {
  EXPECT_EQ(parse({"--config-file", write("")}).outcome, ParseOutcome::kRun);
  EXPECT_EQ(parse({"--config-file", write("# nothing set\n")}).outcome, ParseOutcome::kRun);
}

// ---- errors name the setting and its source
// ------------------------------------------------------

TEST(ConfigErrors, CommandLine) {
  expect_error(parse({"--bogus=1"}), {"unknown flag '--bogus=1'"});
  expect_error(parse({"---name", "x"}), {"unknown flag '---name'"});
  expect_error(parse({"--heartbeat-interval"}), {"flag --heartbeat-interval needs a value"});
  expect_error(parse({"extra"}), {"unexpected argument 'extra'"});
  expect_error(parse({"--", "extra"}), {"unexpected argument 'extra'"});
}

TEST(ConfigErrors, UnknownChorusVariable) {
  expect_error(parse({}, {{"CHORUS_DATADIR", "/x"}}), {"CHORUS_DATADIR", "not a chorusd setting"});
  expect_error(parse({}, {{"CHORUS_HELP", ""}}), {"CHORUS_HELP"});
}

TEST(ConfigErrors, NumbersFromEverySource) {
  expect_error(parse({"--heartbeat-interval", "fast"}),
               {"flag --heartbeat-interval", "'fast' is not a whole number"});
  expect_error(parse({}, {{"CHORUS_SNAPSHOT_COUNT", "-5"}}),
               {"environment variable CHORUS_SNAPSHOT_COUNT", "'-5' is negative"});
  expect_error(parse({"--snapshot-count=0"}), {"flag --snapshot-count", "at least 1"});
  expect_error(parse({"--election-timeout", "60000"}),
               {"flag --election-timeout", "out of range", "50000"});
  expect_error(parse({"--max-request-bytes", "99999999999999999999999"}),
               {"flag --max-request-bytes", "out of range"});
  expect_error(parse({"--max-txn-ops", "1.5"}), {"flag --max-txn-ops", "not a whole number"});
  expect_error(parse({"--slow-request-ms", " 5"}), {"flag --slow-request-ms"});
  expect_error(parse({"--initial-groups", "-1"}), {"flag --initial-groups", "negative"});
  expect_error(parse({"--initial-groups", "2000000"}), {"flag --initial-groups", "out of range"});
}

TEST(ConfigErrors, Choices) {
  expect_error(parse({"--log-level", "verbose"}),
               {"flag --log-level", "'verbose'", "debug, info, warn, error, panic, fatal"});
  expect_error(parse({}, {{"CHORUS_INITIAL_CLUSTER_STATE", "old"}}),
               {"CHORUS_INITIAL_CLUSTER_STATE", "'old'", "new, existing"});
}

TEST(Config, ClientTls) {
  Parsed p =
      parse({"--listen-client-urls", "https://127.0.0.1:2379,http://127.0.0.1:22379", "--cert-file",
             "s.crt", "--key-file", "s.key", "--trusted-ca-file", "ca.crt", "--client-cert-auth"});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  EXPECT_EQ(p.config.listen_client_urls[0].scheme, "https");
  EXPECT_EQ(p.config.listen_client_urls[1].scheme, "http");
  EXPECT_EQ(p.config.advertise_client_urls[0].to_string(), "https://127.0.0.1:2379");
  EXPECT_EQ(p.config.cert_file, "s.crt");
  EXPECT_EQ(p.config.key_file, "s.key");
  EXPECT_EQ(p.config.trusted_ca_file, "ca.crt");
  EXPECT_TRUE(p.config.client_cert_auth);

  Parsed auto_tls = parse({"--listen-client-urls", "https://127.0.0.1:2379", "--auto-tls"});
  ASSERT_EQ(auto_tls.outcome, ParseOutcome::kRun) << auto_tls.message;
  EXPECT_TRUE(auto_tls.config.auto_tls);
  EXPECT_TRUE(auto_tls.config.cert_file.empty());

  Parsed env = parse({}, {{"CHORUS_LISTEN_CLIENT_URLS", "https://127.0.0.1:2379"},
                          {"CHORUS_CERT_FILE", "a.crt"},
                          {"CHORUS_KEY_FILE", "a.key"}});
  ASSERT_EQ(env.outcome, ParseOutcome::kRun) << env.message;
  EXPECT_EQ(env.config.cert_file, "a.crt");
  EXPECT_FALSE(env.config.client_cert_auth);
}

TEST(ConfigErrors, ClientTls) {
  const char* https = "https://127.0.0.1:2379";
  expect_error(parse({"--listen-client-urls", https, "--cert-file", "s.crt"}),
               {"flag --cert-file", "needs --key-file"});
  expect_error(parse({"--listen-client-urls", https, "--key-file", "s.key"}),
               {"flag --key-file", "needs --cert-file"});
  expect_error(parse({"--listen-client-urls", https, "--cert-file", "s.crt", "--key-file", "s.key",
                      "--client-cert-auth"}),
               {"flag --client-cert-auth", "--trusted-ca-file"});
  expect_error(parse({"--trusted-ca-file", "ca.crt", "--client-cert-auth"}),
               {"flag --client-cert-auth", "https URL", "--listen-client-urls (default)"});
  expect_error(parse({"--listen-peer-urls", "https://127.0.0.1:2380"}),
               {"flag --listen-peer-urls", "--peer-cert-file and --peer-key-file"});
  expect_error(parse({"--listen-metrics-urls", "https://127.0.0.1:2381"}),
               {"flag --listen-metrics-urls", "plain HTTP"});
  expect_error(parse({"--listen-client-urls", https, "--auto-tls", "--trusted-ca-file", "ca.crt",
                      "--client-cert-auth"}),
               {"flag --auto-tls", "--client-cert-auth"});
  expect_error(parse({"--listen-client-urls", https, "--auto-tls", "--initial-cluster",
                      "default=http://localhost:2380,b=http://localhost:3380"}),
               {"flag --auto-tls", "more than one member"});
  Url u;
  std::string why;
  EXPECT_TRUE(parse_peer_url("http://127.0.0.1:2380", &u, &why));
  EXPECT_TRUE(parse_peer_url("https://127.0.0.1:2380", &u, &why));
  EXPECT_EQ(u.scheme, "https");
}

TEST(ConfigErrors, PeerTls) {
  const char* https = "https://127.0.0.1:2380";
  const char* cluster = "default=https://127.0.0.1:2380";
  Parsed ok = parse({"--listen-peer-urls", https, "--initial-cluster", cluster, "--peer-cert-file",
                     "p.crt", "--peer-key-file", "p.key", "--peer-trusted-ca-file", "ca.crt",
                     "--peer-client-cert-auth"});
  ASSERT_EQ(ok.outcome, ParseOutcome::kRun) << ok.message;
  EXPECT_TRUE(ok.config.peer_tls);
  EXPECT_EQ(ok.config.peer_trusted_ca_file, "ca.crt");
  Parsed auto_tls =
      parse({"--listen-peer-urls", https, "--initial-cluster", cluster, "--peer-auto-tls"});
  ASSERT_EQ(auto_tls.outcome, ParseOutcome::kRun) << auto_tls.message;
  expect_error(
      parse({"--listen-peer-urls", https, "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
             "--initial-cluster", "default=http://127.0.0.1:2380", "--peer-auto-tls"}),
      {"mixes http and https"});
  expect_error(parse({"--listen-peer-urls", https, "--initial-cluster",
                      "default=https://127.0.0.1:2380,b=http://127.0.0.1:3380", "--peer-auto-tls"}),
               {"flag --initial-cluster", "member 'b'", "not https"});
  expect_error(parse({"--peer-cert-file", "p.crt", "--peer-key-file", "p.key"}),
               {"flag --peer-cert-file", "is http"});
  expect_error(parse({"--listen-peer-urls", https, "--initial-cluster", cluster, "--peer-cert-file",
                      "p.crt"}),
               {"flag --peer-cert-file", "--peer-key-file"});
  expect_error(parse({"--listen-peer-urls", https, "--initial-cluster", cluster, "--peer-cert-file",
                      "p.crt", "--peer-key-file", "p.key"}),
               {"flag --peer-cert-file", "--peer-trusted-ca-file", "anyone"});
  expect_error(parse({"--listen-peer-urls", https, "--initial-cluster", cluster, "--peer-auto-tls",
                      "--peer-client-cert-auth"}),
               {"flag --peer-client-cert-auth", "--peer-trusted-ca-file"});
  expect_error(parse({"--listen-peer-urls", https, "--initial-cluster", cluster, "--peer-auto-tls",
                      "--peer-trusted-ca-file", "ca.crt"}),
               {"flag --peer-auto-tls", "proves nothing"});
}

// Every flag `etcd --help` lists for etcd 3.4, at the value it shows as the default: an etcd
// command line starts a Chorus member.
TEST(Config, EveryEtcdFlagIsAcceptedAtEtcdsDefault) {
  const std::vector<std::string> etcd_defaults = {
      "--name=default",
      "--data-dir=default.etcd",
      "--wal-dir=",
      "--snapshot-count=100000",
      "--heartbeat-interval=100",
      "--election-timeout=1000",
      "--initial-election-tick-advance=true",
      "--listen-peer-urls=http://localhost:2380",
      "--listen-client-urls=http://localhost:2379",
      "--max-snapshots=5",
      "--max-wals=5",
      "--quota-backend-bytes=0",
      "--backend-batch-interval=",
      "--backend-batch-limit=0",
      "--max-txn-ops=128",
      "--max-request-bytes=1572864",
      "--max-concurrent-streams=4294967295",
      "--grpc-keepalive-min-time=5s",
      "--grpc-keepalive-interval=2h",
      "--grpc-keepalive-timeout=20s",
      "--initial-advertise-peer-urls=http://localhost:2380",
      "--initial-cluster=default=http://localhost:2380",
      "--initial-cluster-state=new",
      "--initial-cluster-token=etcd-cluster",
      "--advertise-client-urls=http://localhost:2379",
      "--discovery=",
      "--discovery-fallback=proxy",
      "--discovery-proxy=",
      "--discovery-srv=",
      "--discovery-srv-name=",
      "--strict-reconfig-check=true",
      "--pre-vote=false",
      "--auto-compaction-retention=0",
      "--auto-compaction-mode=periodic",
      "--enable-v2=false",
      "--cert-file=",
      "--key-file=",
      "--client-cert-auth=false",
      "--client-crl-file=",
      "--client-cert-allowed-hostname=",
      "--trusted-ca-file=",
      "--auto-tls=false",
      "--peer-cert-file=",
      "--peer-key-file=",
      "--peer-client-cert-auth=false",
      "--peer-trusted-ca-file=",
      "--peer-cert-allowed-cn=",
      "--peer-cert-allowed-hostname=",
      "--peer-auto-tls=false",
      "--peer-crl-file=",
      "--cipher-suites=",
      "--cors=*",
      "--host-whitelist=*",
      "--auth-token=simple",
      "--bcrypt-cost=10",
      "--enable-pprof=false",
      "--metrics=basic",
      "--listen-metrics-urls=",
      "--logger=capnslog",
      "--log-outputs=default",
      "--log-level=info",
      "--proxy=off",
      "--proxy-failure-wait=5000",
      "--proxy-refresh-interval=30000",
      "--proxy-dial-timeout=1000",
      "--proxy-write-timeout=5000",
      "--proxy-read-timeout=0",
      "--experimental-initial-corrupt-check=false",
      "--experimental-corrupt-check-time=0s",
      "--experimental-enable-v2v3=",
      "--experimental-backend-bbolt-freelist-type=array",
      "--experimental-enable-lease-checkpoint=false",
      "--experimental-compaction-batch-limit=1000",
      "--experimental-peer-skip-client-san-verification=false",
      "--experimental-watch-progress-notify-interval=10m",
      "--experimental-warning-apply-duration=100ms",
      "--force-new-cluster=false",
      "--debug=false",
      "--log-package-levels=",
      "--tls-min-version=TLS1.2",
      "--tls-max-version=TLS1.3"};
  Parsed p = parse(etcd_defaults);
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  const ServerConfig& c = p.config;
  EXPECT_FALSE(c.pre_vote) << "given as false, as etcd 3.4's default";
  EXPECT_TRUE(c.strict_reconfig_check);
  EXPECT_EQ(c.watch_progress_notify_ms, 600'000);
  EXPECT_EQ(c.log_outputs, std::vector<std::string>{"stderr"});
  EXPECT_EQ(c.cors, std::vector<std::string>{"*"});
  EXPECT_EQ(c.max_concurrent_streams, UINT32_MAX);

  // And each is also a variable and a config file key, as every setting is.
  Parsed env = parse({}, {{"CHORUS_PRE_VOTE", "false"}, {"CHORUS_GRPC_KEEPALIVE_TIMEOUT", "3s"}});
  ASSERT_EQ(env.outcome, ParseOutcome::kRun) << env.message;
  EXPECT_FALSE(env.config.pre_vote);
  EXPECT_EQ(env.config.grpc_keepalive_timeout_ms, 3000);
}

TEST(Config, EtcdExtrasTakeTheirValues) {
  Parsed p =
      parse({"--wal-dir=/wal", "--force-new-cluster", "--strict-reconfig-check=false",
             "--grpc-keepalive-min-time=1s", "--grpc-keepalive-interval=0",
             "--grpc-keepalive-timeout=1m30s", "--max-concurrent-streams=100",
             "--experimental-initial-corrupt-check", "--experimental-corrupt-check-time=2m",
             "--experimental-warning-apply-duration=250ms", "--metrics=extensive",
             "--log-outputs=stdout,/var/log/chorus.log,default", "--debug",
             "--cors=https://a.example, https://B.example", "--host-whitelist=",
             "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,"
             "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
             "--tls-max-version=TLS1.2", "--experimental-watch-progress-notify-interval=5s"});
  ASSERT_EQ(p.outcome, ParseOutcome::kRun) << p.message;
  const ServerConfig& c = p.config;
  EXPECT_EQ(c.wal_dir, "/wal");
  EXPECT_TRUE(c.force_new_cluster);
  EXPECT_FALSE(c.strict_reconfig_check);
  EXPECT_EQ(c.grpc_keepalive_min_time_ms, 1000);
  EXPECT_EQ(c.grpc_keepalive_interval_ms, 0);
  EXPECT_EQ(c.grpc_keepalive_timeout_ms, 90'000);
  EXPECT_EQ(c.max_concurrent_streams, 100u);
  EXPECT_TRUE(c.initial_corrupt_check);
  EXPECT_EQ(c.corrupt_check_ms, 120'000);
  EXPECT_EQ(c.warning_apply_ms, 250);
  EXPECT_TRUE(c.extensive_metrics);
  EXPECT_EQ(c.log_outputs, (std::vector<std::string>{"stdout", "/var/log/chorus.log", "stderr"}));
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.cors, (std::vector<std::string>{"https://a.example", "https://b.example"}));
  EXPECT_EQ(c.host_whitelist, std::vector<std::string>{"*"});
  EXPECT_EQ(c.cipher_suites, (std::vector<std::string>{"ECDHE-RSA-AES128-GCM-SHA256",
                                                       "ECDHE-ECDSA-CHACHA20-POLY1305"}));
  EXPECT_EQ(c.tls_min_version, 12);
  EXPECT_EQ(c.tls_max_version, 12);
  EXPECT_EQ(c.watch_progress_notify_ms, 5000);
}

TEST(ConfigErrors, WhatChorusDoesNotServeIsRefusedWhenTurnedOn) {
  expect_error(parse({"--enable-v2"}), {"flag --enable-v2", "v2 API"});
  expect_error(parse({"--experimental-enable-v2v3=/v2"}), {"--experimental-enable-v2v3"});
  expect_error(parse({"--proxy=readonly"}), {"flag --proxy", "v2 proxy"});
  expect_error(parse({"--proxy=sideways"}), {"flag --proxy", "off, readonly, on"});
  expect_error(parse({"--discovery=https://discovery.etcd.io/abc"}),
               {"flag --discovery", "--discovery-srv"});
  expect_error(parse({"--enable-pprof"}), {"flag --enable-pprof", "perf"});
  expect_error(parse({"--discovery-srv=example.com", "--initial-cluster=default=http://a:1"}),
               {"--discovery-srv", "--initial-cluster"});
  expect_error(parse({"--logger=glog"}), {"flag --logger", "zap, capnslog"});
  expect_error(parse({"--metrics=all"}), {"flag --metrics", "basic, extensive"});
  expect_error(parse({"--log-outputs=stderr,,stdout"}), {"flag --log-outputs", "empty entry"});
  expect_error(parse({"--grpc-keepalive-min-time=0"}), {"--grpc-keepalive-min-time", "longer"});
  expect_error(parse({"--grpc-keepalive-timeout=20"}), {"--grpc-keepalive-timeout", "duration"});
  expect_error(parse({"--max-concurrent-streams=0"}), {"--max-concurrent-streams"});
  expect_error(parse({"--max-wals=-1"}), {"--max-wals", "negative"});
  expect_error(parse({"--discovery-srv=example.com", "--discovery-srv-resolver=10.0.0.1"}),
               {"--discovery-srv-resolver", "host:port"});
}

TEST(ConfigErrors, TlsDetails) {
  expect_error(parse({"--cipher-suites=TLS_RSA_WITH_RC4_128_SHA"}), {"--cipher-suites", "broken"});
  expect_error(parse({"--cipher-suites=ECDHE-RSA-AES128-GCM-SHA256"}),
               {"--cipher-suites", "not a TLS 1.2 cipher suite"});
  expect_error(parse({"--tls-min-version=TLS1.1"}), {"--tls-min-version", "broken"});
  expect_error(parse({"--tls-min-version=TLS1.3", "--tls-max-version=TLS1.2"}),
               {"--tls-min-version", "newer than"});
  expect_error(
      parse({"--tls-min-version=TLS1.3", "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}),
      {"--cipher-suites", "fixed"});
  expect_error(parse({"--client-crl-file=c.crl"}), {"--client-crl-file", "--trusted-ca-file"});
  expect_error(parse({"--client-cert-allowed-hostname=a"}),
               {"--client-cert-allowed-hostname", "--client-cert-auth"});
  expect_error(parse({"--listen-peer-urls=https://127.0.0.1:2380",
                      "--initial-cluster=default=https://127.0.0.1:2380", "--peer-auto-tls",
                      "--peer-cert-allowed-cn=m1"}),
               {"--peer-cert-allowed-cn", "--peer-trusted-ca-file"});
}

TEST(ConfigErrors, Urls) {
  expect_error(parse({"--listen-client-urls", "localhost:2379"}),
               {"flag --listen-client-urls", "needs a scheme"});
  expect_error(parse({"--listen-client-urls", "https://127.0.0.1:2379"}),
               {"flag --listen-client-urls", "https", "--cert-file and --key-file"});
  expect_error(parse({}, {{"CHORUS_LISTEN_PEER_URLS", "http://127.0.0.1"}}),
               {"CHORUS_LISTEN_PEER_URLS", "has no port"});
  expect_error(parse({"--advertise-client-urls", "http://a:2379/v3"}),
               {"flag --advertise-client-urls", "path"});
  expect_error(parse({"--listen-metrics-urls", "unix://x:1"}),
               {"flag --listen-metrics-urls", "unix socket"});
  expect_error(parse({"--listen-client-urls", "http://127.0.0.1:70000"}), {"invalid port"});
  expect_error(parse({"--listen-client-urls", "http://::1:2379"}), {"without brackets"});
  expect_error(parse({"--listen-client-urls", "http://127.0.0.1:2379,,http://127.0.0.1:1"}),
               {"flag --listen-client-urls", "empty entry"});
  expect_error(parse({"--listen-client-urls", "http://127.0.0.1:1,http://127.0.0.1:1"}),
               {"flag --listen-client-urls", "twice"});
  expect_error(parse({"--listen-client-urls="}), {"flag --listen-client-urls", "at least one"});
}

TEST(ConfigErrors, ListenOnAddressesAnnounceReachableOnes) {
  expect_error(parse({"--listen-client-urls", "http://node1.example:2379"}),
               {"flag --listen-client-urls", "IP address or localhost"});
  // Announced URLs default to the listened ones: 0.0.0.0 must then be replaced.
  expect_error(
      parse({"--listen-client-urls", "http://0.0.0.0:2379"}),
      {"--advertise-client-urls (unset", "flag --listen-client-urls", "cannot be announced"});
  EXPECT_EQ(parse({"--listen-client-urls", "http://[::]:2379", "--advertise-client-urls",
                   "http://10.0.0.1:2379"})
                .outcome,
            ParseOutcome::kRun);
  // Port 0 listens on any free port, but cannot be announced.
  expect_error(parse({"--listen-client-urls", "http://127.0.0.1:0"}),
               {"--advertise-client-urls", "port 0"});
  EXPECT_EQ(parse({"--listen-client-urls", "http://127.0.0.1:0", "--advertise-client-urls",
                   "http://127.0.0.1:2379"})
                .outcome,
            ParseOutcome::kRun);
}

TEST(ConfigErrors, ElectionTimeoutIsAtLeastFiveHeartbeats) {
  expect_error(parse({"--election-timeout", "1000"}, {{"CHORUS_HEARTBEAT_INTERVAL", "201"}}),
               {"flag --election-timeout", "5 times --heartbeat-interval",
                "environment variable CHORUS_HEARTBEAT_INTERVAL", "201 ms"});
  EXPECT_EQ(parse({"--heartbeat-interval", "200"}).outcome, ParseOutcome::kRun);
}

TEST(ConfigErrors, InitialClusterEntries) {
  expect_error(parse({"--initial-cluster", "infra1"}), {"flag --initial-cluster", "name=url"});
  expect_error(parse({"--initial-cluster", "=http://localhost:2380"}),
               {"flag --initial-cluster", "no name"});
  expect_error(parse({"--initial-cluster", "default=http://localhost:2380,"}),
               {"flag --initial-cluster", "empty entry"});
  expect_error(parse({"--initial-cluster", "default=https://localhost:2380"}),
               {"flag --initial-cluster", "member 'default'", "not http"});
  expect_error(
      parse({"--initial-cluster", "default=http://localhost:2380,b=http://localhost:2380"}),
      {"flag --initial-cluster", "to both 'default' and 'b'"});
  expect_error(
      parse({"--initial-cluster", "default=http://localhost:2380,default=http://localhost:2380"}),
      {"flag --initial-cluster", "twice for member 'default'"});
  expect_error(parse({}, {{"CHORUS_INITIAL_CLUSTER", "default=http://0.0.0.0:2380"}}),
               {"CHORUS_INITIAL_CLUSTER", "cannot be announced"});
}

TEST(ConfigErrors, ThisMemberMustBeInTheInitialCluster) {
  expect_error(parse({"--name", "infra9"}),
               {"default of --initial-cluster", "'infra9', from --name (flag --name)",
                "forgot to set --initial-cluster?"});
  std::vector<std::string> flags = member_flags(1);
  flags[1] = "infra4";
  flags.insert(flags.end(), {"--initial-cluster-state", "existing"});
  expect_error(parse(flags), {"flag --initial-cluster", "'infra4'"});
}

TEST(ConfigErrors, AnnouncedPeerUrlsMustMatchTheInitialCluster) {
  std::vector<std::string> flags = member_flags(1);
  flags[5] = "http://10.0.0.9:2380";
  expect_error(parse(flags), {"flag --initial-advertise-peer-urls", "http://10.0.0.9:2380",
                              "http://10.0.0.1:2380",
                              "--initial-cluster (flag --initial-cluster) lists for 'infra1'"});
  expect_error(parse({"--name", "infra1", "--initial-cluster", kCluster3}),
               {"--initial-advertise-peer-urls (unset", "default of --listen-peer-urls"});
}

TEST_F(ConfigFile, Errors) {
  std::string missing = (dir_ / "missing.yaml").string();
  expect_error(parse({"--config-file", missing}), {missing, "flag --config-file", "cannot open"});
  expect_error(parse({}, {{"CHORUS_CONFIG_FILE", missing}}), {"CHORUS_CONFIG_FILE"});
  expect_error(parse({"--config-file", dir_.string()}), {"is a directory"});

  auto file_error = [&](const std::string& yaml, std::initializer_list<std::string_view> parts) {
    std::string path = write(yaml);
    Parsed p = parse({"--config-file", path});
    expect_error(p, parts);
    EXPECT_NE(p.message.find(path), std::string::npos) << p.message;
  };
  file_error("name: [unclosed\n", {"not valid YAML", "line"});
  file_error("- name\n", {"must map flag names"});
  file_error("enable-v9: true\n", {"unknown key 'enable-v9'"});
  file_error("data_dir: /x\n", {"unknown key 'data_dir'", "did you mean 'data-dir'"});
  file_error("name: a\nname: b\n", {"key 'name'", "set twice"});
  file_error("name: [a, b]\n", {"key 'name'", "not a list"});
  file_error("initial-cluster: {a: b}\n", {"key 'initial-cluster'", "not a map"});
  file_error("listen-client-urls: [[http://127.0.0.1:1]]\n", {"key 'listen-client-urls'"});
  file_error("listen-client-urls: [http://127.0.0.1:1, '']\n",
             {"key 'listen-client-urls'", "empty entry"});
  file_error("config-file: other.yaml\n", {"key 'config-file'"});
  file_error("max-txn-ops: lots\n", {"key 'max-txn-ops'", "'lots' is not a whole number"});
  file_error("heartbeat-interval: -1\n", {"key 'heartbeat-interval'", "negative"});
  file_error("listen-peer-urls: https://127.0.0.1:2380\n",
             {"key 'listen-peer-urls'", "--peer-cert-file"});
  file_error("name:\n", {"key 'name'", "must not be empty"});
}

// ---- urls --------------------------------------------------------------------------------------

TEST(Url, ParsesAndPrints) {
  EXPECT_EQ(url("http://10.0.0.1:2379").to_string(), "http://10.0.0.1:2379");
  EXPECT_EQ(url("HTTP://Node1.Example:2379/").to_string(), "http://node1.example:2379");
  Url v6 = url("http://[::1]:2380");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 2380);
  EXPECT_EQ(v6.to_string(), "http://[::1]:2380");
  EXPECT_EQ(url("http://localhost:0").port, 0);
  Url u;
  std::string error;
  for (const char* bad : {"", "http://", "http://:2379", "http://a:", "http://a:b", "http://a:-1",
                          "http://user@a:1", "http://a:1?x", "http://[::1", "http://[zz]:1",
                          "http://[::1]2379", "http://a b:1", "ftp://a:1"}) {
    EXPECT_FALSE(parse_url(bad, &u, &error)) << bad;
    EXPECT_NE(error.find(std::string("'") + bad + "'"), std::string::npos) << error;
  }
}

TEST(Config, NeverThrowsOnMalformedInput) {
  const std::vector<std::string> values{"",
                                        "-",
                                        "=",
                                        ",",
                                        "http://",
                                        "a=b=c",
                                        "\xff\xfe",
                                        std::string(1, '\0'),
                                        std::string(5000, '9'),
                                        "[",
                                        "x=,"};
  for (std::string_view flag :
       {"name", "data-dir", "listen-client-urls", "initial-cluster", "initial-cluster-state",
        "heartbeat-interval", "quota-backend-bytes", "lease-reads", "config-file", "log-level",
        "unsafe-test-fault"}) {
    for (const std::string& value : values) {
      std::string arg = "--" + std::string(flag) + "=" + value;
      EXPECT_NO_THROW(parse({arg}));
      std::string env = "CHORUS_";
      for (char ch : flag)
        env += ch == '-' ? '_' : static_cast<char>(ch - 'a' + 'A');
      EXPECT_NO_THROW(parse({}, {{env, value}}));
    }
  }
}

TEST(Config, ProcessEnvironment) {
  ASSERT_EQ(setenv("CHORUS_CONFIG_TEST_PROBE", "a=b", 1), 0);
  Env env = process_environment();
  unsetenv("CHORUS_CONFIG_TEST_PROBE");
  EXPECT_EQ(env["CHORUS_CONFIG_TEST_PROBE"], "a=b");
}

}  // namespace
}  // namespace chorus::server
