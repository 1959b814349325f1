// chorus-wal-crash: kills a real process that writes the log and checks that nothing it
// acknowledged is lost.
//
// The parent starts this binary again in child mode, which opens a Wal on the local disk and
// appends entries to four groups from four threads through a GroupCommitter, printing
// "ack <group> <index> <term>" on stdout (a pipe) only after commit() returned OK. After a random
// delay the parent kills the child with SIGKILL, recovers the log itself and checks that every
// acknowledged entry is there with its exact content. The child only appends, so an acknowledged
// index is never legitimately replaced. Now and then the parent also compacts, so recovery meets
// logs whose oldest segments were deleted.
//
//   chorus-wal-crash [--iterations N] [--seed S] [--dir D]
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "storage/group_commit.h"
#include "storage/wal.h"

namespace chorus::storage {
namespace {

using raft::Entry;
using raft::GroupId;
using raft::Index;
using raft::Term;

constexpr GroupId kGroups = 4;
constexpr int kMaxEntriesPerBatch = 4;
constexpr Index kCompactKeepEntries = 50;
constexpr int kCompactEveryIterations = 10;
const raft::ConfState kConf{{1, 2, 3}, {}, {}, {}, false};

WalOptions options() {
  // Small segments, so the runs rotate and compaction deletes files.
  return WalOptions{.segment_bytes = 128 << 10, .cache_bytes = 64 << 10};
}

// The content of an entry follows from its group, index and term, so the parent can check
// every byte without being told what was written.
std::string entry_data(GroupId g, Index i, Term t) {
  std::string s = "g" + std::to_string(g) + "i" + std::to_string(i) + "t" + std::to_string(t) + ":";
  s.append(static_cast<size_t>((i * 7 + g) % 150), static_cast<char>('a' + (g + i + t) % 26));
  return s;
}

[[noreturn]] void die(const char* what, const Status& st) {
  std::fprintf(stderr, "chorus-wal-crash child: %s: %s\n", what, st.to_string().c_str());
  std::exit(3);
}

// ---- child ----

int run_child(const std::string& dir, Term term) {
  // Never outlive the parent, whatever happens to it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto fs = make_posix_file_system();
  std::unique_ptr<Wal> wal;
  Status st = Wal::open(fs.get(), dir, options(), &wal);
  if (!st.is_ok()) die("open", st);
  for (GroupId g = 1; g <= kGroups; ++g) {
    if (wal->group(g) == nullptr) {
      st = wal->bootstrap(g, kConf);
      if (!st.is_ok()) die("bootstrap", st);
    }
  }
  GroupCommitter committer(wal.get());
  std::mutex out_mu;
  std::vector<std::thread> threads;
  for (GroupId g = 1; g <= kGroups; ++g) {
    threads.emplace_back([&, g] {
      std::mt19937_64 rng(term * 131 + g);
      Index next = wal->group(g)->last_index() + 1;
      while (true) {
        int n = 1 + static_cast<int>(rng() % kMaxEntriesPerBatch);
        std::vector<Entry> entries;
        std::string acks;
        for (int k = 0; k < n; ++k, ++next) {
          entries.push_back({term, next, raft::EntryType::kNormal, entry_data(g, next, term)});
          acks += "ack " + std::to_string(g) + " " + std::to_string(next) + " " +
                  std::to_string(term) + "\n";
        }
        WalBatch b;
        b.append(g, entries);
        b.set_hard_state(g, {term, 1, next - 1 - static_cast<Index>(n)});
        Status cst = committer.commit(std::move(b));
        if (!cst.is_ok()) die("commit", cst);
        std::lock_guard lock(out_mu);
        for (size_t done = 0; done < acks.size();) {
          ssize_t w = ::write(STDOUT_FILENO, acks.data() + done, acks.size() - done);
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) std::_Exit(4);  // the parent went away
          done += static_cast<size_t>(w);
        }
      }
    });
  }
  for (auto& t : threads)
    t.join();  // never: the parent kills this process
  return 0;
}

// ---- parent ----

struct Totals {
  uint64_t kills = 0;
  uint64_t acked = 0;    // distinct acknowledged entries
  uint64_t checked = 0;  // acknowledged entries looked up, summed over every recovery
  uint64_t lost = 0;
};

// Starts the child; returns its pid and the read end of its stdout.
pid_t spawn_child(const std::string& self, const std::string& dir, Term term, int* read_fd) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    std::perror("pipe");
    std::exit(2);
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("fork");
    std::exit(2);
  }
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    std::string t = std::to_string(term);
    const char* argv[] = {self.c_str(), "--child", dir.c_str(), "--term", t.c_str(), nullptr};
    ::execv(self.c_str(), const_cast<char* const*>(argv));
    std::_Exit(5);
  }
  ::close(fds[1]);
  *read_fd = fds[0];
  return pid;
}

