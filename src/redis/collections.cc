// Hashes, sets and lists: a key record with the collection's version and size, and one element
// record per field, member or list position (records.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "redis/records.h"

namespace chorus::redis::internal {

namespace {

using Args = std::vector<std::string>;
using Pairs = std::vector<std::pair<std::string, std::string>>;

constexpr size_t kAll = std::numeric_limits<size_t>::max();

// Every element of a collection, with element keys cut to the element's own part.
Pairs elements(Keys& k, const Record& rec, size_t limit = kAll) {
  Pairs out;
  const std::string prefix = element_key(rec.version);
  k.store().scan_elements(prefix, "", limit, &out);
  for (auto& [key, value] : out)
    key.erase(0, prefix.size());
  return out;
}

bool get_element(Keys& k, const Record& rec, std::string_view sub, std::string* value) {
  return k.store().get_element(element_key(rec.version, sub), value);
}

// A splitmix64 step: the state machine's randomness, seeded from the entry (so every replica
// picks alike).
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

Reply error_reply(const TypedAt& t) {
  return *t.error;
}

Reply count_out_of_range() {
  return Reply::error("ERR value is out of range, must be positive");
}

// ---- shared by the collection types ------------------------------------------------------

// HLEN, SCARD, LLEN.
Reply size_of(Keys& k, const Args& a, uint8_t type) {
  TypedAt t = typed_at(k, a[1], type);
  if (t.error) return error_reply(t);
  return Reply::integer_of(t.live ? static_cast<int64_t>(t.rec.size) : 0);
}

// HEXISTS, SISMEMBER.
Reply has_element(Keys& k, const Args& a, uint8_t type) {
  TypedAt t = typed_at(k, a[1], type);
  if (t.error) return error_reply(t);
  std::string v;
  return Reply::integer_of(t.live && get_element(k, t.rec, a[2], &v) ? 1 : 0);
}

// HDEL, SREM: the elements named by a[2...]; the key goes with its last element.
Reply remove_elements(Keys& k, const Args& a, uint8_t type) {
  TypedAt t = typed_at(k, a[1], type);
  if (t.error) return error_reply(t);
  if (!t.live) return Reply::integer_of(0);
  int64_t removed = 0;
  std::string v;
  for (size_t i = 2; i < a.size(); ++i) {
    const std::string ek = element_key(t.rec.version, a[i]);
    if (k.store().get_element(ek, &v)) {
      k.store().del_element(ek);
      --t.rec.size;
      ++removed;
    }
  }
  if (removed > 0) save_collection(k, a[1], t.rec);
  return Reply::integer_of(removed);
}

Reply cmd_hlen(Keys& k, const Args& a) {
  return size_of(k, a, kHash);
}
Reply cmd_scard(Keys& k, const Args& a) {
  return size_of(k, a, kSet);
}
Reply cmd_llen(Keys& k, const Args& a) {
  return size_of(k, a, kList);
}
Reply cmd_hexists(Keys& k, const Args& a) {
  return has_element(k, a, kHash);
}
Reply cmd_sismember(Keys& k, const Args& a) {
  return has_element(k, a, kSet);
}
Reply cmd_hdel(Keys& k, const Args& a) {
  return remove_elements(k, a, kHash);
}
Reply cmd_srem(Keys& k, const Args& a) {
  return remove_elements(k, a, kSet);
}

// ---- hashes --------------------------------------------------------------------------------

Reply hset_pairs(Keys& k, const Args& a, bool nx_one, bool ok_reply) {
  if (a.size() % 2 != 0) return wrong_args(a[0]);
  TypedAt t = typed_at(k, a[1], kHash, true);
  if (t.error) return error_reply(t);
  int64_t added = 0;
  std::string old;
  for (size_t i = 2; i + 1 < a.size(); i += 2) {
    const std::string ek = element_key(t.rec.version, a[i]);
    bool exists = k.store().get_element(ek, &old);
    if (nx_one && exists) return Reply::integer_of(0);
    if (!exists) {
      ++t.rec.size;
      ++added;
    }
    k.store().put_element(ek, a[i + 1]);
  }
  save_collection(k, a[1], t.rec);
  return ok_reply ? Reply::ok() : Reply::integer_of(added);
}
Reply cmd_hset(Keys& k, const Args& a) {
  return hset_pairs(k, a, false, false);
}
Reply cmd_hmset(Keys& k, const Args& a) {
  return hset_pairs(k, a, false, true);
}
Reply cmd_hsetnx(Keys& k, const Args& a) {
  return hset_pairs(k, a, true, false);
}

Reply cmd_hget(Keys& k, const Args& a) {
  TypedAt t = typed_at(k, a[1], kHash);
  if (t.error) return error_reply(t);
  std::string v;
  if (!t.live || !get_element(k, t.rec, a[2], &v)) return Reply::null();
  return Reply::bulk(std::move(v));
}

Reply cmd_hmget(Keys& k, const Args& a) {
  TypedAt t = typed_at(k, a[1], kHash);
  if (t.error) return error_reply(t);
  std::vector<Reply> out;
  for (size_t i = 2; i < a.size(); ++i) {
    std::string v;
    out.push_back(t.live && get_element(k, t.rec, a[i], &v) ? Reply::bulk(std::move(v))
                                                            : Reply::null());
  }
  return Reply::array(std::move(out));
}

Reply hash_listing(Keys& k, const Args& a, bool fields, bool values) {
  TypedAt t = typed_at(k, a[1], kHash);
  if (t.error) return error_reply(t);
  std::vector<Reply> out;
  if (t.live) {
    for (auto& [f, v] : elements(k, t.rec)) {
      if (fields) out.push_back(Reply::bulk(std::move(f)));
      if (values) out.push_back(Reply::bulk(std::move(v)));
    }
  }
  return fields && values ? Reply::map(std::move(out)) : Reply::array(std::move(out));
}
Reply cmd_hgetall(Keys& k, const Args& a) {
  return hash_listing(k, a, true, true);
}
Reply cmd_hkeys(Keys& k, const Args& a) {
  return hash_listing(k, a, true, false);
}
Reply cmd_hvals(Keys& k, const Args& a) {
  return hash_listing(k, a, false, true);
}

Reply cmd_hstrlen(Keys& k, const Args& a) {
  TypedAt t = typed_at(k, a[1], kHash);
  if (t.error) return error_reply(t);
  std::string v;
  if (!t.live || !get_element(k, t.rec, a[2], &v)) return Reply::integer_of(0);
  return Reply::integer_of(static_cast<int64_t>(v.size()));
}

Reply cmd_hincrby(Keys& k, const Args& a) {
  int64_t by = 0;
  if (!parse_int64(a[3], &by)) return Reply::error(errors::kNotInteger);
  TypedAt t = typed_at(k, a[1], kHash, true);
  if (t.error) return error_reply(t);
  const std::string ek = element_key(t.rec.version, a[2]);
  std::string v;
  int64_t cur = 0;
  bool exists = k.store().get_element(ek, &v);
  if (exists && !parse_int64(v, &cur)) return Reply::error("ERR hash value is not an integer");
  if ((by > 0 && cur > std::numeric_limits<int64_t>::max() - by) ||
      (by < 0 && cur < std::numeric_limits<int64_t>::min() - by))
    return Reply::error(errors::kOverflow);
  cur += by;
  k.store().put_element(ek, std::to_string(cur));
  if (!exists) ++t.rec.size;
  save_collection(k, a[1], t.rec);
  return Reply::integer_of(cur);
}

Reply cmd_hincrbyfloat(Keys& k, const Args& a) {
  long double by = 0;
  if (!parse_long_double(a[3], &by)) return Reply::error(errors::kNotFloat);
  if (std::isnan(by) || std::isinf(by)) return Reply::error("ERR value is NaN or Infinity");
  TypedAt t = typed_at(k, a[1], kHash, true);
  if (t.error) return error_reply(t);
  const std::string ek = element_key(t.rec.version, a[2]);
  std::string v;
  long double cur = 0;
  bool exists = k.store().get_element(ek, &v);
  if (exists && !parse_long_double(v, &cur)) return Reply::error("ERR hash value is not a float");
  cur += by;
  if (std::isnan(cur) || std::isinf(cur)) return Reply::error(errors::kNanOrInfinity);
  std::string text = format_long_double(cur);
  k.store().put_element(ek, text);
  if (!exists) ++t.rec.size;
  save_collection(k, a[1], t.rec);
  return Reply::bulk(std::move(text));
}

// ---- sets ----------------------------------------------------------------------------------

Reply cmd_sadd(Keys& k, const Args& a) {
  TypedAt t = typed_at(k, a[1], kSet, true);
  if (t.error) return error_reply(t);
  int64_t added = 0;
  std::string v;
  for (size_t i = 2; i < a.size(); ++i) {
    const std::string ek = element_key(t.rec.version, a[i]);
    if (!k.store().get_element(ek, &v)) {
      k.store().put_element(ek, "");
      ++t.rec.size;
      ++added;
    }
  }
  if (added > 0) save_collection(k, a[1], t.rec);
  return Reply::integer_of(added);
}

// The members of a set key, or the error; absent keys are empty sets.
std::optional<Reply> members_of(Keys& k, const std::string& key, std::set<std::string>* out) {
  TypedAt t = typed_at(k, key, kSet);
  if (t.error) return t.error;
  out->clear();
  if (t.live) {
    for (auto& [m, v] : elements(k, t.rec))
      out->insert(std::move(m));
  }
  return std::nullopt;
}

Reply set_reply(const std::set<std::string>& members) {
  std::vector<Reply> out;
  out.reserve(members.size());
  for (const std::string& m : members)
    out.push_back(Reply::bulk(m));
  return Reply::set_of(std::move(out));
}

Reply cmd_smembers(Keys& k, const Args& a) {
  std::set<std::string> m;
  if (auto e = members_of(k, a[1], &m)) return *e;
  return set_reply(m);
}

Reply cmd_smismember(Keys& k, const Args& a) {
  TypedAt t = typed_at(k, a[1], kSet);
  if (t.error) return error_reply(t);
  std::vector<Reply> out;
  std::string v;
  for (size_t i = 2; i < a.size(); ++i)
    out.push_back(Reply::integer_of(t.live && get_element(k, t.rec, a[i], &v) ? 1 : 0));
  return Reply::array(std::move(out));
}

// A member picked at random, as every replica picks it: the first at or after a random point
// of the member space (or the first of all).
std::string pick_member(Keys& k, const Record& rec, uint64_t* seed) {
  *seed = mix(*seed);
  std::string point;
  base::put_u64_be(&point, *seed);
  const std::string prefix = element_key(rec.version);
  Pairs got;
  k.store().scan_elements(prefix, prefix + point, 1, &got);
  if (got.empty()) k.store().scan_elements(prefix, "", 1, &got);
  return got.empty() ? std::string() : got[0].first.substr(prefix.size());
}

Reply cmd_spop(Keys& k, const Args& a) {
  if (a.size() > 3) return Reply::error(errors::kSyntax);
  int64_t count = 1;
  bool with_count = a.size() == 3;
  if (with_count && (!parse_int64(a[2], &count) || count < 0)) return count_out_of_range();
  TypedAt t = typed_at(k, a[1], kSet);
  if (t.error) return error_reply(t);
  if (!t.live) return with_count ? Reply::set_of({}) : Reply::null();
  uint64_t seed = mix(k.seed());
  std::vector<Reply> out;
  for (int64_t i = 0; i < count && t.rec.size > 0; ++i) {
    std::string m = pick_member(k, t.rec, &seed);
    if (m.empty() && !get_element(k, t.rec, m, &m)) break;  // a size its elements do not match
    k.store().del_element(element_key(t.rec.version, m));
    --t.rec.size;
    out.push_back(Reply::bulk(std::move(m)));
  }
  save_collection(k, a[1], t.rec);
  if (!with_count) return out.empty() ? Reply::null() : std::move(out[0]);
  return Reply::set_of(std::move(out));
}

// SRANDMEMBER key [count], HRANDFIELD key [count [WITHVALUES]]: random elements, picked with
// the command's seed (a write's is the same on every replica; each read has its own).
Reply random_elements(Keys& k, const Args& a, uint8_t type) {
  const bool hash = type == kHash;
  const bool with_values = hash && a.size() == 4 && equals_ci(a[3], "withvalues");
  if (a.size() > (hash ? 4u : 3u) || (a.size() == 4 && !with_values))
    return Reply::error(errors::kSyntax);
  int64_t count = 1;
  bool with_count = a.size() >= 3;
  if (with_count && !parse_int64(a[2], &count)) return Reply::error(errors::kNotInteger);
  if (count == std::numeric_limits<int64_t>::min() ||
      (with_values && count < -(std::numeric_limits<int64_t>::max() / 2)))
    return count_out_of_range();
  TypedAt t = typed_at(k, a[1], type);
  if (t.error) return error_reply(t);
  if (!t.live) return with_count ? Reply::array() : Reply::null();
  Pairs all = elements(k, t.rec);
  if (all.empty()) return with_count ? Reply::array() : Reply::null();
  uint64_t seed = mix(k.seed());
  if (!with_count) {
    seed = mix(seed);
    return Reply::bulk(all[seed % all.size()].first);
  }
  std::vector<Reply> out;
  auto add = [&](const std::pair<std::string, std::string>& e) {
    out.push_back(Reply::bulk(e.first));
    if (with_values) out.push_back(Reply::bulk(e.second));
  };
  if (count < 0) {
    // Repeats allowed.
    for (int64_t i = 0; i < -count && i < 1'000'000; ++i) {
      seed = mix(seed);
      add(all[seed % all.size()]);
    }
    return with_values ? Reply::pairs(std::move(out)) : Reply::array(std::move(out));
  }
  // Distinct: a partial shuffle.
  size_t n = std::min<size_t>(static_cast<size_t>(count), all.size());
  for (size_t i = 0; i < n; ++i) {
    seed = mix(seed);
    size_t j = i + seed % (all.size() - i);
    std::swap(all[i], all[j]);
    add(all[i]);
  }
  return with_values ? Reply::pairs(std::move(out)) : Reply::array(std::move(out));
}
Reply cmd_srandmember(Keys& k, const Args& a) {
  return random_elements(k, a, kSet);
}
Reply cmd_hrandfield(Keys& k, const Args& a) {
  return random_elements(k, a, kHash);
}

Reply cmd_smove(Keys& k, const Args& a) {
  TypedAt src = typed_at(k, a[1], kSet);
  if (!src.error && !src.live) return Reply::integer_of(0);  // as Redis: before any type check
  if (src.error) return error_reply(src);
  TypedAt dst = typed_at(k, a[2], kSet, true);
  if (dst.error) return error_reply(dst);
  std::string v;
  if (!get_element(k, src.rec, a[3], &v)) return Reply::integer_of(0);
  if (a[1] == a[2]) return Reply::integer_of(1);
  k.store().del_element(element_key(src.rec.version, a[3]));
  --src.rec.size;
  save_collection(k, a[1], src.rec);
  if (!get_element(k, dst.rec, a[3], &v)) {
    k.store().put_element(element_key(dst.rec.version, a[3]), "");
    ++dst.rec.size;
    save_collection(k, a[2], dst.rec);
  }
  return Reply::integer_of(1);
}

enum class SetOp { kInter, kUnion, kDiff };

// The result of the operation over the sets named by a[first..], or the error.
std::optional<Reply> combine(Keys& k, const Args& a, size_t first, size_t last, SetOp op,
                             std::set<std::string>* out) {
  out->clear();
  for (size_t i = first; i < last; ++i) {
    std::set<std::string> m;
    if (auto e = members_of(k, a[i], &m)) return e;
    if (i == first) {
      *out = std::move(m);
      continue;
    }
    if (op == SetOp::kUnion) {
      out->insert(m.begin(), m.end());
    } else {
      for (auto it = out->begin(); it != out->end();) {
        bool in = m.contains(*it);
        if ((op == SetOp::kInter && !in) || (op == SetOp::kDiff && in)) {
          it = out->erase(it);
        } else {
          ++it;
        }
      }
    }
  }
  return std::nullopt;
}

Reply set_algebra(Keys& k, const Args& a, SetOp op) {
  std::set<std::string> r;
  if (auto e = combine(k, a, 1, a.size(), op, &r)) return *e;
  return set_reply(r);
}
Reply cmd_sinter(Keys& k, const Args& a) {
  return set_algebra(k, a, SetOp::kInter);
}
Reply cmd_sunion(Keys& k, const Args& a) {
  return set_algebra(k, a, SetOp::kUnion);
}
Reply cmd_sdiff(Keys& k, const Args& a) {
  return set_algebra(k, a, SetOp::kDiff);
}

Reply set_algebra_store(Keys& k, const Args& a, SetOp op) {
  std::set<std::string> r;
  if (auto e = combine(k, a, 2, a.size(), op, &r)) return *e;
  k.remove(a[1]);
  if (!r.empty()) {
    Record rec;
    rec.type = kSet;
    rec.version = k.new_version();
    rec.size = r.size();
    for (const std::string& m : r)
      k.store().put_element(element_key(rec.version, m), "");
    k.save(a[1], rec);
  }
  return Reply::integer_of(static_cast<int64_t>(r.size()));
}
Reply cmd_sinterstore(Keys& k, const Args& a) {
  return set_algebra_store(k, a, SetOp::kInter);
}
Reply cmd_sunionstore(Keys& k, const Args& a) {
  return set_algebra_store(k, a, SetOp::kUnion);
}
Reply cmd_sdiffstore(Keys& k, const Args& a) {
  return set_algebra_store(k, a, SetOp::kDiff);
}

Reply cmd_sintercard(Keys& k, const Args& a) {
  int64_t n = 0;
  if (!parse_int64(a[1], &n) || n <= 0) return Reply::error("ERR numkeys should be greater than 0");
  if (static_cast<size_t>(n) > a.size() - 2)
    return Reply::error("ERR Number of keys can't be greater than number of args");
  int64_t limit = 0;
  size_t end = 2 + static_cast<size_t>(n);
  if (end < a.size()) {
    if (end + 2 != a.size() || !equals_ci(a[end], "limit")) return Reply::error(errors::kSyntax);
    if (!parse_int64(a[end + 1], &limit) || limit < 0)
      return Reply::error("ERR LIMIT can't be negative");
  }
  std::set<std::string> r;
  if (auto e = combine(k, a, 2, end, SetOp::kInter, &r)) return *e;
  int64_t card = static_cast<int64_t>(r.size());
  return Reply::integer_of(limit > 0 ? std::min(card, limit) : card);
}

// ---- lists ---------------------------------------------------------------------------------

std::string list_key(const Record& rec, int64_t pos) {
  return element_key(rec.version, position_key(pos));
}

// Redis's index: negative counts from the end; false past either end.
bool list_index(const Record& rec, int64_t index, int64_t* pos) {
  int64_t n = static_cast<int64_t>(rec.size);
  if (index < 0) index += n;
  if (index < 0 || index >= n) return false;
  *pos = rec.head + index;
  return true;
}

Reply push(Keys& k, const Args& a, bool left, bool only_existing) {
  TypedAt t = typed_at(k, a[1], kList, !only_existing);
  if (t.error) return error_reply(t);
  if (only_existing && !t.live) return Reply::integer_of(0);
  for (size_t i = 2; i < a.size(); ++i) {
    int64_t pos = 0;
    if (left) {
      pos = --t.rec.head;
    } else {
      pos = t.rec.head + static_cast<int64_t>(t.rec.size);
    }
    k.store().put_element(list_key(t.rec, pos), a[i]);
    ++t.rec.size;
  }
  save_collection(k, a[1], t.rec);
  return Reply::integer_of(static_cast<int64_t>(t.rec.size));
}
Reply cmd_lpush(Keys& k, const Args& a) {
  return push(k, a, true, false);
}
Reply cmd_rpush(Keys& k, const Args& a) {
  return push(k, a, false, false);
}
Reply cmd_lpushx(Keys& k, const Args& a) {
  return push(k, a, true, true);
}
Reply cmd_rpushx(Keys& k, const Args& a) {
  return push(k, a, false, true);
}

// Takes one element off an end of a live list (not saved).
std::string take(Keys& k, Record& rec, bool left) {
  int64_t pos = left ? rec.head : rec.head + static_cast<int64_t>(rec.size) - 1;
  std::string v;
  const std::string ek = list_key(rec, pos);
  (void)k.store().get_element(ek, &v);
  k.store().del_element(ek);
  if (left) ++rec.head;
  --rec.size;
  return v;
}

Reply pop(Keys& k, const Args& a, bool left) {
  if (a.size() > 3) return wrong_args(a[0]);
  bool with_count = a.size() == 3;
  int64_t count = 1;
  if (with_count && (!parse_int64(a[2], &count) || count < 0)) return count_out_of_range();
  TypedAt t = typed_at(k, a[1], kList);
  if (t.error) return error_reply(t);
  if (!t.live) return with_count ? Reply::null_array() : Reply::null();
  std::vector<Reply> out;
  for (int64_t i = 0; i < count && t.rec.size > 0; ++i)
    out.push_back(Reply::bulk(take(k, t.rec, left)));
  save_collection(k, a[1], t.rec);
  if (!with_count) return std::move(out[0]);
  return Reply::array(std::move(out));
}
Reply cmd_lpop(Keys& k, const Args& a) {
  return pop(k, a, true);
}
Reply cmd_rpop(Keys& k, const Args& a) {
  return pop(k, a, false);
}

Reply cmd_lindex(Keys& k, const Args& a) {
  int64_t index = 0;
  if (!parse_int64(a[2], &index)) return Reply::error(errors::kNotInteger);
  TypedAt t = typed_at(k, a[1], kList);
  if (t.error) return error_reply(t);
  int64_t pos = 0;
  std::string v;
  if (!t.live || !list_index(t.rec, index, &pos) ||
      !k.store().get_element(list_key(t.rec, pos), &v))
    return Reply::null();
  return Reply::bulk(std::move(v));
}

// Redis's range arithmetic: [*start, *stop] within [0, n), false if empty.
bool clamp_range(int64_t n, int64_t* start, int64_t* stop) {
  if (*start < 0) *start += n;
  if (*stop < 0) *stop += n;
  if (*start < 0) *start = 0;
  if (*start > *stop || *start >= n) return false;
  if (*stop >= n) *stop = n - 1;
  return true;
}

Reply cmd_lrange(Keys& k, const Args& a) {
  int64_t start = 0, stop = 0;
  if (!parse_int64(a[2], &start) || !parse_int64(a[3], &stop))
    return Reply::error(errors::kNotInteger);
  TypedAt t = typed_at(k, a[1], kList);
  if (t.error) return error_reply(t);
  std::vector<Reply> out;
  if (t.live && clamp_range(static_cast<int64_t>(t.rec.size), &start, &stop)) {
    Pairs got;
    const std::string prefix = element_key(t.rec.version);
    k.store().scan_elements(prefix, list_key(t.rec, t.rec.head + start),
                            static_cast<size_t>(stop - start + 1), &got);
    for (auto& [key, v] : got)
      out.push_back(Reply::bulk(std::move(v)));
  }
  return Reply::array(std::move(out));
}

Reply cmd_lset(Keys& k, const Args& a) {
  int64_t index = 0;
  if (!parse_int64(a[2], &index)) return Reply::error(errors::kNotInteger);
  TypedAt t = typed_at(k, a[1], kList);
  if (t.error) return error_reply(t);
  if (!t.live) return Reply::error(errors::kNoSuchKey);
  int64_t pos = 0;
  if (!list_index(t.rec, index, &pos)) return Reply::error("ERR index out of range");
  k.store().put_element(list_key(t.rec, pos), a[3]);
  k.save(a[1], t.rec);  // the key's last write (WATCH)
  return Reply::ok();
}

Reply cmd_ltrim(Keys& k, const Args& a) {
  int64_t start = 0, stop = 0;
  if (!parse_int64(a[2], &start) || !parse_int64(a[3], &stop))
    return Reply::error(errors::kNotInteger);
  TypedAt t = typed_at(k, a[1], kList);
  if (t.error) return error_reply(t);
  if (!t.live) return Reply::ok();
  int64_t n = static_cast<int64_t>(t.rec.size);
  if (!clamp_range(n, &start, &stop)) {
    k.remove(a[1]);
    return Reply::ok();
  }
  for (int64_t i = 0; i < start; ++i)
    k.store().del_element(list_key(t.rec, t.rec.head + i));
  for (int64_t i = stop + 1; i < n; ++i)
    k.store().del_element(list_key(t.rec, t.rec.head + i));
  t.rec.head += start;
  t.rec.size = static_cast<uint64_t>(stop - start + 1);
  save_collection(k, a[1], t.rec);
  return Reply::ok();
}

// Writes `values` as the whole list under a new version (the old one's elements go).
void rewrite(Keys& k, const std::string& key, Record rec, const std::vector<std::string>& values) {
  rec.version = k.new_version();
  rec.head = 0;
  rec.size = values.size();
  for (size_t i = 0; i < values.size(); ++i)
    k.store().put_element(list_key(rec, static_cast<int64_t>(i)), values[i]);
  save_collection(k, key, rec);
}

std::vector<std::string> list_values(Keys& k, const Record& rec) {
  std::vector<std::string> out;
  for (auto& [pos, v] : elements(k, rec))
    out.push_back(std::move(v));
  return out;
}

Reply cmd_lrem(Keys& k, const Args& a) {
  int64_t count = 0;
  if (!parse_int64(a[2], &count)) return Reply::error(errors::kNotInteger);
  TypedAt t = typed_at(k, a[1], kList);
  if (t.error) return error_reply(t);
  if (!t.live) return Reply::integer_of(0);
  std::vector<std::string> values = list_values(k, t.rec);
  std::vector<bool> drop(values.size(), false);
  int64_t removed = 0;
  int64_t limit = count == 0 || count == std::numeric_limits<int64_t>::min()
                      ? std::numeric_limits<int64_t>::max()
                      : std::abs(count);
  if (count >= 0) {
    for (size_t i = 0; i < values.size() && removed < limit; ++i) {
      if (values[i] == a[3]) drop[i] = true, ++removed;
    }
  } else {
    for (size_t i = values.size(); i-- > 0 && removed < limit;) {
      if (values[i] == a[3]) drop[i] = true, ++removed;
    }
  }
  if (removed == 0) return Reply::integer_of(0);
  std::vector<std::string> kept;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!drop[i]) kept.push_back(std::move(values[i]));
  }
  rewrite(k, a[1], t.rec, kept);
  return Reply::integer_of(removed);
}

