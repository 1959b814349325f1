#include "base/ring.h"

#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <string>

namespace chorus::base {
namespace {

// Against std::deque, through random pushes and pops at both ends.
TEST(RingTest, BehavesAsADequeAtBothEnds) {
  Ring<std::string> ring;
  std::deque<std::string> model;
  std::mt19937_64 rng(7);
  for (int step = 0; step < 20000; ++step) {
    uint64_t r = rng() % 10;
    if (r < 5 || model.empty()) {
      std::string v = std::to_string(step);
      ring.push_back(v);
      model.push_back(v);
    } else if (r < 8) {
      ring.pop_front();
      model.pop_front();
    } else {
      ring.pop_back();
      model.pop_back();
    }
    ASSERT_EQ(ring.size(), model.size());
    if (!model.empty()) {
      ASSERT_EQ(ring.front(), model.front());
      ASSERT_EQ(ring.back(), model.back());
      size_t i = rng() % model.size();
      ASSERT_EQ(ring[i], model[i]);
    }
  }
  size_t i = 0;
  for (const std::string& v : ring)
    EXPECT_EQ(v, model[i++]);
  EXPECT_EQ(i, model.size());
}

// Nothing is allocated until the first push, and a queue that drained gives its memory back.
TEST(RingTest, HoldsNoMemoryWhenEmpty) {
  Ring<int> ring;
  EXPECT_EQ(ring.capacity(), 0u);
  for (int i = 0; i < 10000; ++i)
    ring.push_back(i);
  EXPECT_GE(ring.capacity(), 10000u);
  for (int i = 0; i < 9990; ++i)
    ring.pop_front();
  EXPECT_LE(ring.capacity(), 64u);
  EXPECT_EQ(ring.front(), 9990);
  while (!ring.empty())
    ring.pop_front();
  EXPECT_EQ(ring.capacity(), 0u);
  Ring<int> copy;
  ring.push_back(1);
  copy = ring;
  Ring<int> moved(std::move(ring));
  EXPECT_EQ(copy.size(), 1u);
  EXPECT_EQ(moved.front(), 1);
}

}  // namespace
}  // namespace chorus::base
