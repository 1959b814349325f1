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

// A reply as text, for the tests' failure messages. (A PrintTo for gtest would have to be seen
// by every test file that prints a Reply, or the printers' instantiations would differ.)
inline std::string show(const Reply& r) {
  auto list = [&](const char* open, const char* close) {
    std::string out = open;
    for (size_t i = 0; i < r.elements.size(); ++i)
      out += (i > 0 ? ", " : "") + show(r.elements[i]);
    return out + close;
  };
  switch (r.kind) {
    case Reply::Kind::kStatus:
      return "+" + r.str;
    case Reply::Kind::kError:
      return "-" + r.str;
    case Reply::Kind::kInteger:
      return ":" + std::to_string(r.integer);
    case Reply::Kind::kBulk:
      return '"' + r.str + '"';
    case Reply::Kind::kNull:
      return "(nil)";
    case Reply::Kind::kNullArray:
      return "(nil array)";
    case Reply::Kind::kDouble:
      return "(double)" + r.str;
    case Reply::Kind::kArray:
    case Reply::Kind::kPairs:
      return list("[", "]");
    case Reply::Kind::kMap:
      return list("{", "}");
    case Reply::Kind::kSet:
      return list("~[", "]");
    case Reply::Kind::kPush:
      return list(">[", "]");
  }
  return "?";
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
