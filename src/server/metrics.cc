#include "server/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace chorus::server {

void metrics_die(const std::string& what) {
  std::fprintf(stderr, "metrics: %s\n", what.c_str());
  std::abort();
}

namespace {

bool valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Prometheus reserves label names starting with "__" for its own use.
bool valid_label_name(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

void check_label_names(const std::string& metric, const std::vector<std::string>& names,
                       bool histogram) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (!valid_label_name(names[i])) metrics_die(metric + ": bad label name '" + names[i] + "'");
    // `le` names a histogram's buckets.
    if (histogram && names[i] == "le") metrics_die(metric + ": a histogram label named le");
    for (size_t j = 0; j < i; ++j)
      if (names[j] == names[i]) metrics_die(metric + ": label " + names[i] + " given twice");
  }
}

std::vector<std::string> names_of(const Labels& labels) {
  std::vector<std::string> names;
  for (const auto& [name, value] : labels)
    names.push_back(name);
  return names;
}

std::string escape_help(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

const char* type_name(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// `{a="x",b="y"}`, or nothing for no labels. `extra` (a histogram's `le`) goes last.
void write_labels(std::string* out, const std::vector<std::string>& names,
                  const std::vector<std::string>& values, const char* extra_name = nullptr,
                  const std::string& extra_value = "") {
  if (names.empty() && extra_name == nullptr) return;
  *out += '{';
  bool first = true;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!first) *out += ',';
    first = false;
    *out += names[i];
    *out += "=\"";
    *out += escape_label_value(values[i]);
    *out += '"';
  }
  if (extra_name != nullptr) {
    if (!first) *out += ',';
    *out += extra_name;
    *out += "=\"";
    *out += extra_value;
    *out += '"';
  }
  *out += '}';
}

void write_sample(std::string* out, const std::string& name, const std::vector<std::string>& names,
                  const std::vector<std::string>& values, double value) {
  *out += name;
  write_labels(out, names, values);
  *out += ' ';
  *out += format_metric_value(value);
  *out += '\n';
}

void write_histogram(std::string* out, const std::string& name,
                     const std::vector<std::string>& names, const std::vector<std::string>& values,
                     const Histogram& histogram) {
  Histogram::Snapshot s = histogram.snapshot();
  const std::string bucket = name + "_bucket";
  for (size_t i = 0; i <= s.upper_bounds.size(); ++i) {
    *out += bucket;
    std::string le = i < s.upper_bounds.size() ? format_metric_value(s.upper_bounds[i]) : "+Inf";
    write_labels(out, names, values, "le", le);
    *out += ' ';
    *out += std::to_string(s.cumulative_counts[i]);
    *out += '\n';
  }
  write_sample(out, name + "_sum", names, values, s.sum);
  *out += name + "_count";
  write_labels(out, names, values);
  *out += ' ';
  *out += std::to_string(s.count);
  *out += '\n';
}

std::vector<std::string> values_of(const Labels& labels) {
  std::vector<std::string> values;
  for (const auto& [name, value] : labels)
    values.push_back(value);
  return values;
}

}  // namespace

// ---- metrics ----

void Counter::add(double amount) {
  if (!(amount >= 0)) metrics_die("a counter can only go up");
  value_.fetch_add(amount, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> upper_bounds) : upper_bounds_(std::move(upper_bounds)) {
  for (size_t i = 0; i < upper_bounds_.size(); ++i) {
    if (!std::isfinite(upper_bounds_[i])) metrics_die("histogram bounds must be finite");
    if (i > 0 && !(upper_bounds_[i - 1] < upper_bounds_[i]))
      metrics_die("histogram bounds must be strictly increasing");
  }
  counts_ = std::make_unique<std::atomic<uint64_t>[]>(upper_bounds_.size() + 1);
  for (size_t i = 0; i <= upper_bounds_.size(); ++i)
    counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double value) {
  // The first bound >= value; NaN compares false with every bound and lands in +Inf, as it
  // does in Prometheus's Go client.
  size_t bucket = upper_bounds_.size();
  if (!std::isnan(value))
    bucket =
        static_cast<size_t>(std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) -
                            upper_bounds_.begin());
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.upper_bounds = upper_bounds_;
  s.sum = sum_.load(std::memory_order_relaxed);
  uint64_t running = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative_counts.push_back(running);
  }
  s.count = running;
  return s;
}

