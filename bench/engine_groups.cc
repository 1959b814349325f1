// What idle groups cost the engine: three members in one process, each an engine::Engine over
// its own write-ahead log (in a directory under /dev/shm where there is one, since creating
// tens of thousands of groups syncs as often; once groups are idle nothing touches the log),
// hosting a replica of every one of G groups. The groups elect, take one write each, and
// quiesce; then simulated time runs on and the process's CPU time per simulated second is
// measured, with the resident memory the replicas added.
//
//   chorus-bench-engine-groups [--groups 10000] [--seconds 60] [--tick-ms 100] [--dir D]
//
// Prints one line:
//   engine-idle groups=G replicas=3G cpu_per_member=<% of one core> rss_per_replica=<bytes>
// This is the engine alone (no gRPC, no RocksDB, no sockets), as the floor under what chorusd
// will cost per idle group.
#include <sys/resource.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "storage/file.h"
#include "storage/wal.h"

namespace {

using namespace chorus;

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

uint64_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t size = 0;
  uint64_t resident = 0;
  f >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

struct Member {
  std::unique_ptr<storage::Wal> wal;
  std::unique_ptr<engine::Engine> engine;
};

class Bench {
 public:
  Bench(uint64_t groups, uint64_t tick_us, const std::string& dir)
      : groups_(groups), tick_us_(tick_us), fs_(storage::make_posix_file_system()) {
    (void)fs_->create_dir(dir);
    for (raft::NodeId id = 1; id <= 3; ++id) {
      auto m = std::make_unique<Member>();
      storage::WalOptions wo;
      std::string path = dir + "/member-" + std::to_string(id);
      storage::Status st = storage::Wal::open(fs_.get(), path, wo, &m->wal);
      if (!st.is_ok()) {
        std::fprintf(stderr, "cannot open a log in %s: %s\n", path.c_str(), st.to_string().c_str());
        std::exit(1);
      }
      engine::EngineOptions eo;
      eo.id = id;
      eo.incarnation = id;
      eo.heartbeat_us = tick_us;
      eo.dead_after_us = 10 * tick_us;
      m->engine = std::make_unique<engine::Engine>(eo);
      m->engine->set_peers({1, 2, 3}, 0);
      members_[id] = std::move(m);
    }
  }

  void add_groups() {
    raft::ConfState cs{{1, 2, 3}, {}, {}, {}, false};
    for (auto& [id, m] : members_) {
      for (raft::GroupId g = 1; g <= groups_; ++g) {
        if (!m->wal->bootstrap(g, cs).is_ok()) std::abort();
        engine::ReplicaOptions o;
        o.raft.id = id;
        o.raft.group = g;
        o.raft.storage = m->wal->group(g);
        o.raft.election_ticks = 10;
        o.raft.heartbeat_ticks = 1;
        o.raft.quiesce = true;
        o.raft.seed = id * 1'000'003 + g * 7919;
        o.tick_us = tick_us_;
        m->engine->add(o, now_);
      }
    }
  }

  // One tick of simulated time: clocks, member heartbeats, rounds and deliveries until quiet.
  void tick() {
    now_ += tick_us_;
    for (auto& [id, m] : members_) {
      m->engine->on_clock(now_);
      for (raft::Message& beat : m->engine->liveness(now_))
        queue_.push_back(std::move(beat));
    }
    settle();
  }

  void settle() {
    for (;;) {
      bool busy = false;
      for (auto& [id, m] : members_) {
        while (m->engine->has_round()) {
          busy = true;
          round(*m);
        }
      }
      if (queue_.empty() && !busy) return;
      std::deque<raft::Message> in_flight;
      in_flight.swap(queue_);
      for (raft::Message& msg : in_flight) {
        Member& to = *members_.at(msg.to);
        (void)to.engine->step(std::move(msg), now_);
      }
    }
  }

  size_t leaders() const {
    size_t n = 0;
    for (const auto& [id, m] : members_) {
      for (const auto& [g, r] : m->engine->replicas())
        n += r->core().role() == raft::Role::kLeader ? 1 : 0;
    }
    return n;
  }

