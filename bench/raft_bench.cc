// Throughput of the Raft core alone: a 3-node group in one thread, messages delivered at once,
// storage in memory, proposals batched. Also counts heap allocations per committed entry on the
// steady path (after warm-up), through a counting global operator new.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <memory>
#include <new>
#include <vector>

#include "raft/log_storage.h"
#include "raft/raft.h"

namespace {

std::atomic<uint64_t> g_allocations{0};

}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace {

using namespace chorus::raft;

class BenchGroup {
 public:
  explicit BenchGroup(int n) {
    ConfState cs;
    for (int i = 1; i <= n; ++i)
      cs.voters.push_back(static_cast<NodeId>(i));
    for (int i = 1; i <= n; ++i) {
      storages_.push_back(std::make_unique<MemoryLogStorage>(cs));
      Config c;
      c.id = static_cast<NodeId>(i);
      c.storage = storages_.back().get();
      c.max_inflight_messages = 1024;
      c.seed = static_cast<uint64_t>(i);
      nodes_.push_back(std::make_unique<Raft>(c));
    }
    (void)nodes_[0]->campaign();
    pump();
  }

  Raft& leader() { return *nodes_[0]; }
  uint64_t applied() const { return applied_; }

  // Runs every node's Ready cycle and delivers messages until the group is quiet.
  void pump() {
    for (;;) {
      for (size_t i = 0; i < nodes_.size(); ++i) {
        Raft& r = *nodes_[i];
        MemoryLogStorage& s = *storages_[i];
        while (r.has_ready()) {
          Ready& rd = r.ready();
          s.append(rd.entries);
          if (rd.hard_state) s.set_hard_state(*rd.hard_state);
          for (Message& m : rd.messages)
            queue_.push_back(std::move(m));
          if (i == 0) applied_ += rd.committed_entries.size();
          if (!rd.committed_entries.empty()) last_applied_[i] = rd.committed_entries.back().index;
          r.advance();
        }
      }
      if (queue_.empty()) break;
      batch_.swap(queue_);
      for (Message& m : batch_)
        (void)nodes_[m.to - 1]->step(std::move(m));
      batch_.clear();
    }
    // Keep memory bounded: compact what every node applied, as a driver with snapshots would.
    for (size_t i = 0; i < nodes_.size(); ++i) {
      MemoryLogStorage& s = *storages_[i];
      if (last_applied_[i] > s.first_index() + kCompactEvery) {
        (void)s.compact(last_applied_[i] - 1024);
      }
    }
  }

 private:
  static constexpr Index kCompactEvery = 1 << 16;
  std::vector<std::unique_ptr<MemoryLogStorage>> storages_;
  std::vector<std::unique_ptr<Raft>> nodes_;
  std::vector<Message> queue_;
  std::vector<Message> batch_;
  Index last_applied_[8] = {};
  uint64_t applied_ = 0;
};

void BM_CommitSmallEntries(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  BenchGroup g(3);
  const std::string payload(8, 'x');  // small entry: fits the string's inline buffer
  // Warm up so that buffers reach their steady sizes.
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < batch; ++i)
      (void)g.leader().propose(payload);
    g.pump();
  }
  uint64_t start_applied = g.applied();
  uint64_t start_allocs = g_allocations.load();
  for (auto _ : state) {
    for (int i = 0; i < batch; ++i) {
      if (g.leader().propose(payload) != Error::kOk) state.SkipWithError("proposal refused");
    }
    g.pump();
  }
  uint64_t committed = g.applied() - start_applied;
  uint64_t allocs = g_allocations.load() - start_allocs;
  state.SetItemsProcessed(static_cast<int64_t>(committed));
  state.counters["entries_per_s"] =
      benchmark::Counter(static_cast<double>(committed), benchmark::Counter::kIsRate);
  state.counters["allocs_per_entry"] =
      committed == 0 ? 0.0 : static_cast<double>(allocs) / static_cast<double>(committed);
}
BENCHMARK(BM_CommitSmallEntries)->Arg(1)->Arg(64)->Arg(256)->Arg(1024);

}  // namespace

BENCHMARK_MAIN();
