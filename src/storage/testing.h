// Helpers for tests of storage and the layers above it. Header-only; include only from tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "storage/wal.h"

namespace chorus::storage::testing {

// A fresh, empty directory under the test temp dir, removed again when the object goes.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix) {
    static std::atomic<int> counter{0};
    path_ = ::testing::TempDir() + prefix + "-" + std::to_string(::getpid()) + "-" +
            std::to_string(counter++);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Every entry of a group, as the core would read it.
inline std::vector<raft::Entry> read_log(const Wal& wal, raft::GroupId g) {
  const raft::LogStorage* s = wal.group(g);
  std::vector<raft::Entry> out;
  if (s == nullptr || s->last_index() < s->first_index()) return out;
  EXPECT_EQ(s->entries(s->first_index(), s->last_index() + 1, raft::kNoLimit, &out),
            raft::Error::kOk);
  return out;
}

}  // namespace chorus::storage::testing
