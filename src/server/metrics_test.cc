#include "server/metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "server/node.h"
#include "server/server_metrics.h"
#include "transport/transport.h"

namespace chorus::server {
namespace {

// The value of the sample whose name and labels are exactly `series` (e.g. `a{b="c"}`).
std::optional<double> sample_value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ')
      return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

bool has_line(const std::string& text, const std::string& wanted) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line == wanted) return true;
  return false;
}

TEST(MetricsTest, CounterRendersHelpTypeAndValue) {
  MetricsRegistry r;
  Counter* c = r.counter("chorus_things_total", "Things done.");
  c->inc();
  c->add(2);
  EXPECT_EQ(c->value(), 3);
  EXPECT_EQ(r.render(),
            "# HELP chorus_things_total Things done.\n"
            "# TYPE chorus_things_total counter\n"
            "chorus_things_total 3\n");
}

TEST(MetricsTest, GaugeWithConstantLabelsEscapesHelpAndLabelValues) {
  MetricsRegistry r;
  Gauge* g = r.gauge("chorus_level", "Back\\slash and\nnewline.",
                     {{"path", "C:\\dir \"q\"\nnext"}, {"zone", "a"}});
  g->set(2.5);
  g->add(-4);
  EXPECT_EQ(r.render(),
            "# HELP chorus_level Back\\\\slash and\\nnewline.\n"
            "# TYPE chorus_level gauge\n"
            "chorus_level{path=\"C:\\\\dir \\\"q\\\"\\nnext\",zone=\"a\"} -1.5\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  MetricsRegistry r;
  Histogram* h = r.histogram("chorus_latency_seconds", "Latency.", {0.25, 1, 4});
  for (double v : {0.125, 0.25, 0.5, 2.0, 8.0})
    h->observe(v);  // 0.25 is on a bound: `le` is inclusive
  EXPECT_EQ(r.render(),
            "# HELP chorus_latency_seconds Latency.\n"
            "# TYPE chorus_latency_seconds histogram\n"
            "chorus_latency_seconds_bucket{le=\"0.25\"} 2\n"
            "chorus_latency_seconds_bucket{le=\"1\"} 3\n"
            "chorus_latency_seconds_bucket{le=\"4\"} 4\n"
            "chorus_latency_seconds_bucket{le=\"+Inf\"} 5\n"
            "chorus_latency_seconds_sum 10.875\n"
            "chorus_latency_seconds_count 5\n");
  Histogram::Snapshot s = h->snapshot();
  EXPECT_EQ(s.cumulative_counts, (std::vector<uint64_t>{2, 3, 4, 5}));
  EXPECT_EQ(s.count, 5u);
}

TEST(MetricsTest, HistogramWithLabelsPutsLeLast) {
  MetricsRegistry r;
  HistogramFamily* f = r.histogram_family("rtt_seconds", "RTT.", {"To"}, {1});
  f->with({"b"})->observe(0.5);
  f->with({"a"})->observe(3);
  EXPECT_EQ(r.render(),
            "# HELP rtt_seconds RTT.\n"
            "# TYPE rtt_seconds histogram\n"
            "rtt_seconds_bucket{To=\"a\",le=\"1\"} 0\n"
            "rtt_seconds_bucket{To=\"a\",le=\"+Inf\"} 1\n"
            "rtt_seconds_sum{To=\"a\"} 3\n"
            "rtt_seconds_count{To=\"a\"} 1\n"
            "rtt_seconds_bucket{To=\"b\",le=\"1\"} 1\n"
            "rtt_seconds_bucket{To=\"b\",le=\"+Inf\"} 1\n"
            "rtt_seconds_sum{To=\"b\"} 0.5\n"
            "rtt_seconds_count{To=\"b\"} 1\n");
}

TEST(MetricsTest, HistogramPutsNaNInTheInfBucket) {
  Histogram h({1});
  h.observe(std::nan(""));
  Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.cumulative_counts, (std::vector<uint64_t>{0, 1}));
  EXPECT_TRUE(std::isnan(s.sum));
}