// Reads the child's output until `deadline`, or until EOF if `deadline` is null; with
// `until_newline`, also stops once a whole line has arrived.
void read_output(int fd, std::string* out, const std::chrono::steady_clock::time_point* deadline,
                 bool until_newline = false) {
  char buf[65536];
  while (true) {
    int timeout_ms = -1;
    if (deadline != nullptr) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          *deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return;
      timeout_ms = static_cast<int>(left.count());
    }
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return;
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // EOF: the child is gone and everything it wrote is read
    out->append(buf, static_cast<size_t>(n));
    if (until_newline && out->find('\n') != std::string::npos) return;
  }
}

// Checks the recovered log against every acknowledged entry; returns false on any loss.
bool check(const Wal& wal, const std::map<GroupId, std::map<Index, Term>>& acked, Totals* totals) {
  bool ok = true;
  for (GroupId g = 1; g <= kGroups; ++g) {
    const raft::LogStorage* s = wal.group(g);
    auto it = acked.find(g);
    if (s == nullptr) {
      if (it != acked.end() && !it->second.empty()) {
        std::fprintf(stderr, "LOST: group %" PRIu64 " is gone\n", g);
        totals->lost += it->second.size();
        ok = false;
      }
      continue;
    }
    std::vector<Entry> entries;
    if (s->last_index() >= s->first_index() &&
        s->entries(s->first_index(), s->last_index() + 1, raft::kNoLimit, &entries) !=
            raft::Error::kOk) {
      std::fprintf(stderr, "group %" PRIu64 ": entries cannot be read\n", g);
      return false;
    }
    // Every entry, acknowledged or not, must be one the child wrote.
    for (const Entry& e : entries) {
      if (e.data != entry_data(g, e.index, e.term)) {
        std::fprintf(stderr, "GARBAGE: group %" PRIu64 " entry %" PRIu64 " term %" PRIu64 "\n", g,
                     e.index, e.term);
        ok = false;
      }
    }
    if (it == acked.end()) continue;
    for (const auto& [index, term] : it->second) {
      ++totals->checked;
      if (index < s->first_index()) continue;  // compacted by the parent, covered by a snapshot
      if (index > s->last_index() || entries[index - s->first_index()].term != term) {
        std::fprintf(stderr,
                     "LOST: group %" PRIu64 " entry %" PRIu64 " term %" PRIu64
                     " was acknowledged; the log ends at %" PRIu64 "\n",
                     g, index, term, s->last_index());
        ++totals->lost;
        ok = false;
      }
    }
  }
  return ok;
}

// Compacts each group, keeping its last entries, as a node that took a snapshot would.
bool compact(Wal* wal, std::map<GroupId, std::map<Index, Term>>* acked) {
  for (GroupId g = 1; g <= kGroups; ++g) {
    const raft::LogStorage* s = wal->group(g);
    if (s == nullptr || s->last_index() < s->first_index() + kCompactKeepEntries) continue;
    Index to = s->last_index() - kCompactKeepEntries;
    raft::Snapshot snap;
    snap.metadata.index = to;
    if (s->term(to, &snap.metadata.term) != raft::Error::kOk) return false;
    snap.metadata.conf_state = kConf;
    snap.data = "state of group " + std::to_string(g) + " at " + std::to_string(to);
    Status st = wal->compact(g, snap, to);
    if (!st.is_ok()) {
      std::fprintf(stderr, "compact: %s\n", st.to_string().c_str());
      return false;
    }
    auto& m = (*acked)[g];
    m.erase(m.begin(), m.upper_bound(to));
  }
  return true;
}

