#include "redis/keyspace.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <unordered_map>

#include "base/coding.h"
#include "redis/records.h"

namespace chorus::redis {

using namespace internal;

namespace internal {

std::string encode_record(const Record& r) {
  std::string out;
  out.reserve(34 + r.value.size());
  base::put_u8(&out, kRecordFormat);
  base::put_u8(&out, r.type);
  base::put_u64(&out, static_cast<uint64_t>(r.expire_ms));
  base::put_u64(&out, r.modified);
  if (r.type == kString) {
    out.append(r.value);
  } else {
    base::put_u64(&out, r.version);
    base::put_u64(&out, r.size);
    if (r.type == kList) base::put_u64(&out, static_cast<uint64_t>(r.head));
  }
  return out;
}

bool decode_record(std::string_view bytes, Record* r) {
  if (bytes.size() < 10) return false;
  const auto format = static_cast<uint8_t>(bytes[0]);
  if (format != 1 && format != kRecordFormat) return false;
  r->type = static_cast<uint8_t>(bytes[1]);
  r->expire_ms = static_cast<int64_t>(base::load_u64(bytes.data() + 2));
  std::string_view rest = bytes.substr(10);
  r->modified = 0;
  if (format == kRecordFormat) {
    if (rest.size() < 8) return false;
    r->modified = base::load_u64(rest.data());
    rest.remove_prefix(8);
  }
  r->value.clear();
  r->version = r->size = 0;
  r->head = 0;
  switch (r->type) {
    case kString:
      r->value.assign(rest);
      return true;
    case kHash:
    case kSet:
    case kZset:
    case kStream:
      if (rest.size() != 16) return false;
      r->version = base::load_u64(rest.data());
      r->size = base::load_u64(rest.data() + 8);
      return true;
    case kList:
      if (rest.size() != 24) return false;
      r->version = base::load_u64(rest.data());
      r->size = base::load_u64(rest.data() + 8);
      r->head = static_cast<int64_t>(base::load_u64(rest.data() + 16));
      return true;
    default:
      return false;
  }
}

const char* type_name(uint8_t type) {
  switch (type) {
    case kString:
      return "string";
    case kHash:
      return "hash";
    case kSet:
      return "set";
    case kList:
      return "list";
    case kZset:
      return "zset";
    case kStream:
      return "stream";
    default:
      return "none";
  }
}

Reply wrong_args(std::string_view name) {
  return Reply::error("ERR wrong number of arguments for '" + std::string(name) + "' command");
}

Reply damaged(std::string_view key) {
  return Reply::error("ERR the record of key '" + std::string(key) + "' is damaged");
}

bool equals_ci(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

Keys::Found Keys::load(std::string_view key, Record* r) {
  std::string bytes;
  if (!store_.get(key, &bytes)) return Found::kNone;
  if (!decode_record(bytes, r)) return Found::kDamaged;
  if (r->expire_ms != 0 && r->expire_ms <= now_) return Found::kNone;
  return Found::kLive;
}

void Keys::drop_stored_elements(std::string_view key, uint64_t keep_version) {
  std::string bytes;
  Record old;
  if (store_.get(key, &bytes) && decode_record(bytes, &old) && old.collection() &&
      old.version != keep_version)
    store_.drop_elements(element_key(old.version));
}

void Keys::save(std::string_view key, const Record& r) {
  drop_stored_elements(key, r.collection() ? r.version : 0);
  Record stamped = r;
  stamped.modified = version_base_;
  store_.put(key, encode_record(stamped));
}

uint64_t Keys::watch_version(std::string_view key) {
  Record r;
  if (load(key, &r) != Found::kLive) return 0;
  return std::max<uint64_t>(r.modified, 1);
}

bool Keys::remove(std::string_view key) {
  Record r;
  Found f = load(key, &r);
  std::string bytes;
  if (f == Found::kNone && !store_.get(key, &bytes)) return false;
  drop_stored_elements(key, 0);
  store_.del(key);
  return f != Found::kNone;
}

TypedAt typed_at(Keys& k, std::string_view key, uint8_t type, bool create) {
  TypedAt t;
  Keys::Found f = k.load(key, &t.rec);
  if (f == Keys::Found::kDamaged) {
    t.error = damaged(key);
  } else if (f == Keys::Found::kLive) {
    if (t.rec.type != type) {
      t.error = Reply::error(errors::kWrongType);
    } else {
      t.live = true;
    }
  } else if (create) {
    t.rec = Record{};
    t.rec.type = type;
    if (type != kString) t.rec.version = k.new_version();
  }
  return t;
}

StringAt string_at(Keys& k, std::string_view key) {
  StringAt s;
  Keys::Found f = k.load(key, &s.rec);
  if (f == Keys::Found::kDamaged) {
    s.error = damaged(key);
  } else if (f == Keys::Found::kLive) {
    if (s.rec.type != kString) {
      s.error = Reply::error(errors::kWrongType);
    } else {
      s.live = true;
    }
  }
  return s;
}

std::optional<Reply> check_block_timeout(std::string_view timeout) {
  long double seconds = 0;
  if (!parse_long_double(timeout, &seconds))
    return Reply::error("ERR timeout is not a float or out of range");
  const long double ms = std::ceil(seconds * 1000);
  if (ms < 0) return Reply::error("ERR timeout is negative");
  // Past int64 milliseconds Redis 7.0's conversion is undefined; 7.2 answers this.
  if (!(ms < 9.2233720368547758e18L)) return Reply::error("ERR timeout is out of range");
  return std::nullopt;
}

void save_collection(Keys& k, std::string_view key, const Record& rec) {
  if (rec.size == 0) {
    k.remove(key);
  } else {
    k.save(key, rec);
  }
}

}  // namespace internal

namespace {

constexpr uint8_t kCommandFormat = 1;

Reply invalid_expire(std::string_view name) {
  return Reply::error("ERR invalid expire time in '" + std::string(name) + "' command");
}

// Seconds or milliseconds from now, or an absolute time, as an absolute time in ms; false on
// overflow.
bool absolute_ms(int64_t v, bool seconds, bool absolute, int64_t now, int64_t* out) {
  int64_t ms = v;
  if (seconds) {
    if (v > std::numeric_limits<int64_t>::max() / 1000 ||
        v < std::numeric_limits<int64_t>::min() / 1000)
      return false;
    ms = v * 1000;
  }
  if (!absolute) {
    if ((ms > 0 && now > std::numeric_limits<int64_t>::max() - ms) ||
        (ms < 0 && now < std::numeric_limits<int64_t>::min() - ms))
      return false;
    ms += now;
  }
  *out = ms;
  return true;
}

// SET's and GETEX's EX seconds, PX ms, EXAT unix-seconds, PXAT unix-ms.
bool is_expiry_option(std::string_view o) {
  return equals_ci(o, "ex") || equals_ci(o, "px") || equals_ci(o, "exat") || equals_ci(o, "pxat");
}
// The absolute expiry `option value` names, or the error to answer.
std::optional<Reply> take_expiry(std::string_view option, std::string_view value, int64_t now,
                                 const char* command, int64_t* at) {
  int64_t v = 0;
  if (!parse_int64(value, &v)) return Reply::error(errors::kNotInteger);
  bool seconds = equals_ci(option, "ex") || equals_ci(option, "exat");
  bool absolute = equals_ci(option, "exat") || equals_ci(option, "pxat");
  if (v <= 0 || !absolute_ms(v, seconds, absolute, now, at)) return invalid_expire(command);
  return std::nullopt;
}

// ---- strings -------------------------------------------------------------------------------

Reply cmd_get(Keys& k, const std::vector<std::string>& a) {
  StringAt s = string_at(k, a[1]);
  if (s.error) return *s.error;
  return s.live ? Reply::bulk(std::move(s.rec.value)) : Reply::null();
}

// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms-ts|KEEPTTL]
Reply cmd_set(Keys& k, const std::vector<std::string>& a) {
  bool nx = false, xx = false, get = false, keepttl = false;
  bool has_expire = false;
  int64_t expire_at = 0;
  for (size_t i = 3; i < a.size(); ++i) {
    const std::string& o = a[i];
    bool more = i + 1 < a.size();
    if (equals_ci(o, "nx") && !xx) {
      nx = true;
    } else if (equals_ci(o, "xx") && !nx) {
      xx = true;
    } else if (equals_ci(o, "get")) {
      get = true;
    } else if (equals_ci(o, "keepttl") && !has_expire) {
      keepttl = true;
    } else if (is_expiry_option(o) && !keepttl && !has_expire && more) {
      if (auto e = take_expiry(o, a[i + 1], k.now(), "set", &expire_at)) return *e;
      has_expire = true;
      ++i;
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  Record old;
  Keys::Found f = k.load(a[1], &old);
  if (f == Keys::Found::kDamaged) return damaged(a[1]);
  bool exists = f == Keys::Found::kLive;
  Reply previous = Reply::null();
  if (get) {
    if (exists && old.type != kString) return Reply::error(errors::kWrongType);
    if (exists) previous = Reply::bulk(old.value);
  }
  if ((nx && exists) || (xx && !exists)) return get ? previous : Reply::null();
  Record r;
  r.value = a[2];
  if (has_expire) {
    r.expire_ms = expire_at;
  } else if (keepttl && exists) {
    r.expire_ms = old.expire_ms;
  }
  if (r.expire_ms != 0 && r.expire_ms <= k.now()) {
    // Already past (EXAT/PXAT in the past): the key goes, as Redis deletes it at once.
    k.remove(a[1]);
  } else {
    k.save(a[1], r);
  }
  return get ? previous : Reply::ok();
}

Reply cmd_setnx(Keys& k, const std::vector<std::string>& a) {
  Reply r = cmd_set(k, {"set", a[1], a[2], "NX"});
  return Reply::integer_of(r.kind == Reply::Kind::kStatus ? 1 : 0);
}

Reply set_with_expire(Keys& k, const std::vector<std::string>& a, bool seconds) {
  int64_t v = 0;
  if (!parse_int64(a[2], &v)) return Reply::error(errors::kNotInteger);
  int64_t at = 0;
  if (v <= 0 || !absolute_ms(v, seconds, false, k.now(), &at)) return invalid_expire(a[0]);
  return cmd_set(k, {"set", a[1], a[3], "PXAT", std::to_string(at)});
}

Reply cmd_setex(Keys& k, const std::vector<std::string>& a) {
  return set_with_expire(k, a, true);
}
Reply cmd_psetex(Keys& k, const std::vector<std::string>& a) {
  return set_with_expire(k, a, false);
}

Reply cmd_getset(Keys& k, const std::vector<std::string>& a) {
  return cmd_set(k, {"set", a[1], a[2], "GET"});
}

Reply cmd_getdel(Keys& k, const std::vector<std::string>& a) {
  StringAt s = string_at(k, a[1]);
  if (s.error) return *s.error;
  if (!s.live) return Reply::null();
  k.remove(a[1]);
  return Reply::bulk(std::move(s.rec.value));
}

// GETEX key [EX s|PX ms|EXAT ts|PXAT ms-ts|PERSIST]
Reply cmd_getex(Keys& k, const std::vector<std::string>& a) {
  bool persist = false, has_expire = false;
  int64_t expire_at = 0;
  for (size_t i = 2; i < a.size(); ++i) {
    const std::string& o = a[i];
    bool more = i + 1 < a.size();
    if (equals_ci(o, "persist") && !has_expire && !persist) {
      persist = true;
    } else if (is_expiry_option(o) && !persist && !has_expire && more) {
      if (auto e = take_expiry(o, a[i + 1], k.now(), "getex", &expire_at)) return *e;
      has_expire = true;
      ++i;
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  StringAt s = string_at(k, a[1]);
  if (s.error) return *s.error;
  if (!s.live) return Reply::null();
  Reply out = Reply::bulk(s.rec.value);
  if (has_expire && expire_at <= k.now()) {
    k.remove(a[1]);
  } else if (has_expire || (persist && s.rec.expire_ms != 0)) {
    s.rec.expire_ms = has_expire ? expire_at : 0;
    k.save(a[1], s.rec);
  }
  return out;
}

Reply cmd_mget(Keys& k, const std::vector<std::string>& a) {
  std::vector<Reply> out;
  out.reserve(a.size() - 1);
  for (size_t i = 1; i < a.size(); ++i) {
    StringAt s = string_at(k, a[i]);
    if (s.error && s.error->str.rfind("WRONGTYPE", 0) != 0) return *s.error;
    out.push_back(s.live ? Reply::bulk(std::move(s.rec.value)) : Reply::null());
  }
  return Reply::array(std::move(out));
}

Reply cmd_mset(Keys& k, const std::vector<std::string>& a) {
  if (a.size() % 2 != 1) return wrong_args(a[0]);
  bool nx = a[0] == "msetnx";
  if (nx) {
    for (size_t i = 1; i < a.size(); i += 2) {
      Record r;
      Keys::Found f = k.load(a[i], &r);
      if (f == Keys::Found::kDamaged) return damaged(a[i]);
      if (f == Keys::Found::kLive) return Reply::integer_of(0);
    }
  }
  for (size_t i = 1; i < a.size(); i += 2) {
    Record r;
    r.value = a[i + 1];
    k.save(a[i], r);
  }
  return nx ? Reply::integer_of(1) : Reply::ok();
}

Reply incr_by(Keys& k, const std::string& key, int64_t by) {
  StringAt s = string_at(k, key);
  if (s.error) return *s.error;
  int64_t v = 0;
  if (s.live && !parse_int64(s.rec.value, &v)) return Reply::error(errors::kNotInteger);
  if ((by > 0 && v > std::numeric_limits<int64_t>::max() - by) ||
      (by < 0 && v < std::numeric_limits<int64_t>::min() - by))
    return Reply::error(errors::kOverflow);
  v += by;
  if (!s.live) s.rec = Record{};
  s.rec.value = std::to_string(v);
  k.save(key, s.rec);
  return Reply::integer_of(v);
}

Reply cmd_incr(Keys& k, const std::vector<std::string>& a) {
  return incr_by(k, a[1], 1);
}
Reply cmd_decr(Keys& k, const std::vector<std::string>& a) {
  return incr_by(k, a[1], -1);
}
Reply cmd_incrby(Keys& k, const std::vector<std::string>& a) {
  int64_t by = 0;
  if (!parse_int64(a[2], &by)) return Reply::error(errors::kNotInteger);
  return incr_by(k, a[1], by);
}
Reply cmd_decrby(Keys& k, const std::vector<std::string>& a) {
  int64_t by = 0;
  if (!parse_int64(a[2], &by)) return Reply::error(errors::kNotInteger);
  if (by == std::numeric_limits<int64_t>::min())
    return Reply::error("ERR decrement would overflow");
  return incr_by(k, a[1], -by);
}

Reply cmd_incrbyfloat(Keys& k, const std::vector<std::string>& a) {
  StringAt s = string_at(k, a[1]);
  if (s.error) return *s.error;
  long double v = 0;
  long double by = 0;
  if ((s.live && !parse_long_double(s.rec.value, &v)) || !parse_long_double(a[2], &by))
    return Reply::error(errors::kNotFloat);
  v += by;
  if (std::isnan(v) || std::isinf(v)) return Reply::error(errors::kNanOrInfinity);
  if (!s.live) s.rec = Record{};
  s.rec.value = format_long_double(v);
  k.save(a[1], s.rec);
  return Reply::bulk(s.rec.value);
}

Reply cmd_append(Keys& k, const std::vector<std::string>& a) {
  StringAt s = string_at(k, a[1]);
  if (s.error) return *s.error;
  if (!s.live) s.rec = Record{};
  if (s.rec.value.size() + a[2].size() > kMaxStringBytes)
    return Reply::error(errors::kStringTooLong);
  s.rec.value.append(a[2]);
  k.save(a[1], s.rec);
  return Reply::integer_of(static_cast<int64_t>(s.rec.value.size()));
}

Reply cmd_strlen(Keys& k, const std::vector<std::string>& a) {
  StringAt s = string_at(k, a[1]);
  if (s.error) return *s.error;
  return Reply::integer_of(s.live ? static_cast<int64_t>(s.rec.value.size()) : 0);
}

Reply cmd_getrange(Keys& k, const std::vector<std::string>& a) {
  int64_t start = 0, end = 0;
  if (!parse_int64(a[2], &start) || !parse_int64(a[3], &end))
    return Reply::error(errors::kNotInteger);
  StringAt s = string_at(k, a[1]);
  if (s.error) return *s.error;
  if (!s.live) return Reply::bulk("");
  const int64_t len = static_cast<int64_t>(s.rec.value.size());
  // Redis 7.0: a negative start after a negative end is an empty range.
  if (start < 0 && end < 0 && start > end) return Reply::bulk("");
  if (start < 0) start = len + start;
  if (end < 0) end = len + end;
  if (start < 0) start = 0;
  if (end < 0) end = 0;
  if (end >= len) end = len - 1;
  if (len == 0 || start > end) return Reply::bulk("");
  return Reply::bulk(
      s.rec.value.substr(static_cast<size_t>(start), static_cast<size_t>(end - start + 1)));
}

Reply cmd_setrange(Keys& k, const std::vector<std::string>& a) {
  int64_t offset = 0;
  if (!parse_int64(a[2], &offset)) return Reply::error(errors::kNotInteger);
  if (offset < 0) return Reply::error(errors::kOffsetRange);
  StringAt s = string_at(k, a[1]);
  if (s.error) return *s.error;
  const std::string& v = a[3];
  if (!s.live) {
    if (v.empty()) return Reply::integer_of(0);
    s.rec = Record{};
  }
  if (v.empty()) return Reply::integer_of(static_cast<int64_t>(s.rec.value.size()));
  if (static_cast<uint64_t>(offset) + v.size() > kMaxStringBytes)
    return Reply::error(errors::kStringTooLong);
  size_t need = static_cast<size_t>(offset) + v.size();
  if (s.rec.value.size() < need) s.rec.value.resize(need, '\0');
  s.rec.value.replace(static_cast<size_t>(offset), v.size(), v);
  k.save(a[1], s.rec);
  return Reply::integer_of(static_cast<int64_t>(s.rec.value.size()));
}

// ---- keys ----------------------------------------------------------------------------------

Reply cmd_del(Keys& k, const std::vector<std::string>& a) {
  int64_t n = 0;
  for (size_t i = 1; i < a.size(); ++i)
    n += k.remove(a[i]) ? 1 : 0;
  return Reply::integer_of(n);
}

Reply cmd_exists(Keys& k, const std::vector<std::string>& a) {
  int64_t n = 0;
  for (size_t i = 1; i < a.size(); ++i) {
    Record r;
    if (k.load(a[i], &r) != Keys::Found::kNone) ++n;
  }
  return Reply::integer_of(n);
}

Reply cmd_type(Keys& k, const std::vector<std::string>& a) {
  Record r;
  Keys::Found f = k.load(a[1], &r);
  if (f == Keys::Found::kDamaged) return damaged(a[1]);
  return Reply::status(f == Keys::Found::kLive ? type_name(r.type) : "none");
}

Reply ttl_of(Keys& k, const std::vector<std::string>& a, bool ms) {
  Record r;
  Keys::Found f = k.load(a[1], &r);
  if (f == Keys::Found::kDamaged) return damaged(a[1]);
  if (f == Keys::Found::kNone) return Reply::integer_of(-2);
  if (r.expire_ms == 0) return Reply::integer_of(-1);
  int64_t left = r.expire_ms - k.now();
  return Reply::integer_of(ms ? left : (left + 500) / 1000);
}
Reply cmd_ttl(Keys& k, const std::vector<std::string>& a) {
  return ttl_of(k, a, false);
}
Reply cmd_pttl(Keys& k, const std::vector<std::string>& a) {
  return ttl_of(k, a, true);
}

Reply expire_time_of(Keys& k, const std::vector<std::string>& a, bool ms) {
  Record r;
  Keys::Found f = k.load(a[1], &r);
  if (f == Keys::Found::kDamaged) return damaged(a[1]);
  if (f == Keys::Found::kNone) return Reply::integer_of(-2);
  if (r.expire_ms == 0) return Reply::integer_of(-1);
  return Reply::integer_of(ms ? r.expire_ms : r.expire_ms / 1000);
}
Reply cmd_expiretime(Keys& k, const std::vector<std::string>& a) {
  return expire_time_of(k, a, false);
}
Reply cmd_pexpiretime(Keys& k, const std::vector<std::string>& a) {
  return expire_time_of(k, a, true);
}

// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key time [NX|XX|GT|LT]
Reply cmd_expire(Keys& k, const std::vector<std::string>& a) {
  const std::string& name = a[0];
  bool seconds = name == "expire" || name == "expireat";
  bool absolute = name == "expireat" || name == "pexpireat";
  Conditions cond;
  for (size_t i = 3; i < a.size(); ++i) {
    if (!cond.take(a[i])) return Reply::error("ERR Unsupported option " + a[i]);
  }
  const bool nx = cond.nx, xx = cond.xx, gt = cond.gt, lt = cond.lt;
  if (nx && (xx || gt || lt))
    return Reply::error("ERR NX and XX, GT or LT options at the same time are not compatible");
  if (gt && lt) return Reply::error("ERR GT and LT options at the same time are not compatible");
  int64_t v = 0;
  if (!parse_int64(a[2], &v)) return Reply::error(errors::kNotInteger);
  int64_t at = 0;
  if (!absolute_ms(v, seconds, absolute, k.now(), &at)) return invalid_expire(name);
  Record r;
  Keys::Found f = k.load(a[1], &r);
  if (f == Keys::Found::kDamaged) return damaged(a[1]);
  if (f == Keys::Found::kNone) return Reply::integer_of(0);
  const bool volatile_key = r.expire_ms != 0;
  if (nx && volatile_key) return Reply::integer_of(0);
  if (xx && !volatile_key) return Reply::integer_of(0);
  // A key without expiry counts as one that never expires.
  if (gt && (!volatile_key || at <= r.expire_ms)) return Reply::integer_of(0);
  if (lt && volatile_key && at >= r.expire_ms) return Reply::integer_of(0);
  if (at <= k.now()) {
    k.remove(a[1]);
  } else {
    r.expire_ms = at;
    k.save(a[1], r);
  }
  return Reply::integer_of(1);
}

Reply cmd_persist(Keys& k, const std::vector<std::string>& a) {
  Record r;
  Keys::Found f = k.load(a[1], &r);
  if (f == Keys::Found::kDamaged) return damaged(a[1]);
  if (f == Keys::Found::kNone || r.expire_ms == 0) return Reply::integer_of(0);
  r.expire_ms = 0;
  k.save(a[1], r);
  return Reply::integer_of(1);
}

// FLUSHALL / FLUSHDB [ASYNC|SYNC], as each group applies it.
Reply cmd_flushall(Keys& k, const std::vector<std::string>& a) {
  if (a.size() > 2 || (a.size() == 2 && !equals_ci(a[1], "async") && !equals_ci(a[1], "sync")))
    return Reply::error(errors::kSyntax);
  k.store().clear();
  return Reply::ok();
}

Reply rename_to(Keys& k, const std::vector<std::string>& a, bool nx) {
  Record r;
  Keys::Found f = k.load(a[1], &r);
  if (f == Keys::Found::kDamaged) return damaged(a[1]);
  if (f == Keys::Found::kNone) return Reply::error(errors::kNoSuchKey);
  if (a[1] == a[2]) return nx ? Reply::integer_of(0) : Reply::ok();
  if (nx) {
    Record other;
    if (k.load(a[2], &other) != Keys::Found::kNone) return Reply::integer_of(0);
  }
  // The record moves; a collection's elements stay under its version.
  k.store().del(a[1]);
  k.save(a[2], r);
  return nx ? Reply::integer_of(1) : Reply::ok();
}
Reply cmd_rename(Keys& k, const std::vector<std::string>& a) {
  return rename_to(k, a, false);
}
Reply cmd_renamenx(Keys& k, const std::vector<std::string>& a) {
  return rename_to(k, a, true);
}

// COPY source destination [DB 0] [REPLACE]: a collection's elements are copied under a new
// version (RENAME moves only the record; a copy needs its own elements).
Reply cmd_copy(Keys& k, const std::vector<std::string>& a) {
  bool replace = false;
  for (size_t i = 3; i < a.size(); ++i) {
    if (equals_ci(a[i], "replace")) {
      replace = true;
    } else if (equals_ci(a[i], "db") && i + 1 < a.size()) {
      int64_t db = 0;
      if (!parse_int64(a[++i], &db)) return Reply::error(errors::kNotInteger);
      if (db != 0) return Reply::error("ERR DB index is out of range");
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  if (a[1] == a[2]) return Reply::error("ERR source and destination objects are the same");
  Record r;
  Keys::Found f = k.load(a[1], &r);
  if (f == Keys::Found::kDamaged) return damaged(a[1]);
  if (f == Keys::Found::kNone) return Reply::integer_of(0);
  Record other;
  Keys::Found d = k.load(a[2], &other);
  if (d == Keys::Found::kDamaged) return damaged(a[2]);
  if (d == Keys::Found::kLive && !replace) return Reply::integer_of(0);
  if (r.collection()) {
    const std::string from = element_key(r.version);
    r.version = k.new_version();
    const std::string to = element_key(r.version);
    std::vector<std::pair<std::string, std::string>> page;
    std::string after;
    do {
      page.clear();
      k.store().scan_elements(from, after, 1024, &page);
      for (const auto& [ekey, value] : page)
        k.store().put_element(to + ekey.substr(from.size()), value);
      if (!page.empty()) after = page.back().first + '\0';
    } while (page.size() == 1024);
  }
  k.save(a[2], r);
  return Reply::integer_of(1);
}

// MEMORY USAGE key [SAMPLES n]: the bytes of the key's record and, for a collection, of its
// element records, from the first n of them (5 by default; 0: all) times its size.
Reply cmd_memory(Keys& k, const std::vector<std::string>& a) {
  if (!equals_ci(a[1], "usage")) {
    return Reply::error("ERR unknown subcommand '" + a[1].substr(0, 128) + "'. Try MEMORY HELP.");
  }
  if (a.size() < 3) return wrong_args("memory|usage");
  int64_t samples = 5;
  if (a.size() == 5 && equals_ci(a[3], "samples")) {
    if (!parse_int64(a[4], &samples) || samples < 0) return Reply::error(errors::kNotInteger);
  } else if (a.size() != 3) {
    return Reply::error(errors::kSyntax);
  }
  std::string bytes;
  Record r;
  Keys::Found f = k.load(a[2], &r);
  if (f == Keys::Found::kDamaged) return damaged(a[2]);
  if (f == Keys::Found::kNone || !k.store().get(a[2], &bytes)) return Reply::null();
  uint64_t total = a[2].size() + bytes.size();
  if (r.collection() && r.size > 0) {
    std::vector<std::pair<std::string, std::string>> seen;
    const size_t limit =
        samples == 0 ? std::numeric_limits<size_t>::max() : static_cast<size_t>(samples);
    k.store().scan_elements(element_key(r.version), "", limit, &seen);
    uint64_t sampled = 0;
    for (const auto& [ekey, value] : seen)
      sampled += ekey.size() + value.size();
    if (!seen.empty()) total += sampled * r.size / seen.size();
  }
  return Reply::integer_of(static_cast<int64_t>(total));
}

// OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ key: Chorus has one layout per type, named as Redis
// names the encoding a value of that size would have; a record is never shared (refcount 1),
// and access times are not kept.
Reply cmd_object(Keys& k, const std::vector<std::string>& a) {
  if (a.size() != 3) {
    if (equals_ci(a[1], "help")) return Reply::array({Reply::status("OBJECT <subcommand> key")});
    return wrong_args("object|" + a[1]);
  }
  Record r;
  Keys::Found f = k.load(a[2], &r);
  if (f == Keys::Found::kDamaged) return damaged(a[2]);
  if (f == Keys::Found::kNone) return Reply::null();
  if (equals_ci(a[1], "refcount")) return Reply::integer_of(1);
  if (equals_ci(a[1], "idletime")) return Reply::integer_of(0);
  if (equals_ci(a[1], "freq")) {
    return Reply::error(
        "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
        "that when switching between policies at runtime LRU and LFU data will take some time "
        "to adjust.");
  }
  if (!equals_ci(a[1], "encoding")) {
    return Reply::error("ERR unknown subcommand '" + a[1].substr(0, 128) + "'. Try OBJECT HELP.");
  }
  int64_t n = 0;
  switch (r.type) {
    case kString:
      return Reply::bulk(r.value.size() <= 20 && parse_int64(r.value, &n) ? "int"
                         : r.value.size() <= 44                           ? "embstr"
                                                                          : "raw");
    case kList:
      return Reply::bulk("quicklist");
    case kZset:
      return Reply::bulk("skiplist");
    case kStream:
      return Reply::bulk("stream");
    default:
      return Reply::bulk("hashtable");
  }
}

// PUBLISH channel message: through its channel's group's log, so that every member sees it
// applied and delivers it to its own subscribers (the connection counts those).
Reply cmd_publish(Keys&, const std::vector<std::string>&) {
  return Reply::integer_of(0);
}

const std::vector<Entry>& entries() {
  static const std::vector<Entry> table = [] {
    std::vector<Entry> all = {
        // Strings.
        {{"get", 2, kReadOnly, 1, 1, 1}, cmd_get},
        {{"set", -3, kWrite, 1, 1, 1}, cmd_set},
        {{"setnx", 3, kWrite, 1, 1, 1}, cmd_setnx},
        {{"setex", 4, kWrite, 1, 1, 1}, cmd_setex},
        {{"psetex", 4, kWrite, 1, 1, 1}, cmd_psetex},
        {{"getset", 3, kWrite, 1, 1, 1}, cmd_getset},
        {{"getdel", 2, kWrite, 1, 1, 1}, cmd_getdel},
        {{"getex", -2, kWrite, 1, 1, 1}, cmd_getex},
        {{"mget", -2, kReadOnly, 1, -1, 1}, cmd_mget},
        {{"mset", -3, kWrite, 1, -1, 2}, cmd_mset},
        {{"msetnx", -3, kWrite, 1, -1, 2}, cmd_mset},
        {{"incr", 2, kWrite, 1, 1, 1}, cmd_incr},
        {{"decr", 2, kWrite, 1, 1, 1}, cmd_decr},
        {{"incrby", 3, kWrite, 1, 1, 1}, cmd_incrby},
        {{"decrby", 3, kWrite, 1, 1, 1}, cmd_decrby},
        {{"incrbyfloat", 3, kWrite, 1, 1, 1}, cmd_incrbyfloat},
        {{"append", 3, kWrite, 1, 1, 1}, cmd_append},
        {{"strlen", 2, kReadOnly, 1, 1, 1}, cmd_strlen},
        {{"getrange", 4, kReadOnly, 1, 1, 1}, cmd_getrange},
        {{"substr", 4, kReadOnly, 1, 1, 1}, cmd_getrange},
        {{"setrange", 4, kWrite, 1, 1, 1}, cmd_setrange},
        // Keys.
        {{"del", -2, kWrite, 1, -1, 1}, cmd_del},
        {{"unlink", -2, kWrite, 1, -1, 1}, cmd_del},
        {{"exists", -2, kReadOnly, 1, -1, 1}, cmd_exists},
        {{"type", 2, kReadOnly, 1, 1, 1}, cmd_type},
        {{"ttl", 2, kReadOnly, 1, 1, 1}, cmd_ttl},
        {{"pttl", 2, kReadOnly, 1, 1, 1}, cmd_pttl},
        {{"expiretime", 2, kReadOnly, 1, 1, 1}, cmd_expiretime},
        {{"pexpiretime", 2, kReadOnly, 1, 1, 1}, cmd_pexpiretime},
        {{"expire", -3, kWrite, 1, 1, 1}, cmd_expire},
        {{"pexpire", -3, kWrite, 1, 1, 1}, cmd_expire},
        {{"expireat", -3, kWrite, 1, 1, 1}, cmd_expire},
        {{"pexpireat", -3, kWrite, 1, 1, 1}, cmd_expire},
        {{"persist", 2, kWrite, 1, 1, 1}, cmd_persist},
        {{"rename", 3, kWrite, 1, 2, 1}, cmd_rename},
        {{"renamenx", 3, kWrite, 1, 2, 1}, cmd_renamenx},
        {{"copy", -3, kWrite, 1, 2, 1}, cmd_copy},
        {{"publish", 3, kWrite, 1, 1, 1}, cmd_publish},
        {{"object", -2, kReadOnly, 2, 2, 1}, cmd_object},
        {{"memory", -2, kReadOnly, 2, 2, 1}, cmd_memory},
        // Every key: run on every group.
        {{"flushall", -1, kWrite | kAllGroups, 0, 0, 0}, cmd_flushall},
        {{"flushdb", -1, kWrite | kAllGroups, 0, 0, 0}, cmd_flushall},
        {{"dbsize", 1, kReadOnly | kAllGroups, 0, 0, 0}, nullptr},
        {{"randomkey", 1, kReadOnly | kAllGroups, 0, 0, 0}, nullptr},
        {{"keys", 2, kReadOnly | kAllGroups, 0, 0, 0}, nullptr},
        {{"scan", -2, kReadOnly | kAllGroups, 0, 0, 0}, nullptr},
        // Answered by the connection.
        {{"ping", -1, kKeyless, 0, 0, 0}, nullptr},
        {{"echo", 2, kKeyless, 0, 0, 0}, nullptr},
        {{"hello", -1, kKeyless, 0, 0, 0}, nullptr},
        {{"select", 2, kKeyless, 0, 0, 0}, nullptr},
        {{"quit", -1, kKeyless, 0, 0, 0}, nullptr},
        {{"reset", 1, kKeyless, 0, 0, 0}, nullptr},
        {{"client", -2, kKeyless, 0, 0, 0}, nullptr},
        {{"command", -1, kKeyless, 0, 0, 0}, nullptr},
        {{"time", 1, kKeyless, 0, 0, 0}, nullptr},
        {{"info", -1, kKeyless, 0, 0, 0}, nullptr},
        {{"config", -2, kKeyless, 0, 0, 0}, nullptr},
        {{"function", -2, kKeyless, 0, 0, 0}, nullptr},
        {{"readonly", 1, kKeyless, 0, 0, 0}, nullptr},
        {{"auth", -2, kKeyless, 0, 0, 0}, nullptr},
        {{"readwrite", 1, kKeyless, 0, 0, 0}, nullptr},
        {{"multi", 1, kKeyless, 0, 0, 0}, nullptr},
        {{"exec", 1, kKeyless, 0, 0, 0}, nullptr},
        {{"discard", 1, kKeyless, 0, 0, 0}, nullptr},
        {{"watch", -2, kKeyless, 0, 0, 0}, nullptr},
        {{"unwatch", 1, kKeyless, 0, 0, 0}, nullptr},
        {{"subscribe", -2, kKeyless, 0, 0, 0}, nullptr},
        {{"unsubscribe", -1, kKeyless, 0, 0, 0}, nullptr},
        {{"psubscribe", -2, kKeyless, 0, 0, 0}, nullptr},
        {{"punsubscribe", -1, kKeyless, 0, 0, 0}, nullptr},
        {{"pubsub", -2, kKeyless, 0, 0, 0}, nullptr},
    };
    for (const std::vector<Entry>* more : {&collection_entries(), &sorted_set_entries(),
                                           &string_entries(), &sort_entries(), &stream_entries()})
      all.insert(all.end(), more->begin(), more->end());
    return all;
  }();
  return table;
}

const std::unordered_map<std::string, const Entry*>& by_name() {
  static const std::unordered_map<std::string, const Entry*> m = [] {
    std::unordered_map<std::string, const Entry*> out;
    for (const Entry& e : entries())
      out.emplace(e.spec.name, &e);
    return out;
  }();
  return m;
}

const Entry* find_entry(std::string_view name) {
  if (name.size() > 32) return nullptr;
  std::string lower(name);
  for (char& c : lower)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = by_name().find(lower);
  return it == by_name().end() ? nullptr : it->second;
}

}  // namespace

const CommandSpec* find_command(std::string_view name) {
  const Entry* e = find_entry(name);
  return e ? &e->spec : nullptr;
}

const std::vector<CommandSpec>& command_table() {
  static const std::vector<CommandSpec> specs = [] {
    std::vector<CommandSpec> out;
    for (const Entry& e : entries())
      out.push_back(e.spec);
    return out;
  }();
  return specs;
}

bool arity_ok(const CommandSpec& spec, size_t argc) {
  if (spec.arity >= 0) return argc == static_cast<size_t>(spec.arity);
  return argc >= static_cast<size_t>(-spec.arity);
}

namespace {

// Commands that name their keys with a count first: where the count is, and where a key comes
// before it (the destination of the *STORE forms; 0: none).
struct NumkeysLayout {
  std::string_view name;
  size_t numkeys_at;
  size_t dest_at;
};
constexpr NumkeysLayout kNumkeysLayouts[] = {
    {"sintercard", 1, 0}, {"zintercard", 1, 0},  {"zunion", 1, 0},      {"zinter", 1, 0},
    {"zdiff", 1, 0},      {"zunionstore", 2, 1}, {"zinterstore", 2, 1}, {"zdiffstore", 2, 1},
    {"lmpop", 1, 0},      {"zmpop", 1, 0},       {"blmpop", 2, 0},      {"bzmpop", 2, 0},
};

}  // namespace

bool names_keys_by_count(const CommandSpec& spec) {
  for (const NumkeysLayout& l : kNumkeysLayouts) {
    if (l.name == spec.name) return true;
  }
  return false;
}

std::vector<std::string_view> command_keys(const CommandSpec& spec,
                                           const std::vector<std::string>& argv) {
  std::vector<std::string_view> keys;
  if (spec.first_key <= 0) return keys;
  for (const NumkeysLayout& l : kNumkeysLayouts) {
    if (l.name != spec.name) continue;
    // A bad count names no key: the command itself answers why.
    int64_t n = 0;
    if (argv.size() <= l.numkeys_at || !parse_int64(argv[l.numkeys_at], &n) || n <= 0 ||
        static_cast<uint64_t>(n) > argv.size() - l.numkeys_at - 1)
      return keys;
    if (l.dest_at != 0) keys.push_back(argv[l.dest_at]);
    for (size_t i = l.numkeys_at + 1; i <= l.numkeys_at + static_cast<size_t>(n); ++i)
      keys.push_back(argv[i]);
    return keys;
  }
  if (std::string_view(spec.name) == "sort") {
    // SORT key ... [STORE destination]: the destination is a key too (Redis Cluster's).
    keys.push_back(argv[1]);
    for (size_t i = 2; i + 1 < argv.size(); ++i) {
      if (equals_ci(argv[i], "store")) keys.push_back(argv[i + 1]);
    }
    return keys;
  }
  if (std::string_view(spec.name) == "xread" || std::string_view(spec.name) == "xreadgroup") {
    // ... STREAMS key [key ...] id [id ...]: the first half after STREAMS.
    for (size_t i = 1; i < argv.size(); ++i) {
      if (!equals_ci(argv[i], "streams")) continue;
      const size_t rest = argv.size() - i - 1;
      if (rest == 0 || rest % 2 != 0) return keys;
      for (size_t j = i + 1; j <= i + rest / 2; ++j)
        keys.push_back(argv[j]);
      return keys;
    }
    return keys;
  }
  int last = spec.last_key < 0 ? static_cast<int>(argv.size()) + spec.last_key : spec.last_key;
  for (int i = spec.first_key; i <= last && i < static_cast<int>(argv.size()); i += spec.key_step)
    keys.push_back(argv[static_cast<size_t>(i)]);
  return keys;
}

namespace {

Reply run_one(Keys& keys, const std::vector<std::string>& argv) {
  if (argv.empty()) return Reply::error("ERR empty command");
  const Entry* e = find_entry(argv[0]);
  if (e == nullptr || e->fn == nullptr)
    return Reply::error("ERR unknown command '" + argv[0] + "'");
  if (!arity_ok(e->spec, argv.size())) return wrong_args(e->spec.name);
  if (argv[0] == e->spec.name) return e->fn(keys, argv);
  std::vector<std::string> lowered = argv;
  lowered[0] = e->spec.name;
  return e->fn(keys, lowered);
}

}  // namespace

std::vector<std::string> transaction_command(
    const std::vector<std::vector<std::string>>& cmds,
    const std::vector<std::pair<std::string, uint64_t>>& watched) {
  std::vector<std::string> argv = {std::string(kTransaction)};
  if (!watched.empty()) {
    std::vector<std::string> w = {std::string(kWatchedVersions)};
    for (const auto& [key, version] : watched) {
      w.push_back(key);
      w.push_back(std::to_string(version));
    }
    argv.push_back(encode_command(0, w));
  }
  for (const auto& c : cmds)
    argv.push_back(encode_command(0, c));
  return argv;
}

Reply execute(RecordStore& store, const std::vector<std::string>& argv, int64_t now_ms,
              uint64_t version_base) {
  Keys keys(store, now_ms, version_base);
  if (!argv.empty() && argv[0] == kExpireSweep) {
    int64_t removed = 0;
    std::string bytes;
    for (size_t i = 1; i < argv.size(); ++i) {
      if (store.get(argv[i], &bytes) && expired(bytes, now_ms)) {
        keys.remove(argv[i]);
        ++removed;
      }
    }
    return Reply::integer_of(removed);
  }
  if (!argv.empty() && argv[0] == kKeyVersions) {
    std::vector<Reply> out;
    for (size_t i = 1; i < argv.size(); ++i)
      out.push_back(Reply::integer_of(static_cast<int64_t>(keys.watch_version(argv[i]))));
    return Reply::array(std::move(out));
  }
  if (argv.empty() || argv[0] != kTransaction) return run_one(keys, argv);
  // MULTI ... EXEC: every command in turn, on the same view, as one entry.
  if (argv.size() - 1 > kMaxTransactionCommands)
    return Reply::error("ERR a transaction holds at most " +
                        std::to_string(kMaxTransactionCommands) + " commands");
  std::vector<Reply> replies;
  std::vector<std::string> sub;
  int64_t unused = 0;
  size_t first = 1;
  // WATCH: a key written (or gone) since its version was read aborts the transaction.
  if (argv.size() > 1 && decode_command(argv[1], &unused, &sub) && !sub.empty() &&
      sub[0] == kWatchedVersions) {
    first = 2;
    for (size_t i = 1; i + 1 < sub.size(); i += 2) {
      int64_t v = 0;
      if (!parse_int64(sub[i + 1], &v) || keys.watch_version(sub[i]) != static_cast<uint64_t>(v))
        return Reply::null_array();
    }
  }
  for (size_t i = first; i < argv.size(); ++i) {
    if (!decode_command(argv[i], &unused, &sub) || sub.empty() || sub[0] == kTransaction) {
      replies.push_back(Reply::error("ERR malformed transaction"));
      continue;
    }
    replies.push_back(run_one(keys, sub));
  }
  return Reply::array(std::move(replies));
}

namespace {

// Whether `c` matches the set that starts after '[' at p[*i]; *i moves past its ']'.
bool match_set(std::string_view p, size_t* i, char c) {
  size_t j = *i;
  bool negate = j < p.size() && p[j] == '^';
  if (negate) ++j;
  bool found = false;
  while (j < p.size() && p[j] != ']') {
    if (p[j] == '\\' && j + 1 < p.size()) {
      ++j;
      if (p[j] == c) found = true;
      ++j;
    } else if (j + 2 < p.size() && p[j + 1] == '-' && p[j + 2] != ']') {
      unsigned char lo = static_cast<unsigned char>(p[j]);
      unsigned char hi = static_cast<unsigned char>(p[j + 2]);
      if (lo > hi) std::swap(lo, hi);
      unsigned char uc = static_cast<unsigned char>(c);
      if (uc >= lo && uc <= hi) found = true;
      j += 3;
    } else {
      if (p[j] == c) found = true;
      ++j;
    }
  }
  *i = j < p.size() ? j + 1 : j;  // an unclosed set ends with the pattern, as in Redis
  return negate ? !found : found;
}

}  // namespace

bool glob_match(std::string_view p, std::string_view s) {
  // Backtracking to the last '*' only: every other token matches one character.
  size_t pi = 0, si = 0;
  size_t star = std::string_view::npos, star_s = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      while (pi < p.size() && p[pi] == '*')
        ++pi;
      if (pi == p.size()) return true;
      star = pi;
      star_s = si;
      continue;
    }
    bool ok = false;
    size_t next = pi;
    if (pi < p.size()) {
      if (p[pi] == '?') {
        ok = true;
        next = pi + 1;
      } else if (p[pi] == '[') {
        next = pi + 1;
        ok = match_set(p, &next, s[si]);
      } else if (p[pi] == '\\' && pi + 1 < p.size()) {
        ok = p[pi + 1] == s[si];
        next = pi + 2;
      } else {
        ok = p[pi] == s[si];
        next = pi + 1;
      }
    }
    if (ok) {
      pi = next;
      ++si;
    } else if (star != std::string_view::npos) {
      pi = star;
      si = ++star_s;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*')
    ++pi;
  return pi == p.size();
}

bool expired(std::string_view record, int64_t now_ms) {
  Record r;
  return decode_record(record, &r) && r.expire_ms != 0 && r.expire_ms <= now_ms;
}

const char* live_type(std::string_view record, int64_t now_ms) {
  Record r;
  if (!decode_record(record, &r)) return nullptr;
  if (r.expire_ms != 0 && r.expire_ms <= now_ms) return nullptr;
  return type_name(r.type);
}

bool parse_int64(std::string_view s, int64_t* out) {
  // As Redis's string2ll: no sign but '-', no leading zeros, no spaces, fits in 64 bits.
  if (s.empty() || s.size() > 20) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  if (s[i] == '0' && (s.size() != 1)) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_long_double(std::string_view s, long double* out) {
  if (s.empty() || s.size() > 5 * 1024) return false;
  if (std::isspace(static_cast<unsigned char>(s[0]))) return false;
  std::string z(s);
  char* end = nullptr;
  errno = 0;
  long double v = std::strtold(z.c_str(), &end);
  if (end != z.c_str() + z.size() || errno == ERANGE || std::isnan(v)) return false;
  *out = v;
  return true;
}

std::string format_long_double(long double v) {
  // Redis's human form: 17 digits after the point, trailing zeros (and a bare point) dropped.
  char buf[5 * 1024];
  int n = std::snprintf(buf, sizeof buf, "%.17Lf", v);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof buf) return "0";
  std::string s(buf, static_cast<size_t>(n));
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0')
      s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

std::string encode_command(int64_t now_ms, const std::vector<std::string>& argv) {
  std::string out;
  size_t n = 13;
  for (const std::string& a : argv)
    n += 4 + a.size();
  out.reserve(n);
  base::put_u8(&out, kCommandFormat);
  base::put_u64(&out, static_cast<uint64_t>(now_ms));
  base::put_u32(&out, static_cast<uint32_t>(argv.size()));
  for (const std::string& a : argv)
    base::put_bytes(&out, a);
  return out;
}

bool decode_command(std::string_view bytes, int64_t* now_ms, std::vector<std::string>* argv) {
  base::Reader r(bytes);
  uint8_t format = 0;
  uint64_t now = 0;
  uint32_t count = 0;
  if (!r.u8(&format) || format != kCommandFormat || !r.u64(&now) || !r.u32(&count)) return false;
  // Each argument takes at least its 4-byte length: a damaged count cannot ask for more.
  if (count > bytes.size() / 4) return false;
  argv->clear();
  argv->reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    std::string a;
    if (!r.bytes(&a)) return false;
    argv->push_back(std::move(a));
  }
  *now_ms = static_cast<int64_t>(now);
  return r.done() && !argv->empty();
}

}  // namespace chorus::redis
