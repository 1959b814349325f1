// A RecordStore in memory: the keyspace's tests and its fuzzer run commands against it.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "redis/keyspace.h"

namespace chorus::redis {

// A reply with its RESP3 pairs (WITHSCORES) as the flat arrays RESP2 clients read: what the
// tests compare, whatever the shape's kind.
inline Reply flat_pairs(Reply r) {
  if (r.kind == Reply::Kind::kPairs) r.kind = Reply::Kind::kArray;
  for (Reply& e : r.elements)
    e = flat_pairs(std::move(e));
  return r;
}

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
  bool get_element(std::string_view ekey, std::string* value) override {
    auto it = elements.find(std::string(ekey));
    if (it == elements.end()) return false;
    *value = it->second;
    return true;
  }
  void put_element(std::string_view ekey, std::string_view value) override {
    elements[std::string(ekey)] = std::string(value);
  }
  void del_element(std::string_view ekey) override { elements.erase(std::string(ekey)); }
  void scan_elements(std::string_view prefix, std::string_view from, size_t limit,
                     std::vector<std::pair<std::string, std::string>>* out) override {
    out->clear();
    for (auto it = elements.lower_bound(std::string(from.empty() ? prefix : from));
         it != elements.end() && out->size() < limit && it->first.starts_with(prefix); ++it)
      out->emplace_back(it->first, it->second);
  }
  void drop_elements(std::string_view prefix) override {
    auto it = elements.lower_bound(std::string(prefix));
    while (it != elements.end() && it->first.starts_with(prefix))
      it = elements.erase(it);
  }

  void clear() override {
    records.clear();
    elements.clear();
  }

  std::map<std::string, std::string> records;
  std::map<std::string, std::string> elements;
};

}  // namespace chorus::redis
