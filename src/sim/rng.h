// Deterministic pseudo-random numbers for the simulator: every choice in a run flows from the
// seed, so one seed replays one run exactly.
#pragma once

#include <cstdint>

namespace chorus::sim {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    // splitmix64
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n); n must be > 0.
  uint64_t below(uint64_t n) { return next() % n; }
  // Uniform in [lo, hi].
  uint64_t range(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
  double unit() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  bool chance(double p) { return unit() < p; }
  // A derived, independent stream (so that adding draws to one part of the simulation does not
  // shift every other part).
  Rng fork(uint64_t salt) { return Rng(next() ^ (salt * 0xD6E8FEB86659FD93ULL)); }

 private:
  uint64_t state_;
};

inline uint64_t hash_mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
  h *= 0xBF58476D1CE4E5B9ULL;
  return h ^ (h >> 29);
}

inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0xCBF29CE484222325ULL;  // FNV-1a
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= 0x100000001B3ULL;
  }
  return h;
}

}  // namespace chorus::sim
