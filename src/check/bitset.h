// Set of linearized operations, used as part of the search cache key.
#ifndef CHORUS_CHECK_BITSET_H_
#define CHORUS_CHECK_BITSET_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace chorus::check::internal {

// Finalizer of splitmix64: spreads every input bit over the whole word, so that sets differing
// in one operation land in unrelated buckets.
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

inline size_t hash_combine(size_t a, size_t b) {
  return static_cast<size_t>(mix64(static_cast<uint64_t>(a) ^ mix64(static_cast<uint64_t>(b))));
}

class Bitset {
 public:
  explicit Bitset(size_t bits) : words_((bits + kWordBits - 1) / kWordBits, 0) {}

  void set(size_t i) { words_[i / kWordBits] |= bit(i); }
  void clear(size_t i) { words_[i / kWordBits] &= ~bit(i); }
  bool test(size_t i) const { return (words_[i / kWordBits] & bit(i)) != 0; }

  size_t hash() const {
    uint64_t h = 0;
    for (uint64_t word : words_) {
      h = mix64(h ^ word);
    }
    return static_cast<size_t>(h);
  }

  friend bool operator==(const Bitset&, const Bitset&) = default;

 private:
  static constexpr size_t kWordBits = 64;
  static uint64_t bit(size_t i) { return uint64_t{1} << (i % kWordBits); }

  std::vector<uint64_t> words_;
};

}  // namespace chorus::check::internal

#endif  // CHORUS_CHECK_BITSET_H_
