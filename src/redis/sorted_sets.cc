// Sorted sets: a key record with version and size, and two element records per member:
//   'm' member            -> the score (8 bytes, the double's bits)
//   's' score' member     -> nothing (score' sorts as the score: the order of ranges)
// ZSCORE and ZADD read the first (ZSCAN walks it too), ranges scan the second. A rank is found by
// counting from the lowest score (O(rank)), and the highest scores by a scan of the whole index:
// both fine for the sizes a group holds today, and the place to start when they grow.
#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>

#include "redis/records.h"

namespace chorus::redis::internal {

namespace {

using Args = std::vector<std::string>;
using Pairs = std::vector<std::pair<std::string, std::string>>;

constexpr size_t kAll = std::numeric_limits<size_t>::max();

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

// As Redis's string2d: inf, -inf, +inf allowed; NaN, and a value past the doubles' range (or
// one that underflows to 0), refused.
bool parse_score(std::string_view s, double* out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  std::string z(s);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(z.c_str(), &end);
  if (end != z.c_str() + z.size() || std::isnan(v)) return false;
  if (errno == ERANGE && (std::isinf(v) || v == 0)) return false;
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
std::vector<Member> in_order(Keys& k, const Record& rec, size_t limit = kAll) {
  Pairs got;
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
  return with_scores ? Reply::pairs(std::move(out)) : Reply::array(std::move(out));
}

// Makes `key` a new sorted set of `ms` (distinct members), or removes it when `ms` is empty, as
// the *STORE commands do: the old value and its TTL go. Answers the new size.
Reply store_members(Keys& k, std::string_view key, const std::vector<Member>& ms) {
  if (ms.empty()) {
    k.remove(key);
    return Reply::integer_of(0);
  }
  Record rec;
  rec.type = kZset;
  rec.version = k.new_version();
  rec.size = ms.size();
  for (const Member& m : ms)
    put_member(k, rec, m.member, m.score);
  k.save(key, rec);
  return Reply::integer_of(static_cast<int64_t>(ms.size()));
}

// splitmix64's finalizer: a 64-bit value's bits well spread.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The state machine's random picks: splitmix64 from Keys::seed(), so that every replica running
// an entry picks alike (and a read picks alike within one millisecond).
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  // Uniform enough in [0, n), n > 0.
  size_t below(size_t n) { return static_cast<size_t>(mix64(state_ += 0x9e3779b97f4a7c15ULL) % n); }

 private:
  uint64_t state_;
};

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
  // As Redis, a ZADD that changed nothing writes nothing (WATCH sees no change).
  if (added + changed > 0) save_collection(k, a[1], t.rec);
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

// ---- ranges --------------------------------------------------------------------------------

// How ZRANGE and kin pick members: by position, by score, or by the members' bytes (meant for
// members of one score; with mixed scores, the members in range wherever they sit).
enum class By { kRank, kScore, kLex };

// One end of a score range ("1.5"; "(1.5" excludes it; "-inf", "+inf") or of a lex range ("[a"
// includes a, "(a" excludes it, "-" and "+" lie below and above every member).
struct Bound {
  double score = 0;
  std::string member;
  int infinite = 0;  // lex: -1 for "-", 1 for "+"
  bool exclusive = false;
};

// As Redis's zslParseRange: strtod over the whole text (so "" is 0), NaN refused.
bool parse_score_bound(std::string_view s, Bound* b) {
  b->exclusive = !s.empty() && s[0] == '(';
  if (b->exclusive) s.remove_prefix(1);
  std::string z(s);
  char* end = nullptr;
  b->score = std::strtod(z.c_str(), &end);
  return end == z.c_str() + z.size() && !std::isnan(b->score);
}

// As Redis's zslParseLexRangeItem.
bool parse_lex_bound(std::string_view s, Bound* b) {
  if (s == "-" || s == "+") {
    b->infinite = s == "-" ? -1 : 1;
    b->exclusive = true;
    return true;
  }
  if (s.empty() || (s[0] != '(' && s[0] != '[')) return false;
  b->exclusive = s[0] == '(';
  b->member.assign(s.substr(1));
  return true;
}

// A score or lex range: the members between its ends.
struct Interval {
  By by = By::kScore;
  Bound min, max;

  bool contains(const Member& m) const {
    int lo = compare(m, min), hi = compare(m, max);
    return (min.exclusive ? lo > 0 : lo >= 0) && (max.exclusive ? hi < 0 : hi <= 0);
  }

