#include "check/linearizability.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "check/kv_model.h"

namespace chorus::check {
namespace {

using History = std::vector<KvOperation>;

KvOperation write_op(uint64_t client, uint64_t call, uint64_t ret, const std::string& key,
                     const std::string& value) {
  return {client, call, ret, KvInput::write(key, value), KvOutput::write_ok()};
}

KvOperation read_op(uint64_t client, uint64_t call, uint64_t ret, const std::string& key,
                    const std::string& value) {
  return {client, call, ret, KvInput::read(key), KvOutput::found(value)};
}

KvOperation absent_op(uint64_t client, uint64_t call, uint64_t ret, const std::string& key) {
  return {client, call, ret, KvInput::read(key), KvOutput::not_found()};
}

KvOperation cas_op(uint64_t client, uint64_t call, uint64_t ret, const std::string& key,
                   const std::string& expected, const std::string& value, bool ok) {
  return {client, call, ret, KvInput::cas(key, expected, value),
          ok ? KvOutput::cas_ok() : KvOutput::cas_failed()};
}

CheckReport check(const History& history, const CheckOptions& options = {}) {
  return check_linearizable<KvModel>(history, options);
}

TEST(LinearizabilityTest, EmptyHistoryIsLinearizable) {
  const CheckReport report = check({});
  EXPECT_EQ(report.result, CheckResult::kOk);
  EXPECT_TRUE(report.explanation.empty());
}

TEST(LinearizabilityTest, SequentialHistoryIsLinearizable) {
  const History history = {
      absent_op(1, 0, 1, "x"),
      write_op(1, 2, 3, "x", "a"),
      read_op(2, 4, 5, "x", "a"),
      cas_op(1, 6, 7, "x", "a", "b", true),
      cas_op(2, 8, 9, "x", "a", "c", false),
      read_op(1, 10, 11, "x", "b"),
  };
  const CheckReport report = check(history);
  EXPECT_EQ(report.result, CheckResult::kOk) << report.explanation;
  EXPECT_GT(report.steps, 0u);
}

TEST(LinearizabilityTest, ConcurrentWritesMayBeReadInEitherOrder) {
  for (const char* last : {"a", "b"}) {
    const History history = {
        write_op(1, 0, 10, "x", "a"),
        write_op(2, 5, 15, "x", "b"),
        read_op(3, 20, 30, "x", last),
    };
    EXPECT_EQ(check(history).result, CheckResult::kOk) << "last write " << last;
  }
}

TEST(LinearizabilityTest, ReadsOverlappingWritesMaySeeOldOrNewValue) {
  const History history = {
      write_op(1, 0, 100, "x", "a"),
      absent_op(2, 10, 20, "x"),
      read_op(3, 30, 40, "x", "a"),
      read_op(2, 50, 60, "x", "a"),
  };
  EXPECT_EQ(check(history).result, CheckResult::kOk);
}

TEST(LinearizabilityTest, OperationsTouchingAtOneInstantAreConcurrent) {
  // The read is called at the write's return time, so it may be ordered first.
  const History history = {
      write_op(1, 0, 10, "x", "a"),
      absent_op(2, 10, 20, "x"),
  };
  EXPECT_EQ(check(history).result, CheckResult::kOk);
}

TEST(LinearizabilityTest, UnknownWriteMayHaveBeenApplied) {
  const History history = {
      write_op(1, 0, 10, "x", "a"),
      write_op(2, 5, kNever, "x", "b"),
      read_op(3, 20, 30, "x", "b"),
  };
  EXPECT_EQ(check(history).result, CheckResult::kOk);
}

TEST(LinearizabilityTest, UnknownWriteMayNotHaveBeenApplied) {
  const History history = {
      write_op(1, 0, 10, "x", "a"),
      write_op(2, 5, kNever, "x", "b"),
      read_op(3, 20, 30, "x", "a"),
      read_op(3, 40, 50, "x", "a"),
  };
  EXPECT_EQ(check(history).result, CheckResult::kOk);
}

TEST(LinearizabilityTest, UnknownWriteMayTakeEffectLongAfterItsCall) {
  History history = {
      write_op(1, 0, 10, "x", "a"),
      write_op(2, 5, kNever, "x", "b"),
      read_op(3, 20, 30, "x", "a"),
      read_op(3, 40, 50, "x", "b"),
  };
  EXPECT_EQ(check(history).result, CheckResult::kOk);
  // Once seen, the unknown write cannot be undone.
  history.push_back(read_op(3, 60, 70, "x", "a"));
  EXPECT_EQ(check(history).result, CheckResult::kIllegal);
}

TEST(LinearizabilityTest, UnknownOutputIsIgnored) {
  History history = {
      write_op(1, 0, 10, "x", "a"),
      read_op(2, 20, kNever, "x", "garbage"),
      cas_op(3, 20, kNever, "x", "zzz", "c", true),
      read_op(1, 30, 40, "x", "a"),
  };
  EXPECT_EQ(check(history).result, CheckResult::kOk);
}

TEST(LinearizabilityTest, StaleReadIsIllegal) {
  const History history = {
      write_op(1, 0, 10, "x", "a"),
      write_op(1, 20, 30, "x", "b"),
      read_op(2, 40, 50, "x", "a"),
  };
  const CheckReport report = check(history);
  ASSERT_EQ(report.result, CheckResult::kIllegal);
  EXPECT_EQ(report.partition, "x");
  EXPECT_EQ(report.longest_prefix, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(report.failed_op, std::optional<size_t>(2));
  EXPECT_NE(report.explanation.find("read(\"x\") -> \"a\""), std::string::npos)
      << report.explanation;
  EXPECT_NE(report.explanation.find("state after prefix: \"b\""), std::string::npos)
      << report.explanation;
}

TEST(LinearizabilityTest, ReadOfValueNeverWrittenIsIllegal) {
  const History history = {
      write_op(1, 0, 10, "x", "a"),
      read_op(2, 5, 15, "x", "nope"),
  };
  EXPECT_EQ(check(history).result, CheckResult::kIllegal);
}

TEST(LinearizabilityTest, ReadOfAbsentKeyAfterWriteIsIllegal) {
  const History history = {
      write_op(1, 0, 10, "x", "a"),
      absent_op(2, 20, 30, "x"),
  };
  EXPECT_EQ(check(history).result, CheckResult::kIllegal);
}

TEST(LinearizabilityTest, ReadsSeeingWritesInContradictoryOrdersAreIllegal) {
  const History history = {
      write_op(1, 0, 100, "x", "a"), write_op(2, 0, 100, "x", "b"), read_op(3, 10, 20, "x", "a"),
      read_op(3, 30, 40, "x", "b"),  read_op(4, 10, 20, "x", "b"),  read_op(4, 30, 40, "x", "a"),
  };
  EXPECT_EQ(check(history).result, CheckResult::kIllegal);
}

TEST(LinearizabilityTest, CasSucceedingTwiceOnSameExpectedValueIsIllegal) {
  const History history = {
      write_op(1, 0, 10, "x", "a"),
      cas_op(2, 20, 30, "x", "a", "b", true),
      cas_op(3, 20, 30, "x", "a", "c", true),
  };
  EXPECT_EQ(check(history).result, CheckResult::kIllegal);
}

TEST(LinearizabilityTest, CasOnAbsentKeyFails) {
  EXPECT_EQ(check({cas_op(1, 0, 10, "x", "", "a", false)}).result, CheckResult::kOk);
  EXPECT_EQ(check({cas_op(1, 0, 10, "x", "", "a", true)}).result, CheckResult::kIllegal);
}

TEST(LinearizabilityTest, CasFailingOnMatchingValueIsIllegal) {
  const History history = {
      write_op(1, 0, 10, "x", "a"),
      cas_op(2, 20, 30, "x", "a", "b", false),
  };
  EXPECT_EQ(check(history).result, CheckResult::kIllegal);
}

TEST(LinearizabilityTest, KeysAreCheckedIndependently) {
  const History history = {
      write_op(1, 0, 10, "x", "a"),
      write_op(1, 20, 30, "y", "b"),
      read_op(2, 40, 50, "x", "a"),
      absent_op(2, 60, 70, "y"),
  };
  const CheckReport report = check(history);
  ASSERT_EQ(report.result, CheckResult::kIllegal);
  EXPECT_EQ(report.partition, "y");
  EXPECT_EQ(report.failed_op, std::optional<size_t>(3));
  EXPECT_NE(report.explanation.find("partition \"y\""), std::string::npos) << report.explanation;
}

TEST(LinearizabilityTest, MalformedHistoryIsRejected) {
  const CheckReport report = check({write_op(1, 10, 5, "x", "a")});
  EXPECT_EQ(report.result, CheckResult::kIllegal);
  EXPECT_NE(report.explanation.find("malformed"), std::string::npos);
}

// Many concurrent writes followed by an impossible read: the search must try many orders before
// giving up, which makes the step budget observable.
History hard_illegal_history() {
  History history;
  for (uint64_t i = 0; i < 10; ++i) {
    history.push_back(write_op(i, 0, 100, "x", "v" + std::to_string(i)));
  }
  history.push_back(read_op(99, 200, 210, "x", "never written"));
  return history;
}

TEST(LinearizabilityTest, ExhaustedBudgetGivesUnknown) {
  const CheckReport report = check(hard_illegal_history(), CheckOptions{.max_steps = 100});
  EXPECT_EQ(report.result, CheckResult::kUnknown);
  EXPECT_EQ(report.steps, 100u);
  EXPECT_EQ(report.partition, "x");
  EXPECT_NE(report.explanation.find("budget"), std::string::npos);
}

TEST(LinearizabilityTest, SufficientBudgetGivesVerdict) {
  const CheckReport report = check(hard_illegal_history());
  EXPECT_EQ(report.result, CheckResult::kIllegal);
  EXPECT_GT(report.steps, 100u);
  EXPECT_EQ(report.failed_op, std::optional<size_t>(10));
}

// A second, unpartitioned model shows the checker is not tied to the key-value store.
struct CounterModel {
  using State = int64_t;
  struct Input {
    bool is_add = false;
    int64_t delta = 0;
  };
  struct Output {
    int64_t value = 0;  // Value seen by a get.
  };

  static State init() { return 0; }
  static bool step(const State& s, const Input& in, const Output& out, State* next) {
    *next = in.is_add ? s + in.delta : s;
    return in.is_add || out.value == s;
  }
  static bool step_unknown(const State& s, const Input& in, State* next) {
    *next = s + in.delta;
    return in.is_add;
  }
  static std::string partition_key(const Input&) { return ""; }
  static size_t hash(const State& s) { return static_cast<size_t>(s); }
  static std::string describe_input(const Input& in) {
    return in.is_add ? "add(" + std::to_string(in.delta) + ")" : "get()";
  }
  static std::string describe_output(const Input& in, const Output& out) {
    return in.is_add ? "ok" : std::to_string(out.value);
  }
  static std::string describe_state(const State& s) { return std::to_string(s); }
};

TEST(LinearizabilityTest, WorksWithOtherModels) {
  using CounterOp = ModelOperation<CounterModel>;
  const auto add = [](uint64_t call, uint64_t ret, int64_t delta) {
    return CounterOp{1, call, ret, {true, delta}, {}};
  };
  const auto get = [](uint64_t call, uint64_t ret, int64_t value) {
    return CounterOp{2, call, ret, {false, 0}, {value}};
  };
  for (int64_t seen : {0, 1, 2, 3}) {
    const std::vector<CounterOp> history = {add(0, 10, 1), add(0, 10, 2), get(5, 15, seen)};
    EXPECT_EQ(check_linearizable<CounterModel>(history).result, CheckResult::kOk) << seen;
  }
  const std::vector<CounterOp> history = {add(0, 10, 1), add(0, kNever, 2), get(20, 30, 4)};
  const CheckReport report = check_linearizable<CounterModel>(history);
  EXPECT_EQ(report.result, CheckResult::kIllegal);
  EXPECT_NE(report.explanation.find("add(2) -> ? (outcome unknown)"), std::string::npos)
      << report.explanation;
}

// Records a history from a real sequential execution: each operation takes effect on `store` at
// one instant strictly inside its call/return window, so the history is linearizable by
// construction. Some replies are lost (return kNever), some of those after the operation took
// effect and some before.
History generate_history(uint64_t seed) {
  constexpr size_t kClients = 4;
  constexpr size_t kOps = 40;
  const std::vector<std::string> keys = {"x", "y"};
  // Few distinct values so that cas often succeeds and reads are ambiguous.
  const std::vector<std::string> values = {"0", "1", "2"};

  std::mt19937_64 rng(seed);
  const auto pick = [&rng](size_t n) { return static_cast<size_t>(rng() % n); };
  struct Pending {
    size_t op;
    bool applied;
  };
  std::vector<std::optional<Pending>> clients(kClients);
  std::map<std::string, std::string> store;
  History history;
  size_t busy = 0;
  for (uint64_t now = 1; history.size() < kOps || busy > 0; ++now) {
    const size_t client = pick(kClients);
    std::optional<Pending>& pending = clients[client];
    if (!pending) {
      if (history.size() == kOps) {
        continue;
      }
      const std::string& key = keys[pick(keys.size())];
      KvInput input;
      switch (pick(3)) {
        case 0:
          input = KvInput::read(key);
          break;
        case 1:
          input = KvInput::write(key, values[pick(values.size())]);
          break;
        default:
          input = KvInput::cas(key, values[pick(values.size())], values[pick(values.size())]);
          break;
      }
      pending = Pending{history.size(), false};
      history.push_back({client, now, kNever, std::move(input), {}});
      ++busy;
      continue;
    }
    KvOperation& op = history[pending->op];
    const bool lost = pick(20) == 0;
    if (!pending->applied && !lost) {
      const auto it = store.find(op.input.key);
      switch (op.input.kind) {
        case KvInput::Kind::kRead:
          op.output = it == store.end() ? KvOutput::not_found() : KvOutput::found(it->second);
          break;
        case KvInput::Kind::kWrite:
          store[op.input.key] = op.input.value;
          op.output = KvOutput::write_ok();
          break;
        case KvInput::Kind::kCas:
          if (it != store.end() && it->second == op.input.expected) {
            it->second = op.input.value;
            op.output = KvOutput::cas_ok();
          } else {
            op.output = KvOutput::cas_failed();
          }
          break;
      }
      pending->applied = true;
      continue;
    }
    if (!lost) {
      op.return_time = now;
    }
    pending.reset();
    --busy;
  }
  return history;
}

TEST(LinearizabilityTest, RandomSequentialExecutionsAreLinearizable) {
  size_t corrupted = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    History history = generate_history(seed);
    const CheckReport report = check(history);
    ASSERT_EQ(report.result, CheckResult::kOk) << "seed " << seed << "\n" << report.explanation;

    // A completed read of a value no write ever wrote contradicts every linearization.
    std::vector<size_t> reads;
    for (size_t i = 0; i < history.size(); ++i) {
      if (history[i].input.kind == KvInput::Kind::kRead && history[i].return_time != kNever) {
        reads.push_back(i);
      }
    }
    if (reads.empty()) {
      continue;
    }
    const size_t victim = reads[seed % reads.size()];
    history[victim].output = KvOutput::found("never written");
    const CheckReport bad = check(history);
    ASSERT_EQ(bad.result, CheckResult::kIllegal) << "seed " << seed << " read #" << victim;
    EXPECT_EQ(bad.partition, history[victim].input.key);
    EXPECT_FALSE(bad.explanation.empty());
    ++corrupted;
  }
  EXPECT_GT(corrupted, 150u);
}

}  // namespace
}  // namespace chorus::check
