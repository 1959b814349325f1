#include "kv/mvcc.h"

#include <rocksdb/db.h>

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <ostream>
#include <tuple>

#include "base/coding.h"
#include "kv/codec.h"

namespace chorus::kv {

void PrintTo(const ApiError& e, std::ostream* os) {
  *os << "{code " << static_cast<int>(e.code) << ", \"" << e.message << "\"}";
}

namespace {

const std::string kAll(1, '\0');

// Writes a store of the first layout by hand (a current record per key, a version record per key
// and revision, an event record per revision, little-endian meta values), for the upgrade.
class FirstLayoutStore {
 public:
  explicit FirstLayoutStore(const std::string& dir) {
    rocksdb::Options o;
    o.create_if_missing = true;
    EXPECT_TRUE(rocksdb::DB::Open(o, dir, &db_).ok());
  }
  ~FirstLayoutStore() { delete db_; }
  // h<key>\0\1<rev><sub>: the flag and the KeyValue.
  void version(const KeyValue& kv, bool tombstone, int64_t rev) {
    std::string k = "h" + kv.key + std::string("\0\1", 2);
    base::put_u64_be(&k, static_cast<uint64_t>(rev));
    base::put_u64_be(&k, 0);
    put(k, std::string(1, tombstone ? '\1' : '\0') + encode_key_value(kv));
  }
  // e<rev><sub>: the flag and the key.
  void event(const std::string& key, bool tombstone, int64_t rev) {
    std::string k = "e";
    base::put_u64_be(&k, static_cast<uint64_t>(rev));
    base::put_u64_be(&k, 0);
    put(k, std::string(1, tombstone ? '\1' : '\0') + key);
  }
  void current(const KeyValue& kv) { put("k" + kv.key, encode_key_value(kv)); }
  // m<name>: the numbers, each a little-endian u64.
  void meta(const std::string& name, std::initializer_list<uint64_t> numbers) {
    std::string v;
    for (uint64_t n : numbers)
      base::put_u64(&v, n);
    put("m" + name, v);
  }

 private:
  void put(const std::string& k, const std::string& v) { EXPECT_TRUE(db_->Put({}, k, v).ok()); }
  rocksdb::DB* db_ = nullptr;
};

class MvccTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "chorus-mvcc-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    store_ = open(root_ + "/a");
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(root_);
  }
  std::unique_ptr<MvccStore> open(const std::string& dir) {
    std::unique_ptr<MvccStore> s;
    storage::Status st = MvccStore::open(dir, options_, &s);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    return s;
  }

  Response apply(Command c, MvccStore* s = nullptr) {
    if (s == nullptr) s = store_.get();
    std::string data = encode_command(c);
    MvccStore::ApplyResult result;
    storage::Status st = s->apply({{s->applied_index() + 1, 1, data}}, &result);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    last_events_ = result.events;
    return result.responses.at(0);
  }
  template <typename Op>
  Response run(Op op) {
    Command c;
    c.op = std::move(op);
    return apply(std::move(c));
  }
  PutResponse put(const std::string& k, const std::string& v, int64_t lease = 0) {
    Response r = run(PutRequest{k, v, lease, true, false, false});
    EXPECT_TRUE(r.error.ok()) << r.error.message;
    return std::get<PutResponse>(r.op);
  }
  DeleteRangeResponse del(const std::string& k, const std::string& end = "") {
    Response r = run(DeleteRangeRequest{k, end, true});
    EXPECT_TRUE(r.error.ok()) << r.error.message;
    return std::get<DeleteRangeResponse>(r.op);
  }
  RangeResponse range(RangeRequest q) {
    RangeResponse r;
    ApiError e = store_->range(q, &r);
    EXPECT_TRUE(e.ok()) << e.message;
    return r;
  }
  RangeResponse get(const std::string& k, int64_t rev = 0) {
    RangeRequest q;
    q.key = k;
    q.revision = rev;
    return range(q);
  }
  std::vector<std::string> keys(const RangeResponse& r) {
    std::vector<std::string> out;
    for (const KeyValue& kv : r.kvs)
      out.push_back(kv.key);
    return out;
  }
  TxnResponse txn(TxnRequest t, ApiError* err = nullptr) {
    Response r = run(std::move(t));
    if (err != nullptr) *err = r.error;
    if (err == nullptr) {
      EXPECT_TRUE(r.error.ok()) << r.error.message;
    }
    return std::get<TxnResponse>(r.op);
  }

  std::string root_;
  MvccOptions options_;
  std::unique_ptr<MvccStore> store_;
  std::vector<Event> last_events_;
};

TEST_F(MvccTest, PutCreatesThenUpdatesVersionsAndRevisions) {
  EXPECT_EQ(store_->revision(), 1);
  PutResponse p = put("foo", "bar");
  EXPECT_EQ(p.revision, 2);
  EXPECT_FALSE(p.prev_kv.has_value());
  p = put("foo", "baz");
  EXPECT_EQ(p.revision, 3);
  ASSERT_TRUE(p.prev_kv.has_value());
  EXPECT_EQ(p.prev_kv->value, "bar");
  RangeResponse r = get("foo");
  ASSERT_EQ(r.kvs.size(), 1u);
  EXPECT_EQ(r.kvs[0], (KeyValue{"foo", 2, 3, 2, "baz", 0}));
  EXPECT_EQ(r.revision, 3);
  EXPECT_EQ(r.count, 1);
}

TEST_F(MvccTest, DeleteEndsTheKeysLifeAndResetsItsVersion) {
  put("foo", "1");
  put("foo", "2");
  DeleteRangeResponse d = del("foo");
  EXPECT_EQ(d.deleted, 1);
  EXPECT_EQ(d.revision, 4);
  ASSERT_EQ(d.prev_kvs.size(), 1u);
  EXPECT_EQ(d.prev_kvs[0].value, "2");
  EXPECT_TRUE(get("foo").kvs.empty());
  put("foo", "3");
  EXPECT_EQ(get("foo").kvs[0], (KeyValue{"foo", 5, 5, 1, "3", 0}));
}

