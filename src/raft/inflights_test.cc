#include "raft/inflights.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace chorus::raft {
namespace {

// One step on a window: add(index, bytes), free_le(index) or free_first_one().
struct Op {
  enum Kind { kAdd, kFreeLe, kFreeFirst } kind;
  Index index = 0;
  uint64_t bytes = 0;
};
Op add(Index i, uint64_t b = 1) {
  return Op{Op::kAdd, i, b};
}
Op free_le(Index i) {
  return Op{Op::kFreeLe, i, 0};
}
Op free_first() {
  return Op{Op::kFreeFirst, 0, 0};
}

struct Case {
  std::string name;
  size_t max_messages;
  uint64_t max_bytes;  // 0: no byte limit
  std::vector<Op> ops;
  size_t count;
  uint64_t bytes;
  bool full;
};

TEST(Inflights, Table) {
  const std::vector<Case> cases = {
      {"empty", 4, 0, {}, 0, 0, false},
      {"below the message limit", 4, 0, {add(1), add(2), add(3)}, 3, 3, false},
      {"at the message limit", 4, 0, {add(1), add(2), add(3), add(4)}, 4, 4, true},
      {"at the byte limit", 10, 100, {add(1, 60), add(2, 40)}, 2, 100, true},
      {"below the byte limit", 10, 100, {add(1, 60), add(2, 39)}, 2, 99, false},
      {"free up to an index", 8, 0, {add(1), add(3), add(5), free_le(3)}, 1, 1, false},
      {"free between indexes", 8, 0, {add(2), add(4), free_le(3)}, 1, 1, false},
      {"free below every index", 8, 0, {add(2), add(4), free_le(1)}, 2, 2, false},
      {"free past every index", 8, 0, {add(2), add(4), free_le(9)}, 0, 0, false},
      {"free the first one", 4, 0, {add(1), add(2), add(3), add(4), free_first()}, 3, 3, false},
      {"free the first of none", 4, 0, {free_first()}, 0, 0, false},
      {"bytes follow frees", 8, 0, {add(1, 10), add(2, 20), add(3, 30), free_le(2)}, 1, 30, false},
      {"a freed byte limit opens", 8, 50, {add(1, 30), add(2, 20), free_first()}, 1, 20, false},
      // The ring wraps: frees at the front, adds past the end of the buffer.
      {"wraps around",
       4,
       0,
       {add(1), add(2), add(3), add(4), free_le(2), add(5), add(6), free_le(4)},
       2,
       2,
       false},
      {"grows with its contents wrapped",
       8,
       0,
       {add(1), add(2), add(3), add(4), free_le(2), add(5), add(6), add(7), add(8)},
       6,
       6,
       false},
      {"refills after emptying", 2, 0, {add(1), add(2), free_le(2), add(3), add(4)}, 2, 2, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Inflights in(c.max_messages, c.max_bytes);
    for (const Op& op : c.ops) {
      switch (op.kind) {
        case Op::kAdd:
          in.add(op.index, op.bytes);
          break;
        case Op::kFreeLe:
          in.free_le(op.index);
          break;
        case Op::kFreeFirst:
          in.free_first_one();
          break;
      }
    }
    EXPECT_EQ(in.count(), c.count);
    EXPECT_EQ(in.bytes(), c.bytes);
    EXPECT_EQ(in.full(), c.full);
  }
}

TEST(Inflights, FreesInIndexOrderAfterWrapping) {
  Inflights in(4, 0);
  Index next = 1;
  // Many laps of the ring: the oldest message is always the one freed.
  for (int lap = 0; lap < 10; ++lap) {
    while (!in.full())
      in.add(next++, 1);
    in.free_le(next - 3);
    EXPECT_EQ(in.count(), 2u);
  }
}

TEST(Inflights, ResetEmptiesTheWindow) {
  Inflights in(2, 10);
  in.add(1, 5);
  in.add(2, 5);
  ASSERT_TRUE(in.full());
  in.reset();
  EXPECT_EQ(in.count(), 0u);
  EXPECT_EQ(in.bytes(), 0u);
  EXPECT_FALSE(in.full());
  in.add(3, 5);
  in.free_le(3);
  EXPECT_EQ(in.count(), 0u);
}

TEST(InflightsDeathTest, AddingToAFullWindowIsABug) {
  Inflights in(1, 0);
  in.add(1, 1);
  EXPECT_DEATH(in.add(2, 1), "inflights overflow");
}

}  // namespace
}  // namespace chorus::raft