 private:
  // Below 0, 0 or above 0 as `m` sorts before, at or after `b`.
  int compare(const Member& m, const Bound& b) const {
    if (by == By::kScore) return m.score < b.score ? -1 : (m.score > b.score ? 1 : 0);
    if (b.infinite != 0) return -b.infinite;
    return m.member.compare(b.member);  // as memcmp: bytes unsigned
  }
};

// ZCOUNT's and ZLEXCOUNT's min and max (and those of the commands after them), or the error.
std::optional<Reply> parse_interval(By by, std::string_view min, std::string_view max,
                                    Interval* out) {
  out->by = by;
  if (by == By::kLex) {
    if (!parse_lex_bound(min, &out->min) || !parse_lex_bound(max, &out->max))
      return Reply::error("ERR min or max not valid string range item");
  } else if (!parse_score_bound(min, &out->min) || !parse_score_bound(max, &out->max)) {
    return Reply::error("ERR min or max is not a float");
  }
  return std::nullopt;
}

// What ZRANGE and kin ask for: the positions [start, stop] (negative ones count from the end),
// or the members in `interval` past the first `offset`, at most `count` of them (negative: all);
// counted from the highest score when `rev`.
struct RangeQuery {
  By by = By::kRank;
  bool rev = false;
  int64_t start = 0, stop = 0;
  Interval interval;
  int64_t offset = 0, count = -1;
  bool with_scores = false;
};

// Redis's position arithmetic: [*start, *stop] within [0, n); false when that is empty.
bool clamp_positions(int64_t n, int64_t* start, int64_t* stop) {
  if (*start < 0) *start += n;
  if (*stop < 0) *stop += n;
  if (*start < 0) *start = 0;
  if (*start > *stop || *start >= n) return false;
  if (*stop >= n) *stop = n - 1;
  return true;
}

// The members of the (live) sorted set `rec` that `q` picks, in the order asked.
std::vector<Member> pick(Keys& k, const Record& rec, const RangeQuery& q) {
  std::vector<Member> out;
  if (q.by == By::kRank) {
    int64_t start = q.start, stop = q.stop;
    if (!clamp_positions(static_cast<int64_t>(rec.size), &start, &stop)) return out;
    // From the lowest, the scan ends at `stop`; from the highest, it takes the whole index.
    std::vector<Member> all =
        q.rev ? in_order(k, rec) : in_order(k, rec, static_cast<size_t>(stop) + 1);
    if (q.rev) std::reverse(all.begin(), all.end());
    for (int64_t i = start; i <= stop && i < static_cast<int64_t>(all.size()); ++i)
      out.push_back(std::move(all[static_cast<size_t>(i)]));
    return out;
  }
  if (q.offset < 0) return out;  // Redis skips that many: past the end
  std::vector<Member> all = in_order(k, rec);
  if (q.rev) std::reverse(all.begin(), all.end());
  int64_t skip = q.offset;
  for (Member& m : all) {
    if (q.count >= 0 && static_cast<int64_t>(out.size()) >= q.count) break;
    if (!q.interval.contains(m)) continue;
    if (skip > 0) {
      --skip;
      continue;
    }
    out.push_back(std::move(m));
  }
  return out;
}

// Parses `key min max [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]` from a[key_at] as
// Redis's zrangeGenericCommand does. The older commands come with `by` and `rev` fixed and then
// take none of BYSCORE, BYLEX and REV; ZRANGESTORE (`store`) takes no WITHSCORES.
std::optional<Reply> parse_range(const Args& a, size_t key_at, bool store, std::optional<By> by,
                                 std::optional<bool> rev, RangeQuery* q) {
  for (size_t i = key_at + 3; i < a.size(); ++i) {
    if (!store && equals_ci(a[i], "withscores")) {
      q->with_scores = true;
    } else if (equals_ci(a[i], "limit") && i + 2 < a.size()) {
      if (!parse_int64(a[i + 1], &q->offset) || !parse_int64(a[i + 2], &q->count))
        return Reply::error(errors::kNotInteger);
      i += 2;
    } else if (!rev.has_value() && equals_ci(a[i], "rev")) {
      rev = true;
    } else if (!by.has_value() && equals_ci(a[i], "bylex")) {
      by = By::kLex;
    } else if (!by.has_value() && equals_ci(a[i], "byscore")) {
      by = By::kScore;
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  q->by = by.value_or(By::kRank);
  q->rev = rev.value_or(false);
  // As Redis: LIMIT's count of -1 is no LIMIT.
  if (q->count != -1 && q->by == By::kRank)
    return Reply::error(
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
  if (q->with_scores && q->by == By::kLex)
    return Reply::error("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
  const std::string& first = a[key_at + 1];
  const std::string& second = a[key_at + 2];
  if (q->by == By::kRank) {
    if (!parse_int64(first, &q->start) || !parse_int64(second, &q->stop))
      return Reply::error(errors::kNotInteger);
    return std::nullopt;
  }
  // Reversed, a score or lex range comes as max, then min.
  return q->rev ? parse_interval(q->by, second, first, &q->interval)
                : parse_interval(q->by, first, second, &q->interval);
}

// ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES], and the older
// forms with their kind and direction fixed.
Reply range(Keys& k, const Args& a, std::optional<By> by, std::optional<bool> rev) {
  RangeQuery q;
  if (auto e = parse_range(a, 1, false, by, rev, &q)) return *e;
  TypedAt t = typed_at(k, a[1], kZset);
  if (t.error) return *t.error;
  if (!t.live) return Reply::array();
  return members_reply(pick(k, t.rec, q), q.with_scores);
}
Reply cmd_zrange(Keys& k, const Args& a) {
  return range(k, a, std::nullopt, std::nullopt);
}
Reply cmd_zrevrange(Keys& k, const Args& a) {
  return range(k, a, By::kRank, true);
}
Reply cmd_zrangebyscore(Keys& k, const Args& a) {
  return range(k, a, By::kScore, false);
}
Reply cmd_zrevrangebyscore(Keys& k, const Args& a) {
  return range(k, a, By::kScore, true);
}
Reply cmd_zrangebylex(Keys& k, const Args& a) {
  return range(k, a, By::kLex, false);
}
Reply cmd_zrevrangebylex(Keys& k, const Args& a) {
  return range(k, a, By::kLex, true);
}

// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]
Reply cmd_zrangestore(Keys& k, const Args& a) {
  RangeQuery q;
  if (auto e = parse_range(a, 2, true, std::nullopt, std::nullopt, &q)) return *e;
  TypedAt t = typed_at(k, a[2], kZset);
  if (t.error) return *t.error;
  return store_members(k, a[1], t.live ? pick(k, t.rec, q) : std::vector<Member>{});
}

// ZCOUNT, ZLEXCOUNT.
Reply count_in(Keys& k, const Args& a, By by) {
  Interval in;
  if (auto e = parse_interval(by, a[2], a[3], &in)) return *e;
  TypedAt t = typed_at(k, a[1], kZset);
  if (t.error) return *t.error;
  int64_t n = 0;
  if (t.live) {
    for (const Member& m : in_order(k, t.rec))
      n += in.contains(m) ? 1 : 0;
  }
  return Reply::integer_of(n);
}
Reply cmd_zcount(Keys& k, const Args& a) {
  return count_in(k, a, By::kScore);
}
Reply cmd_zlexcount(Keys& k, const Args& a) {
  return count_in(k, a, By::kLex);
}

// ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX.
Reply remove_range(Keys& k, const Args& a, By by) {
  RangeQuery q;
  q.by = by;
  if (by == By::kRank) {
    if (!parse_int64(a[2], &q.start) || !parse_int64(a[3], &q.stop))
      return Reply::error(errors::kNotInteger);
  } else if (auto e = parse_interval(by, a[2], a[3], &q.interval)) {
    return *e;
  }
  TypedAt t = typed_at(k, a[1], kZset);
  if (t.error) return *t.error;
  if (!t.live) return Reply::integer_of(0);
  const std::vector<Member> gone = pick(k, t.rec, q);
  for (const Member& m : gone)
    del_member(k, t.rec, m.member, m.score);
  t.rec.size -= gone.size();
  if (!gone.empty()) save_collection(k, a[1], t.rec);
  return Reply::integer_of(static_cast<int64_t>(gone.size()));
}
Reply cmd_zremrangebyrank(Keys& k, const Args& a) {
  return remove_range(k, a, By::kRank);
}
Reply cmd_zremrangebyscore(Keys& k, const Args& a) {
  return remove_range(k, a, By::kScore);
}
Reply cmd_zremrangebylex(Keys& k, const Args& a) {
  return remove_range(k, a, By::kLex);
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

// ---- pops ----------------------------------------------------------------------------------

// Takes up to `count` members off the low (or, `max`, the high) end of the live sorted set of
// `key`; the key goes with its last member.
std::vector<Member> pop_members(Keys& k, std::string_view key, Record& rec, bool max,
                                int64_t count) {
  const size_t n = static_cast<size_t>(count);
  std::vector<Member> out = max ? in_order(k, rec) : in_order(k, rec, n);
  if (max) std::reverse(out.begin(), out.end());
  if (out.size() > n) out.resize(n);
  for (const Member& m : out)
    del_member(k, rec, m.member, m.score);
  rec.size -= std::min<uint64_t>(rec.size, out.size());
  if (!out.empty()) save_collection(k, key, rec);
  return out;
}

Reply zpop(Keys& k, const Args& a, bool max) {
  if (a.size() > 3) return Reply::error(errors::kSyntax);
  int64_t count = 1;
  if (a.size() == 3 && (!parse_int64(a[2], &count) || count < 0))
    return Reply::error("ERR value is out of range, must be positive");
  TypedAt t = typed_at(k, a[1], kZset);
  if (t.error) return *t.error;
  if (!t.live) return Reply::array();
  Reply r = members_reply(pop_members(k, a[1], t.rec, max, count), true);
  if (a.size() < 3) r.kind = Reply::Kind::kArray;  // without a count: flat in RESP3 too
  return r;
}
Reply cmd_zpopmin(Keys& k, const Args& a) {
  return zpop(k, a, false);
}
Reply cmd_zpopmax(Keys& k, const Args& a) {
  return zpop(k, a, true);
}

// What the multi-key pops took: from `key` (none when every key was empty), or the error.
struct Popped {
  std::optional<Reply> error;
  std::optional<std::string> key;
  std::vector<Member> members;
};

// Pops from the first of a[first, last) holding a sorted set. As Redis: absent keys are passed
// over, and a key of another type before that one answers WRONGTYPE.
Popped pop_first(Keys& k, const Args& a, size_t first, size_t last, bool max, int64_t count) {
  Popped p;
  for (size_t i = first; i < last; ++i) {
    TypedAt t = typed_at(k, a[i], kZset);
    if (t.error) {
      p.error = t.error;
      return p;
    }
    if (!t.live) continue;
    p.key = a[i];
    p.members = pop_members(k, a[i], t.rec, max, count);
    return p;
  }
  return p;
}

// BZPOPMIN key [key ...] timeout: [key, member, score] from the first non-empty key; a null array
// when all are empty (the connection then waits for a write to them).
Reply bzpop(Keys& k, const Args& a, bool max) {
  if (auto e = check_block_timeout(a.back())) return *e;
  Popped p = pop_first(k, a, 1, a.size() - 1, max, 1);
  if (p.error) return *p.error;
  if (!p.key || p.members.empty()) return Reply::null_array();
  const Member& m = p.members[0];
  return Reply::array({Reply::bulk(*p.key), Reply::bulk(m.member), score_reply(m.score)});
}
Reply cmd_bzpopmin(Keys& k, const Args& a) {
  return bzpop(k, a, false);
}
Reply cmd_bzpopmax(Keys& k, const Args& a) {
  return bzpop(k, a, true);
}

// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count], from a[numkeys_at]; BZMPOP has its timeout
// before, checked (as Redis does) after the rest. Answers [key, [[member, score], ...]] from the
// first non-empty key, or a null array.
Reply mpop(Keys& k, const Args& a, size_t numkeys_at, bool blocking) {
  int64_t n = 0;
  if (!parse_int64(a[numkeys_at], &n) || n < 1)
    return Reply::error("ERR numkeys should be greater than 0");
  if (static_cast<uint64_t>(n) >= a.size() - numkeys_at - 1) return Reply::error(errors::kSyntax);
  const size_t where = numkeys_at + 1 + static_cast<size_t>(n);
  const bool max = equals_ci(a[where], "max");
  if (!max && !equals_ci(a[where], "min")) return Reply::error(errors::kSyntax);
  int64_t count = 0;  // none given
  for (size_t i = where + 1; i < a.size(); ++i) {
    if (count == 0 && equals_ci(a[i], "count") && i + 1 < a.size()) {
      if (!parse_int64(a[++i], &count) || count < 1)
        return Reply::error("ERR count should be greater than 0");
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  if (blocking) {
    if (auto e = check_block_timeout(a[1])) return *e;
  }
  Popped p = pop_first(k, a, numkeys_at + 1, where, max, std::max<int64_t>(count, 1));
  if (p.error) return *p.error;
  if (!p.key) return Reply::null_array();
  std::vector<Reply> pairs;
  for (const Member& m : p.members)
    pairs.push_back(Reply::array({Reply::bulk(m.member), score_reply(m.score)}));
  return Reply::array({Reply::bulk(*p.key), Reply::array(std::move(pairs))});
}
Reply cmd_zmpop(Keys& k, const Args& a) {
  return mpop(k, a, 1, false);
}
Reply cmd_bzmpop(Keys& k, const Args& a) {
  return mpop(k, a, 2, true);
}

// ---- union, intersection, difference -------------------------------------------------------

enum class SetOp { kUnion, kInter, kDiff };
enum class Aggregate { kSum, kMin, kMax };

// An input of ZUNION and kin: a sorted set, or a plain set whose members score 1; absent, empty.
struct Source {
  Record rec;
  bool live = false;
  double weight = 1;

  uint64_t size() const { return live ? rec.size : 0; }
};

std::optional<Reply> open_source(Keys& k, const std::string& key, Source* s) {
  Keys::Found f = k.load(key, &s->rec);
  if (f == Keys::Found::kDamaged) return damaged(key);
  s->live = f == Keys::Found::kLive;
  if (s->live && s->rec.type != kZset && s->rec.type != kSet)
    return Reply::error(errors::kWrongType);
  return std::nullopt;
}

std::vector<Member> members_of(Keys& k, const Source& s) {
  if (!s.live) return {};
  if (s.rec.type == kZset) return in_order(k, s.rec);
  Pairs got;
  const std::string prefix = element_key(s.rec.version);
  k.store().scan_elements(prefix, "", kAll, &got);
  std::vector<Member> out;
  out.reserve(got.size());
  for (auto& [key, v] : got)
    out.push_back({key.substr(prefix.size()), 1.0});
  return out;
}

bool find_in(Keys& k, const Source& s, std::string_view m, double* score) {
  if (!s.live) return false;
  if (s.rec.type == kZset) return score_of_member(k, s.rec, m, score);
  std::string v;
  *score = 1;
  return k.store().get_element(element_key(s.rec.version, m), &v);
}

// As Redis's zunionInterAggregate: a sum of inf and -inf is 0, and MIN and MAX keep what they
// have against a NaN.
void aggregate(double* into, double v, Aggregate how) {
  switch (how) {
    case Aggregate::kSum:
      *into += v;
      if (std::isnan(*into)) *into = 0;
      break;
    case Aggregate::kMin:
      *into = v < *into ? v : *into;
      break;
    case Aggregate::kMax:
      *into = v > *into ? v : *into;
      break;
  }
}

// A weighted score; Redis makes a NaN (inf times 0) 0.
double weighted(double score, double weight) {
  double v = score * weight;
  return std::isnan(v) ? 0 : v;
}

// The union, intersection (at most `limit` members; 0: all) or difference of `srcs`, in score
// order. As Redis, the union and the intersection take the inputs smallest first, and the
// difference keeps the first input's scores, unweighted.
std::vector<Member> combine(Keys& k, std::vector<Source> srcs, SetOp op, Aggregate how,
                            size_t limit = 0) {
  if (op != SetOp::kDiff) {
    std::stable_sort(srcs.begin(), srcs.end(),
                     [](const Source& x, const Source& y) { return x.size() < y.size(); });
  }
  std::vector<Member> out;
  if (op == SetOp::kUnion) {
    std::map<std::string, double> acc;
    for (const Source& s : srcs) {
      for (Member& m : members_of(k, s)) {
        const double score = weighted(m.score, s.weight);
        auto [it, added] = acc.try_emplace(std::move(m.member), score);
        if (!added) aggregate(&it->second, score, how);
      }
    }
    for (auto& [m, score] : acc)
      out.push_back({m, score});
  } else {
    for (Member& m : members_of(k, srcs[0])) {
      double score = op == SetOp::kInter ? weighted(m.score, srcs[0].weight) : m.score;
      bool keep = true;
      for (size_t j = 1; j < srcs.size() && keep; ++j) {
        double v = 0;
        const bool found = find_in(k, srcs[j], m.member, &v);
        keep = op == SetOp::kDiff ? !found : found;
        if (found && op == SetOp::kInter) aggregate(&score, v * srcs[j].weight, how);
      }
      if (!keep) continue;
      out.push_back({std::move(m.member), score});
      if (out.size() == limit) break;
    }
  }
  std::sort(out.begin(), out.end(), [](const Member& x, const Member& y) {
    return x.score != y.score ? x.score < y.score : x.member < y.member;
  });
  return out;
}

struct Combination {
  std::vector<Source> srcs;
  Aggregate how = Aggregate::kSum;
  bool with_scores = false;
  int64_t limit = 0;
};

// `numkeys key [key ...]` from a[numkeys_at] and the options after, as Redis's
// zunionInterDiffGenericCommand parses them: the inputs' types are checked before the options.
// ZDIFF takes neither WEIGHTS nor AGGREGATE, the *STORE forms (`store`) no WITHSCORES, and
// ZINTERCARD (`card`) only LIMIT.
std::optional<Reply> parse_combination(Keys& k, const Args& a, size_t numkeys_at, SetOp op,
                                       bool store, bool card, Combination* c) {
  int64_t n = 0;
  if (!parse_int64(a[numkeys_at], &n)) return Reply::error(errors::kNotInteger);
  if (n < 1) return Reply::error("ERR at least 1 input key is needed for '" + a[0] + "' command");
  if (static_cast<uint64_t>(n) > a.size() - numkeys_at - 1) return Reply::error(errors::kSyntax);
  const size_t keys = static_cast<size_t>(n);
  c->srcs.resize(keys);
  size_t i = numkeys_at + 1;
  for (Source& s : c->srcs) {
    if (auto e = open_source(k, a[i++], &s)) return e;
  }
  const bool scored = op != SetOp::kDiff && !card;
  while (i < a.size()) {
    const size_t left = a.size() - i;
    if (scored && left > keys && equals_ci(a[i], "weights")) {
      ++i;
      for (Source& s : c->srcs) {
        if (!parse_score(a[i++], &s.weight)) return Reply::error("ERR weight value is not a float");
      }
    } else if (scored && left >= 2 && equals_ci(a[i], "aggregate")) {
      const std::string& how = a[i + 1];
      if (equals_ci(how, "sum")) {
        c->how = Aggregate::kSum;
      } else if (equals_ci(how, "min")) {
        c->how = Aggregate::kMin;
      } else if (equals_ci(how, "max")) {
        c->how = Aggregate::kMax;
      } else {
        return Reply::error(errors::kSyntax);
      }
      i += 2;
    } else if (!store && !card && equals_ci(a[i], "withscores")) {
      c->with_scores = true;
      ++i;
    } else if (card && left >= 2 && equals_ci(a[i], "limit")) {
      if (!parse_int64(a[i + 1], &c->limit) || c->limit < 0)
        return Reply::error("ERR LIMIT can't be negative");
      i += 2;
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  return std::nullopt;
}

// ZUNION, ZINTER, ZDIFF: numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX]
// [WITHSCORES]
Reply combination(Keys& k, const Args& a, SetOp op) {
  Combination c;
  if (auto e = parse_combination(k, a, 1, op, false, false, &c)) return *e;
  return members_reply(combine(k, std::move(c.srcs), op, c.how), c.with_scores);
}
Reply cmd_zunion(Keys& k, const Args& a) {
  return combination(k, a, SetOp::kUnion);
}
Reply cmd_zinter(Keys& k, const Args& a) {
  return combination(k, a, SetOp::kInter);
}
Reply cmd_zdiff(Keys& k, const Args& a) {
  return combination(k, a, SetOp::kDiff);
}

// ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE: dst numkeys key [key ...] [WEIGHTS ...] [AGGREGATE ...]
Reply combination_store(Keys& k, const Args& a, SetOp op) {
  Combination c;
  if (auto e = parse_combination(k, a, 2, op, true, false, &c)) return *e;
  return store_members(k, a[1], combine(k, std::move(c.srcs), op, c.how));
}
Reply cmd_zunionstore(Keys& k, const Args& a) {
  return combination_store(k, a, SetOp::kUnion);
}
Reply cmd_zinterstore(Keys& k, const Args& a) {
  return combination_store(k, a, SetOp::kInter);
}
Reply cmd_zdiffstore(Keys& k, const Args& a) {
  return combination_store(k, a, SetOp::kDiff);
}

// ZINTERCARD numkeys key [key ...] [LIMIT limit]
Reply cmd_zintercard(Keys& k, const Args& a) {
  Combination c;
  if (auto e = parse_combination(k, a, 1, SetOp::kInter, false, true, &c)) return *e;
  const size_t limit = static_cast<size_t>(c.limit);
  return Reply::integer_of(
      static_cast<int64_t>(combine(k, std::move(c.srcs), SetOp::kInter, c.how, limit).size()));
}

// ---- random members and scans --------------------------------------------------------------

// ZRANDMEMBER with a negative count repeats picks; like SRANDMEMBER, it gives at most this many
// (Redis streams any number; a reply here is built whole).
constexpr int64_t kMaxRandomPicks = 1'000'000;

// ZRANDMEMBER key [count [WITHSCORES]]
Reply cmd_zrandmember(Keys& k, const Args& a) {
  if (a.size() == 2) {
    TypedAt t = typed_at(k, a[1], kZset);
    if (t.error) return *t.error;
    if (!t.live || t.rec.size == 0) return Reply::null();
    Random random(k.seed());
    std::vector<Member> upto = in_order(k, t.rec, random.below(t.rec.size) + 1);
    return upto.empty() ? Reply::null() : Reply::bulk(std::move(upto.back().member));
  }
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t count = 0;
  if (!parse_int64(a[2], &count)) return Reply::error(errors::kNotInteger);
  if (count < -kMax)
    return Reply::error(
        "ERR value is out of range, value must between -9223372036854775807 and "
        "9223372036854775807");
  if (a.size() > 4 || (a.size() == 4 && !equals_ci(a[3], "withscores")))
    return Reply::error(errors::kSyntax);
  const bool with_scores = a.size() == 4;
  if (with_scores && (count < -kMax / 2 || count > kMax / 2))
    return Reply::error("ERR value is out of range");
  TypedAt t = typed_at(k, a[1], kZset);
  if (t.error) return *t.error;
  if (!t.live || count == 0) return Reply::array();
  std::vector<Member> all = in_order(k, t.rec);
  if (all.empty()) return Reply::array();
  Random random(k.seed());
  std::vector<Member> picked;
  if (count < 0) {
    for (int64_t i = 0; i < std::min(-count, kMaxRandomPicks); ++i)
      picked.push_back(all[random.below(all.size())]);
  } else if (static_cast<uint64_t>(count) >= all.size()) {
    picked = std::move(all);  // all of them, in order, as Redis
  } else {
    // Distinct members in a random order: a partial shuffle.
    for (size_t i = 0; i < static_cast<size_t>(count); ++i) {
      std::swap(all[i], all[i + random.below(all.size() - i)]);
      picked.push_back(all[i]);
    }
  }
  return members_reply(picked, with_scores);
}

// Redis's SCAN cursor parsing: strtoul's, so a sign is taken and "" is 0.
bool parse_cursor(const std::string& s, uint64_t* out) {
  if (!s.empty() && std::isspace(static_cast<unsigned char>(s[0]))) return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (*end != '\0' || errno == ERANGE) return false;
  *out = static_cast<uint64_t>(v);
  return true;
}

// ZSCAN's order: a hash of each member's bytes, cut to 52 bits so that a cursor survives clients
// that read numbers as doubles.
uint64_t scan_position(std::string_view m) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a, then mixed
  for (char c : m)
    h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ULL;
  return mix64(h) >> 12;
}

// Sets this small answer a scan whole, whatever the cursor: Redis's zset-max-listpack-entries.
constexpr uint64_t kScanWhole = 128;

// ZSCAN key cursor [MATCH pattern] [COUNT count]: stateless. The cursor is a position in the
// members' hash order (scan_position): a call answers the members at or after it, lowest
// positions first (about COUNT of them, never splitting one position), and as the next cursor
// the position of the first one left, or 0. Every member present for the whole scan is answered
// once, whatever is added or removed meanwhile (Redis's guarantee), and any integer a client
// gives back is a cursor. Each call reads the whole set: O(n) a call.
Reply cmd_zscan(Keys& k, const Args& a) {
  uint64_t cursor = 0;
  if (!parse_cursor(a[2], &cursor)) return Reply::error("ERR invalid cursor");
  TypedAt t = typed_at(k, a[1], kZset);
  if (t.error) return *t.error;
  if (!t.live) return Reply::array({Reply::bulk("0"), Reply::array()});
  int64_t count = 10;
  std::string_view pattern = "*";
  for (size_t i = 3; i < a.size(); i += 2) {
    if (i + 1 >= a.size()) return Reply::error(errors::kSyntax);
    if (equals_ci(a[i], "count")) {
      if (!parse_int64(a[i + 1], &count)) return Reply::error(errors::kNotInteger);
      if (count < 1) return Reply::error(errors::kSyntax);
    } else if (equals_ci(a[i], "match")) {
      pattern = a[i + 1];
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  const bool whole = t.rec.size <= kScanWhole;
  struct Found {
    uint64_t position;
    Member m;
  };
  std::vector<Found> found;
  Pairs got;
  const std::string prefix = element_key(t.rec.version, "m");
  k.store().scan_elements(prefix, "", kAll, &got);
  for (auto& [key, v] : got) {
    std::string m = key.substr(prefix.size());
    const uint64_t position = whole ? 0 : scan_position(m);
    if (position < cursor && !whole) continue;
    if (!glob_match(pattern, m)) continue;
    found.push_back({position, {std::move(m), score_of(v)}});
  }
  uint64_t next = 0;
  if (!whole) {
    std::sort(found.begin(), found.end(), [](const Found& x, const Found& y) {
      return x.position != y.position ? x.position < y.position : x.m.member < y.m.member;
    });
    size_t take = std::min(found.size(), static_cast<size_t>(count));
    while (take > 0 && take < found.size() && found[take].position == found[take - 1].position)
      ++take;
    if (take < found.size()) next = found[take].position;
    found.resize(take);
  }
  std::vector<Reply> items;
  for (const Found& f : found) {
    items.push_back(Reply::bulk(f.m.member));
    items.push_back(Reply::bulk(format_score(f.m.score)));
  }
  return Reply::array({Reply::bulk(std::to_string(next)), Reply::array(std::move(items))});
}

}  // namespace

const std::vector<Entry>& sorted_set_entries() {
  // The commands that name keys by a count (ZUNION and kin, ZMPOP, BZMPOP) have their keys found
  // by command_keys' layouts; first_key 1 and last_key -1 only say they have keys.
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
      {{"zrangebylex", -4, kReadOnly, 1, 1, 1}, cmd_zrangebylex},
      {{"zrevrangebylex", -4, kReadOnly, 1, 1, 1}, cmd_zrevrangebylex},
      {{"zrangestore", -5, kWrite, 1, 2, 1}, cmd_zrangestore},
      {{"zcount", 4, kReadOnly, 1, 1, 1}, cmd_zcount},
      {{"zlexcount", 4, kReadOnly, 1, 1, 1}, cmd_zlexcount},
      {{"zrank", -3, kReadOnly, 1, 1, 1}, cmd_zrank},
      {{"zrevrank", -3, kReadOnly, 1, 1, 1}, cmd_zrevrank},
      {{"zpopmin", -2, kWrite, 1, 1, 1}, cmd_zpopmin},
      {{"zpopmax", -2, kWrite, 1, 1, 1}, cmd_zpopmax},
      {{"bzpopmin", -3, kWrite | kBlocking, 1, -2, 1}, cmd_bzpopmin},
      {{"bzpopmax", -3, kWrite | kBlocking, 1, -2, 1}, cmd_bzpopmax},
      {{"zmpop", -4, kWrite, 1, -1, 1}, cmd_zmpop},
      {{"bzmpop", -5, kWrite | kBlocking, 1, -1, 1}, cmd_bzmpop},
      {{"zremrangebyrank", 4, kWrite, 1, 1, 1}, cmd_zremrangebyrank},
      {{"zremrangebyscore", 4, kWrite, 1, 1, 1}, cmd_zremrangebyscore},
      {{"zremrangebylex", 4, kWrite, 1, 1, 1}, cmd_zremrangebylex},
      {{"zunion", -3, kReadOnly, 1, -1, 1}, cmd_zunion},
      {{"zinter", -3, kReadOnly, 1, -1, 1}, cmd_zinter},
      {{"zdiff", -3, kReadOnly, 1, -1, 1}, cmd_zdiff},
      {{"zintercard", -3, kReadOnly, 1, -1, 1}, cmd_zintercard},
      {{"zunionstore", -4, kWrite, 1, -1, 1}, cmd_zunionstore},
      {{"zinterstore", -4, kWrite, 1, -1, 1}, cmd_zinterstore},
      {{"zdiffstore", -4, kWrite, 1, -1, 1}, cmd_zdiffstore},
      {{"zrandmember", -2, kReadOnly, 1, 1, 1}, cmd_zrandmember},
      {{"zscan", -3, kReadOnly, 1, 1, 1}, cmd_zscan},
  };
  return table;
}

}  // namespace chorus::redis::internal