  size_t awake() const {
    size_t n = 0;
    for (const auto& [id, m] : members_)
      n += m->engine->awake();
    return n;
  }

  // One write to every group, at its leader.
  void write_each() {
    for (auto& [id, m] : members_) {
      for (const auto& [g, r] : m->engine->replicas()) {
        if (r->core().role() == raft::Role::kLeader) (void)r->propose("v");
      }
    }
    settle();
  }

 private:
  void round(Member& m) {
    std::vector<raft::GroupId> damaged;
    const std::vector<engine::GroupRound>& rounds = m.engine->begin_round(&damaged);
    for (const engine::GroupRound& g : rounds) {
      for (raft::Message& msg : g.round->early_messages)
        queue_.push_back(std::move(msg));
    }
    if (m.engine->must_write()) {
      storage::WalBatch batch;
      m.engine->append_to(&batch);
      if (!m.wal->write(batch).is_ok()) std::abort();
      if (m.engine->must_sync() && !m.wal->sync().is_ok()) std::abort();
    }
    std::vector<std::pair<raft::GroupId, engine::RoundResult>> out;
    m.engine->finish_round(&out);
    for (auto& [group, result] : out) {
      for (raft::Message& msg : result.messages)
        queue_.push_back(std::move(msg));
    }
  }

  uint64_t groups_;
  uint64_t tick_us_;
  std::unique_ptr<storage::FileSystem> fs_;
  uint64_t now_ = 0;
  std::map<raft::NodeId, std::unique_ptr<Member>> members_;
  std::deque<raft::Message> queue_;
};

bool parse(const char* s, uint64_t* out) {
  char* end = nullptr;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (end == s || *end != '\0' || v == 0) return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t groups = 10'000;
  uint64_t seconds = 60;
  uint64_t tick_ms = 100;
  std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  dir += "/chorus-bench-engine-groups-" + std::to_string(getpid());
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
      continue;
    }
    uint64_t* out = a == "--groups"    ? &groups
                    : a == "--seconds" ? &seconds
                    : a == "--tick-ms" ? &tick_ms
                                       : nullptr;
    if (out == nullptr || i + 1 >= argc || !parse(argv[i + 1], out)) {
      std::fprintf(stderr,
                   "usage: chorus-bench-engine-groups [--groups G] [--seconds S] [--tick-ms T]\n");
      return 2;
    }
    ++i;
  }
  Bench b(groups, tick_ms * 1000, dir);
  const uint64_t rss_before = rss_bytes();
  b.add_groups();
  uint64_t ticks = 0;
  while ((b.leaders() < groups || b.awake() > 0) && ticks < 2000) {
    b.tick();
    ++ticks;
    if (ticks == 100) b.write_each();
  }
  if (b.leaders() < groups || b.awake() > 0) {
    std::fprintf(stderr,
                 "groups did not elect and quiesce in %" PRIu64 " ticks: %zu leaders, %zu awake\n",
                 ticks, b.leaders(), b.awake());
    return 1;
  }
  const uint64_t rss_after = rss_bytes();
  std::fprintf(stderr, "%" PRIu64 " groups elected, wrote and quiesced after %" PRIu64 " ticks\n",
               groups, ticks);
  const uint64_t idle_ticks = seconds * 1000 / tick_ms;
  const double cpu0 = cpu_seconds();
  for (uint64_t t = 0; t < idle_ticks; ++t)
    b.tick();
  const double cpu = cpu_seconds() - cpu0;
  if (b.awake() > 0) {
    std::fprintf(stderr, "%zu replicas woke while idle\n", b.awake());
    return 1;
  }
  const double per_member = cpu / static_cast<double>(seconds) / 3.0 * 100.0;
  std::printf("engine-idle groups=%" PRIu64 " replicas=%" PRIu64
              " cpu_per_member=%.4f%% rss_per_replica=%" PRIu64 "\n",
              groups, 3 * groups, per_member, (rss_after - rss_before) / (3 * groups));
  std::string cleanup = "rm -rf '" + dir + "'";
  return std::system(cleanup.c_str()) == 0 ? 0 : 1;
}
