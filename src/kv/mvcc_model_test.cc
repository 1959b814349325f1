// MvccStore against a model that keeps the whole key space at every revision: random puts,
// range deletes, txns and compactions, then reads at random past revisions and the event feed
// from random revisions must match the model exactly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <random>

#include "kv/codec.h"
#include "kv/mvcc.h"

namespace chorus::kv {
namespace {

using State = std::map<std::string, KeyValue>;

std::string describe(const std::optional<KeyValue>& kv) {
  if (!kv) return "none";
  return kv->key + "{c" + std::to_string(kv->create_revision) + " m" +
         std::to_string(kv->mod_revision) + " v" + std::to_string(kv->version) + " " + kv->value +
         "}";
}
std::string describe(const Event& e) {
  return std::string(e.type == Event::Type::kPut ? "PUT " : "DEL ") + describe(e.kv) + " prev " +
         describe(e.prev_kv);
}

class Model {
 public:
  Model() : states_(2) {}  // revision 0 unused; revision 1 is the empty store
  int64_t revision() const { return static_cast<int64_t>(states_.size()) - 1; }
  const State& at(int64_t rev) const { return states_[static_cast<size_t>(rev)]; }
  const State& now() const { return states_.back(); }

  // Applies one revision's writes (puts then deletes of whole keys), if there are any.
  void write(const std::vector<std::pair<std::string, std::string>>& puts,
             const std::vector<std::string>& deletes) {
    if (puts.empty() && deletes.empty()) return;
    State next = now();
    int64_t rev = revision() + 1;
    for (const auto& [k, v] : puts) {
      auto it = next.find(k);
      KeyValue kv{k,   it == next.end() ? rev : it->second.create_revision,
                  rev, it == next.end() ? 1 : it->second.version + 1,
                  v,   0};
      next[k] = kv;
    }
    for (const std::string& k : deletes)
      next.erase(k);
    states_.push_back(std::move(next));
  }

 private:
  std::vector<State> states_;
};

std::string random_key(std::mt19937_64& rng) {
  return "k" + std::to_string(rng() % 12);
}

class MvccModelTest : public ::testing::TestWithParam<uint64_t> {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "chorus-mvcc-model-" + std::to_string(::getpid()) + "-" +
           std::to_string(GetParam());
    std::filesystem::remove_all(dir_);
    ASSERT_TRUE(MvccStore::open(dir_, {}, &store_).is_ok());
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  Response apply(Command c) {
    std::string data = encode_command(c);
    MvccStore::ApplyResult result;
    EXPECT_TRUE(store_->apply({{store_->applied_index() + 1, 1, data}}, &result).is_ok());
    return result.responses.at(0);
  }