TEST_F(MvccTest, DeletingNothingDoesNotAdvanceTheRevision) {
  put("a", "1");
  DeleteRangeResponse d = del("zzz");
  EXPECT_EQ(d.deleted, 0);
  EXPECT_EQ(d.revision, 2);
  EXPECT_EQ(store_->revision(), 2);
}

TEST_F(MvccTest, ALeaseCheckpointChangesNoKeyAndNoRevision) {
  ASSERT_TRUE(run(LeaseGrantRequest{7, 60}).error.ok());
  put("k", "v", 7);
  const int64_t before = store_->revision();
  Response r = run(LeaseCheckpointRequest{{{7, 30'000}}});
  EXPECT_TRUE(r.error.ok()) << r.error.message;
  EXPECT_TRUE(std::holds_alternative<std::monostate>(r.op)) << "the members' lessors read it";
  EXPECT_EQ(store_->revision(), before);
  EXPECT_EQ(get("k").kvs[0].lease, 7);
}

TEST_F(MvccTest, PutOptionsFollowEtcd) {
  EXPECT_EQ(run(PutRequest{"", "v"}).error.message, errors::kEmptyKey);
  EXPECT_EQ(run(PutRequest{"k", "", 0, false, true, false}).error.message, errors::kKeyNotFound);
  EXPECT_EQ(run(PutRequest{"k", "", 0, false, false, true}).error.message, errors::kKeyNotFound);
  EXPECT_EQ(run(PutRequest{"k", "v", 0, false, true, false}).error.message, errors::kValueProvided);
  EXPECT_EQ(run(PutRequest{"k", "", 5, false, false, true}).error.message, errors::kLeaseProvided);
  Response unknown_lease = run(PutRequest{"k", "v", 99});
  EXPECT_EQ(unknown_lease.error.code, Code::kNotFound);
  EXPECT_EQ(unknown_lease.error.message, errors::kLeaseNotFound);
  EXPECT_EQ(store_->revision(), 1) << "failed puts change nothing";

  ASSERT_TRUE(run(LeaseGrantRequest{7, 60}).error.ok());
  put("k", "v", 7);
  Response r = run(PutRequest{"k", "", 0, true, true, false});  // ignore_value
  ASSERT_TRUE(r.error.ok()) << r.error.message;
  EXPECT_EQ(get("k").kvs[0].value, "v");
  EXPECT_EQ(get("k").kvs[0].lease, 0) << "without ignore_lease the lease is replaced";
  put("k", "w", 7);
  r = run(PutRequest{"k", "x", 0, false, false, true});  // ignore_lease
  ASSERT_TRUE(r.error.ok());
  EXPECT_EQ(get("k").kvs[0].lease, 7);
  EXPECT_EQ(get("k").kvs[0].value, "x");
}

TEST_F(MvccTest, RangeEndRulesSelectKeys) {
  for (const std::string& k :
       std::vector<std::string>{"a", "ab", "abc", "b", "c", std::string("a\0", 2)})
    put(k, "v" + k);
  RangeRequest q;
  q.key = "a";
  q.range_end = "b";
  EXPECT_EQ(keys(range(q)), (std::vector<std::string>{"a", std::string("a\0", 2), "ab", "abc"}));
  q.range_end = kAll;
  q.key = "ab";
  EXPECT_EQ(keys(range(q)), (std::vector<std::string>{"ab", "abc", "b", "c"}));
  q.key = kAll;
  EXPECT_EQ(range(q).count, 6);
  q.key = "ab";
  q.range_end = "";
  EXPECT_EQ(keys(range(q)), std::vector<std::string>{"ab"});
}

TEST_F(MvccTest, LimitSetsMoreAndCountIgnoresIt) {
  for (char c = 'a'; c <= 'e'; ++c)
    put(std::string(1, c), "v");
  RangeRequest q;
  q.key = kAll;
  q.range_end = kAll;
  q.limit = 2;
  RangeResponse r = range(q);
  EXPECT_EQ(keys(r), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r.more);
  EXPECT_EQ(r.count, 5);
  q.limit = 5;
  EXPECT_FALSE(range(q).more);
  q.count_only = true;
  r = range(q);
  EXPECT_TRUE(r.kvs.empty());
  EXPECT_EQ(r.count, 5);
  q.count_only = false;
  q.keys_only = true;
  r = range(q);
  EXPECT_EQ(r.kvs.size(), 5u);
  EXPECT_TRUE(r.kvs[0].value.empty());
}

TEST_F(MvccTest, ReadsAtPastRevisionsSeeThePast) {
  put("k", "1");      // rev 2
  put("k", "2");      // rev 3
  del("k");           // rev 4
  put("k", "3");      // rev 5
  put("other", "x");  // rev 6
  EXPECT_EQ(get("k", 2).kvs.at(0).value, "1");
  EXPECT_EQ(get("k", 3).kvs.at(0).value, "2");
  EXPECT_TRUE(get("k", 4).kvs.empty());
  EXPECT_EQ(get("k", 5).kvs.at(0), (KeyValue{"k", 5, 5, 1, "3", 0}));
  EXPECT_EQ(get("k", 1).kvs.size(), 0u);
  RangeRequest q;
  q.key = kAll;
  q.range_end = kAll;
  q.revision = 5;
  EXPECT_EQ(keys(range(q)), std::vector<std::string>{"k"});
  RangeResponse r;
  q.revision = 7;
  ApiError e = store_->range(q, &r);
  EXPECT_EQ(e.code, Code::kOutOfRange);
  EXPECT_EQ(e.message, errors::kFutureRev);
}

TEST_F(MvccTest, SortOrdersAndTargets) {
  put("c", "1");
  put("a", "3");
  put("b", "2");
  put("a", "4");
  RangeRequest q;
  q.key = kAll;
  q.range_end = kAll;
  q.sort_order = SortOrder::kDescend;
  EXPECT_EQ(keys(range(q)), (std::vector<std::string>{"c", "b", "a"}));
  q.sort_target = SortTarget::kMod;
  q.sort_order = SortOrder::kNone;  // etcd sorts ascending when the target is not the key
  EXPECT_EQ(keys(range(q)), (std::vector<std::string>{"c", "b", "a"}));
  q.sort_target = SortTarget::kVersion;
  q.sort_order = SortOrder::kDescend;
  EXPECT_EQ(range(q).kvs[0].key, "a");
  q.sort_target = SortTarget::kValue;
  q.sort_order = SortOrder::kAscend;
  EXPECT_EQ(keys(range(q)), (std::vector<std::string>{"c", "b", "a"}));
  q.sort_target = SortTarget::kCreate;
  q.limit = 1;
  RangeResponse r = range(q);
  EXPECT_EQ(keys(r), std::vector<std::string>{"c"});
  EXPECT_TRUE(r.more);
}

TEST_F(MvccTest, RevisionFiltersApplyBeforeTheLimit) {
  put("a", "1");  // 2
  put("b", "1");  // 3
  put("c", "1");  // 4
  put("a", "2");  // 5
  RangeRequest q;
  q.key = kAll;
  q.range_end = kAll;
  q.min_mod_revision = 3;
  q.max_mod_revision = 4;
  RangeResponse r = range(q);
  EXPECT_EQ(keys(r), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(r.count, 3) << "count is every key in the range, as etcd";
  q = RangeRequest{};
  q.key = kAll;
  q.range_end = kAll;
  q.max_create_revision = 2;
  EXPECT_EQ(keys(range(q)), std::vector<std::string>{"a"});
  q.max_create_revision = 0;
  q.min_create_revision = 4;
  EXPECT_EQ(keys(range(q)), std::vector<std::string>{"c"});
}

TEST_F(MvccTest, TxnComparesEveryTargetAndResult) {
  ASSERT_TRUE(run(LeaseGrantRequest{5, 100}).error.ok());
  put("k", "m", 5);  // rev 2
  put("k", "n", 5);  // rev 3: create 2, mod 3, version 2, value n, lease 5
  using R = Compare::Result;
  using T = Compare::Target;
  struct Case {
    Compare c;
    bool want;
  };
  std::vector<Case> cases = {
      {{R::kEqual, T::kVersion, "k", "", 2, ""}, true},
      {{R::kGreater, T::kVersion, "k", "", 1, ""}, true},
      {{R::kLess, T::kVersion, "k", "", 2, ""}, false},
      {{R::kNotEqual, T::kVersion, "k", "", 2, ""}, false},
      {{R::kEqual, T::kCreate, "k", "", 2, ""}, true},
      {{R::kEqual, T::kMod, "k", "", 3, ""}, true},
      {{R::kLess, T::kMod, "k", "", 4, ""}, true},
      {{R::kEqual, T::kValue, "k", "", 0, "n"}, true},
      {{R::kGreater, T::kValue, "k", "", 0, "m"}, true},
      {{R::kLess, T::kValue, "k", "", 0, "m"}, false},
      {{R::kEqual, T::kLease, "k", "", 5, ""}, true},
      // A missing key has version, create and mod 0; a value compare on it always fails.
      {{R::kEqual, T::kVersion, "missing", "", 0, ""}, true},
      {{R::kEqual, T::kCreate, "missing", "", 0, ""}, true},
      {{R::kEqual, T::kValue, "missing", "", 0, ""}, false},
      {{R::kNotEqual, T::kValue, "missing", "", 0, "x"}, false},
      // A range compare holds only if it holds for every key.
      {{R::kGreater, T::kVersion, "a", "z", 0, ""}, true},
      {{R::kGreater, T::kVersion, "a", "z", 2, ""}, false},
  };
  for (const Case& c : cases) {
    TxnRequest t;
    t.compare.push_back(c.c);
    EXPECT_EQ(txn(t).succeeded, c.want)
        << c.c.key << " target " << int(c.c.target) << " result " << int(c.c.result);
  }
}

TEST_F(MvccTest, TxnRunsOneBranchAsOneRevision) {
  put("k", "v");  // rev 2
  TxnRequest t;
  t.compare.push_back({Compare::Result::kEqual, Compare::Target::kValue, "k", "", 0, "v"});
  t.success.push_back({PutRequest{"a", "1"}});
  t.success.push_back({PutRequest{"b", "2"}});
  RangeRequest read_a;
  read_a.key = "a";
  t.success.push_back({read_a});
  t.success.push_back({DeleteRangeRequest{"k", "", true}});
  t.failure.push_back({PutRequest{"f", "x"}});
  TxnResponse r = txn(t);
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(r.revision, 3);
  ASSERT_EQ(r.responses.size(), 4u);
  auto& read = std::get<RangeResponse>(r.responses[2].op);
  ASSERT_EQ(read.kvs.size(), 1u) << "a read in a txn sees the txn's earlier writes";
  EXPECT_EQ(read.kvs[0].mod_revision, 3);
  EXPECT_EQ(std::get<DeleteRangeResponse>(r.responses[3].op).deleted, 1);
  EXPECT_EQ(get("a").kvs[0].mod_revision, 3);
  EXPECT_EQ(get("b").kvs[0].mod_revision, 3);
  EXPECT_TRUE(get("f").kvs.empty());
  EXPECT_EQ(last_events_.size(), 3u);

  r = txn(t);  // now "k" is gone: the failure branch runs
  EXPECT_FALSE(r.succeeded);
  EXPECT_EQ(get("f").kvs.size(), 1u);
  EXPECT_EQ(store_->revision(), 4);
}

TEST_F(MvccTest, NestedTxnsChooseTheirBranchBeforeTheOuterTxnWrites) {
  auto inner = std::make_shared<TxnRequest>();
  inner->compare.push_back({Compare::Result::kEqual, Compare::Target::kVersion, "x", "", 0, ""});
  inner->success.push_back({PutRequest{"inner", "saw-no-x"}});
  inner->failure.push_back({PutRequest{"inner", "saw-x"}});
  TxnRequest t;
  t.success.push_back({PutRequest{"x", "1"}});
  t.success.push_back({inner});
  TxnResponse r = txn(t);
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(get("inner").kvs.at(0).value, "saw-no-x");
  EXPECT_TRUE(std::get<std::shared_ptr<TxnResponse>>(r.responses[1].op)->succeeded);
}

TEST_F(MvccTest, TxnShapeErrorsMatchEtcd) {
  TxnRequest dup;
  dup.success.push_back({PutRequest{"a", "1"}});
  dup.success.push_back({PutRequest{"a", "2"}});
  ApiError e;
  txn(dup, &e);
  EXPECT_EQ(e.message, errors::kDuplicateKey);
  TxnRequest overlap;
  overlap.success.push_back({DeleteRangeRequest{"a", "c"}});
  overlap.success.push_back({PutRequest{"b", "2"}});
  txn(overlap, &e);
  EXPECT_EQ(e.message, errors::kDuplicateKey);
  TxnRequest many;
  for (int i = 0; i < 129; ++i)
    many.success.push_back({PutRequest{"k" + std::to_string(i), "v"}});
  txn(many, &e);
  EXPECT_EQ(e.code, Code::kInvalidArgument);
  EXPECT_EQ(e.message, errors::kTooManyOps);
  // The same key in different branches is fine.
  TxnRequest branches;
  branches.success.push_back({PutRequest{"a", "1"}});
  branches.failure.push_back({PutRequest{"a", "2"}});
  txn(branches, &e);
  EXPECT_TRUE(e.ok());
}

TEST_F(MvccTest, AFailingOperationLeavesTheWholeTxnUnapplied) {
  TxnRequest t;
  t.success.push_back({PutRequest{"a", "1"}});
  t.success.push_back({PutRequest{"b", "2", 404}});  // no such lease
  ApiError e;
  txn(t, &e);
  EXPECT_EQ(e.message, errors::kLeaseNotFound);
  EXPECT_TRUE(get("a").kvs.empty());
  EXPECT_EQ(store_->revision(), 1);
}

TEST_F(MvccTest, CompactionFailsOlderReadsAndKeepsTheNewestVersions) {
  put("a", "1");  // 2
  put("a", "2");  // 3
  put("b", "1");  // 4
  del("b");       // 5
  put("c", "1");  // 6
  Response r = run(CompactionRequest{5});
  ASSERT_TRUE(r.error.ok());
  EXPECT_EQ(store_->compact_revision(), 5);
  RangeResponse out;
  RangeRequest q;
  q.key = "a";
  q.revision = 4;
  ApiError e = store_->range(q, &out);
  EXPECT_EQ(e.code, Code::kOutOfRange);
  EXPECT_EQ(e.message, errors::kCompacted);
  EXPECT_EQ(get("a", 5).kvs.at(0).value, "2") << "the compacted revision itself stays readable";
  EXPECT_TRUE(get("b", 5).kvs.empty());
  EXPECT_EQ(get("c").kvs.at(0).value, "1");
  EXPECT_EQ(run(CompactionRequest{5}).error.message, errors::kCompacted);
  EXPECT_EQ(run(CompactionRequest{99}).error.message, errors::kFutureRev);
  std::vector<Event> ev;
  EXPECT_EQ(store_->events(4, 0, &ev).message, errors::kCompacted);
  ASSERT_TRUE(store_->events(5, 0, &ev).ok());
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].type, Event::Type::kDelete);
  EXPECT_EQ(ev[1].kv.key, "c");
}

TEST_F(MvccTest, TheEventFeedResumesFromAnyRevisionWithPrevKv) {
  put("a", "1");  // 2
  put("b", "1");  // 3
  put("a", "2");  // 4
  del("a");       // 5
  std::vector<Event> ev;
  ASSERT_TRUE(store_->events(2, 0, &ev).ok());
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[2].kv, (KeyValue{"a", 2, 4, 2, "2", 0}));
  ASSERT_TRUE(ev[2].prev_kv.has_value());
  EXPECT_EQ(ev[2].prev_kv->value, "1");
  EXPECT_EQ(ev[3].type, Event::Type::kDelete);
  EXPECT_EQ(ev[3].kv.mod_revision, 5);
  EXPECT_EQ(ev[3].prev_kv->value, "2");
  ev.clear();
  ASSERT_TRUE(store_->events(4, 0, &ev).ok());
  EXPECT_EQ(ev.size(), 2u);
  ev.clear();
  bool stopped_early = false;
  ASSERT_TRUE(store_->events(2, 1, &ev, 0, &stopped_early).ok());
  EXPECT_EQ(ev.size(), 1u) << "stops after whole revisions";
  EXPECT_TRUE(stopped_early);
  ev.clear();
  ASSERT_TRUE(store_->events(2, 0, &ev, 1).ok());
  EXPECT_EQ(ev.size(), 1u) << "a byte budget stops it too, after whole revisions";
  ev.clear();
  ASSERT_TRUE(store_->events(2, 0, &ev, event_bytes(Event{}) * 100, &stopped_early).ok());
  EXPECT_EQ(ev.size(), 4u);
  EXPECT_FALSE(stopped_early) << "it reached the end";
}

TEST_F(MvccTest, RevokingALeaseDeletesItsKeysInOneRevisionOnEveryReplica) {
  auto replica = open(root_ + "/b");
  std::vector<Command> log(5);
  log[0].op = LeaseGrantRequest{7, 10};
  log[1].op = PutRequest{"x", "1", 7};
  log[2].op = PutRequest{"y", "1", 7};
  log[3].op = PutRequest{"z", "1"};
  log[4].op = LeaseRevokeRequest{7};
  std::vector<Event> events_a, events_b;
  for (const Command& c : log) {
    apply(c);
    events_a.insert(events_a.end(), last_events_.begin(), last_events_.end());
    apply(c, replica.get());
    events_b.insert(events_b.end(), last_events_.begin(), last_events_.end());
  }
  EXPECT_EQ(events_a, events_b);
  EXPECT_EQ(store_->revision(), 5);
  ASSERT_EQ(events_a.size(), 5u);
  EXPECT_EQ(events_a[3].kv.mod_revision, 5);
  EXPECT_EQ(events_a[4].kv.mod_revision, 5);
  EXPECT_TRUE(get("x").kvs.empty());
  EXPECT_EQ(get("z").kvs.size(), 1u);
  EXPECT_FALSE(store_->lease_exists(7));
  EXPECT_EQ(run(LeaseRevokeRequest{7}).error.message, errors::kLeaseNotFound);
}

// A key moves between leases with its puts: a put under another lease (or none) detaches it
// from the old one, and a key put again after its delete attaches afresh; revoking a lease then
// deletes only the keys still attached to it.
TEST_F(MvccTest, APutMovesItsKeyBetweenLeases) {
  ASSERT_TRUE(run(LeaseGrantRequest{1, 30}).error.ok());
  ASSERT_TRUE(run(LeaseGrantRequest{2, 30}).error.ok());
  put("k", "a", 1);
  put("k", "b", 2);
  put("n", "a", 1);
  put("n", "b");
  put("m", "a", 1);
  del("m");
  put("m", "b", 2);
  auto keys_of = [&](int64_t id) {
    for (const LeaseInfo& l : store_->leases())
      if (l.id == id) return l.keys;
    return std::vector<std::string>{};
  };
  EXPECT_TRUE(keys_of(1).empty());
  EXPECT_EQ(keys_of(2), (std::vector<std::string>{"k", "m"}));
  ASSERT_TRUE(run(LeaseRevokeRequest{1}).error.ok());
  EXPECT_EQ(get("n").kvs.at(0).value, "b") << "no longer attached to the revoked lease";
  ASSERT_TRUE(run(LeaseRevokeRequest{2}).error.ok());
  EXPECT_TRUE(get("k").kvs.empty());
  EXPECT_TRUE(get("m").kvs.empty());
  EXPECT_EQ(get("n").kvs.size(), 1u);
}

TEST_F(MvccTest, LeaseGrantErrors) {
  ASSERT_TRUE(run(LeaseGrantRequest{1, 10}).error.ok());
  Response dup = run(LeaseGrantRequest{1, 10});
  EXPECT_EQ(dup.error.code, Code::kFailedPrecondition);
  EXPECT_EQ(dup.error.message, errors::kLeaseExist);
  EXPECT_EQ(run(LeaseGrantRequest{2, kMaxLeaseTTLSeconds + 1}).error.message,
            errors::kLeaseTTLTooLarge);
  put("k", "v", 1);
  put("k", "v");  // moving the key off the lease detaches it
  auto leases = store_->leases();
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_TRUE(leases[0].keys.empty());
}

TEST_F(MvccTest, ARetriedRequestIsAppliedOnce) {
  Command c;
  c.client_id = 42;
  c.sequence = 1;
  c.op = PutRequest{"k", "v"};
  Response first = apply(c);
  Response again = apply(c);
  EXPECT_EQ(first, again);
  EXPECT_EQ(store_->revision(), 2) << "the retry was not applied a second time";
  c.sequence = 2;
  c.op = PutRequest{"k", "w"};
  EXPECT_EQ(std::get<PutResponse>(apply(c).op).revision, 3);
  c.sequence = 1;
  EXPECT_EQ(apply(c).error.message, errors::kStaleSequence);
}

TEST_F(MvccTest, SessionsExpireByLogTime) {
  options_.session_expiry_ms = 1000;
  store_.reset();
  store_ = open(root_ + "/a");
  Command c;
  c.client_id = 1;
  c.sequence = 1;
  c.log_time_ms = 0;
  c.op = PutRequest{"k", "v"};
  apply(c);
  Command other;
  other.log_time_ms = 5000;  // another client's request moves log time on
  other.op = PutRequest{"o", "v"};
  apply(other);
  EXPECT_EQ(store_->session_count(), 0u);
  c.sequence = 2;
  c.log_time_ms = 5001;
  EXPECT_EQ(apply(c).error.message, errors::kSessionExpired);
  c.sequence = 3;
  c.client_id = 2;
  EXPECT_EQ(apply(c).error.message, errors::kSessionExpired) << "a session starts at 1";
}

TEST_F(MvccTest, StateSurvivesARestartAndReplayedEntriesAreSkipped) {
  ASSERT_TRUE(run(LeaseGrantRequest{3, 30}).error.ok());
  put("a", "1", 3);
  Command c;
  c.client_id = 9;
  c.sequence = 1;
  c.op = PutRequest{"b", "2"};
  apply(c);
  raft::Index applied = store_->applied_index();
  store_.reset();
  store_ = open(root_ + "/a");
  EXPECT_EQ(store_->applied_index(), applied);
  EXPECT_EQ(store_->revision(), 3);
  EXPECT_TRUE(store_->lease_exists(3));
  EXPECT_EQ(store_->leases()[0].keys, std::vector<std::string>{"a"});
  EXPECT_EQ(store_->session_count(), 1u);
  // Replaying the last entry after a restart changes nothing.
  std::string data = encode_command(c);
  MvccStore::ApplyResult result;
  ASSERT_TRUE(store_->apply({{applied, 1, data}}, &result).is_ok());
  EXPECT_TRUE(result.responses.empty());
  EXPECT_EQ(store_->revision(), 3);
  // A gap in the applied entries is refused.
  EXPECT_FALSE(store_->apply({{applied + 2, 1, data}}, &result).is_ok());
}

// A put reads its key's previous version only when the request asks for it (prev_kv); its
// event then says the previous version was left unread, and version_before() reads it.
TEST_F(MvccTest, APutReadsThePreviousVersionOnlyWhenAskedFor) {
  put("k", "1", 0);
  Command c;
  c.op = PutRequest{"k", "2"};
  std::string data = encode_command(c);
  MvccStore::ApplyResult r;
  ASSERT_TRUE(store_->apply({{store_->applied_index() + 1, 1, data}}, &r).is_ok());
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_TRUE(r.events[0].prev_unread);
  EXPECT_FALSE(r.events[0].prev_kv.has_value());
  EXPECT_EQ(r.events[0].kv.version, 2) << "the version comes from the index";
  EXPECT_EQ(r.events[0].kv.create_revision, 2);
  auto before = store_->version_before("k", r.events[0].kv.mod_revision);
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(before->value, "1");
  c.op = PutRequest{"k", "3", 0, /*prev_kv=*/true};
  data = encode_command(c);
  ASSERT_TRUE(store_->apply({{store_->applied_index() + 1, 1, data}}, &r).is_ok());
  EXPECT_FALSE(r.events[0].prev_unread);
  ASSERT_TRUE(r.events[0].prev_kv.has_value());
  EXPECT_EQ(r.events[0].prev_kv->value, "2");
  // A new key has no previous version to read.
  c.op = PutRequest{"n", "1"};
  data = encode_command(c);
  ASSERT_TRUE(store_->apply({{store_->applied_index() + 1, 1, data}}, &r).is_ok());
  EXPECT_FALSE(r.events[0].prev_unread);
}

// The first layout's compaction dropped a tombstone at the compacted revision itself but kept
// its event; the upgrade turns that event into the tombstone, so a watch from the compacted
// revision still sees the delete.
TEST_F(MvccTest, AnUpgradeKeepsADeleteAtTheCompactedRevision) {
  const std::string dir = root_ + "/old-compacted";
  {
    // a=1 at 2, b=x at 3, b deleted at 4, compacted at 4: what is left is a's version, its
    // current record and the delete's event.
    FirstLayoutStore old(dir);
    KeyValue a{"a", 2, 2, 1, "1", 0};
    old.version(a, false, 2);
    old.current(a);
    old.event("b", true, 4);
    old.meta("applied", {4, 1});
    old.meta("revision", {4});
    old.meta("compact", {4});
  }
  store_.reset();
  store_ = open(dir);
  EXPECT_EQ(store_->compact_revision(), 4);
  EXPECT_EQ(get("a").kvs.at(0).value, "1");
  std::vector<Event> ev;
  ASSERT_TRUE(store_->events(4, 0, &ev).ok());
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, Event::Type::kDelete);
  EXPECT_EQ(ev[0].kv.key, "b");
  EXPECT_EQ(ev[0].kv.mod_revision, 4);
}

// A data directory from the first layout (a current record per key, a version record per key
// and revision, an event record per revision) is upgraded in place when it opens: every
// version, read now or at its revision, and the event feed come out as they were written.
TEST_F(MvccTest, AStoreInTheFirstLayoutIsUpgradedAtOpen) {
  const std::string dir = root_ + "/old";
  {
    // a=1 at 2, a=2 at 3, b=x at 4, b deleted at 5.
    FirstLayoutStore old(dir);
    KeyValue a1{"a", 2, 2, 1, "1", 0}, a2{"a", 2, 3, 2, "2", 0}, b{"b", 4, 4, 1, "x", 0};
    KeyValue b_tomb;
    b_tomb.key = "b";
    b_tomb.mod_revision = 5;
    for (const auto& [kv, tombstone, rev] :
         {std::tuple{a1, false, 2}, {a2, false, 3}, {b, false, 4}, {b_tomb, true, 5}}) {
      old.version(kv, tombstone, rev);
      old.event(kv.key, tombstone, rev);
    }
    old.current(a2);
    old.meta("applied", {5, 1});
    old.meta("revision", {5});
  }
  store_.reset();
  store_ = open(dir);
  EXPECT_EQ(store_->revision(), 5);
  EXPECT_EQ(store_->applied_index(), 5u);
  auto now = get("a");
  ASSERT_EQ(now.kvs.size(), 1u);
  EXPECT_EQ(now.kvs[0].value, "2");
  EXPECT_EQ(now.kvs[0].version, 2);
  EXPECT_EQ(get("a", 2).kvs.at(0).value, "1");
  EXPECT_TRUE(get("b").kvs.empty());
  EXPECT_EQ(get("b", 4).kvs.at(0).value, "x");
  std::vector<Event> ev;
  ASSERT_TRUE(store_->events(2, 0, &ev).ok());
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[1].kv.value, "2");
  ASSERT_TRUE(ev[1].prev_kv.has_value());
  EXPECT_EQ(ev[1].prev_kv->value, "1");
  EXPECT_EQ(ev[3].type, Event::Type::kDelete);
  EXPECT_EQ(ev[3].kv.key, "b");
  // The next write continues from there, and the upgraded store opens again as it is.
  put("a", "3");
  EXPECT_EQ(get("a").kvs.at(0).version, 3);
  store_.reset();
  store_ = open(dir);
  EXPECT_EQ(get("a").kvs.at(0).value, "3");
  EXPECT_EQ(get("a", 3).kvs.at(0).value, "2");
}

