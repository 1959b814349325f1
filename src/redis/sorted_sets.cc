// Sorted sets: a key record with version and size, and two element records per member:
//   'm' member            -> the score (8 bytes, the double's bits)
//   's' score' member     -> nothing (score' sorts as the score: the order of ranges)
// ZSCORE and ZADD read the first, ranges scan the second. A rank is found by counting from the
// lowest score (O(rank)), and the highest scores by a scan of the whole index: both fine for
// the sizes a group holds today, and the place to start when they grow.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "redis/records.h"

namespace chorus::redis::internal {

namespace {

using Args = std::vector<std::string>;

std::string score_bytes(double d) {
  std::string out;
  base::put_u64(&out, std::bit_cast<uint64_t>(d));
  return out;
}

double score_of(std::string_view bytes) {
  return bytes.size() == 8 ? std::bit_cast<double>(base::load_u64(bytes.data())) : 0.0;
}

// Bytes that sort as the doubles do (negative ones reversed).
std::string sortable(double d) {
  if (d == 0) d = 0;  // -0 and 0 are one score
  uint64_t bits = std::bit_cast<uint64_t>(d);
  bits = (bits & (uint64_t{1} << 63)) != 0 ? ~bits : bits ^ (uint64_t{1} << 63);
  std::string out;
  base::put_u64_be(&out, bits);
  return out;
}

double from_sortable(std::string_view b) {
  uint64_t bits = 0;
  for (size_t i = 0; i < 8; ++i)
    bits = (bits << 8) | static_cast<uint8_t>(b[i]);
  bits = (bits & (uint64_t{1} << 63)) != 0 ? bits ^ (uint64_t{1} << 63) : ~bits;
  return std::bit_cast<double>(bits);
}

std::string member_key(const Record& rec, std::string_view m) {
  return element_key(rec.version, "m" + std::string(m));
}
std::string index_key(const Record& rec, double score, std::string_view m) {
  return element_key(rec.version, "s" + sortable(score) + std::string(m));
}

// As Redis's strtod-based parsing: inf, -inf, +inf allowed, NaN refused.
bool parse_score(std::string_view s, double* out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  std::string z(s);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(z.c_str(), &end);
  if (end != z.c_str() + z.size() || std::isnan(v)) return false;
  if (errno == ERANGE && !std::isinf(v) && v != 0) return false;
  *out = v;
  return true;
}

// Redis 7.0 prints scores with %.17g (inf and -inf as such).
std::string format_score(double d) {
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", d);
  return buf;
}

Reply score_reply(double d) {
  return Reply::double_of(format_score(d));
}

struct Member {
  std::string member;
  double score = 0;
};

// Members in score order (then member order), from the lowest.
std::vector<Member> in_order(Keys& k, const Record& rec, size_t limit = SIZE_MAX) {
  std::vector<std::pair<std::string, std::string>> got;
  const std::string prefix = element_key(rec.version, "s");
  k.store().scan_elements(prefix, "", limit, &got);
  std::vector<Member> out;
  out.reserve(got.size());
  for (auto& [key, v] : got) {
    std::string_view rest = std::string_view(key).substr(prefix.size());
    if (rest.size() < 8) continue;
    out.push_back({std::string(rest.substr(8)), from_sortable(rest.substr(0, 8))});
  }
  return out;
}

bool score_of_member(Keys& k, const Record& rec, std::string_view m, double* score) {
  std::string v;
  if (!k.store().get_element(member_key(rec, m), &v)) return false;
  *score = score_of(v);
  return true;
}

void put_member(Keys& k, const Record& rec, std::string_view m, double score) {
  k.store().put_element(member_key(rec, m), score_bytes(score));
  k.store().put_element(index_key(rec, score, m), "");
}

void del_member(Keys& k, const Record& rec, std::string_view m, double score) {
  k.store().del_element(member_key(rec, m));
  k.store().del_element(index_key(rec, score, m));
}

// Members, and with their scores as RESP2 clients read them: member, score, member, score.
Reply members_reply(const std::vector<Member>& ms, bool with_scores) {
  std::vector<Reply> out;
  for (const Member& m : ms) {
    out.push_back(Reply::bulk(m.member));
    if (with_scores) out.push_back(score_reply(m.score));
  }
  return Reply::array(std::move(out));
}

// ---- commands ------------------------------------------------------------------------------

// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
Reply cmd_zadd(Keys& k, const Args& a) {
  Conditions cond;
  bool ch = false, incr = false;
  size_t i = 2;
  for (; i < a.size(); ++i) {
    if (cond.take(a[i])) {
      continue;
    } else if (equals_ci(a[i], "ch")) {
      ch = true;
    } else if (equals_ci(a[i], "incr")) {
      incr = true;
    } else {
      break;
    }
  }
  const bool nx = cond.nx, xx = cond.xx, gt = cond.gt, lt = cond.lt;
  size_t pairs = a.size() - i;
  if (pairs == 0 || pairs % 2 != 0) return Reply::error(errors::kSyntax);
  if (nx && xx) return Reply::error("ERR XX and NX options at the same time are not compatible");
  if ((gt && nx) || (lt && nx) || (gt && lt))
    return Reply::error("ERR GT, LT, and/or NX options at the same time are not compatible");
  if (incr && pairs != 2)
    return Reply::error("ERR INCR option supports a single increment-element pair");
  std::vector<double> scores;
  for (size_t j = i; j < a.size(); j += 2) {
    double d = 0;
    if (!parse_score(a[j], &d)) return Reply::error(errors::kNotFloat);
    scores.push_back(d);
  }
  TypedAt t = typed_at(k, a[1], kZset, true);
  if (t.error) return *t.error;
  int64_t added = 0, changed = 0;
  std::optional<double> incr_result;
  for (size_t j = i, n = 0; j < a.size(); j += 2, ++n) {
    const std::string& m = a[j + 1];
    double score = scores[n];
    double old = 0;
    bool exists = score_of_member(k, t.rec, m, &old);
    if ((nx && exists) || (xx && !exists)) continue;
    if (incr && exists) {
      score += old;
      if (std::isnan(score)) return Reply::error("ERR resulting score is not a number (NaN)");
    }
    if (exists && ((gt && score <= old) || (lt && score >= old))) continue;
    if (incr) incr_result = score;
    if (exists) {
      if (score == old) continue;
      del_member(k, t.rec, m, old);
      put_member(k, t.rec, m, score);
      ++changed;
    } else {
      put_member(k, t.rec, m, score);
      ++t.rec.size;
      ++added;
    }
  }
  save_collection(k, a[1], t.rec);
  if (incr) return incr_result ? score_reply(*incr_result) : Reply::null();
  return Reply::integer_of(ch ? added + changed : added);
}

Reply cmd_zincrby(Keys& k, const Args& a) {
  return cmd_zadd(k, {"zadd", a[1], "INCR", a[2], a[3]});
}

Reply cmd_zscore(Keys& k, const Args& a) {
  TypedAt t = typed_at(k, a[1], kZset);
  if (t.error) return *t.error;
  double s = 0;
  if (!t.live || !score_of_member(k, t.rec, a[2], &s)) return Reply::null();
  return score_reply(s);
}

Reply cmd_zmscore(Keys& k, const Args& a) {
  TypedAt t = typed_at(k, a[1], kZset);
  if (t.error) return *t.error;
  std::vector<Reply> out;
  for (size_t i = 2; i < a.size(); ++i) {
    double s = 0;
    out.push_back(t.live && score_of_member(k, t.rec, a[i], &s) ? score_reply(s) : Reply::null());
  }
  return Reply::array(std::move(out));
}

Reply cmd_zcard(Keys& k, const Args& a) {
  TypedAt t = typed_at(k, a[1], kZset);
  if (t.error) return *t.error;
  return Reply::integer_of(t.live ? static_cast<int64_t>(t.rec.size) : 0);
}

Reply cmd_zrem(Keys& k, const Args& a) {
  TypedAt t = typed_at(k, a[1], kZset);
  if (t.error) return *t.error;
  if (!t.live) return Reply::integer_of(0);
  int64_t removed = 0;
  for (size_t i = 2; i < a.size(); ++i) {
    double s = 0;
    if (!score_of_member(k, t.rec, a[i], &s)) continue;
    del_member(k, t.rec, a[i], s);
    --t.rec.size;
    ++removed;
  }
  if (removed > 0) save_collection(k, a[1], t.rec);
  return Reply::integer_of(removed);
}

// A score bound: "(1.5" excludes, "-inf" and "+inf" are the ends.
struct Bound {
  double value = 0;
  bool exclusive = false;
};
bool parse_bound(std::string_view s, Bound* b) {
  b->exclusive = !s.empty() && s[0] == '(';
  if (b->exclusive) s.remove_prefix(1);
  return parse_score(s, &b->value);
}
bool above(double v, const Bound& min) {
  return min.exclusive ? v > min.value : v >= min.value;
}
bool below(double v, const Bound& max) {
  return max.exclusive ? v < max.value : v <= max.value;
}

// ZRANGE key start stop [BYSCORE] [REV] [LIMIT offset count] [WITHSCORES], and the older forms
// (ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE) rewritten into it.
Reply zrange(Keys& k, const Args& a, size_t first_option, bool by_score, bool rev) {
  bool with_scores = false, limited = false;
  int64_t offset = 0, count = -1;
  for (size_t i = first_option; i < a.size(); ++i) {
    if (equals_ci(a[i], "withscores")) {
      with_scores = true;
    } else if (equals_ci(a[i], "byscore")) {
      by_score = true;
    } else if (equals_ci(a[i], "rev")) {
      rev = true;
    } else if (equals_ci(a[i], "limit") && i + 2 < a.size()) {
      if (!parse_int64(a[i + 1], &offset) || !parse_int64(a[i + 2], &count))
        return Reply::error(errors::kNotInteger);
      limited = true;
      i += 2;
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  if (limited && !by_score)
    return Reply::error(
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
  std::vector<Member> picked;
  if (by_score) {
    // ZRANGE ... BYSCORE REV takes max then min.
    Bound min, max;
    if (!parse_bound(rev ? a[3] : a[2], &min) || !parse_bound(rev ? a[2] : a[3], &max))
      return Reply::error("ERR min or max is not a float");
    TypedAt t = typed_at(k, a[1], kZset);
    if (t.error) return *t.error;
    if (!t.live) return Reply::array();
    std::vector<Member> all = in_order(k, t.rec);
    if (rev) std::reverse(all.begin(), all.end());
    int64_t skipped = 0;
    for (Member& m : all) {
      if (!above(m.score, min) || !below(m.score, max)) continue;
      if (offset > 0 && skipped < offset) {
        ++skipped;
        continue;
      }
      if (offset < 0) break;
      if (count >= 0 && static_cast<int64_t>(picked.size()) >= count) break;
      picked.push_back(std::move(m));
    }
  } else {
    int64_t start = 0, stop = 0;
    if (!parse_int64(a[2], &start) || !parse_int64(a[3], &stop))
      return Reply::error(errors::kNotInteger);
    TypedAt t = typed_at(k, a[1], kZset);
    if (t.error) return *t.error;
    if (!t.live) return Reply::array();
    int64_t n = static_cast<int64_t>(t.rec.size);
    if (start < 0) start += n;
    if (stop < 0) stop += n;
    if (start < 0) start = 0;
    if (start > stop || start >= n) return Reply::array();
    if (stop >= n) stop = n - 1;
    std::vector<Member> all =
        rev ? in_order(k, t.rec) : in_order(k, t.rec, static_cast<size_t>(stop + 1));
    if (rev) std::reverse(all.begin(), all.end());
    for (int64_t i = start; i <= stop && i < static_cast<int64_t>(all.size()); ++i)
      picked.push_back(std::move(all[static_cast<size_t>(i)]));
  }
  return members_reply(picked, with_scores);
}
Reply cmd_zrange(Keys& k, const Args& a) {
  return zrange(k, a, 4, false, false);
}
Reply cmd_zrevrange(Keys& k, const Args& a) {
  return zrange(k, a, 4, false, true);
}
Reply cmd_zrangebyscore(Keys& k, const Args& a) {
  return zrange(k, a, 4, true, false);
}
Reply cmd_zrevrangebyscore(Keys& k, const Args& a) {
  return zrange(k, a, 4, true, true);
}

Reply cmd_zcount(Keys& k, const Args& a) {
  Bound min, max;
  if (!parse_bound(a[2], &min) || !parse_bound(a[3], &max))
    return Reply::error("ERR min or max is not a float");
  TypedAt t = typed_at(k, a[1], kZset);
  if (t.error) return *t.error;
  int64_t n = 0;
  if (t.live) {
    for (const Member& m : in_order(k, t.rec))
      n += above(m.score, min) && below(m.score, max) ? 1 : 0;
  }
  return Reply::integer_of(n);
}

Reply rank(Keys& k, const Args& a, bool rev) {
  bool with_score = a.size() == 4;
  if (a.size() > 4 || (with_score && !equals_ci(a[3], "withscore")))
    return Reply::error(errors::kSyntax);
  TypedAt t = typed_at(k, a[1], kZset);
  if (t.error) return *t.error;
  double s = 0;
  if (!t.live || !score_of_member(k, t.rec, a[2], &s))
    return with_score ? Reply::null_array() : Reply::null();
  std::vector<Member> all = in_order(k, t.rec);
  int64_t r = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i].member == a[2]) {
      r = static_cast<int64_t>(rev ? all.size() - 1 - i : i);
      break;
    }
  }
  if (with_score) return Reply::array({Reply::integer_of(r), score_reply(s)});
  return Reply::integer_of(r);
}
Reply cmd_zrank(Keys& k, const Args& a) {
  return rank(k, a, false);
}
Reply cmd_zrevrank(Keys& k, const Args& a) {
  return rank(k, a, true);
}

Reply zpop(Keys& k, const Args& a, bool max) {
  if (a.size() > 3) return Reply::error(errors::kSyntax);
  int64_t count = 1;
  if (a.size() == 3 && (!parse_int64(a[2], &count) || count < 0))
    return Reply::error("ERR value is out of range, must be positive");
  TypedAt t = typed_at(k, a[1], kZset);
  if (t.error) return *t.error;
  if (!t.live) return Reply::array();
  std::vector<Member> all =
      max ? in_order(k, t.rec) : in_order(k, t.rec, static_cast<size_t>(count));
  if (max) std::reverse(all.begin(), all.end());
  std::vector<Member> popped;
  for (int64_t i = 0; i < count && i < static_cast<int64_t>(all.size()); ++i) {
    const Member& m = all[static_cast<size_t>(i)];
    del_member(k, t.rec, m.member, m.score);
    --t.rec.size;
    popped.push_back(m);
  }
  save_collection(k, a[1], t.rec);
  return members_reply(popped, true);
}
Reply cmd_zpopmin(Keys& k, const Args& a) {
  return zpop(k, a, false);
}
Reply cmd_zpopmax(Keys& k, const Args& a) {
  return zpop(k, a, true);
}

Reply remove_range(Keys& k, const Args& a, bool by_score) {
  TypedAt t = typed_at(k, a[1], kZset);
  Bound min, max;
  int64_t start = 0, stop = 0;
  if (by_score) {
    if (!parse_bound(a[2], &min) || !parse_bound(a[3], &max))
      return Reply::error("ERR min or max is not a float");
  } else if (!parse_int64(a[2], &start) || !parse_int64(a[3], &stop)) {
    return Reply::error(errors::kNotInteger);
  }
  if (t.error) return *t.error;
  if (!t.live) return Reply::integer_of(0);
  std::vector<Member> all = in_order(k, t.rec);
  int64_t n = static_cast<int64_t>(all.size());
  if (!by_score) {
    if (start < 0) start += n;
    if (stop < 0) stop += n;
    if (start < 0) start = 0;
    if (stop >= n) stop = n - 1;
  }
  int64_t removed = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Member& m = all[static_cast<size_t>(i)];
    bool in = by_score ? above(m.score, min) && below(m.score, max) : i >= start && i <= stop;
    if (!in) continue;
    del_member(k, t.rec, m.member, m.score);
    --t.rec.size;
    ++removed;
  }
  if (removed > 0) save_collection(k, a[1], t.rec);
  return Reply::integer_of(removed);
}
Reply cmd_zremrangebyrank(Keys& k, const Args& a) {
  return remove_range(k, a, false);
}
Reply cmd_zremrangebyscore(Keys& k, const Args& a) {
  return remove_range(k, a, true);
}

}  // namespace