Reply cmd_linsert(Keys& k, const Args& a) {
  bool before = equals_ci(a[2], "before");
  if (!before && !equals_ci(a[2], "after")) return Reply::error(errors::kSyntax);
  TypedAt t = typed_at(k, a[1], kList);
  if (t.error) return error_reply(t);
  if (!t.live) return Reply::integer_of(0);
  std::vector<std::string> values = list_values(k, t.rec);
  auto it = std::find(values.begin(), values.end(), a[3]);
  if (it == values.end()) return Reply::integer_of(-1);
  values.insert(before ? it : it + 1, a[4]);
  rewrite(k, a[1], t.rec, values);
  return Reply::integer_of(static_cast<int64_t>(values.size()));
}

Reply cmd_lpos(Keys& k, const Args& a) {
  int64_t rank = 1, count = -1, maxlen = 0;
  for (size_t i = 3; i < a.size(); i += 2) {
    if (i + 1 >= a.size()) return Reply::error(errors::kSyntax);
    int64_t v = 0;
    if (!parse_int64(a[i + 1], &v)) return Reply::error(errors::kNotInteger);
    if (equals_ci(a[i], "rank")) {
      if (v == 0 || v == std::numeric_limits<int64_t>::min())
        return Reply::error(
            "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... "
            "or use negative to start from the end of the list");
      rank = v;
    } else if (equals_ci(a[i], "count")) {
      if (v < 0) return Reply::error("ERR COUNT can't be negative");
      count = v;
    } else if (equals_ci(a[i], "maxlen")) {
      if (v < 0) return Reply::error("ERR MAXLEN can't be negative");
      maxlen = v;
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  TypedAt t = typed_at(k, a[1], kList);
  if (t.error) return error_reply(t);
  std::vector<Reply> found;
  if (t.live) {
    std::vector<std::string> values = list_values(k, t.rec);
    int64_t n = static_cast<int64_t>(values.size());
    int64_t skip = std::abs(rank) - 1;
    int64_t want = count < 0 ? 1 : (count == 0 ? n : count);
    for (int64_t step = 0; step < n && (maxlen == 0 || step < maxlen); ++step) {
      int64_t i = rank > 0 ? step : n - 1 - step;
      if (values[static_cast<size_t>(i)] != a[2]) continue;
      if (skip > 0) {
        --skip;
        continue;
      }
      found.push_back(Reply::integer_of(i));
      if (static_cast<int64_t>(found.size()) >= want) break;
    }
  }
  if (count >= 0) return Reply::array(std::move(found));
  return found.empty() ? Reply::null() : std::move(found[0]);
}

Reply move_between(Keys& k, const std::string& from, const std::string& to, bool from_left,
                   bool to_left) {
  // As Redis: the source first (a missing one answers nil whatever the destination is).
  TypedAt src = typed_at(k, from, kList);
  if (src.error) return error_reply(src);
  if (!src.live) return Reply::null();
  if (from == to) {
    // A rotation in place: the list (and its TTL) stays.
    std::string v = take(k, src.rec, from_left);
    int64_t pos = to_left ? --src.rec.head : src.rec.head + static_cast<int64_t>(src.rec.size);
    k.store().put_element(list_key(src.rec, pos), v);
    ++src.rec.size;
    save_collection(k, from, src.rec);
    return Reply::bulk(std::move(v));
  }
  TypedAt dst = typed_at(k, to, kList, true);
  if (dst.error) return error_reply(dst);
  std::string v = take(k, src.rec, from_left);
  save_collection(k, from, src.rec);
  int64_t pos = to_left ? --dst.rec.head : dst.rec.head + static_cast<int64_t>(dst.rec.size);
  k.store().put_element(list_key(dst.rec, pos), v);
  ++dst.rec.size;
  save_collection(k, to, dst.rec);
  return Reply::bulk(std::move(v));
}

Reply cmd_lmove(Keys& k, const Args& a) {
  auto side = [](const std::string& s, bool* left) {
    if (equals_ci(s, "left")) {
      *left = true;
      return true;
    }
    *left = false;
    return equals_ci(s, "right");
  };
  bool from_left = false, to_left = false;
  if (!side(a[3], &from_left) || !side(a[4], &to_left)) return Reply::error(errors::kSyntax);
  return move_between(k, a[1], a[2], from_left, to_left);
}

Reply cmd_rpoplpush(Keys& k, const Args& a) {
  return move_between(k, a[1], a[2], false, true);
}

// ---- HSCAN, SSCAN -----------------------------------------------------------------------

// HSCAN / SSCAN key cursor [MATCH pattern] [COUNT n]. The cursor is stateless: the first 6
// bytes of the element to go on from, then 4 bits of 1 (so it is never 0, and fits the 53 bits
// of clients that read numbers as doubles). Elements sharing those bytes with the next one come
// again (SCAN may repeat, never miss), and a reply takes every element of a 6-byte prefix it
// starts, so a scan always moves on.
Reply scan_collection(Keys& k, const Args& a, uint8_t type) {
  uint64_t cursor = 0;
  if (a[2].empty() || a[2].size() > 20 ||
      !std::all_of(a[2].begin(), a[2].end(), [](char c) { return c >= '0' && c <= '9'; }))
    return Reply::error("ERR invalid cursor");
  for (char c : a[2]) {
    uint64_t next = cursor * 10 + static_cast<uint64_t>(c - '0');
    if (cursor > (std::numeric_limits<uint64_t>::max() - 9) / 10 && next / 10 != cursor)
      return Reply::error("ERR invalid cursor");
    cursor = next;
  }
  std::string pattern;
  int64_t count = 10;
  for (size_t i = 3; i < a.size(); i += 2) {
    if (i + 1 >= a.size()) return Reply::error(errors::kSyntax);
    if (equals_ci(a[i], "match")) {
      pattern = a[i + 1];
    } else if (equals_ci(a[i], "count")) {
      if (!parse_int64(a[i + 1], &count)) return Reply::error(errors::kNotInteger);
      if (count < 1) return Reply::error(errors::kSyntax);
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  TypedAt t = typed_at(k, a[1], type);
  if (t.error) return error_reply(t);
  if (!t.live) return Reply::array({Reply::bulk("0"), Reply::array()});
  const std::string prefix = element_key(t.rec.version);
  std::string from;
  if (cursor != 0) {
    from = prefix;
    for (int shift = 44; shift >= 4; shift -= 8)
      from.push_back(static_cast<char>((cursor >> shift) & 0xff));
    while (from.size() > prefix.size() && from.back() == '\0')
      from.pop_back();
  }
  constexpr size_t kCursorBytes = 6;
  Pairs got;
  k.store().scan_elements(prefix, from, static_cast<size_t>(count) + 1, &got);
  size_t take_n = got.size();
  uint64_t next = 0;
  if (got.size() > static_cast<size_t>(count)) {
    // Go on from the element after the last taken, unless it shares the first one's bytes.
    auto head = [&](const std::string& key) {
      return std::string_view(key).substr(prefix.size(), kCursorBytes);
    };
    take_n = static_cast<size_t>(count);
    if (head(got[take_n].first) == head(got[0].first)) {
      // Every element with this prefix, and the first one after it.
      for (;;) {
        Pairs more;
        k.store().scan_elements(prefix, got.back().first + '\0', 256, &more);
        if (more.empty()) break;
        for (auto& kv : more)
          got.push_back(std::move(kv));
        if (head(got.back().first) != head(got[0].first)) break;
      }
      take_n = 0;
      while (take_n < got.size() && head(got[take_n].first) == head(got[0].first))
        ++take_n;
    }
    if (take_n < got.size()) {
      std::string_view h = head(got[take_n].first);
      for (size_t i = 0; i < kCursorBytes; ++i)
        next = (next << 8) | (i < h.size() ? static_cast<uint8_t>(h[i]) : 0);
      next = (next << 4) | 1;
    }
  }
  std::vector<Reply> out;
  for (size_t i = 0; i < take_n; ++i) {
    std::string sub = got[i].first.substr(prefix.size());
    if (!pattern.empty() && !glob_match(pattern, sub)) continue;
    out.push_back(Reply::bulk(std::move(sub)));
    if (type == kHash) out.push_back(Reply::bulk(std::move(got[i].second)));
  }
  return Reply::array({Reply::bulk(std::to_string(next)), Reply::array(std::move(out))});
}
Reply cmd_hscan(Keys& k, const Args& a) {
  return scan_collection(k, a, kHash);
}
Reply cmd_sscan(Keys& k, const Args& a) {
  return scan_collection(k, a, kSet);
}

// ---- popping from the first of several lists, and the blocking forms ----------------------
// The state machine never waits: BLPOP and kin take what is there, or answer a null array
// (the connection then waits for a write to the keys and runs them again; inside MULTI the
// null array is the answer, as in Redis).

// The first key of keys[] holding a list; an error if one holds another type.
std::optional<Reply> first_list(Keys& k, const std::vector<std::string_view>& keys,
                                std::string* key, TypedAt* found) {
  for (std::string_view name : keys) {
    TypedAt t = typed_at(k, name, kList);
    if (t.error) return error_reply(t);
    if (t.live) {
      *key = name;
      *found = std::move(t);
      return std::nullopt;
    }
  }
  key->clear();
  return std::nullopt;
}

// BLPOP / BRPOP key [key ...] timeout: [key, element] from the first list that has one.
Reply blocking_pop(Keys& k, const Args& a, bool left) {
  if (auto e = check_block_timeout(a.back())) return *e;
  std::vector<std::string_view> keys(a.begin() + 1, a.end() - 1);
  std::string key;
  TypedAt t;
  if (auto e = first_list(k, keys, &key, &t)) return *e;
  if (key.empty()) return Reply::null_array();
  std::string v = take(k, t.rec, left);
  save_collection(k, key, t.rec);
  return Reply::array({Reply::bulk(key), Reply::bulk(std::move(v))});
}
Reply cmd_blpop(Keys& k, const Args& a) {
  return blocking_pop(k, a, true);
}
Reply cmd_brpop(Keys& k, const Args& a) {
  return blocking_pop(k, a, false);
}

Reply cmd_brpoplpush(Keys& k, const Args& a) {
  if (auto e = check_block_timeout(a[3])) return *e;
  return move_between(k, a[1], a[2], false, true);
}

Reply cmd_blmove(Keys& k, const Args& a) {
  if (auto e = check_block_timeout(a[5])) return *e;
  return cmd_lmove(k, Args(a.begin(), a.end() - 1));
}

// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT n], from a[at] (BLMPOP has its timeout first):
// [key, [elements]] from the first list that has any.
Reply list_mpop(Keys& k, const Args& a, size_t at) {
  int64_t n = 0;
  if (!parse_int64(a[at], &n) || n <= 0)
    return Reply::error("ERR numkeys should be greater than 0");
  if (static_cast<uint64_t>(n) > a.size() - at - 1)
    return Reply::error("ERR Number of keys can't be greater than number of args");
  size_t i = at + 1 + static_cast<size_t>(n);
  if (i >= a.size()) return Reply::error(errors::kSyntax);
  bool left = false;
  if (equals_ci(a[i], "left")) {
    left = true;
  } else if (!equals_ci(a[i], "right")) {
    return Reply::error(errors::kSyntax);
  }
  int64_t count = 1;
  bool counted = false;
  for (++i; i < a.size(); ++i) {
    if (equals_ci(a[i], "count") && i + 1 < a.size() && !counted) {
      if (!parse_int64(a[++i], &count) || count <= 0)
        return Reply::error("ERR count should be greater than 0");
      counted = true;
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  std::vector<std::string_view> keys(a.begin() + static_cast<ptrdiff_t>(at) + 1,
                                     a.begin() + static_cast<ptrdiff_t>(at) + 1 + n);
  std::string key;
  TypedAt t;
  if (auto e = first_list(k, keys, &key, &t)) return *e;
  if (key.empty()) return Reply::null_array();
  std::vector<Reply> out;
  for (int64_t j = 0; j < count && t.rec.size > 0; ++j)
    out.push_back(Reply::bulk(take(k, t.rec, left)));
  save_collection(k, key, t.rec);
  return Reply::array({Reply::bulk(key), Reply::array(std::move(out))});
}
Reply cmd_lmpop(Keys& k, const Args& a) {
  return list_mpop(k, a, 1);
}
Reply cmd_blmpop(Keys& k, const Args& a) {
  if (auto e = check_block_timeout(a[1])) return *e;
  return list_mpop(k, a, 2);
}

}  // namespace

const std::vector<Entry>& collection_entries() {
  static const std::vector<Entry> table = {
      // Hashes.
      {{"hset", -4, kWrite, 1, 1, 1}, cmd_hset},
      {{"hmset", -4, kWrite, 1, 1, 1}, cmd_hmset},
      {{"hsetnx", 4, kWrite, 1, 1, 1}, cmd_hsetnx},
      {{"hget", 3, kReadOnly, 1, 1, 1}, cmd_hget},
      {{"hmget", -3, kReadOnly, 1, 1, 1}, cmd_hmget},
      {{"hgetall", 2, kReadOnly, 1, 1, 1}, cmd_hgetall},
      {{"hkeys", 2, kReadOnly, 1, 1, 1}, cmd_hkeys},
      {{"hvals", 2, kReadOnly, 1, 1, 1}, cmd_hvals},
      {{"hlen", 2, kReadOnly, 1, 1, 1}, cmd_hlen},
      {{"hexists", 3, kReadOnly, 1, 1, 1}, cmd_hexists},
      {{"hstrlen", 3, kReadOnly, 1, 1, 1}, cmd_hstrlen},
      {{"hdel", -3, kWrite, 1, 1, 1}, cmd_hdel},
      {{"hincrby", 4, kWrite, 1, 1, 1}, cmd_hincrby},
      {{"hincrbyfloat", 4, kWrite, 1, 1, 1}, cmd_hincrbyfloat},
      {{"hscan", -3, kReadOnly, 1, 1, 1}, cmd_hscan},
      {{"hrandfield", -2, kReadOnly, 1, 1, 1}, cmd_hrandfield},
      // Sets.
      {{"sadd", -3, kWrite, 1, 1, 1}, cmd_sadd},
      {{"srem", -3, kWrite, 1, 1, 1}, cmd_srem},
      {{"smembers", 2, kReadOnly, 1, 1, 1}, cmd_smembers},
      {{"sismember", 3, kReadOnly, 1, 1, 1}, cmd_sismember},
      {{"smismember", -3, kReadOnly, 1, 1, 1}, cmd_smismember},
      {{"scard", 2, kReadOnly, 1, 1, 1}, cmd_scard},
      {{"spop", -2, kWrite, 1, 1, 1}, cmd_spop},
      {{"srandmember", -2, kReadOnly, 1, 1, 1}, cmd_srandmember},
      {{"smove", 4, kWrite, 1, 2, 1}, cmd_smove},
      {{"sinter", -2, kReadOnly, 1, -1, 1}, cmd_sinter},
      {{"sunion", -2, kReadOnly, 1, -1, 1}, cmd_sunion},
      {{"sdiff", -2, kReadOnly, 1, -1, 1}, cmd_sdiff},
      {{"sinterstore", -3, kWrite, 1, -1, 1}, cmd_sinterstore},
      {{"sunionstore", -3, kWrite, 1, -1, 1}, cmd_sunionstore},
      {{"sdiffstore", -3, kWrite, 1, -1, 1}, cmd_sdiffstore},
      {{"sintercard", -3, kReadOnly, 2, -1, 1}, cmd_sintercard},
      {{"sscan", -3, kReadOnly, 1, 1, 1}, cmd_sscan},
      // Lists.
      {{"lpush", -3, kWrite, 1, 1, 1}, cmd_lpush},
      {{"rpush", -3, kWrite, 1, 1, 1}, cmd_rpush},
      {{"lpushx", -3, kWrite, 1, 1, 1}, cmd_lpushx},
      {{"rpushx", -3, kWrite, 1, 1, 1}, cmd_rpushx},
      {{"lpop", -2, kWrite, 1, 1, 1}, cmd_lpop},
      {{"rpop", -2, kWrite, 1, 1, 1}, cmd_rpop},
      {{"llen", 2, kReadOnly, 1, 1, 1}, cmd_llen},
      {{"lindex", 3, kReadOnly, 1, 1, 1}, cmd_lindex},
      {{"lrange", 4, kReadOnly, 1, 1, 1}, cmd_lrange},
      {{"lset", 4, kWrite, 1, 1, 1}, cmd_lset},
      {{"ltrim", 4, kWrite, 1, 1, 1}, cmd_ltrim},
      {{"lrem", 4, kWrite, 1, 1, 1}, cmd_lrem},
      {{"linsert", 5, kWrite, 1, 1, 1}, cmd_linsert},
      {{"lpos", -3, kReadOnly, 1, 1, 1}, cmd_lpos},
      {{"lmove", 5, kWrite, 1, 2, 1}, cmd_lmove},
      {{"rpoplpush", 3, kWrite, 1, 2, 1}, cmd_rpoplpush},
      {{"lmpop", -4, kWrite, 1, -1, 1}, cmd_lmpop},
      {{"blpop", -3, kWrite | kBlocking, 1, -2, 1}, cmd_blpop},
      {{"brpop", -3, kWrite | kBlocking, 1, -2, 1}, cmd_brpop},
      {{"brpoplpush", 4, kWrite | kBlocking, 1, 2, 1}, cmd_brpoplpush},
      {{"blmove", 6, kWrite | kBlocking, 1, 2, 1}, cmd_blmove},
      {{"blmpop", -5, kWrite | kBlocking, 1, -1, 1}, cmd_blmpop},
  };
  return table;
}

}  // namespace chorus::redis::internal
