// chorus-sim: runs the deterministic cluster simulator over a range of seeds.
//
//   chorus-sim --seed S --count N [--nodes K] [--groups G] [--steps M]
//              [--faults none|network|crash|all] [--mutation NAME] [--jobs J] [--timeline]
//
// Prints `seed S trace <hex> ...` per seed when running one seed (or with --verbose), the replay
// command and the event tail for every failing seed, and ends with `N passed, N failed`.
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sim/cluster.h"

namespace {

using chorus::sim::Faults;
using chorus::sim::Mutation;
using chorus::sim::SimOptions;

void usage() {
  std::fprintf(
      stderr,
      "usage: chorus-sim [--seed S] [--count N] [--nodes 3|5|7] [--groups 1..64] [--steps M]\n"
      "                  [--faults none|network|crash|all] [--jobs J] [--timeline] [--verbose]\n"
      "                  [--mutation none|commit-previous-term|vote-not-persisted|\n"
      "                              ack-before-durable|read-without-readindex|\n"
      "                              rejoin-empty-under-old-id|quiesced-clock-stops]\n");
}

bool parse_u64(const char* s, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') return false;
  *out = v;
  return true;
}

std::string replay_command(const SimOptions& o) {
  std::string cmd = "chorus-sim --seed " + std::to_string(o.seed) + " --nodes " +
                    std::to_string(o.nodes) + " --steps " + std::to_string(o.steps) + " --faults " +
                    chorus::sim::to_string(o.faults);
  if (o.groups != 1) cmd += " --groups " + std::to_string(o.groups);
  if (o.mutation != Mutation::kNone)
    cmd += std::string(" --mutation ") + chorus::sim::to_string(o.mutation);
  return cmd + " --timeline";
}

}  // namespace

