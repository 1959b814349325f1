// String commands beyond GET and SET's family: the bit commands (SETBIT, GETBIT, BITCOUNT,
// BITPOS, BITOP) and LCS. Bits are numbered as Redis numbers them: bit 0 is the most
// significant bit of the first byte.
#include <algorithm>
#include <array>
#include <bit>
#include <limits>

#include "redis/records.h"

namespace chorus::redis::internal {

namespace {

using Args = std::vector<std::string>;

// Redis's own limit on a bit offset (512 MiB of bits); past kMaxStringBytes the string is too
// long for Chorus, which answers so.
constexpr uint64_t kMaxBitOffset = (uint64_t{512} << 23) - 1;

bool parse_bit_offset(std::string_view s, uint64_t* out) {
  int64_t v = 0;
  if (!parse_int64(s, &v) || v < 0 || static_cast<uint64_t>(v) > kMaxBitOffset) return false;
  *out = static_cast<uint64_t>(v);
  return true;
}

bool bit_at(std::string_view v, uint64_t offset) {
  uint64_t byte = offset >> 3;
  if (byte >= v.size()) return false;
  return (static_cast<uint8_t>(v[byte]) >> (7 - (offset & 7))) & 1;
}

// SETBIT key offset 0|1: the bit's old value.
Reply cmd_setbit(Keys& k, const Args& a) {
  uint64_t offset = 0;
  if (!parse_bit_offset(a[2], &offset))
    return Reply::error("ERR bit offset is not an integer or out of range");
  if (a[3] != "0" && a[3] != "1") return Reply::error("ERR bit is not an integer or out of range");
  StringAt s = string_at(k, a[1]);
  if (s.error) return *s.error;
  if (!s.live) s.rec = Record{};
  const uint64_t byte = offset >> 3;
  if (byte + 1 > kMaxStringBytes) return Reply::error(errors::kStringTooLong);
  if (s.rec.value.size() < byte + 1) s.rec.value.resize(byte + 1, '\0');
  const bool old = bit_at(s.rec.value, offset);
  const auto mask = static_cast<uint8_t>(1u << (7 - (offset & 7)));
  auto& c = reinterpret_cast<uint8_t&>(s.rec.value[byte]);
  c = a[3] == "1" ? static_cast<uint8_t>(c | mask) : static_cast<uint8_t>(c & ~mask);
  k.save(a[1], s.rec);
  return Reply::integer_of(old ? 1 : 0);
}

Reply cmd_getbit(Keys& k, const Args& a) {
  uint64_t offset = 0;
  if (!parse_bit_offset(a[2], &offset))
    return Reply::error("ERR bit offset is not an integer or out of range");
  StringAt s = string_at(k, a[1]);
  if (s.error) return *s.error;
  return Reply::integer_of(s.live && bit_at(s.rec.value, offset) ? 1 : 0);
}

// BITCOUNT's and BITPOS's range: [start end [BYTE|BIT]] from a[from]; inclusive bit bounds
// within the string, or empty. `*given_end` says whether an end was named (BITPOS's rule).
struct BitRange {
  uint64_t first = 0, last = 0;  // bit offsets, inclusive
  bool empty = false;
};

std::optional<Reply> parse_bit_range(const Args& a, size_t from, size_t len_bytes,
                                     bool end_optional, BitRange* r, bool* given_end) {
  *given_end = false;
  int64_t start = 0, end = 0;
  bool bits = false;
  const size_t n = a.size() - from;
  if (n == 0) {
    r->first = 0;
    r->last = len_bytes * 8 == 0 ? 0 : len_bytes * 8 - 1;
    r->empty = len_bytes == 0;
    return std::nullopt;
  }
  if (n > 3 || (n == 1 && !end_optional)) return Reply::error(errors::kSyntax);
  if (!parse_int64(a[from], &start)) return Reply::error(errors::kNotInteger);
  if (n >= 2) {
    if (!parse_int64(a[from + 1], &end)) return Reply::error(errors::kNotInteger);
    *given_end = true;
  }
  if (n == 3) {
    if (equals_ci(a[from + 2], "bit")) {
      bits = true;
    } else if (!equals_ci(a[from + 2], "byte")) {
      return Reply::error(errors::kSyntax);
    }
  }
  const int64_t total = static_cast<int64_t>(bits ? len_bytes * 8 : len_bytes);
  if (!*given_end) end = total - 1;
  if (start < 0) start = std::max<int64_t>(0, total + start);
  if (end < 0) end = std::max<int64_t>(-1, total + end);
  if (end >= total) end = total - 1;
  if (start > end || total == 0) {
    r->empty = true;
    return std::nullopt;
  }
  r->first = bits ? static_cast<uint64_t>(start) : static_cast<uint64_t>(start) * 8;
  r->last = bits ? static_cast<uint64_t>(end) : static_cast<uint64_t>(end) * 8 + 7;
  return std::nullopt;
}

Reply cmd_bitcount(Keys& k, const Args& a) {
  StringAt s = string_at(k, a[1]);
  if (s.error) return *s.error;
  const std::string& v = s.live ? s.rec.value : std::string();
  BitRange r;
  bool given_end = false;
  if (auto e = parse_bit_range(a, 2, v.size(), false, &r, &given_end)) return *e;
  if (r.empty || !s.live) return Reply::integer_of(0);
  int64_t count = 0;
  uint64_t bit = r.first;
  for (; bit <= r.last && (bit & 7) != 0; ++bit)
    count += bit_at(v, bit);
  for (; bit + 7 <= r.last; bit += 8)
    count += std::popcount(static_cast<uint8_t>(v[bit >> 3]));
  for (; bit <= r.last; ++bit)
    count += bit_at(v, bit);
  return Reply::integer_of(count);
}

// BITPOS key 0|1 [start [end [BYTE|BIT]]]
Reply cmd_bitpos(Keys& k, const Args& a) {
  if (a[2] != "0" && a[2] != "1") return Reply::error("ERR The bit argument must be 1 or 0.");
  const bool want = a[2] == "1";
  StringAt s = string_at(k, a[1]);
  if (s.error) return *s.error;
  if (!s.live) return Reply::integer_of(want ? -1 : 0);
  const std::string& v = s.rec.value;
  BitRange r;
  bool given_end = false;
  if (auto e = parse_bit_range(a, 3, v.size(), true, &r, &given_end)) return *e;
  if (r.empty) return Reply::integer_of(-1);
  for (uint64_t bit = r.first; bit <= r.last; ++bit) {
    if ((bit & 7) == 0 && bit + 7 <= r.last) {
      auto byte = static_cast<uint8_t>(v[bit >> 3]);
      if (byte == (want ? 0x00 : 0xff)) {
        bit += 7;
        continue;
      }
    }
    if (bit_at(v, bit) == want) return Reply::integer_of(static_cast<int64_t>(bit));
  }
  // Looking for a clear bit with no end named: the string is as if padded with zeros.
  if (!want && !given_end) return Reply::integer_of(static_cast<int64_t>(r.last + 1));
  return Reply::integer_of(-1);
}

// BITOP AND|OR|XOR|NOT destkey key [key ...]
Reply cmd_bitop(Keys& k, const Args& a) {
  enum class Op { kAnd, kOr, kXor, kNot } op;
  if (equals_ci(a[1], "and")) {
    op = Op::kAnd;
  } else if (equals_ci(a[1], "or")) {
    op = Op::kOr;
  } else if (equals_ci(a[1], "xor")) {
    op = Op::kXor;
  } else if (equals_ci(a[1], "not")) {
    op = Op::kNot;
  } else {
    return Reply::error(errors::kSyntax);
  }
  if (op == Op::kNot && a.size() != 4)
    return Reply::error("ERR BITOP NOT must be called with a single source key.");
  std::vector<std::string> sources;
  size_t longest = 0;
  for (size_t i = 3; i < a.size(); ++i) {
    StringAt s = string_at(k, a[i]);
    if (s.error) return *s.error;
    sources.push_back(s.live ? std::move(s.rec.value) : std::string());
    longest = std::max(longest, sources.back().size());
  }
  std::string out(longest, '\0');
  for (size_t j = 0; j < longest; ++j) {
    auto byte = [&](size_t i) {
      return j < sources[i].size() ? static_cast<uint8_t>(sources[i][j]) : uint8_t{0};
    };
    uint8_t acc = byte(0);
    if (op == Op::kNot) acc = static_cast<uint8_t>(~acc);
    for (size_t i = 1; i < sources.size(); ++i) {
      acc = op == Op::kAnd  ? static_cast<uint8_t>(acc & byte(i))
            : op == Op::kOr ? static_cast<uint8_t>(acc | byte(i))
                            : static_cast<uint8_t>(acc ^ byte(i));
    }
    out[j] = static_cast<char>(acc);
  }
  if (out.empty()) {
    k.remove(a[2]);
  } else {
    Record r;
    r.value = std::move(out);
    k.save(a[2], r);
  }
  return Reply::integer_of(static_cast<int64_t>(longest));
}

// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]: the longest common subsequence, by
// Redis's dynamic programme (and its walk back, which lists the matches from the end).
Reply cmd_lcs(Keys& k, const Args& a) {
  bool len_only = false, idx = false, with_len = false;
  int64_t min_len = 0;
  for (size_t i = 3; i < a.size(); ++i) {
    if (equals_ci(a[i], "len")) {
      len_only = true;
    } else if (equals_ci(a[i], "idx")) {
      idx = true;
    } else if (equals_ci(a[i], "withmatchlen")) {
      with_len = true;
    } else if (equals_ci(a[i], "minmatchlen") && i + 1 < a.size()) {
      if (!parse_int64(a[++i], &min_len)) return Reply::error(errors::kNotInteger);
      if (min_len < 0) min_len = 0;
    } else {
      return Reply::error(errors::kSyntax);
    }
  }
  if (len_only && idx)
    return Reply::error("ERR If you want both the length and indexes, please just use IDX.");
  std::array<std::string, 2> v;
  for (size_t i = 0; i < 2; ++i) {
    StringAt s = string_at(k, a[1 + i]);
    if (s.error) {
      if (s.error->str == errors::kWrongType)
        return Reply::error("ERR The specified keys must contain string values");
      return *s.error;
    }
    if (s.live) v[i] = std::move(s.rec.value);
  }
  const std::string& x = v[0];
  const std::string& y = v[1];
  const size_t xn = x.size(), yn = y.size();
  if ((xn + 1) * (yn + 1) > kMaxStringBytes)
    return Reply::error(
        "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
  std::vector<uint32_t> table((xn + 1) * (yn + 1), 0);
  auto at = [&](size_t i, size_t j) -> uint32_t& { return table[i * (yn + 1) + j]; };
  for (size_t i = 1; i <= xn; ++i) {
    for (size_t j = 1; j <= yn; ++j)
      at(i, j) = x[i - 1] == y[j - 1] ? at(i - 1, j - 1) + 1 : std::max(at(i - 1, j), at(i, j - 1));
  }
  const uint32_t total = at(xn, yn);
  if (len_only) return Reply::integer_of(total);

  std::string common(total, '\0');
  std::vector<Reply> matches;
  size_t remaining = total;
  size_t i = xn, j = yn;
  size_t a_start = xn, a_end = 0, b_start = 0, b_end = 0;  // a_start == xn: no range open
  while (i > 0 && j > 0) {
    bool emit = false;
    if (x[i - 1] == y[j - 1]) {
      common[remaining - 1] = x[i - 1];
      if (a_start == xn) {
        a_start = a_end = i - 1;
        b_start = b_end = j - 1;
      } else if (a_start == i && b_start == j) {
        --a_start;
        --b_start;
      } else {
        emit = true;
      }
      if (a_start == 0 || b_start == 0) emit = true;
      --remaining;
      --i;
      --j;
    } else {
      if (at(i - 1, j) > at(i, j - 1)) {
        --i;
      } else {
        --j;
      }
      if (a_start != xn) emit = true;
    }
    if (emit) {
      const size_t match_len = a_end - a_start + 1;
      if (idx && (min_len == 0 || match_len >= static_cast<uint64_t>(min_len))) {
        std::vector<Reply> m = {Reply::array({Reply::integer_of(static_cast<int64_t>(a_start)),
                                              Reply::integer_of(static_cast<int64_t>(a_end))}),
                                Reply::array({Reply::integer_of(static_cast<int64_t>(b_start)),
                                              Reply::integer_of(static_cast<int64_t>(b_end))})};
        if (with_len) m.push_back(Reply::integer_of(static_cast<int64_t>(match_len)));
        matches.push_back(Reply::array(std::move(m)));
      }
      a_start = xn;
    }
  }
  if (!idx) return Reply::bulk(std::move(common));
  return Reply::map({Reply::bulk("matches"), Reply::array(std::move(matches)), Reply::bulk("len"),
                     Reply::integer_of(total)});
}

}  // namespace

const std::vector<Entry>& string_entries() {
  static const std::vector<Entry> table = {
      {{"setbit", 4, kWrite, 1, 1, 1}, cmd_setbit},
      {{"getbit", 3, kReadOnly, 1, 1, 1}, cmd_getbit},
      {{"bitcount", -2, kReadOnly, 1, 1, 1}, cmd_bitcount},
      {{"bitpos", -3, kReadOnly, 1, 1, 1}, cmd_bitpos},
      {{"bitop", -4, kWrite, 2, -1, 1}, cmd_bitop},
      {{"lcs", -3, kReadOnly, 1, 2, 1}, cmd_lcs},
  };
  return table;
}

}  // namespace chorus::redis::internal