  std::string dir_;
  std::unique_ptr<MvccStore> store_;
};

TEST_P(MvccModelTest, ReadsAndEventsMatchTheModelAtEveryRevision) {
  std::mt19937_64 rng(GetParam());
  Model model;
  int64_t compacted = 0;
  for (int step = 0; step < 400; ++step) {
    int kind = static_cast<int>(rng() % 10);
    Command c;
    if (kind < 5) {
      std::string k = random_key(rng), v = "v" + std::to_string(step);
      c.op = PutRequest{k, v, 0, false, false, false};
      model.write({{k, v}}, {});
    } else if (kind < 7) {
      std::string a = random_key(rng), b = random_key(rng);
      if (b < a) std::swap(a, b);
      bool single = rng() % 2 == 0;
      c.op = DeleteRangeRequest{a, single ? "" : b, false};
      std::vector<std::string> gone;
      for (const auto& [k, kv] : model.now())
        if (single ? k == a : (k >= a && k < b)) gone.push_back(k);
      model.write({}, gone);
    } else if (kind < 9) {
      // If k's version is v, put x and delete y, else put z.
      std::string k = random_key(rng), x = random_key(rng), y = random_key(rng),
                  z = random_key(rng);
      if (x == y) y += "-other";
      int64_t version = static_cast<int64_t>(rng() % 3);
      TxnRequest t;
      t.compare.push_back({Compare::Result::kEqual, Compare::Target::kVersion, k, "", version, ""});
      t.success.push_back({PutRequest{x, "t" + std::to_string(step), 0, false, false, false}});
      t.success.push_back({DeleteRangeRequest{y, "", false}});
      t.failure.push_back({PutRequest{z, "f" + std::to_string(step), 0, false, false, false}});
      c.op = t;
      auto it = model.now().find(k);
      int64_t have = it == model.now().end() ? 0 : it->second.version;
      if (have == version) {
        std::vector<std::string> gone;
        if (model.now().contains(y)) gone.push_back(y);
        model.write({{x, "t" + std::to_string(step)}}, gone);
      } else {
        model.write({{z, "f" + std::to_string(step)}}, {});
      }
    } else {
      int64_t rev = model.revision();
      int64_t target = compacted + 1 + static_cast<int64_t>(rng() % 5);
      if (target > rev) continue;
      c.op = CompactionRequest{target};
      compacted = target;
    }
    Response r = apply(c);
    ASSERT_TRUE(r.error.ok()) << "step " << step << ": " << r.error.message;
    ASSERT_EQ(store_->revision(), model.revision()) << "step " << step;
    // Now and then the store is closed and opened again: its key index is rebuilt from what is
    // on disk, and must answer as the one built by the writes did.
    if (rng() % 40 == 0) {
      store_.reset();
      ASSERT_TRUE(MvccStore::open(dir_, {}, &store_).is_ok()) << "step " << step;
      ASSERT_EQ(store_->revision(), model.revision()) << "step " << step;
      ASSERT_EQ(store_->compact_revision(), compacted) << "step " << step;
    }

    // A read at a random revision that is still readable, over a random range.
    int64_t lo = std::max<int64_t>(compacted, 1);
    int64_t rev =
        lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(model.revision() - lo + 1));
    std::string a = random_key(rng), b = random_key(rng);
    if (b < a) std::swap(a, b);
    RangeRequest q;
    q.key = a;
    q.range_end = b == a ? std::string(1, '\0') : b;
    q.revision = rev;
    // Some reads take a limit, some only count.
    int shape = static_cast<int>(rng() % 6);
    if (shape == 0) q.count_only = true;
    if (shape == 1) q.limit = 1 + static_cast<int64_t>(rng() % 3);
    RangeResponse got;
    ApiError e = store_->range(q, &got);
    ASSERT_TRUE(e.ok()) << e.message;
    std::vector<KeyValue> want;
    for (const auto& [k, kv] : model.at(rev))
      if (k >= a && (b == a || k < b)) want.push_back(kv);
    ASSERT_EQ(got.count, static_cast<int64_t>(want.size())) << "step " << step;
    bool more = q.limit > 0 && static_cast<int64_t>(want.size()) > q.limit;
    if (more) want.resize(static_cast<size_t>(q.limit));
    if (q.count_only) want.clear();
    ASSERT_EQ(got.kvs, want) << "step " << step << " rev " << rev << " [" << a << ", " << b << ")";
    ASSERT_EQ(got.more, more) << "step " << step;
  }

  // The event feed from every readable revision replays the model's changes.
  for (int64_t from = std::max<int64_t>(compacted, 2); from <= model.revision(); ++from) {
    std::vector<Event> events;
    ASSERT_TRUE(store_->events(from, 0, &events).ok());
    std::vector<Event> want;
    for (int64_t rev = from; rev <= model.revision(); ++rev) {
      const State& before = model.at(rev - 1);
      const State& after = model.at(rev);
      std::vector<Event> puts, deletes;
      for (const auto& [k, kv] : after) {
        auto it = before.find(k);
        // As in etcd, prev_kv is read at rev-1, which is gone once rev is the compacted one.
        bool prev_readable = rev - 1 >= compacted;
        if (it == before.end() || it->second != kv)
          puts.push_back(
              {Event::Type::kPut, kv,
               it == before.end() || !prev_readable ? std::nullopt : std::optional(it->second)});
      }
      for (const auto& [k, kv] : before) {
        if (!after.contains(k)) {
          KeyValue tomb;
          tomb.key = k;
          tomb.mod_revision = rev;
          deletes.push_back({Event::Type::kDelete, tomb,
                             rev - 1 >= compacted ? std::optional(kv) : std::nullopt});
        }
      }
      want.insert(want.end(), puts.begin(), puts.end());
      want.insert(want.end(), deletes.begin(), deletes.end());
    }
    // The store orders events by sub-revision; the model by kind then key. Compare sorted.
    auto order = [](const Event& x, const Event& y) {
      return std::tie(x.kv.mod_revision, x.type, x.kv.key) <
             std::tie(y.kv.mod_revision, y.type, y.kv.key);
    };
    std::sort(events.begin(), events.end(), order);
    std::sort(want.begin(), want.end(), order);
    for (size_t i = 0; i < std::max(events.size(), want.size()); ++i) {
      std::string g = i < events.size() ? describe(events[i]) : "(missing)";
      std::string w = i < want.size() ? describe(want[i]) : "(missing)";
      ASSERT_EQ(g, w) << "from " << from << " event " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, MvccModelTest, ::testing::Range<uint64_t>(1, 9));

}  // namespace
}  // namespace chorus::kv