std::vector<double> exponential_buckets(double start, double factor, int count) {
  if (!(start > 0) || !(factor > 1) || count < 1)
    metrics_die("exponential_buckets needs start > 0, factor > 1, count >= 1");
  std::vector<double> bounds;
  double bound = start;
  for (int i = 0; i < count; ++i) {
    bounds.push_back(bound);
    bound *= factor;
  }
  return bounds;
}

// Go's strconv.FormatFloat(value, 'g', -1, 64), which Prometheus's Go client writes: the
// shortest digits that read back as the same double, in exponent form when the decimal exponent
// is below -4 or at least 6. Matching it byte for byte matters for `le`: a bucket's bound is a
// label, so "0.0001" and "1e-04" would be two different series to Prometheus.
std::string format_metric_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  auto [end, ec] =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  if (ec != std::errc()) metrics_die("cannot format a double");
  // buffer holds [-]d[.ddd]e(+|-)xx: split it into sign, digits and decimal exponent.
  std::string_view text(buffer, static_cast<size_t>(end - buffer));
  std::string out;
  if (text.front() == '-') {
    out += '-';
    text.remove_prefix(1);
  }
  size_t e = text.find('e');
  std::string digits;
  for (char c : text.substr(0, e))
    if (c != '.') digits += c;
  int exponent = 0;
  std::string_view exp_text = text.substr(e + 1);
  if (exp_text.front() == '+') exp_text.remove_prefix(1);
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exponent);
  const int digit_count = static_cast<int>(digits.size());

  if (exponent < -4 || exponent >= 6) {
    out += digits[0];
    if (digit_count > 1) {
      out += '.';
      out.append(digits, 1);
    }
    out += exponent < 0 ? "e-" : "e+";
    int magnitude = exponent < 0 ? -exponent : exponent;
    if (magnitude < 10) out += '0';
    out += std::to_string(magnitude);
    return out;
  }
  // Positional: `point` digits before the decimal point (zeros beyond the digits), and the
  // rest after it.
  const int point = exponent + 1;
  if (point <= 0) {
    out += '0';
  } else {
    for (int i = 0; i < point; ++i)
      out += i < digit_count ? digits[static_cast<size_t>(i)] : '0';
  }
  if (digit_count > point) {
    out += '.';
    for (int i = point; i < digit_count; ++i)
      out += i >= 0 ? digits[static_cast<size_t>(i)] : '0';
  }
  return out;
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// ---- registry ----

struct MetricsRegistry::Entry {
  std::string help;
  MetricType type = MetricType::kGauge;
  // Whatever the metric owns (a Counter, a Family, ...), kept alive with the entry.
  std::shared_ptr<void> owned;
  // Appends this metric's samples, named `name`, to `out`.
  std::function<void(const std::string& name, std::string* out)> write_samples;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Entry& MetricsRegistry::add_entry(const std::string& name, const std::string& help,
                                                   MetricType type) {
  if (!valid_metric_name(name)) metrics_die("bad metric name '" + name + "'");
  std::lock_guard lock(mu_);
  std::unique_ptr<Entry>& slot = entries_[name];
  if (slot) metrics_die("metric " + name + " registered twice");
  slot = std::make_unique<Entry>();
  slot->help = help;
  slot->type = type;
  return *slot;
}

Counter* MetricsRegistry::counter(const std::string& name, const std::string& help,
                                  Labels const_labels) {
  check_label_names(name, names_of(const_labels), false);
  auto counter = std::make_shared<Counter>();
  Counter* raw = counter.get();
  Entry& e = add_entry(name, help, MetricType::kCounter);
  e.owned = counter;
  e.write_samples = [raw, names = names_of(const_labels), values = values_of(const_labels)](
                        const std::string& metric, std::string* out) {
    write_sample(out, metric, names, values, raw->value());
  };
  return raw;
}

Gauge* MetricsRegistry::gauge(const std::string& name, const std::string& help,
                              Labels const_labels) {
  check_label_names(name, names_of(const_labels), false);
  auto gauge = std::make_shared<Gauge>();
  Gauge* raw = gauge.get();
  Entry& e = add_entry(name, help, MetricType::kGauge);
  e.owned = gauge;
  e.write_samples = [raw, names = names_of(const_labels), values = values_of(const_labels)](
                        const std::string& metric, std::string* out) {
    write_sample(out, metric, names, values, raw->value());
  };
  return raw;
}

Histogram* MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                      std::vector<double> upper_bounds, Labels const_labels) {
  check_label_names(name, names_of(const_labels), true);
  auto histogram = std::make_shared<Histogram>(std::move(upper_bounds));
  Histogram* raw = histogram.get();
  Entry& e = add_entry(name, help, MetricType::kHistogram);
  e.owned = histogram;
  e.write_samples = [raw, names = names_of(const_labels), values = values_of(const_labels)](
                        const std::string& metric, std::string* out) {
    write_histogram(out, metric, names, values, *raw);
  };
  return raw;
}