TEST(MetricsTest, FamilyChildrenAreSharedPerLabelSetAndSortedByValues) {
  MetricsRegistry r;
  CounterFamily* f =
      r.counter_family("grpc_server_handled_total", "RPCs.", {"grpc_code", "grpc_method"});
  Counter* put = f->with({"Unavailable", "Put"});
  EXPECT_EQ(put, f->with({"Unavailable", "Put"}));
  put->add(2);
  f->with({"OK", "Range"})->inc();
  EXPECT_EQ(r.render(),
            "# HELP grpc_server_handled_total RPCs.\n"
            "# TYPE grpc_server_handled_total counter\n"
            "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\"} 1\n"
            "grpc_server_handled_total{grpc_code=\"Unavailable\",grpc_method=\"Put\"} 2\n");
}

TEST(MetricsTest, MetricsAreOrderedByNameAndEmptyOnesLeftOut) {
  MetricsRegistry r;
  r.gauge_fn("b_gauge", "B.", [] { return 7.0; });
  r.counter_family("c_family_total", "Never used.", {"x"});
  r.samples_fn("d_samples", "None this time.", MetricType::kGauge, {"x"},
               [] { return std::vector<Sample>{}; });
  r.counter_fn("a_total", "A.", [] { return 1e6; }, {{"k", "v"}});
  r.samples_fn("e_samples", "Two.", MetricType::kCounter, {"peer"}, [] {
    return std::vector<Sample>{{{"1"}, 1}, {{"2"}, 0.5}};
  });
  EXPECT_EQ(r.render(),
            "# HELP a_total A.\n"
            "# TYPE a_total counter\n"
            "a_total{k=\"v\"} 1e+06\n"
            "# HELP b_gauge B.\n"
            "# TYPE b_gauge gauge\n"
            "b_gauge 7\n"
            "# HELP e_samples Two.\n"
            "# TYPE e_samples counter\n"
            "e_samples{peer=\"1\"} 1\n"
            "e_samples{peer=\"2\"} 0.5\n");
}

TEST(MetricsTest, ValuesUseTheShortestRoundTripText) {
  EXPECT_EQ(format_metric_value(0), "0");
  EXPECT_EQ(format_metric_value(42), "42");
  EXPECT_EQ(format_metric_value(-0.5), "-0.5");
  EXPECT_EQ(format_metric_value(0.001), "0.001");
  EXPECT_EQ(format_metric_value(0.0001), "0.0001");
  EXPECT_EQ(format_metric_value(0.00001), "1e-05");
  EXPECT_EQ(format_metric_value(0.000123), "0.000123");
  EXPECT_EQ(format_metric_value(123456.5), "123456.5");
  EXPECT_EQ(format_metric_value(100000), "100000");
  EXPECT_EQ(format_metric_value(1234567), "1.234567e+06");
  EXPECT_EQ(format_metric_value(9007199254740992.0), "9.007199254740992e+15");
  EXPECT_EQ(format_metric_value(1.5e-300), "1.5e-300");
  EXPECT_EQ(format_metric_value(-2e21), "-2e+21");
  EXPECT_EQ(format_metric_value(INFINITY), "+Inf");
  EXPECT_EQ(format_metric_value(-INFINITY), "-Inf");
  EXPECT_EQ(format_metric_value(std::nan("")), "NaN");
  EXPECT_EQ(escape_label_value("plain"), "plain");
  EXPECT_EQ(escape_label_value("a\\\"\n"), "a\\\\\\\"\\n");
}

TEST(MetricsTest, EtcdBucketsEndWhereEtcdsDo) {
  std::vector<double> disk = exponential_buckets(0.001, 2, 14);
  ASSERT_EQ(disk.size(), 14u);
  EXPECT_EQ(format_metric_value(disk.front()), "0.001");
  EXPECT_EQ(format_metric_value(disk.back()), "8.192");
  std::vector<double> rtt = exponential_buckets(0.0001, 2, 14);
  EXPECT_EQ(format_metric_value(rtt.back()), "0.8192");
}