// A txn may write one key twice at one revision (a put and a delete in sibling nested txns, as
// etcd allows); compacting at that revision keeps both, so the feed from there has both.
TEST_F(MvccTest, CompactionAtARevisionKeepsEveryVersionWrittenAtIt) {
  put("k", "1");  // 2
  auto put_txn = std::make_shared<TxnRequest>();
  put_txn->success.push_back({PutRequest{"k", "2"}});
  auto del_txn = std::make_shared<TxnRequest>();
  del_txn->success.push_back({DeleteRangeRequest{"k", "", false}});
  TxnRequest t;
  t.success.push_back({put_txn});
  t.success.push_back({del_txn});
  Response r = run(t);
  ASSERT_TRUE(r.error.ok()) << r.error.message;
  ASSERT_EQ(store_->revision(), 3);
  ASSERT_TRUE(run(CompactionRequest{3}).error.ok());
  std::vector<Event> ev;
  ASSERT_TRUE(store_->events(3, 0, &ev).ok());
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].type, Event::Type::kPut);
  EXPECT_EQ(ev[0].kv.value, "2");
  EXPECT_EQ(ev[1].type, Event::Type::kDelete);
  EXPECT_TRUE(get("k", 3).kvs.empty());
}

// A put's previous version that apply() left unread is read before a compaction in the same
// batch drops it.
TEST_F(MvccTest, APreviousVersionLeftUnreadSurvivesACompactionInTheSameBatch) {
  put("k", "1");  // 2
  Command p, c;
  p.op = PutRequest{"k", "2"};  // 3
  c.op = CompactionRequest{3};
  std::string dp = encode_command(p), dc = encode_command(c);
  MvccStore::ApplyResult r;
  raft::Index at = store_->applied_index();
  ASSERT_TRUE(store_->apply({{at + 1, 1, dp}, {at + 2, 1, dc}}, &r).is_ok());
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_FALSE(r.events[0].prev_unread);
  ASSERT_TRUE(r.events[0].prev_kv.has_value());
  EXPECT_EQ(r.events[0].prev_kv->value, "1");
}