CounterFamily* MetricsRegistry::counter_family(const std::string& name, const std::string& help,
                                               std::vector<std::string> label_names) {
  check_label_names(name, label_names, false);
  auto family = std::make_shared<CounterFamily>(std::move(label_names),
                                                [] { return std::make_unique<Counter>(); });
  CounterFamily* raw = family.get();
  Entry& e = add_entry(name, help, MetricType::kCounter);
  e.owned = family;
  e.write_samples = [raw](const std::string& metric, std::string* out) {
    raw->for_each([&](const std::vector<std::string>& values, const Counter& c) {
      write_sample(out, metric, raw->label_names(), values, c.value());
    });
  };
  return raw;
}

GaugeFamily* MetricsRegistry::gauge_family(const std::string& name, const std::string& help,
                                           std::vector<std::string> label_names) {
  check_label_names(name, label_names, false);
  auto family = std::make_shared<GaugeFamily>(std::move(label_names),
                                              [] { return std::make_unique<Gauge>(); });
  GaugeFamily* raw = family.get();
  Entry& e = add_entry(name, help, MetricType::kGauge);
  e.owned = family;
  e.write_samples = [raw](const std::string& metric, std::string* out) {
    raw->for_each([&](const std::vector<std::string>& values, const Gauge& g) {
      write_sample(out, metric, raw->label_names(), values, g.value());
    });
  };
  return raw;
}

HistogramFamily* MetricsRegistry::histogram_family(const std::string& name, const std::string& help,
                                                   std::vector<std::string> label_names,
                                                   std::vector<double> upper_bounds) {
  check_label_names(name, label_names, true);
  // Checks the bounds now rather than when the first child is made.
  Histogram check(upper_bounds);
  auto family = std::make_shared<HistogramFamily>(
      std::move(label_names), [upper_bounds] { return std::make_unique<Histogram>(upper_bounds); });
  HistogramFamily* raw = family.get();
  Entry& e = add_entry(name, help, MetricType::kHistogram);
  e.owned = family;
  e.write_samples = [raw](const std::string& metric, std::string* out) {
    raw->for_each([&](const std::vector<std::string>& values, const Histogram& h) {
      write_histogram(out, metric, raw->label_names(), values, h);
    });
  };
  return raw;
}

void MetricsRegistry::gauge_fn(const std::string& name, const std::string& help,
                               std::function<double()> fn, Labels const_labels) {
  check_label_names(name, names_of(const_labels), false);
  Entry& e = add_entry(name, help, MetricType::kGauge);
  e.write_samples = [fn = std::move(fn), names = names_of(const_labels),
                     values = values_of(const_labels)](const std::string& metric,
                                                       std::string* out) {
    write_sample(out, metric, names, values, fn());
  };
}

void MetricsRegistry::counter_fn(const std::string& name, const std::string& help,
                                 std::function<double()> fn, Labels const_labels) {
  check_label_names(name, names_of(const_labels), false);
  Entry& e = add_entry(name, help, MetricType::kCounter);
  e.write_samples = [fn = std::move(fn), names = names_of(const_labels),
                     values = values_of(const_labels)](const std::string& metric,
                                                       std::string* out) {
    write_sample(out, metric, names, values, fn());
  };
}

void MetricsRegistry::samples_fn(const std::string& name, const std::string& help, MetricType type,
                                 std::vector<std::string> label_names,
                                 std::function<std::vector<Sample>()> fn) {
  if (type == MetricType::kHistogram) metrics_die(name + ": samples_fn cannot make a histogram");
  check_label_names(name, label_names, false);
  Entry& e = add_entry(name, help, type);
  e.write_samples = [fn = std::move(fn), names = std::move(label_names)](const std::string& metric,
                                                                         std::string* out) {
    for (const Sample& s : fn()) {
      if (s.label_values.size() != names.size())
        metrics_die(metric + ": a sample's label values do not match its label names");
      write_sample(out, metric, names, s.label_values, s.value);
    }
  };
}

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mu_);
  std::string out;
  std::string samples;
  for (const auto& [name, entry] : entries_) {
    samples.clear();
    entry->write_samples(name, &samples);
    if (samples.empty()) continue;
    out += "# HELP ";
    out += name;
    out += ' ';
    out += escape_help(entry->help);
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type_name(entry->type);
    out += '\n';
    out += samples;
  }
  return out;
}