TEST(MetricsTest, ConcurrentUpdatesAreAllCounted) {
  MetricsRegistry r;
  Counter* c = r.counter("c_total", "C.");
  Histogram* h = r.histogram("h", "H.", {0.5});
  CounterFamily* f = r.counter_family("f_total", "F.", {"t"});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        c->inc();
        h->observe(i % 2 == 0 ? 0.25 : 1.0);
        f->with({std::to_string((t + i) % 3)})->inc();
        if (i % 500 == 0) (void)r.render();
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(c->value(), kThreads * kPerThread);
  Histogram::Snapshot s = h->snapshot();
  EXPECT_EQ(s.count, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(s.cumulative_counts[0], uint64_t{kThreads * kPerThread / 2});
  double family_total = 0;
  f->for_each([&](const std::vector<std::string>&, const Counter& child) {
    family_total += child.value();
  });
  EXPECT_EQ(family_total, kThreads * kPerThread);
}

TEST(MetricsDeathTest, ProgrammingErrorsAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.counter("twice", "x");
        r.gauge("twice", "x");
      },
      "registered twice");
  EXPECT_DEATH({ MetricsRegistry().counter("bad-name", "x"); }, "bad metric name");
  EXPECT_DEATH({ MetricsRegistry().histogram("h", "x", {}, {{"le", "1"}}); }, "le");
  EXPECT_DEATH({ Histogram({2, 1}); }, "strictly increasing");
  EXPECT_DEATH({ Counter().add(-1); }, "only go up");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.counter_family("f", "x", {"a", "b"})->with({"only one"});
      },
      "label values");
}

TEST(MetricsTest, ProcessMetricsArePresentAndPlausible) {
  MetricsRegistry r;
  register_process_metrics(&r);
  std::string before = r.render();
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                           "process_start_time_seconds"})
    ASSERT_TRUE(sample_value(before, name).has_value()) << name << " missing from\n" << before;
  EXPECT_TRUE(has_line(before, "# TYPE process_cpu_seconds_total counter"));
  EXPECT_TRUE(has_line(before, "# TYPE process_open_fds gauge"));

  EXPECT_GE(*sample_value(before, "process_cpu_seconds_total"), 0);
  double rss = *sample_value(before, "process_resident_memory_bytes");
  EXPECT_GT(rss, 1 << 20);
  EXPECT_GE(*sample_value(before, "process_virtual_memory_bytes"), rss);
  EXPECT_GE(*sample_value(before, "process_max_fds"), *sample_value(before, "process_open_fds"));
  double now_s =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  double start_s = *sample_value(before, "process_start_time_seconds");
  EXPECT_LE(start_s, now_s + 2);
  EXPECT_GT(start_s, now_s - 3600);

  // One more descriptor shows up in the next scrape.
  int fd = open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string after = r.render();
  close(fd);
  EXPECT_EQ(*sample_value(after, "process_open_fds"),
            *sample_value(before, "process_open_fds") + 1);
}

// ---- etcd's names ----

TEST(ServerMetricsTest, NamesAndHelpersMatchEtcd) {
  EXPECT_EQ(member_id_hex(0x8e9e05c52164694dULL), "8e9e05c52164694d");
  EXPECT_EQ(member_id_hex(1), "1");
  EXPECT_EQ(grpc_code_name(0), "OK");
  EXPECT_EQ(grpc_code_name(4), "DeadlineExceeded");
  EXPECT_EQ(grpc_code_name(14), "Unavailable");
  EXPECT_EQ(grpc_code_name(16), "Unauthenticated");
  EXPECT_EQ(grpc_code_name(99), "Code(99)");
}