int run_parent(const std::string& self, int iterations, uint64_t seed, std::string dir) {
  bool own_dir = dir.empty();
  if (own_dir) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/chorus-wal-crash-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      return 2;
    }
    dir = pattern + "/wal";
  }
  std::printf("crash test: %d iterations, seed %" PRIu64 ", log in %s\n", iterations, seed,
              dir.c_str());
  std::fflush(stdout);
  std::mt19937_64 rng(seed);
  auto fs = make_posix_file_system();
  std::map<GroupId, std::map<Index, Term>> acked;
  Totals totals;
  auto start = std::chrono::steady_clock::now();
  for (int it = 0; it < iterations; ++it) {
    Term term = static_cast<Term>(it) + 1;
    // Mostly kill a child that is writing (the delay counts from its first acknowledgement, so
    // a slow start on a loaded machine still leaves something to check); sometimes one that
    // may not even have opened the log.
    const bool early = rng() % 10 == 0;
    int delay_us = early ? static_cast<int>(rng() % 3000) : static_cast<int>(rng() % 75000);
    int fd = -1;
    pid_t pid = spawn_child(self, dir, term, &fd);
    std::string output;
    if (!early) {
      auto started = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      read_output(fd, &output, &started, /*until_newline=*/true);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(delay_us);
    read_output(fd, &output, &deadline);
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    read_output(fd, &output, nullptr);
    ::close(fd);
    ++totals.kills;
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
      std::fprintf(stderr, "iteration %d: the child ended by itself (status %d)\n", it, status);
      return 1;
    }
    std::istringstream lines(output);
    std::string line;
    while (std::getline(lines, line)) {
      if (lines.eof()) break;  // a line cut by the kill: not an acknowledgement
      GroupId g = 0;
      Index i = 0;
      Term t = 0;
      if (std::sscanf(line.c_str(), "ack %" SCNu64 " %" SCNu64 " %" SCNu64, &g, &i, &t) != 3) {
        std::fprintf(stderr, "iteration %d: bad line from the child: %s\n", it, line.c_str());
        return 1;
      }
      if (acked[g].emplace(i, t).second) ++totals.acked;
    }

    WalReport report;
    Status st = Wal::verify(fs.get(), dir, &report);
    if (st.code() == Status::Code::kNotFound && acked.empty()) continue;  // killed before open
    if (!st.is_ok() || !report.clean()) {
      std::fprintf(stderr, "iteration %d: verify: %s\n%s", it, st.to_string().c_str(),
                   report.to_string().c_str());
      return 1;
    }
    std::unique_ptr<Wal> wal;
    st = Wal::open(fs.get(), dir, options(), &wal);
    if (!st.is_ok()) {
      std::fprintf(stderr, "iteration %d: recovery failed: %s\n", it, st.to_string().c_str());
      return 1;
    }
    if (!check(*wal, acked, &totals)) {
      std::fprintf(stderr, "iteration %d: acknowledged entries lost; log kept in %s\n", it,
                   dir.c_str());
      std::printf("crash test: %" PRIu64 " kills, %" PRIu64
                  " acknowledged entries checked, %" PRIu64 " lost\n",
                  totals.kills, totals.checked, totals.lost);
      return 1;
    }
    if ((it + 1) % kCompactEveryIterations == 0 && !compact(wal.get(), &acked)) return 1;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("crash test: %" PRIu64 " kills, %" PRIu64 " acknowledged entries checked (%" PRIu64
              " distinct), %" PRIu64 " lost, %.1f s\n",
              totals.kills, totals.checked, totals.acked, totals.lost, seconds);
  if (totals.acked == 0) {
    std::fprintf(stderr, "no child acknowledged anything: the test checked nothing\n");
    return 1;
  }
  if (own_dir) std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
  return 0;
}

}  // namespace
}  // namespace chorus::storage

int main(int argc, char** argv) {
  int iterations = 100;
  uint64_t seed = static_cast<uint64_t>(std::random_device{}());
  std::string dir;
  std::string child_dir;
  chorus::raft::Term term = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool has_value = i + 1 < argc;
    if (a == "--iterations" && has_value) {
      iterations = std::atoi(argv[++i]);
    } else if (a == "--seed" && has_value) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--dir" && has_value) {
      dir = argv[++i];
    } else if (a == "--child" && has_value) {
      child_dir = argv[++i];
    } else if (a == "--term" && has_value) {
      term = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: chorus-wal-crash [--iterations N] [--seed S] [--dir D]\n");
      return 2;
    }
  }
  if (!child_dir.empty()) return chorus::storage::run_child(child_dir, term);
  // The child is this same binary, started again by path.
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) {
    std::perror("readlink /proc/self/exe");
    return 2;
  }
  self[n] = '\0';
  return chorus::storage::run_parent(self, iterations, seed, dir);
}
