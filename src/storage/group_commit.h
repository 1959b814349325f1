// Group commit: many callers hand batches to one writer thread, which writes everything that is
// waiting with one write and covers it with one fdatasync. Under load the cost of a sync is
// shared by every batch that arrived while the previous one ran.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "storage/wal.h"

namespace chorus::storage {

class GroupCommitter {
 public:
  using Done = std::function<void(const Status&)>;

  // `max_queued_bytes` bounds what may wait for the writer; submit() blocks beyond it.
  explicit GroupCommitter(Wal* wal, uint64_t max_queued_bytes = 64ull << 20);
  ~GroupCommitter();  // finishes what was submitted, then stops
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Queues `batch`; `done` runs on the writer thread once the batch is durable or has failed.
  void submit(WalBatch batch, Done done);
  // Submits and waits.
  Status commit(WalBatch batch);

  uint64_t syncs() const;
  uint64_t batches() const;

 private:
  struct Pending {
    WalBatch batch;
    Done done;
  };
  void run();

  Wal* wal_;
  uint64_t max_queued_bytes_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable space_cv_;
  std::vector<Pending> queue_;
  uint64_t queued_bytes_ = 0;
  bool stop_ = false;
  uint64_t syncs_ = 0;
  uint64_t batches_ = 0;
  std::thread thread_;
};

}  // namespace chorus::storage