TEST_F(MvccTest, AMalformedCommandGetsAnErrorAndIsStillApplied) {
  MvccStore::ApplyResult result;
  ASSERT_TRUE(store_->apply({{1, 1, "garbage"}, {2, 1, ""}}, &result).is_ok());
  ASSERT_EQ(result.responses.size(), 2u);
  EXPECT_EQ(result.responses[0].error.code, Code::kInternal);
  EXPECT_EQ(store_->applied_index(), 2u);
}

TEST_F(MvccTest, ACheckpointOpensAsTheSameStore) {
  put("a", "1");
  put("b", "2");
  ASSERT_TRUE(store_->checkpoint(root_ + "/snap").is_ok());
  put("c", "3");
  auto copy = open(root_ + "/snap");
  EXPECT_EQ(copy->revision(), 3);
  EXPECT_EQ(copy->applied_index(), 2u);
  RangeRequest q;
  q.key = kAll;
  q.range_end = kAll;
  RangeResponse r;
  ASSERT_TRUE(copy->range(q, &r).ok());
  EXPECT_EQ(keys(r), (std::vector<std::string>{"a", "b"}));
}

// etcd's applyTxn gives each operation the header its own read or write produced: a range the
// revision it read at, a put the txn's new revision, a delete the new revision once the txn has
// changed something. A nested txn's header is left empty.
TEST_F(MvccTest, TxnResponseHeadersCarryEachOperationsRevision) {
  put("k", "v");  // rev 2
  RangeRequest read_k;
  read_k.key = "k";
  RangeRequest read_a;
  read_a.key = "a";
  auto inner = std::make_shared<TxnRequest>();
  inner->success.push_back({read_a});
  TxnRequest t;
  t.success.push_back({read_k});
  t.success.push_back({DeleteRangeRequest{"none", "", false}});
  t.success.push_back({PutRequest{"a", "1"}});
  t.success.push_back({DeleteRangeRequest{"none2", "", false}});
  t.success.push_back({read_a});
  t.success.push_back({inner});
  TxnResponse r = txn(t);
  EXPECT_EQ(r.revision, 3);
  ASSERT_EQ(r.responses.size(), 6u);
  EXPECT_EQ(std::get<RangeResponse>(r.responses[0].op).revision, 2)
      << "a read before the txn's first write saw revision 2";
  EXPECT_EQ(std::get<DeleteRangeResponse>(r.responses[1].op).revision, 2);
  EXPECT_EQ(std::get<PutResponse>(r.responses[2].op).revision, 3);
  EXPECT_EQ(std::get<DeleteRangeResponse>(r.responses[3].op).revision, 3);
  EXPECT_EQ(std::get<RangeResponse>(r.responses[4].op).revision, 3);
  auto& nested = *std::get<std::shared_ptr<TxnResponse>>(r.responses[5].op);
  EXPECT_EQ(nested.revision, 0);
  ASSERT_EQ(nested.responses.size(), 1u);
  EXPECT_EQ(std::get<RangeResponse>(nested.responses[0].op).revision, 3);
}

