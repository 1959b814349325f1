// A RecordStore in memory: the keyspace's tests and its fuzzer run commands against it.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "redis/keyspace.h"

namespace chorus::redis {

class MemoryRecords : public RecordStore {
 public:
  bool get(std::string_view key, std::string* record) override {
    auto it = records.find(std::string(key));
    if (it == records.end()) return false;
    *record = it->second;
    return true;
  }
  void put(std::string_view key, std::string_view record) override {
    records[std::string(key)] = std::string(record);
  }
  void del(std::string_view key) override { records.erase(std::string(key)); }

  std::map<std::string, std::string> records;
};

}  // namespace chorus::redis