TEST(ServerMetricsTest, ReadsTheNodeAndTransportAtScrapeTime) {
  NodeStatus status;
  status.leader = 0;
  transport::TransportStats stats;
  std::vector<PeerMetricsSample> peers;
  MetricsRegistry r;
  ServerMetricsSource source;
  source.node = [&] { return status; };
  source.transport = [&] { return stats; };
  source.peers = [&] { return peers; };
  source.db_total_size_bytes = [] { return std::optional<uint64_t>(4096); };
  ServerMetrics m(&r, 0xa1, "3.5.0", source);

  std::string text = r.render();
  EXPECT_EQ(sample_value(text, "etcd_server_has_leader"), 0);
  EXPECT_EQ(sample_value(text, "etcd_server_is_leader"), 0);
  EXPECT_EQ(sample_value(text, "etcd_server_id{server_id=\"a1\"}"), 1);
  EXPECT_EQ(sample_value(text, "etcd_server_version{server_version=\"3.5.0\"}"), 1);
  EXPECT_EQ(sample_value(text, "etcd_mvcc_db_total_size_in_bytes"), 4096);
  // Types as etcd declares them, including its "_total" gauges.
  EXPECT_TRUE(has_line(text, "# TYPE etcd_server_proposals_committed_total gauge"));
  EXPECT_TRUE(has_line(text, "# TYPE etcd_server_proposals_failed_total counter"));
  EXPECT_TRUE(has_line(text, "# TYPE etcd_server_leader_changes_seen_total counter"));
  EXPECT_TRUE(has_line(text, "# TYPE etcd_disk_wal_fsync_duration_seconds histogram"));
  EXPECT_TRUE(has_line(text, "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"8.192\"} 0"));
  EXPECT_TRUE(has_line(text, "etcd_disk_backend_commit_duration_seconds_count 0"));
  // No peers, no RPCs yet: those families are left out.
  EXPECT_EQ(text.find("etcd_network_active_peers"), std::string::npos);
  EXPECT_EQ(text.find("grpc_server_handled_total"), std::string::npos);

  status.leader = 0xa1;
  status.term = 3;
  status.commit = 10;
  status.applied = 9;
  status.revision = 7;
  status.compact_revision = 2;
  status.leader_changes = 2;
  status.proposals_committed = 10;
  status.proposals_applied = 9;
  status.proposals_pending = 1;
  status.proposals_failed = 4;
  stats.bad_frames = 5;
  stats.messages_dropped = 6;
  stats.handshakes_rejected = 7;
  stats.bytes_sent = 1000;
  peers.push_back({0xb2, true, 0.002, 300, 200});
  peers.push_back({0xc3, false, 0, std::nullopt, std::nullopt});
  m.observe_wal_fsync(0.003);
  m.observe_backend_commit(0.0005);
  m.observe_peer_round_trip(0xb2, 0.00015);
  m.grpc_started(kGrpcUnary, "etcdserverpb.KV", "Range");
  m.grpc_handled(kGrpcUnary, "etcdserverpb.KV", "Range", 0);
  m.grpc_handled(kGrpcBidiStream, "etcdserverpb.Watch", "Watch", 1);
  m.health_checked(true);
  m.health_checked(false);
  m.health_checked(false);

  text = r.render();
  EXPECT_EQ(sample_value(text, "etcd_server_has_leader"), 1);
  EXPECT_EQ(sample_value(text, "etcd_server_is_leader"), 1);
  EXPECT_EQ(sample_value(text, "etcd_server_is_learner"), 0);
  EXPECT_EQ(sample_value(text, "etcd_server_leader_changes_seen_total"), 2);
  EXPECT_EQ(sample_value(text, "etcd_server_proposals_committed_total"), 10);
  EXPECT_EQ(sample_value(text, "etcd_server_proposals_applied_total"), 9);
  EXPECT_EQ(sample_value(text, "etcd_server_proposals_pending"), 1);
  EXPECT_EQ(sample_value(text, "etcd_server_proposals_failed_total"), 4);
  EXPECT_EQ(sample_value(text, "etcd_debugging_mvcc_current_revision"), 7);
  EXPECT_EQ(sample_value(text, "etcd_debugging_mvcc_compact_revision"), 2);
  EXPECT_EQ(sample_value(text, "chorus_raft_term"), 3);
  EXPECT_EQ(sample_value(text, "chorus_raft_commit_index"), 10);
  EXPECT_EQ(sample_value(text, "chorus_raft_applied_index"), 9);
  EXPECT_EQ(sample_value(text, "chorus_transport_bad_frames_total"), 5);
  EXPECT_EQ(sample_value(text, "chorus_transport_messages_dropped_total"), 6);
  EXPECT_EQ(sample_value(text, "chorus_transport_handshakes_rejected_total"), 7);
  EXPECT_EQ(sample_value(text, "chorus_transport_sent_bytes_total"), 1000);
  EXPECT_EQ(sample_value(text, "etcd_network_active_peers{Local=\"a1\",Remote=\"b2\"}"), 1);
  EXPECT_EQ(sample_value(text, "etcd_network_active_peers{Local=\"a1\",Remote=\"c3\"}"), 0);
  EXPECT_EQ(sample_value(text, "chorus_network_peer_last_round_trip_seconds{To=\"b2\"}"), 0.002);
  EXPECT_FALSE(sample_value(text, "chorus_network_peer_last_round_trip_seconds{To=\"c3\"}"));
  EXPECT_EQ(sample_value(text, "etcd_network_peer_sent_bytes_total{To=\"b2\"}"), 300);
  EXPECT_EQ(sample_value(text, "etcd_network_peer_received_bytes_total{From=\"b2\"}"), 200);
  EXPECT_FALSE(sample_value(text, "etcd_network_peer_sent_bytes_total{To=\"c3\"}"));
  EXPECT_EQ(sample_value(text, "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.002\"}"), 0);
  EXPECT_EQ(sample_value(text, "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.004\"}"), 1);
  EXPECT_EQ(sample_value(text, "etcd_disk_backend_commit_duration_seconds_bucket{le=\"0.001\"}"),
            1);
  EXPECT_EQ(sample_value(
                text, "etcd_network_peer_round_trip_time_seconds_bucket{To=\"b2\",le=\"0.0001\"}"),
            0);
  EXPECT_EQ(sample_value(
                text, "etcd_network_peer_round_trip_time_seconds_bucket{To=\"b2\",le=\"0.0002\"}"),
            1);
  EXPECT_EQ(
      sample_value(text,
                   "grpc_server_started_total{grpc_method=\"Range\",grpc_service=\"etcdserverpb."
                   "KV\",grpc_type=\"unary\"}"),
      1);
  EXPECT_EQ(sample_value(text,
                         "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\","
                         "grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}"),
            1);
  EXPECT_EQ(sample_value(text,
                         "grpc_server_handled_total{grpc_code=\"Canceled\",grpc_method=\"Watch\","
                         "grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"}"),
            1);
  EXPECT_EQ(sample_value(text, "etcd_server_health_success"), 1);
  EXPECT_EQ(sample_value(text, "etcd_server_health_failures"), 2);
}