// etcd's checkTxnRequest and checkRequestOp (v3rpc/key.go), made on both branches before any
// compare is evaluated and before the duplicate-key check.
TEST_F(MvccTest, TxnRequestsAreCheckedLikeEtcds) {
  ApiError e;
  TxnRequest empty_compare;
  empty_compare.compare.push_back(
      {Compare::Result::kEqual, Compare::Target::kVersion, "", "", 0, ""});
  txn(empty_compare, &e);
  EXPECT_EQ(e, (ApiError{Code::kInvalidArgument, errors::kEmptyKey}));

  RangeRequest no_key;
  no_key.range_end = kAll;
  TxnRequest empty_range;
  empty_range.success.push_back({no_key});
  txn(empty_range, &e);
  EXPECT_EQ(e.message, errors::kEmptyKey);

  TxnRequest empty_delete;
  empty_delete.success.push_back({DeleteRangeRequest{"", kAll, false}});
  txn(empty_delete, &e);
  EXPECT_EQ(e.message, errors::kEmptyKey);

  // The branch that would not run is checked too.
  TxnRequest bad_failure;
  bad_failure.failure.push_back({PutRequest{"k", "v", 0, false, true, false}});
  txn(bad_failure, &e);
  EXPECT_EQ(e.message, errors::kValueProvided);

  // The request's shape is checked before duplicate keys.
  TxnRequest dup_and_empty;
  dup_and_empty.success.push_back({PutRequest{"a", "1"}});
  dup_and_empty.success.push_back({PutRequest{"a", "2"}});
  dup_and_empty.success.push_back({PutRequest{"", "3"}});
  txn(dup_and_empty, &e);
  EXPECT_EQ(e.message, errors::kEmptyKey);

  // A nested txn gets what its parent's longest list leaves of the budget.
  auto inner = std::make_shared<TxnRequest>();
  for (int i = 0; i < 29; ++i)
    inner->success.push_back({PutRequest{"n" + std::to_string(i), "v"}});
  TxnRequest budget;
  for (int i = 0; i < 99; ++i)
    budget.success.push_back({PutRequest{"k" + std::to_string(i), "v"}});
  budget.success.push_back({inner});
  txn(budget, &e);
  EXPECT_EQ(e, (ApiError{Code::kInvalidArgument, errors::kTooManyOps}));
  inner->success.pop_back();
  txn(budget, &e);
  EXPECT_TRUE(e.ok()) << e.message;
  EXPECT_EQ(store_->revision(), 2) << "only the txn within the budget was applied";
}

