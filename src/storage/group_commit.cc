#include "storage/group_commit.h"

#include <future>

namespace chorus::storage {

GroupCommitter::GroupCommitter(Wal* wal, uint64_t max_queued_bytes)
    : wal_(wal), max_queued_bytes_(max_queued_bytes), thread_([this] { run(); }) {}

GroupCommitter::~GroupCommitter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
}

void GroupCommitter::submit(WalBatch batch, Done done) {
  std::unique_lock lock(mu_);
  // A batch larger than the bound alone still goes through once the queue is empty.
  space_cv_.wait(lock, [&] {
    return queued_bytes_ == 0 || queued_bytes_ + batch.bytes() <= max_queued_bytes_;
  });
  queued_bytes_ += batch.bytes();
  queue_.push_back({std::move(batch), std::move(done)});
  lock.unlock();
  work_cv_.notify_one();
}

Status GroupCommitter::commit(WalBatch batch) {
  std::promise<Status> p;
  auto f = p.get_future();
  submit(std::move(batch), [&p](const Status& st) { p.set_value(st); });
  return f.get();
}

void GroupCommitter::run() {
  std::vector<Pending> taken;
  WalBatch merged;
  while (true) {
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing is left
      taken.swap(queue_);
      queued_bytes_ = 0;
    }
    space_cv_.notify_all();
    merged.clear();
    for (const Pending& p : taken)
      merged.merge(p.batch);
    Status st = wal_->write(merged);
    if (st.is_ok()) st = wal_->sync();
    {
      std::lock_guard lock(mu_);
      ++syncs_;
      batches_ += taken.size();
    }
    for (Pending& p : taken)
      p.done(st);
    taken.clear();
  }
}

uint64_t GroupCommitter::syncs() const {
  std::lock_guard lock(mu_);
  return syncs_;
}

uint64_t GroupCommitter::batches() const {
  std::lock_guard lock(mu_);
  return batches_;
}

}  // namespace chorus::storage