TEST(ServerMetricsTest, OptionalSourcesLeaveTheirMetricsOut) {
  MetricsRegistry r;
  ServerMetricsSource source;
  source.node = [] { return NodeStatus{}; };
  ServerMetrics m(&r, 1, "3.5.0", source);
  std::string text = r.render();
  EXPECT_TRUE(sample_value(text, "etcd_server_has_leader").has_value());
  EXPECT_EQ(text.find("chorus_transport_"), std::string::npos);
  EXPECT_EQ(text.find("etcd_network_active_peers"), std::string::npos);
  EXPECT_EQ(text.find("etcd_mvcc_db_total_size_in_bytes"), std::string::npos);
  EXPECT_EQ(text.find("chorus_group_"), std::string::npos) << "no labelled group series";
}

// With --group-metrics, series labelled by group for the groups the source names, read at
// each scrape.
TEST(ServerMetricsTest, BusiestGroupsAreLabelledByGroup) {
  MetricsRegistry r;
  ServerMetricsSource source;
  source.node = [] { return NodeStatus{}; };
  std::vector<GroupLoad> loads = {GroupLoad{7, 120, 130}, GroupLoad{2, 5, 9}};
  source.busiest_groups = [&loads] { return loads; };
  ServerMetrics m(&r, 1, "3.5.0", source);
  std::string text = r.render();
  EXPECT_EQ(sample_value(text, "chorus_group_writes_applied_total{group=\"7\"}"), 120);
  EXPECT_EQ(sample_value(text, "chorus_group_applied_index{group=\"2\"}"), 9);
  EXPECT_NE(text.find("# TYPE chorus_group_writes_applied_total counter"), std::string::npos);
  loads.pop_back();
  text = r.render();
  EXPECT_FALSE(sample_value(text, "chorus_group_applied_index{group=\"2\"}").has_value());
}

}  // namespace
}  // namespace chorus::server
