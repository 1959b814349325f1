// A thread that runs `work` every `interval` (first one interval after it starts) until it is
// destroyed: the destructor wakes it at once and joins, waiting for a run under way to end.
// The background checks of chorusd (auto-compaction, corruption checks, the TLS file watch)
// each own one. Declare it last in its owner, so that it stops before anything `work` uses is
// destroyed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "base/thread_name.h"

namespace chorus::base {

class PeriodicThread {
 public:
  PeriodicThread(std::string name, std::chrono::milliseconds interval, std::function<void()> work)
      : thread_([this, name = std::move(name), interval, work = std::move(work)] {
          set_thread_name(name.c_str());
          std::unique_lock<std::mutex> lk(mu_);
          while (!cv_.wait_for(lk, interval, [this] { return stop_; })) {
            lk.unlock();
            work();
            lk.lock();
          }
        }) {}

  ~PeriodicThread() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace chorus::base