TEST_F(MvccTest, RequestsWithoutAKeyAreRefused) {
  put("a", "1");
  Response r = run(DeleteRangeRequest{"", kAll, true});
  EXPECT_EQ(r.error, (ApiError{Code::kInvalidArgument, errors::kEmptyKey}));
  EXPECT_EQ(get("a").kvs.size(), 1u) << "an empty key with range end \\0 deletes nothing";
  RangeRequest q;
  q.range_end = kAll;
  RangeResponse out;
  EXPECT_EQ(store_->range(q, &out), (ApiError{Code::kInvalidArgument, errors::kEmptyKey}));
}

// etcd's Put looks the lease up before it reads the previous value; inside a txn,
// checkRequestPut does the opposite, and checks every put before any range.
TEST_F(MvccTest, PutErrorsComeInEtcdsOrder) {
  PutRequest q{"missing", "", 99, false, true, false};
  EXPECT_EQ(run(q).error.message, errors::kLeaseNotFound);
  TxnRequest t;
  t.success.push_back({q});
  ApiError e;
  txn(t, &e);
  EXPECT_EQ(e.message, errors::kKeyNotFound);

  RangeRequest future;
  future.key = "a";
  future.revision = 99;
  TxnRequest range_first;
  range_first.success.push_back({future});
  range_first.success.push_back({PutRequest{"b", "v", 99}});
  txn(range_first, &e);
  EXPECT_EQ(e, (ApiError{Code::kNotFound, errors::kLeaseNotFound}));
}

