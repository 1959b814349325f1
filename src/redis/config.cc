#include "redis/config.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "redis/keyspace.h"

namespace chorus::redis {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Reply set_failed(std::string_view name, std::string_view why) {
  return Reply::error("ERR CONFIG SET failed (possibly related to argument '" + std::string(name) +
                      "') - " + std::string(why));
}

}  // namespace

ServerConfig::ServerConfig(size_t max_bulk_bytes) {
  auto fixed = [&](const char* name, std::string value) {
    params_[name] = Param{Kind::kFixed, std::move(value), 0, 0, {}};
  };
  auto integer = [&](const char* name, long long value, long long min, long long max) {
    params_[name] = Param{Kind::kInteger, std::to_string(value), min, max, {}};
  };
  fixed("appendonly", "yes");
  fixed("appendfsync", "always");
  fixed("save", "");
  fixed("databases", "1");
  fixed("cluster-enabled", "no");
  fixed("maxmemory", "0");
  fixed("maxmemory-policy", "noeviction");
  fixed("notify-keyspace-events", "");
  fixed("proto-max-bulk-len", std::to_string(max_bulk_bytes));
  fixed("client-query-buffer-limit", std::to_string(2 * max_bulk_bytes));
  fixed("timeout", "0");
  constexpr long long kMax = (1LL << 62);
  integer("hash-max-listpack-entries", 128, 0, kMax);
  integer("hash-max-listpack-value", 64, 0, kMax);
  integer("list-max-listpack-size", -2, -5, kMax);
  integer("list-compress-depth", 0, 0, kMax);
  integer("set-max-intset-entries", 512, 0, kMax);
  integer("zset-max-listpack-entries", 128, 0, kMax);
  integer("zset-max-listpack-value", 64, 0, kMax);
  integer("stream-node-max-bytes", 4096, 0, kMax);
  integer("stream-node-max-entries", 100, 0, kMax);
  integer("busy-reply-threshold", 5000, 0, kMax);
  params_["lazyfree-lazy-user-del"] = Param{Kind::kEnum, "no", 0, 0, {"yes", "no"}};
  params_["lazyfree-lazy-user-flush"] = Param{Kind::kEnum, "no", 0, 0, {"yes", "no"}};
  aliases_ = {{"hash-max-ziplist-entries", "hash-max-listpack-entries"},
              {"hash-max-ziplist-value", "hash-max-listpack-value"},
              {"list-max-ziplist-size", "list-max-listpack-size"},
              {"zset-max-ziplist-entries", "zset-max-listpack-entries"},
              {"zset-max-ziplist-value", "zset-max-listpack-value"},
              {"lua-time-limit", "busy-reply-threshold"}};
}

std::vector<std::pair<std::string, std::string>> ServerConfig::get(
    const std::vector<std::string>& patterns) const {
  std::vector<std::pair<std::string, std::string>> out;
  std::set<std::string, std::less<>> seen;
  auto add = [&](const std::string& name, const std::string& value) {
    if (seen.insert(name).second) out.emplace_back(name, value);
  };
  for (const std::string& raw : patterns) {
    std::string pattern = lower(raw);
    for (const auto& [name, p] : params_) {
      if (glob_match(pattern, name)) add(name, p.value);
    }
    for (const auto& [alias, name] : aliases_) {
      if (glob_match(pattern, alias)) add(alias, params_.find(name)->second.value);
    }
  }
  return out;
}

Reply ServerConfig::set(const std::vector<std::string>& pairs) {
  if (pairs.empty() || pairs.size() % 2 != 0)
    return Reply::error("ERR wrong number of arguments for 'config|set' command");
  // Check everything first: CONFIG SET changes all the parameters or none.
  std::vector<std::pair<Param*, std::string>> changes;
  std::set<std::string, std::less<>> named;
  for (size_t i = 0; i < pairs.size(); i += 2) {
    std::string name = lower(pairs[i]);
    if (auto a = aliases_.find(name); a != aliases_.end()) name = a->second;
    auto it = params_.find(name);
    if (it == params_.end()) {
      return Reply::error("ERR Unknown option or number of arguments for CONFIG SET - '" +
                          pairs[i] + "'");
    }
    if (!named.insert(name).second) return set_failed(pairs[i], "duplicate parameter");
    Param& p = it->second;
    const std::string& value = pairs[i + 1];
    switch (p.kind) {
      case Kind::kFixed:
        if (lower(value) != p.value)
          return set_failed(pairs[i], "Chorus does not change this: its value is " +
                                          (p.value.empty() ? std::string("empty") : p.value));
        break;
      case Kind::kInteger: {
        int64_t v = 0;
        if (!parse_int64(value, &v))
          return set_failed(pairs[i], "argument couldn't be parsed into an integer");
        if (v < p.min || v > p.max)
          return set_failed(pairs[i], "argument must be between " + std::to_string(p.min) +
                                          " and " + std::to_string(p.max) + " inclusive");
        changes.emplace_back(&p, std::to_string(v));
        break;
      }
      case Kind::kEnum: {
        std::string v = lower(value);
        if (std::find(p.choices.begin(), p.choices.end(), v) == p.choices.end())
          return set_failed(
              pairs[i], "argument(s) must be one of the following: " + [&] {
                std::string all;
                for (const std::string& c : p.choices)
                  all += (all.empty() ? "" : ", ") + c;
                return all;
              }());
        changes.emplace_back(&p, v);
        break;
      }
    }
  }
  for (auto& [p, v] : changes)
    p->value = std::move(v);
  return Reply::ok();
}

}  // namespace chorus::redis