int main(int argc, char** argv) {
  SimOptions base;
  uint64_t count = 1;
  uint64_t jobs = 1;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](uint64_t* out) {
      if (i + 1 >= argc || !parse_u64(argv[i + 1], out)) {
        std::fprintf(stderr, "chorus-sim: %s needs a number\n", a.c_str());
        std::exit(2);
      }
      ++i;
    };
    uint64_t v = 0;
    if (a == "--seed") {
      value(&base.seed);
    } else if (a == "--count") {
      value(&count);
    } else if (a == "--nodes") {
      value(&v);
      if (v != 3 && v != 5 && v != 7) {
        std::fprintf(stderr, "chorus-sim: --nodes must be 3, 5 or 7\n");
        return 2;
      }
      base.nodes = static_cast<int>(v);
    } else if (a == "--groups") {
      value(&v);
      if (v == 0 || v > 64) {
        std::fprintf(stderr, "chorus-sim: --groups must be in 1..64\n");
        return 2;
      }
      base.groups = static_cast<int>(v);
    } else if (a == "--steps") {
      value(&v);
      if (v == 0 || v > 10'000'000) {
        std::fprintf(stderr, "chorus-sim: --steps must be in 1..10000000\n");
        return 2;
      }
      base.steps = static_cast<int>(v);
    } else if (a == "--jobs") {
      value(&jobs);
      if (jobs == 0 || jobs > 256) jobs = 1;
    } else if (a == "--faults" && i + 1 < argc) {
      auto f = chorus::sim::parse_faults(argv[++i]);
      if (!f) {
        std::fprintf(stderr, "chorus-sim: unknown --faults %s\n", argv[i]);
        return 2;
      }
      base.faults = *f;
    } else if (a == "--mutation" && i + 1 < argc) {
      auto m = chorus::sim::parse_mutation(argv[++i]);
      if (!m) {
        std::fprintf(stderr, "chorus-sim: unknown --mutation %s\n", argv[i]);
        return 2;
      }
      base.mutation = *m;
    } else if (a == "--timeline") {
      base.timeline = true;
    } else if (a == "--verbose") {
      verbose = true;
    } else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "chorus-sim: unknown argument %s\n", a.c_str());
      usage();
      return 2;
    }
  }
  if (base.timeline) jobs = 1;

  std::atomic<uint64_t> next{0};
  std::atomic<uint64_t> passed{0};
  std::atomic<uint64_t> failed{0};
  chorus::sim::SimResult totals;  // summed over seeds, under `out`
  std::mutex out;
  auto worker = [&]() {
    for (;;) {
      uint64_t k = next.fetch_add(1);
      if (k >= count) return;
      SimOptions o = base;
      o.seed = base.seed + k;
      chorus::sim::SimResult r = chorus::sim::run_simulation(o);
      std::lock_guard<std::mutex> lock(out);
      totals.snapshots_installed += r.snapshots_installed;
      totals.snapshot_transfers_cut += r.snapshot_transfers_cut;
      totals.snapshots_requested += r.snapshots_requested;
      totals.disk_full_stops += r.disk_full_stops;
      totals.logs_damaged += r.logs_damaged;
      totals.damage_found_running += r.damage_found_running;
      totals.damage_found_at_start += r.damage_found_at_start;
      totals.members_replaced += r.members_replaced;
      totals.quiescences += r.quiescences;
      totals.reelected_after_quiesced_leader_down += r.reelected_after_quiesced_leader_down;
      totals.conf_changes += r.conf_changes;
      totals.replicas_moved += r.replicas_moved;
      totals.planned_moves += r.planned_moves;
      totals.planned_moves_abandoned += r.planned_moves_abandoned;
      if (r.ok) {
        ++passed;
      } else {
        ++failed;
      }
      if (count == 1 || verbose || !r.ok) {
        std::printf("seed %" PRIu64 " %s trace %016" PRIx64 " events %" PRIu64 " elections %" PRIu64
                    " max-term %" PRIu64 " committed %" PRIu64 " ops ok %" PRIu64
                    " unknown %" PRIu64 " refused %" PRIu64 " linearizability %s\n",
                    o.seed, r.ok ? "ok" : "FAILED", r.trace_hash, r.events, r.elections, r.max_term,
                    r.committed, r.ops_ok, r.ops_unknown, r.ops_failed,
                    r.linearizability.empty() ? "not-checked" : r.linearizability.c_str());
      }
      if (!r.ok) {
        std::printf("  violation (%s): %s\n", chorus::sim::to_string(r.check), r.failure.c_str());
        std::printf("  replay: %s\n", replay_command(o).c_str());
        if (!o.timeline) {
          std::printf("  last events:\n");
          size_t start = r.trace_tail.size() > 40 ? r.trace_tail.size() - 40 : 0;
          for (size_t i = start; i < r.trace_tail.size(); ++i)
            std::printf("    %s\n", r.trace_tail[i].c_str());
        }
      }
      std::fflush(stdout);
    }
  };
  std::vector<std::thread> threads;
  for (uint64_t j = 1; j < jobs; ++j)
    threads.emplace_back(worker);
  worker();
  for (auto& t : threads)
    t.join();
  std::printf("snapshots installed %" PRIu64 ", transfers cut midway %" PRIu64
              ", requested by a leader %" PRIu64 "\n",
              totals.snapshots_installed, totals.snapshot_transfers_cut,
              totals.snapshots_requested);
  std::printf("nodes stopped by a full disk %" PRIu64 "\n", totals.disk_full_stops);
  std::printf("logs damaged %" PRIu64 ", found by a running node %" PRIu64
              ", found at start %" PRIu64 ", lost members replaced %" PRIu64 "\n",
              totals.logs_damaged, totals.damage_found_running, totals.damage_found_at_start,
              totals.members_replaced);
  std::printf("leaders quiesced %" PRIu64
              ", groups that elected again after a quiesced leader's member went down %" PRIu64
              "\n",
              totals.quiescences, totals.reelected_after_quiesced_leader_down);
  std::printf("configuration changes committed %" PRIu64
              ", of which left a group with a new voter %" PRIu64 "\n",
              totals.conf_changes, totals.replicas_moved);
  std::printf("replica moves completed by the planner %" PRIu64 ", given up %" PRIu64 "\n",
              totals.planned_moves, totals.planned_moves_abandoned);
  std::printf("%" PRIu64 " passed, %" PRIu64 " failed\n", passed.load(), failed.load());
  return failed.load() == 0 ? 0 : 1;
}
