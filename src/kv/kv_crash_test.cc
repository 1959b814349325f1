// chorus-kv-crash: kills a real process that logs and applies writes, and checks the state
// machine recovers exactly.
//
// The child logs each put to the write-ahead log (fsynced), applies it to the MvccStore (whose
// RocksDB WAL is off), snapshots and compacts the log every few hundred entries, and prints
// "ack <index>" once both are done. After a random delay the parent kills it with SIGKILL, then
// recovers as a node does: open the log, open the store, replay the entries after the store's
// applied index. It checks that the store is never ahead of the log, that the log still holds
// every entry the store needs, that every acknowledged entry is there, and that the recovered
// state equals a model built from the log.
//
//   chorus-kv-crash [--iterations N] [--seed S] [--dir D]
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>

#include "kv/codec.h"
#include "kv/mvcc.h"
#include "kv/snapshots.h"
#include "storage/wal.h"

namespace chorus::kv {
namespace {

using storage::Status;

constexpr raft::GroupId kGroup = 1;
const raft::ConfState kConf{{1}, {}, {}, {}, false};
const SnapshotPolicy kPolicy{.snapshot_entries = 100, .catch_up_entries = 20};

struct Node {
  std::unique_ptr<storage::FileSystem> fs = storage::make_posix_file_system();
  std::unique_ptr<storage::Wal> wal;
  std::unique_ptr<MvccStore> store;
  raft::Index last_snapshot = 0;
};

[[noreturn]] void die(const char* what, const Status& st) {
  std::fprintf(stderr, "chorus-kv-crash: %s: %s\n", what, st.to_string().c_str());
  std::exit(3);
}

Command put_for(raft::Index index) {
  Command c;
  c.op = PutRequest{
      "key" + std::to_string(index % 97), "value" + std::to_string(index), 0, false, false, false};
  return c;
}

// Opens the log and the store and replays what the store has not applied, as a node does at
// start. Returns false (with a message) if the two do not fit together.
bool recover(const std::string& dir, Node* n) {
  Status st = storage::Wal::open(n->fs.get(), dir + "/wal", {.segment_bytes = 256 << 10}, &n->wal);
  if (!st.is_ok()) die("open log", st);
  if (n->wal->group(kGroup) == nullptr) {
    st = n->wal->bootstrap(kGroup, kConf);
    if (!st.is_ok()) die("bootstrap", st);
  }
  st = MvccStore::open(dir + "/kv", {}, &n->store);
  if (!st.is_ok()) die("open store", st);
  const raft::LogStorage* log = n->wal->group(kGroup);
  raft::Snapshot snap;
  (void)log->snapshot(&snap);
  n->last_snapshot = snap.metadata.index;
  raft::Index applied = n->store->applied_index();
  if (applied > log->last_index()) {
    std::fprintf(stderr, "store applied %llu, beyond the log's last entry %llu\n",
                 static_cast<unsigned long long>(applied),
                 static_cast<unsigned long long>(log->last_index()));
    return false;
  }
  if (applied + 1 < log->first_index()) {
    std::fprintf(stderr, "store applied %llu but the log starts at %llu: entries lost\n",
                 static_cast<unsigned long long>(applied),
                 static_cast<unsigned long long>(log->first_index()));
    return false;
  }
  std::vector<raft::Entry> entries;
  if (applied < log->last_index() && log->entries(applied + 1, log->last_index() + 1,
                                                  raft::kNoLimit, &entries) != raft::Error::kOk) {
    std::fprintf(stderr, "log entries after %llu cannot be read\n",
                 static_cast<unsigned long long>(applied));
    return false;
  }
  std::vector<AppliedEntry> batch;
  for (const raft::Entry& e : entries)
    batch.push_back({e.index, e.term, e.data});
  MvccStore::ApplyResult result;
  st = n->store->apply(batch, &result);
  if (!st.is_ok()) die("replay", st);
  return true;
}

int run_child(const std::string& dir) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  Node n;
  if (!recover(dir, &n)) return 4;
  while (true) {
    raft::Index index = n.wal->group(kGroup)->last_index() + 1;
    raft::Entry e{1, index, raft::EntryType::kNormal, encode_command(put_for(index))};
    storage::WalBatch b;
    b.append(kGroup, {e});
    b.set_hard_state(kGroup, {1, 1, index});
    Status st = n.wal->commit(b);
    if (!st.is_ok()) die("log", st);
    MvccStore::ApplyResult result;
    st = n.store->apply({{index, 1, e.data}}, &result);
    if (!st.is_ok()) die("apply", st);
    if (snapshot_due(index, n.last_snapshot, kPolicy)) {
      raft::Snapshot snap;
      st = take_snapshot(n.store.get(), n.fs.get(), dir + "/snap", kConf, &snap);
      if (st.is_ok()) st = n.wal->compact(kGroup, snap, compact_index(index, kPolicy));
      if (st.is_ok()) st = prune_snapshots(n.fs.get(), dir + "/snap", index);
      if (!st.is_ok()) die("snapshot", st);
      n.last_snapshot = index;
    }
    std::string ack = "ack " + std::to_string(index) + "\n";
    if (::write(STDOUT_FILENO, ack.data(), ack.size()) != static_cast<ssize_t>(ack.size()))
      std::_Exit(5);
  }
}

// The state the log's entries must produce: every key's last value.
bool check_state(const Node& n, std::string* why) {
  raft::Index last = n.wal->group(kGroup)->last_index();
  if (n.store->applied_index() != last) {
    *why = "store did not catch up with the log";
    return false;
  }
  if (n.store->revision() != static_cast<int64_t>(last) + 1) {
    *why = "revision " + std::to_string(n.store->revision()) + " after " + std::to_string(last) +
           " puts";
    return false;
  }
  std::map<std::string, std::string> want;
  for (raft::Index i = last; i >= 1 && want.size() < 97 && i + 97 > last; --i) {
    auto put = std::get<PutRequest>(put_for(i).op);
    want.emplace(put.key, put.value);
  }
  for (const auto& [key, value] : want) {
    RangeRequest q;
    q.key = key;
    RangeResponse r;
    if (!n.store->range(q, &r).ok() || r.kvs.size() != 1 || r.kvs[0].value != value) {
      *why = "key " + key + " should be " + value;
      return false;
    }
  }
  return true;
}

int run_parent(const std::string& self, const std::string& dir, int iterations, uint64_t seed) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::mt19937_64 rng(seed);
  raft::Index max_acked = 0;
  uint64_t acks = 0;
  for (int it = 0; it < iterations; ++it) {
    int fds[2];
    if (::pipe(fds) != 0) return 2;
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      ::dup2(fds[1], STDOUT_FILENO);
      const char* argv[] = {self.c_str(), "--child", dir.c_str(), nullptr};
      ::execv(self.c_str(), const_cast<char* const*>(argv));
      std::_Exit(6);
    }
    ::close(fds[1]);
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(50 + static_cast<int>(rng() % 400));
    std::string out;
    char buf[4096];
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fds[0], POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      ssize_t r = ::read(fds[0], buf, sizeof(buf));
      if (r <= 0) break;
      out.append(buf, static_cast<size_t>(r));
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    while (true) {  // whatever the child wrote before it died
      ssize_t r = ::read(fds[0], buf, sizeof(buf));
      if (r <= 0) break;
      out.append(buf, static_cast<size_t>(r));
    }
    ::close(fds[0]);
    if (WIFEXITED(status)) {
      std::fprintf(stderr, "iteration %d: the child exited with %d\n", it, WEXITSTATUS(status));
      return 1;
    }
    for (size_t pos = 0; (pos = out.find("ack ", pos)) != std::string::npos; pos += 4) {
      raft::Index i = std::strtoull(out.c_str() + pos + 4, nullptr, 10);
      max_acked = std::max(max_acked, i);
      ++acks;
    }
    Node n;
    if (!recover(dir, &n)) return 1;
    std::string why;
    if (n.wal->group(kGroup)->last_index() < max_acked) {
      std::fprintf(stderr, "iteration %d: entry %llu was acknowledged but is gone\n", it,
                   static_cast<unsigned long long>(max_acked));
      return 1;
    }
    if (!check_state(n, &why)) {
      std::fprintf(stderr, "iteration %d: %s\n", it, why.c_str());
      return 1;
    }
  }
  std::printf("kv crash test: %d kills, %llu acknowledged writes, last index %llu, 0 lost\n",
              iterations, static_cast<unsigned long long>(acks),
              static_cast<unsigned long long>(max_acked));
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace chorus::kv

int main(int argc, char** argv) {
  std::string self = "/proc/self/exe";
  char path[4096];
  ssize_t len = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (len > 0) self.assign(path, static_cast<size_t>(len));
  if (argc == 3 && std::string(argv[1]) == "--child") return chorus::kv::run_child(argv[2]);
  int iterations = 30;
  uint64_t seed = 1;
  std::string dir =
      std::filesystem::temp_directory_path() / ("chorus-kv-crash-" + std::to_string(::getpid()));
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--iterations") {
      iterations = std::atoi(argv[i + 1]);
    } else if (flag == "--seed") {
      seed = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (flag == "--dir") {
      dir = argv[i + 1];
    } else {
      std::fprintf(stderr, "usage: chorus-kv-crash [--iterations N] [--seed S] [--dir D]\n");
      return 2;
    }
  }
  return chorus::kv::run_parent(self, dir, iterations, seed);
}
