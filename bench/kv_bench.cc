// MVCC apply and read throughput of the RocksDB state machine: puts applied in batches of
// 1, 64 and 1024 committed entries (one RocksDB write per batch, as the node applies them),
// single-key reads and 100-key range reads at the current revision.
//
//   chorus-bench-kv [--dir D] [--entries N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
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

// Applies `n` puts of 100-byte values over `keys` distinct keys, `batch` entries per apply.
double apply_puts(MvccStore* s, uint64_t n, uint64_t batch, uint64_t keys) {
  std::vector<std::string> encoded;
  std::vector<AppliedEntry> entries;
  const std::string value(100, 'v');
  auto start = Clock::now();
  for (uint64_t done = 0; done < n;) {
    encoded.clear();
    entries.clear();
    for (uint64_t i = 0; i < batch && done < n; ++i, ++done) {
      Command c;
      c.op = chorus::kv::PutRequest{key_of(done % keys), value, 0, false, false, false};
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
  return static_cast<double>(n) / seconds_since(start);
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
  std::printf("%-40s %14s\n", "operation", "per second");
  for (uint64_t batch : {1, 64, 1024}) {
    auto s = open_fresh(dir);
    double rate = apply_puts(s.get(), batch == 1 ? n / 4 : n, batch, 10'000);
    std::printf("put, %4llu entries per apply, 10k keys %14.0f\n",
                static_cast<unsigned long long>(batch), rate);
  }
  auto s = open_fresh(dir);
  apply_puts(s.get(), 100'000, 1024, 100'000);
  const uint64_t reads = 200'000;
  auto start = Clock::now();
  for (uint64_t i = 0; i < reads; ++i) {
    chorus::kv::RangeRequest q;
    q.key = key_of((i * 7919) % 100'000);
    chorus::kv::RangeResponse r;
    if (!s->range(q, &r).ok() || r.kvs.size() != 1) {
      std::fprintf(stderr, "read of %s failed\n", q.key.c_str());
      return 1;
    }
  }
  std::printf("%-40s %14.0f\n", "get one key, 100k keys", reads / seconds_since(start));
  const uint64_t ranges = 20'000;
  start = Clock::now();
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
  std::printf("%-40s %14.0f\n", "range of 100 keys, 100k keys", ranges / seconds_since(start));
  // One DeleteRange over every key (what `etcdctl check perf` does at its end).
  Command wipe;
  chorus::kv::DeleteRangeRequest d;
  d.key = "/bench/";
  d.range_end = "/bench0";
  wipe.op = d;
  std::string encoded = chorus::kv::encode_command(wipe);
  MvccStore::ApplyResult result;
  start = Clock::now();
  auto st = s->apply({{s->applied_index() + 1, 1, encoded}}, &result);
  double took = seconds_since(start);
  if (!st.is_ok() || result.events.size() != 100'000) {
    std::fprintf(stderr, "delete range failed\n");
    return 1;
  }
  std::printf("%-40s %14.0f\n", "keys deleted by one request, 100k keys", 100'000 / took);
  s.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