const std::vector<Entry>& sorted_set_entries() {
  static const std::vector<Entry> table = {
      {{"zadd", -4, kWrite, 1, 1, 1}, cmd_zadd},
      {{"zincrby", 4, kWrite, 1, 1, 1}, cmd_zincrby},
      {{"zscore", 3, kReadOnly, 1, 1, 1}, cmd_zscore},
      {{"zmscore", -3, kReadOnly, 1, 1, 1}, cmd_zmscore},
      {{"zcard", 2, kReadOnly, 1, 1, 1}, cmd_zcard},
      {{"zrem", -3, kWrite, 1, 1, 1}, cmd_zrem},
      {{"zrange", -4, kReadOnly, 1, 1, 1}, cmd_zrange},
      {{"zrevrange", -4, kReadOnly, 1, 1, 1}, cmd_zrevrange},
      {{"zrangebyscore", -4, kReadOnly, 1, 1, 1}, cmd_zrangebyscore},
      {{"zrevrangebyscore", -4, kReadOnly, 1, 1, 1}, cmd_zrevrangebyscore},
      {{"zcount", 4, kReadOnly, 1, 1, 1}, cmd_zcount},
      {{"zrank", -3, kReadOnly, 1, 1, 1}, cmd_zrank},
      {{"zrevrank", -3, kReadOnly, 1, 1, 1}, cmd_zrevrank},
      {{"zpopmin", -2, kWrite, 1, 1, 1}, cmd_zpopmin},
      {{"zpopmax", -2, kWrite, 1, 1, 1}, cmd_zpopmax},
      {{"zremrangebyrank", 4, kWrite, 1, 1, 1}, cmd_zremrangebyrank},
      {{"zremrangebyscore", 4, kWrite, 1, 1, 1}, cmd_zremrangebyscore},
  };
  return table;
}

}  // namespace chorus::redis::internal
