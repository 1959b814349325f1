// A small Prometheus registry: counters, gauges and histograms, plain or in labelled families,
// and values read from a function at scrape time. render() writes the text exposition format,
// version 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
//
// Updating a metric never takes a lock: counters and gauges are one atomic, a histogram is one
// atomic per bucket plus its sum and count. Looking a child up in a family takes a shared lock
// (an exclusive one the first time a label set is seen); hot paths may keep the child pointer,
// which stays valid as long as the registry.
//
// Names are fixed in the code, so a bad or duplicate name is a programming error and aborts at
// registration, never at scrape time.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chorus::server {

// Label name/value pairs, in the order they are rendered.
using Labels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType : uint8_t { kCounter, kGauge, kHistogram };

// Monotonic. Adding a negative amount is a programming error and aborts.
class Counter {
 public:
  void inc() { add(1); }
  void add(double amount);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void set(double value) { value_.store(value, std::memory_order_relaxed); }
  void add(double amount) { value_.fetch_add(amount, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Upper bounds (inclusive, as Prometheus's `le`) fixed at creation; +Inf is implicit.
class Histogram {
 public:
  // `upper_bounds` must be finite and strictly increasing; anything else aborts.
  explicit Histogram(std::vector<double> upper_bounds);

  void observe(double value);

  struct Snapshot {
    std::vector<double> upper_bounds;
    // cumulative_counts[i] observations were <= upper_bounds[i]; one more entry for +Inf,
    // which equals `count`.
    std::vector<uint64_t> cumulative_counts;
    double sum = 0;
    uint64_t count = 0;
  };
  // Buckets are read one by one while others may observe, so a snapshot can miss an observation
  // made during it; its count is always the +Inf bucket, so the two never disagree.
  Snapshot snapshot() const;
  const std::vector<double>& upper_bounds() const { return upper_bounds_; }

 private:
  std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative; +Inf last
  std::atomic<double> sum_{0};
};

// `count` bounds: start, start*factor, start*factor^2, ...
std::vector<double> exponential_buckets(double start, double factor, int count);

// Children of one metric, one per set of label values, created on first use.
template <typename M>
class Family {
 public:
  Family(std::vector<std::string> label_names, std::function<std::unique_ptr<M>()> make)
      : label_names_(std::move(label_names)), make_(std::move(make)) {}

  // The child for these label values (as many as label names, else it aborts). The pointer
  // stays valid for the family's life.
  M* with(const std::vector<std::string>& label_values);

  const std::vector<std::string>& label_names() const { return label_names_; }
  // Calls fn(label_values, child) for every child, ordered by label values.
  void for_each(const std::function<void(const std::vector<std::string>&, const M&)>& fn) const;

 private:
  std::vector<std::string> label_names_;
  std::function<std::unique_ptr<M>()> make_;
  mutable std::shared_mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// One sample of a metric read at scrape time: label values (matching the label names given at
// registration) and the value.
struct Sample {
  std::vector<std::string> label_values;
  double value = 0;
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Each returns a pointer owned by the registry and valid for its life. `const_labels` are
  // rendered on every sample of the metric.
  Counter* counter(const std::string& name, const std::string& help, Labels const_labels = {});
  Gauge* gauge(const std::string& name, const std::string& help, Labels const_labels = {});
  Histogram* histogram(const std::string& name, const std::string& help,
                       std::vector<double> upper_bounds, Labels const_labels = {});

  CounterFamily* counter_family(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names);
  GaugeFamily* gauge_family(const std::string& name, const std::string& help,
                            std::vector<std::string> label_names);
  HistogramFamily* histogram_family(const std::string& name, const std::string& help,
                                    std::vector<std::string> label_names,
                                    std::vector<double> upper_bounds);

  // Values owned elsewhere, read by `fn` on the scraping thread at each render(). `fn` must be
  // thread-safe and must not call back into the registry.
  void gauge_fn(const std::string& name, const std::string& help, std::function<double()> fn,
                Labels const_labels = {});
  void counter_fn(const std::string& name, const std::string& help, std::function<double()> fn,
                  Labels const_labels = {});
  // Any number of samples per scrape (one per peer, say); a metric with none is left out of
  // that scrape. `type` is kCounter or kGauge.
  void samples_fn(const std::string& name, const std::string& help, MetricType type,
                  std::vector<std::string> label_names, std::function<std::vector<Sample>()> fn);

  // Every metric, ordered by name: "# HELP", "# TYPE", then its samples. Families without
  // children and functions without samples are left out, as Prometheus's client libraries do.
  std::string render() const;

 private:
  struct Entry;
  Entry& add_entry(const std::string& name, const std::string& help, MetricType type);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Entry>> entries_;
};

// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds and process_start_time_seconds, the names Prometheus's
// client libraries export, read from /proc at each scrape. Where /proc cannot be read (not
// Linux) a metric is left out of the scrape.
void register_process_metrics(MetricsRegistry* registry);

// Text-format helpers, exposed for tests.
// A sample value or `le` bound, written as Prometheus's Go client writes it: the shortest text
// that reads back as the same double ("0.001", "42", "1e+06"); "+Inf", "-Inf", "NaN".
std::string format_metric_value(double value);
// Escapes backslash, double quote and newline in a label value.
std::string escape_label_value(std::string_view value);

// ---- template implementation ----

[[noreturn]] void metrics_die(const std::string& what);

template <typename M>
M* Family<M>::with(const std::vector<std::string>& label_values) {
  if (label_values.size() != label_names_.size())
    metrics_die("label values do not match the family's label names");
  {
    std::shared_lock lock(mu_);
    auto it = children_.find(label_values);
    if (it != children_.end()) return it->second.get();
  }
  std::unique_lock lock(mu_);
  std::unique_ptr<M>& slot = children_[label_values];
  if (!slot) slot = make_();
  return slot.get();
}

template <typename M>
void Family<M>::for_each(
    const std::function<void(const std::vector<std::string>&, const M&)>& fn) const {
  std::shared_lock lock(mu_);
  for (const auto& [values, child] : children_)
    fn(values, *child);
}

}  // namespace chorus::server
