// Write-ahead log throughput against what the disk can do.
//
// (a) The disk's raw rate: 4 KiB pwrite + fdatasync in a loop on a preallocated file, the best a
//     log that syncs every write could reach.
//     Measured before and after (b); ratios use the mean.
// (b) The Wal through a GroupCommitter with 1, 16 and 256 writer threads, each committing
//     1-entry batches of 100-byte entries into its own group and waiting for each commit. Group
//     commit should make entries/s grow with the writers while syncs/s stays near the raw rate.
//
//   chorus-bench-wal [--seconds S] [--dir D]   (D defaults to build/bench-wal, else $TMPDIR)
#include <fcntl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "storage/group_commit.h"
#include "storage/wal.h"

namespace {

using chorus::storage::GroupCommitter;
using chorus::storage::Status;
using chorus::storage::Wal;
using chorus::storage::WalBatch;
using Clock = std::chrono::steady_clock;

constexpr size_t kRawWriteBytes = 4096;
constexpr off_t kRawFileBytes = 64 << 20;
constexpr size_t kEntryBytes = 100;
constexpr int kWriterCounts[] = {1, 16, 256};
const chorus::raft::ConfState kConf{{1, 2, 3}, {}, {}, {}, false};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "chorus-bench-wal: %s\n", what.c_str());
  std::exit(1);
}

void check(const Status& st, const char* what) {
  if (!st.is_ok()) die(std::string(what) + ": " + st.to_string());
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Syncs per second of 4 KiB writes, each followed by fdatasync.
double raw_fdatasync_rate(const std::string& dir, double seconds, double* latency_us) {
  std::string path = dir + "/raw-fdatasync";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die("open " + path + ": " + std::strerror(errno));
  if (int rc = ::posix_fallocate(fd, 0, kRawFileBytes); rc != 0)
    die("fallocate: " + std::string(std::strerror(rc)));
  if (::fsync(fd) != 0) die("fsync");
  std::string block(kRawWriteBytes, 'r');
  uint64_t syncs = 0;
  auto start = Clock::now();
  while (seconds_since(start) < seconds) {
    off_t at = static_cast<off_t>(syncs * kRawWriteBytes % kRawFileBytes);
    if (::pwrite(fd, block.data(), block.size(), at) != static_cast<ssize_t>(block.size()))
      die("pwrite");
    if (::fdatasync(fd) != 0) die("fdatasync");
    ++syncs;
  }
  double elapsed = seconds_since(start);
  ::close(fd);
  ::unlink(path.c_str());
  *latency_us = elapsed * 1e6 / static_cast<double>(syncs);
  return static_cast<double>(syncs) / elapsed;
}

struct WalResult {
  double entries_per_s;
  double syncs_per_s;
  double batches_per_sync;
  double commit_latency_us;
};

WalResult wal_rate(const std::string& dir, int writers, double seconds) {
  std::string wal_dir = dir + "/wal-" + std::to_string(writers);
  std::filesystem::remove_all(wal_dir);
  auto fs = chorus::storage::make_posix_file_system();
  std::unique_ptr<Wal> wal;
  check(Wal::open(fs.get(), wal_dir, {}, &wal), "open");
  for (int g = 1; g <= writers; ++g)
    check(wal->bootstrap(static_cast<chorus::raft::GroupId>(g), kConf), "bootstrap");
  WalResult r{};
  {
    GroupCommitter committer(wal.get());
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> entries{0};
    std::vector<std::thread> threads;
    uint64_t syncs_before = committer.syncs();
    uint64_t batches_before = committer.batches();
    auto start = Clock::now();
    for (int t = 0; t < writers; ++t) {
      threads.emplace_back([&, t] {
        auto group = static_cast<chorus::raft::GroupId>(t + 1);
        std::string data(kEntryBytes, static_cast<char>('a' + t % 26));
        uint64_t done = 0;
        for (chorus::raft::Index i = 1; !stop.load(std::memory_order_relaxed); ++i) {
          WalBatch b;
          b.append(group, {{1, i, chorus::raft::EntryType::kNormal, data}});
          check(committer.commit(std::move(b)), "commit");
          ++done;
        }
        entries += done;
      });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& th : threads)
      th.join();
    double elapsed = seconds_since(start);
    auto syncs = static_cast<double>(committer.syncs() - syncs_before);
    auto batches = static_cast<double>(committer.batches() - batches_before);
    r.entries_per_s = static_cast<double>(entries.load()) / elapsed;
    r.syncs_per_s = syncs / elapsed;
    r.batches_per_sync = batches / std::max(syncs, 1.0);
    r.commit_latency_us = elapsed * 1e6 * writers / std::max<double>(entries.load(), 1.0);
  }
  wal.reset();
  std::filesystem::remove_all(wal_dir);
  return r;
}

const char* fs_type(const std::string& dir) {
  struct statfs st {};
  if (::statfs(dir.c_str(), &st) != 0) return "unknown";
  switch (static_cast<uint64_t>(st.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x01021994:
      return "tmpfs (fdatasync costs nothing: figures are not a disk's)";
    case 0x794c7630:
      return "overlayfs";
    default:
      return "other";
  }
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else {
      std::fprintf(stderr, "usage: chorus-bench-wal [--seconds S] [--dir D]\n");
      return 2;
    }
  }
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    dir = std::filesystem::is_directory("build")
              ? "build/bench-wal"
              : std::string(tmp ? tmp : "/tmp") + "/chorus-bench-wal";
  }
  std::filesystem::create_directories(dir);
  std::printf("chorus-bench-wal: %s (%s), %.1f s per measurement\n\n", dir.c_str(), fs_type(dir),
              seconds);

  // The disk's rate drifts (shared and virtual disks especially): measure it before and after
  // the log runs and compare against the mean.
  double raw_latency_us = 0;
  double raw_before = raw_fdatasync_rate(dir, seconds, &raw_latency_us);
  std::printf("raw 4 KiB write + fdatasync, before: %.0f syncs/s, %.0f us each\n", raw_before,
              raw_latency_us);
  std::vector<std::pair<int, WalResult>> results;
  for (int writers : kWriterCounts)
    results.emplace_back(writers, wal_rate(dir, writers, seconds));
  double raw_after = raw_fdatasync_rate(dir, seconds, &raw_latency_us);
  std::printf("raw 4 KiB write + fdatasync, after:  %.0f syncs/s, %.0f us each\n\n", raw_after,
              raw_latency_us);
  double raw = (raw_before + raw_after) / 2;

  std::printf(
      "| writers | entries/s | syncs/s | batches/sync | commit latency us | syncs/s vs raw | "
      "entries/s vs raw |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- |\n");
  for (const auto& [writers, r] : results) {
    std::printf("| %d | %.0f | %.0f | %.1f | %.0f | %.2f | %.1fx |\n", writers, r.entries_per_s,
                r.syncs_per_s, r.batches_per_sync, r.commit_latency_us, r.syncs_per_s / raw,
                r.entries_per_s / raw);
  }
  return 0;
}
