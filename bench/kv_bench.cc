// MVCC apply and read throughput of the RocksDB state machine: puts applied in batches of
// 1, 64 and 1024 committed entries (one RocksDB write per batch, as the node applies them),
// puts of random keys as `make bench-etcd` sends them, single-key reads and 100-key range reads
// at the current revision. Each line gives operations per second of wall time and per second
// of the process's CPU time (this thread and RocksDB's), which a busy machine disturbs less.
//
//   chorus-bench-kv [--dir D] [--entries N]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "kv/codec.h"
#include "kv/mvcc.h"

namespace {

using Clock = std::chrono::steady_clock;
using chorus::kv::AppliedEntry;
using chorus::kv::Command;
using chorus::kv::MvccStore;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The process's CPU time, user and system, in seconds.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

// Times a stretch of work: operations per wall second and per CPU second.
struct Meter {
  Clock::time_point wall = Clock::now();
  double cpu = cpu_seconds();
  void report(const char* what, double ops) const {
    std::printf("%-44s %12.0f %12.0f\n", what, ops / seconds_since(wall),
                ops / (cpu_seconds() - cpu));
  }
};

std::string key_of(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "/bench/key/%08llu", static_cast<unsigned long long>(i));
  return buf;
}

std::unique_ptr<MvccStore> open_fresh(const std::string& dir) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(std::filesystem::path(dir).parent_path());
  std::unique_ptr<MvccStore> s;
  auto st = MvccStore::open(dir, {}, &s);
  if (!st.is_ok()) {
    std::fprintf(stderr, "open %s: %s\n", dir.c_str(), st.to_string().c_str());
    std::exit(1);
  }
  return s;
}

// Applies `n` puts of `value_size`-byte values over `keys` distinct keys, `batch` entries per
// apply: in turn, or at random (seeded, so every run writes the same sequence).
void apply_puts(MvccStore* s, uint64_t n, uint64_t batch, uint64_t keys, size_t value_size = 100,
                bool random = false) {
  std::vector<std::string> encoded;
  std::vector<AppliedEntry> entries;
  const std::string value(value_size, 'v');
  std::mt19937_64 rng(7);
  for (uint64_t done = 0; done < n;) {
    encoded.clear();
    entries.clear();
    for (uint64_t i = 0; i < batch && done < n; ++i, ++done) {
      Command c;
      uint64_t k = random ? rng() % keys : done % keys;
      c.op = chorus::kv::PutRequest{key_of(k), value, 0, false, false, false};
      encoded.push_back(chorus::kv::encode_command(c));
    }
    for (const std::string& e : encoded)
      entries.push_back({s->applied_index() + entries.size() + 1, 1, e});
    MvccStore::ApplyResult result;
    auto st = s->apply(entries, &result);
    if (!st.is_ok()) {
      std::fprintf(stderr, "apply: %s\n", st.to_string().c_str());
      std::exit(1);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "build/bench-kv";
  uint64_t n = 200'000;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--dir") {
      dir = argv[i + 1];
    } else if (flag == "--entries") {
      n = std::strtoull(argv[i + 1], nullptr, 10);
    } else {
      std::fprintf(stderr, "unknown flag %s\nusage: chorus-bench-kv [--dir D] [--entries N]\n",
                   flag.c_str());
      return 2;
    }
  }
  std::printf("%-44s %12s %12s\n", "operation", "per second", "per CPU s");
  for (uint64_t batch : {1, 64, 1024}) {
    auto s = open_fresh(dir);
    uint64_t puts = batch == 1 ? n / 4 : n;
    Meter m;
    apply_puts(s.get(), puts, batch, 10'000);
    std::string what = "put, " + std::to_string(batch) + " entries per apply, 10k keys";
    m.report(what.c_str(), static_cast<double>(puts));
  }
  {
    // As `make bench-etcd`'s put scenario: 256-byte values over 100,000 keys written once
    // each first, then random keys, 64 entries per apply.
    auto s = open_fresh(dir);
    apply_puts(s.get(), 100'000, 1024, 100'000, 256);
    Meter m;
    apply_puts(s.get(), n, 64, 100'000, 256, /*random=*/true);
    m.report("put 256 B, random of 100k keys, 64 per apply", static_cast<double>(n));
  }
  auto s = open_fresh(dir);
  apply_puts(s.get(), 100'000, 1024, 100'000);
  const uint64_t reads = 200'000;
  Meter m;
  for (uint64_t i = 0; i < reads; ++i) {
    chorus::kv::RangeRequest q;
    q.key = key_of((i * 7919) % 100'000);
    chorus::kv::RangeResponse r;
    if (!s->range(q, &r).ok() || r.kvs.size() != 1) {
      std::fprintf(stderr, "read of %s failed\n", q.key.c_str());
      return 1;
    }
  }
  m.report("get one key, 100k keys", static_cast<double>(reads));
  const uint64_t ranges = 20'000;
  m = Meter();
  for (uint64_t i = 0; i < ranges; ++i) {
    chorus::kv::RangeRequest q;
    q.key = key_of((i * 7919) % 99'000);
    q.range_end = key_of((i * 7919) % 99'000 + 100);
    chorus::kv::RangeResponse r;
    if (!s->range(q, &r).ok() || r.kvs.size() != 100) {
      std::fprintf(stderr, "range from %s failed\n", q.key.c_str());
      return 1;
    }
  }
  m.report("range of 100 keys, 100k keys", static_cast<double>(ranges));
  // One DeleteRange over every key (what `etcdctl check perf` does at its end).
  Command wipe;
  chorus::kv::DeleteRangeRequest d;
  d.key = "/bench/";
  d.range_end = "/bench0";
  wipe.op = d;
  std::string encoded = chorus::kv::encode_command(wipe);
  MvccStore::ApplyResult result;
  m = Meter();
  auto st = s->apply({{s->applied_index() + 1, 1, encoded}}, &result);
  if (!st.is_ok() || result.events.size() != 100'000) {
    std::fprintf(stderr, "delete range failed\n");
    return 1;
  }
  m.report("keys deleted by one request, 100k keys", 100'000);
  s.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