// ---- process metrics ----

namespace {

std::optional<std::string> read_small_file(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return text.str();
}

// The fields of /proc/self/stat after the command name, which sits in parentheses and may
// itself hold spaces and parentheses: fields[0] is field 3 of proc(5), `state`.
std::optional<std::vector<std::string>> proc_stat_fields() {
  std::optional<std::string> text = read_small_file("/proc/self/stat");
  if (!text) return std::nullopt;
  size_t close = text->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(text->substr(close + 1));
  std::vector<std::string> fields;
  std::string field;
  while (in >> field)
    fields.push_back(field);
  return fields;
}

// Field `number` (1-based, as proc(5) numbers them) of /proc/self/stat.
std::optional<double> proc_stat_field(const std::optional<std::vector<std::string>>& fields,
                                      int number) {
  if (!fields || number < 3) return std::nullopt;
  size_t index = static_cast<size_t>(number - 3);
  if (index >= fields->size()) return std::nullopt;
  double value = 0;
  const std::string& f = (*fields)[index];
  auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), value);
  if (ec != std::errc() || end != f.data() + f.size()) return std::nullopt;
  return value;
}

std::optional<double> boot_time_seconds() {
  std::optional<std::string> text = read_small_file("/proc/stat");
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("btime ")) continue;
    double value = 0;
    std::string_view v = std::string_view(line).substr(6);
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
    if (ec != std::errc()) return std::nullopt;
    return value;
  }
  return std::nullopt;
}

std::optional<double> open_fds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  // The directory's own descriptor is open only while we count.
  int own = dirfd(dir);
  std::string own_name = std::to_string(own);
  double count = 0;
  while (dirent* entry = readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name == "." || name == ".." || name == own_name) continue;
    ++count;
  }
  closedir(dir);
  return count;
}

std::vector<Sample> one_sample(std::optional<double> value) {
  if (!value) return {};
  return {Sample{{}, *value}};
}

}  // namespace

void register_process_metrics(MetricsRegistry* registry) {
  const double ticks_per_second = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page_bytes = static_cast<double>(sysconf(_SC_PAGESIZE));
  registry->samples_fn("process_cpu_seconds_total",
                       "Total user and system CPU time spent in seconds.", MetricType::kCounter, {},
                       [ticks_per_second] {
                         std::optional<std::vector<std::string>> fields = proc_stat_fields();
                         std::optional<double> user = proc_stat_field(fields, 14);
                         std::optional<double> system = proc_stat_field(fields, 15);
                         if (!user || !system || !(ticks_per_second > 0))
                           return std::vector<Sample>{};
                         return one_sample((*user + *system) / ticks_per_second);
                       });
  registry->samples_fn("process_resident_memory_bytes", "Resident memory size in bytes.",
                       MetricType::kGauge, {}, [page_bytes] {
                         std::optional<double> pages = proc_stat_field(proc_stat_fields(), 24);
                         if (!pages || !(page_bytes > 0)) return std::vector<Sample>{};
                         return one_sample(*pages * page_bytes);
                       });
  registry->samples_fn("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                       MetricType::kGauge, {},
                       [] { return one_sample(proc_stat_field(proc_stat_fields(), 23)); });
  registry->samples_fn("process_open_fds", "Number of open file descriptors.", MetricType::kGauge,
                       {}, [] { return one_sample(open_fds()); });
  registry->samples_fn("process_max_fds", "Maximum number of open file descriptors.",
                       MetricType::kGauge, {}, [] {
                         rlimit limit{};
                         if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return std::vector<Sample>{};
                         return one_sample(static_cast<double>(limit.rlim_cur));
                       });
  registry->samples_fn(
      "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
      MetricType::kGauge, {}, [ticks_per_second] {
        std::optional<double> start_ticks = proc_stat_field(proc_stat_fields(), 22);
        std::optional<double> boot = boot_time_seconds();
        if (!start_ticks || !boot || !(ticks_per_second > 0)) return std::vector<Sample>{};
        return one_sample(*boot + *start_ticks / ticks_per_second);
      });
}

}  // namespace chorus::server