// etcd's lessor raises a TTL below its minimum (1.5 election timeouts) and answers with it.
TEST_F(MvccTest, ALeaseGetsAtLeastTheMinimumTTL) {
  Response r = run(LeaseGrantRequest{1, 1});
  ASSERT_TRUE(r.error.ok());
  EXPECT_EQ(std::get<LeaseGrantResponse>(r.op).ttl, options_.min_lease_ttl_seconds);
  r = run(LeaseGrantRequest{2, -5});
  ASSERT_TRUE(r.error.ok());
  EXPECT_EQ(std::get<LeaseGrantResponse>(r.op).ttl, options_.min_lease_ttl_seconds);
  r = run(LeaseGrantRequest{3, 60});
  EXPECT_EQ(std::get<LeaseGrantResponse>(r.op).ttl, 60);
  auto leases = store_->leases();
  ASSERT_EQ(leases.size(), 3u);
  EXPECT_EQ(leases[0].ttl, options_.min_lease_ttl_seconds);
  EXPECT_EQ(leases[1].ttl, options_.min_lease_ttl_seconds);
}

TEST_F(MvccTest, ABatchWithAGapChangesNothing) {
  put("a", "1");
  Command c;
  c.op = PutRequest{"b", "2"};
  std::string data = encode_command(c);
  raft::Index applied = store_->applied_index();
  MvccStore::ApplyResult result;
  EXPECT_FALSE(store_->apply({{applied + 1, 1, data}, {applied + 3, 1, data}}, &result).is_ok());
  EXPECT_EQ(store_->applied_index(), applied);
  EXPECT_EQ(store_->revision(), 2);
  EXPECT_TRUE(get("b").kvs.empty());
  // The store goes on from where it was.
  EXPECT_EQ(put("c", "3").revision, 3);
  EXPECT_EQ(get("c").kvs.at(0).create_revision, 3);
}

}  // namespace
}  // namespace chorus::kv
