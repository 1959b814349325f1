// Little-endian fixed-width encoding and a bounds-checked reader, shared by every layer that
// turns values into bytes (log records, snapshots, peer frames). Decoding never reads past the
// input: every read reports failure instead.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::base {

inline void put_u8(std::string* out, uint8_t v) {
  out->push_back(static_cast<char>(v));
}
inline void put_u32(std::string* out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i)
    b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out->append(b, 4);
}
inline void put_u64(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i)
    b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out->append(b, 8);
}
// A list of 64-bit values (u32 count, then each), read back by Reader::u64s.
inline void put_u64s(std::string* out, const std::vector<uint64_t>& v) {
  put_u32(out, static_cast<uint32_t>(v.size()));
  for (uint64_t x : v)
    put_u64(out, x);
}
// A length-prefixed byte string (u32 length).
inline void put_bytes(std::string* out, std::string_view v) {
  put_u32(out, static_cast<uint32_t>(v.size()));
  out->append(v);
}

inline uint32_t load_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}
inline uint64_t load_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// Big-endian u64, for keys whose byte order must follow numeric order.
inline void put_u64_be(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i)
    b[i] = static_cast<char>((v >> (8 * (7 - i))) & 0xff);
  out->append(b, 8);
}
inline uint64_t load_u64_be(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  [[nodiscard]] bool u8(uint8_t* v) {
    if (b_.size() < 1) return false;
    *v = static_cast<uint8_t>(b_[0]);
    b_.remove_prefix(1);
    return true;
  }
  [[nodiscard]] bool u32(uint32_t* v) {
    if (b_.size() < 4) return false;
    *v = load_u32(b_.data());
    b_.remove_prefix(4);
    return true;
  }
  [[nodiscard]] bool u64(uint64_t* v) {
    if (b_.size() < 8) return false;
    *v = load_u64(b_.data());
    b_.remove_prefix(8);
    return true;
  }
  [[nodiscard]] bool i64(int64_t* v) {
    uint64_t u = 0;
    if (!u64(&u)) return false;
    *v = static_cast<int64_t>(u);
    return true;
  }
  [[nodiscard]] bool boolean(bool* v) {
    uint8_t b = 0;
    if (!u8(&b) || b > 1) return false;
    *v = b == 1;
    return true;
  }
  [[nodiscard]] bool bytes(size_t n, std::string* out) {
    if (b_.size() < n) return false;
    out->assign(b_.data(), n);
    b_.remove_prefix(n);
    return true;
  }
  // A length-prefixed byte string written by put_bytes.
  [[nodiscard]] bool bytes(std::string* out) {
    uint32_t n = 0;
    return u32(&n) && bytes(n, out);
  }
  // A list written by put_u64s, of at most `max` values (a damaged count cannot ask for more
  // than `max`, nor for more than the bytes left).
  [[nodiscard]] bool u64s(uint32_t max, std::vector<uint64_t>* out) {
    uint32_t n = 0;
    if (!u32(&n) || n > max || n > b_.size() / 8) return false;
    out->resize(n);
    for (uint64_t& x : *out)
      if (!u64(&x)) return false;
    return true;
  }
  [[nodiscard]] bool view(size_t n, std::string_view* out) {
    if (b_.size() < n) return false;
    *out = b_.substr(0, n);
    b_.remove_prefix(n);
    return true;
  }
  bool done() const { return b_.empty(); }
  size_t remaining() const { return b_.size(); }

 private:
  std::string_view b_;
};

}  // namespace chorus::base
