// RocksDB's status as a storage::Status: the kv layer's state machines both go through it.
// Include only from the kv layer's .cc files (it brings RocksDB's headers).
#pragma once

#include <rocksdb/status.h>

#include <string>

#include "storage/status.h"

namespace chorus::kv {

inline storage::Status from_rocksdb(const rocksdb::Status& s, const char* what) {
  if (s.ok()) return storage::Status::ok();
  std::string m = std::string("rocksdb ") + what + ": " + s.ToString();
  if (s.IsNoSpace()) return storage::Status::no_space(m);
  if (s.IsCorruption()) return storage::Status::corruption(m);
  return storage::Status::io_error(m);
}

}  // namespace chorus::kv
