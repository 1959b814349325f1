#include "server/watch_hub.h"

#include <gtest/gtest.h>

#include <thread>

#include "kv/codec.h"
#include "server/log.h"
#include "server/proposal.h"
#include "storage/testing.h"

namespace chorus::server {
namespace {

class Collect final : public WatchSink {
 public:
  void deliver(std::vector<WatchUpdate>&& updates) override {
    for (auto& u : updates)
      got.push_back(std::move(u));
  }
  void reset() override { ++resets; }
  size_t backlog() const override { return backlog_bytes; }
  int resets = 0;
  size_t backlog_bytes = 0;
  std::vector<WatchUpdate> got;
  std::vector<kv::Event> events() const {
    std::vector<kv::Event> out;
    for (const auto& u : got)
      out.insert(out.end(), u.events.begin(), u.events.end());
    return out;
  }
};

class WatchHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(kv::MvccStore::open(dir_.path() + "/kv", kv::MvccOptions{}, &store_).is_ok());
    hub_ = std::make_unique<WatchHub>(store_.get());
  }

  // Applies a command as the node does, then publishes its events.
  void apply(kv::Command c) {
    std::string data = kv::encode_command(c);
    kv::MvccStore::ApplyResult r;
    ASSERT_TRUE(store_->apply({{store_->applied_index() + 1, 1, data}}, &r).is_ok());
    ASSERT_TRUE(r.responses[0].error.ok()) << r.responses[0].error.message;
    hub_->publish(r.events, store_->revision());
  }
  void put(const std::string& k, const std::string& v) {
    kv::Command c;
    c.op = kv::PutRequest{k, v};
    apply(std::move(c));
  }
  void del(const std::string& k, const std::string& end = "") {
    kv::Command c;
    kv::DeleteRangeRequest d;
    d.key = k;
    d.range_end = end;
    c.op = d;
    apply(std::move(c));
  }
  // What the hub's thread does: catch every unsynced watcher up. False if some stream is full.
  bool sync() {
    WatchHub::Step step;
    while ((step = hub_->sync_step()) == WatchHub::Step::kWorked) {
    }
    return step == WatchHub::Step::kIdle;
  }
  WatchSpec spec(const std::string& key, const std::string& end = "", int64_t start = 0) {
    WatchSpec s;
    s.key = key;
    s.range_end = end;
    s.start_revision = start;
    return s;
  }

  storage::testing::TempDir dir_{"watch-hub"};
  std::unique_ptr<kv::MvccStore> store_;
  std::unique_ptr<WatchHub> hub_;
};

TEST_F(WatchHubTest, CreatedResponseThenLiveEventsForTheKeyOnly) {
  Collect c;
  std::string error;
  ASSERT_TRUE(hub_->add(&c, spec("a"), &error));
  ASSERT_EQ(c.got.size(), 1u);
  EXPECT_TRUE(c.got[0].created);
  EXPECT_EQ(c.got[0].watch_id, 0);
  put("a", "1");
  put("b", "x");
  put("a", "2");
  auto ev = c.events();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].kv.value, "1");
  EXPECT_EQ(ev[1].kv.value, "2");
  EXPECT_EQ(ev[1].kv.version, 2);
  EXPECT_FALSE(ev[1].prev_kv.has_value()) << "prev_kv only when asked for";
}

// The store does not read a put's previous version unless the request asks for it; a synced
// watcher that wants prev_kv still gets it, read by publish(), even for two puts of one key in
// one applied batch (the second's previous version is the first's, not what was on disk).
TEST_F(WatchHubTest, ALiveWatcherWithPrevKvGetsPreviousVersionsTheStoreLeftUnread) {
  put("k", "1");
  Collect with, without;
  std::string error;
  WatchSpec s = spec("k");
  s.prev_kv = true;
  ASSERT_TRUE(hub_->add(&with, s, &error));
  ASSERT_TRUE(hub_->add(&without, spec("k"), &error));
  kv::Command a, b;
  a.op = kv::PutRequest{"k", "2"};
  b.op = kv::PutRequest{"k", "3"};
  std::string da = kv::encode_command(a), db = kv::encode_command(b);
  kv::MvccStore::ApplyResult r;
  raft::Index at = store_->applied_index();
  ASSERT_TRUE(store_->apply({{at + 1, 1, da}, {at + 2, 1, db}}, &r).is_ok());
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_TRUE(r.events[0].prev_unread);
  EXPECT_FALSE(r.events[0].prev_kv.has_value()) << "apply() read nothing nobody asked for";
  hub_->publish(r.events, store_->revision());
  auto ev = with.events();
  ASSERT_EQ(ev.size(), 2u);
  ASSERT_TRUE(ev[0].prev_kv.has_value());
  EXPECT_EQ(ev[0].prev_kv->value, "1");
  ASSERT_TRUE(ev[1].prev_kv.has_value());
  EXPECT_EQ(ev[1].prev_kv->value, "2");
  EXPECT_EQ(ev[1].prev_kv->version, 2);
  for (const kv::Event& e : without.events())
    EXPECT_FALSE(e.prev_kv.has_value());
}

TEST_F(WatchHubTest, PrefixAndFromKeyRanges) {
  Collect prefix, from;
  std::string error;
  ASSERT_TRUE(hub_->add(&prefix, spec("p/", "p0"), &error));
  ASSERT_TRUE(hub_->add(&from, spec("m", std::string(1, '\0')), &error));
  put("p/1", "x");
  put("p0", "x");
  put("a", "x");
  put("z", "x");
  auto pe = prefix.events();
  ASSERT_EQ(pe.size(), 1u);
  EXPECT_EQ(pe[0].kv.key, "p/1");
  auto fe = from.events();
  ASSERT_EQ(fe.size(), 3u);  // p/1, p0 and z are >= "m"
}

TEST_F(WatchHubTest, HistoryFromAPastRevisionThenLiveWithoutGapOrRepeat) {
  put("k", "1");  // revision 2
  put("k", "2");  // 3
  put("k", "3");  // 4
  Collect c;
  std::string error;
  WatchSpec s = spec("k", "", 3);
  s.prev_kv = true;
  ASSERT_TRUE(hub_->add(&c, s, &error));
  EXPECT_EQ(c.got.size(), 1u) << "history comes from the hub's thread, not from add()";
  put("k", "4");  // 5: published while the watcher is unsynced
  EXPECT_TRUE(c.events().empty());
  ASSERT_TRUE(sync());
  EXPECT_EQ(hub_->unsynced_count(), 0u);
  put("k", "5");  // 6: live
  auto ev = c.events();
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].kv.mod_revision, 3);
  EXPECT_EQ(ev[1].kv.mod_revision, 4);
  EXPECT_EQ(ev[2].kv.mod_revision, 5);
  EXPECT_EQ(ev[3].kv.mod_revision, 6);
  ASSERT_TRUE(ev[0].prev_kv.has_value());
  EXPECT_EQ(ev[0].prev_kv->value, "1");
}

TEST_F(WatchHubTest, FiltersDropPutsOrDeletes) {
  Collect noput, nodel;
  std::string error;
  WatchSpec a = spec("f");
  a.no_put = true;
  WatchSpec b = spec("f");
  b.no_delete = true;
  ASSERT_TRUE(hub_->add(&noput, a, &error));
  ASSERT_TRUE(hub_->add(&nodel, b, &error));
  put("f", "1");
  del("f");
  ASSERT_EQ(noput.events().size(), 1u);
  EXPECT_EQ(noput.events()[0].type, kv::Event::Type::kDelete);
  ASSERT_EQ(nodel.events().size(), 1u);
  EXPECT_EQ(nodel.events()[0].type, kv::Event::Type::kPut);
}

TEST_F(WatchHubTest, AStartBelowTheCompactedRevisionIsCancelledWithIt) {
  put("c", "1");
  put("c", "2");
  put("c", "3");
  kv::Command cmp;
  cmp.op = kv::CompactionRequest{3};
  apply(cmp);
  Collect c;
  std::string error;
  ASSERT_TRUE(hub_->add(&c, spec("c", "", 2), &error));
  ASSERT_EQ(c.got.size(), 2u);
  EXPECT_TRUE(c.got[0].created);
  EXPECT_TRUE(c.got[1].canceled);
  EXPECT_EQ(c.got[1].compact_revision, 3);
  EXPECT_EQ(hub_->watcher_count(), 0u);
  put("c", "4");
  EXPECT_EQ(c.got.size(), 2u) << "a cancelled watcher gets nothing more";
}

TEST_F(WatchHubTest, CancelAndRemoveSinkStopDelivery) {
  Collect c;
  std::string error;
  ASSERT_TRUE(hub_->add(&c, spec("x"), &error));
  ASSERT_TRUE(hub_->add(&c, spec("y"), &error));
  EXPECT_EQ(c.got[1].watch_id, 1);
  ASSERT_TRUE(hub_->cancel(&c, 0));
  EXPECT_FALSE(hub_->cancel(&c, 0));
  EXPECT_TRUE(c.got.back().canceled);
  put("x", "1");
  put("y", "1");
  ASSERT_EQ(c.events().size(), 1u);
  EXPECT_EQ(c.events()[0].kv.key, "y");
  hub_->remove_sink(&c);
  size_t before = c.got.size();
  put("y", "2");
  EXPECT_EQ(c.got.size(), before);
}

TEST_F(WatchHubTest, ChosenIdsMustBeUniquePerStream) {
  Collect c, other;
  std::string error;
  WatchSpec s = spec("k");
  s.auto_id = false;
  s.id = 7;
  ASSERT_TRUE(hub_->add(&c, s, &error));
  EXPECT_FALSE(hub_->add(&c, s, &error));
  EXPECT_NE(error.find("watcher ID already exists"), std::string::npos);
  EXPECT_TRUE(hub_->add(&other, s, &error)) << "ids are per stream";
}

TEST_F(WatchHubTest, ProgressRequestReportsTheRevision) {
  put("a", "1");
  Collect c;
  hub_->request_progress(&c);
  ASSERT_EQ(c.got.size(), 1u);
  EXPECT_EQ(c.got[0].watch_id, -1);
  EXPECT_EQ(c.got[0].revision, store_->revision());
  EXPECT_TRUE(c.got[0].events.empty());
}

TEST_F(WatchHubTest, PeriodicProgressGoesOnlyToWatchersThatAskedForIt) {
  Collect asked, silent;
  std::string error;
  WatchSpec s = spec("p");
  s.progress_notify = true;
  ASSERT_TRUE(hub_->add(&asked, s, &error));
  ASSERT_TRUE(hub_->add(&silent, spec("p"), &error));
  put("other", "1");
  hub_->notify_progress();
  ASSERT_EQ(asked.got.size(), 2u);  // created, then the notification
  EXPECT_EQ(asked.got[1].watch_id, 0);
  EXPECT_TRUE(asked.got[1].events.empty());
  EXPECT_EQ(asked.got[1].revision, store_->revision());
  EXPECT_EQ(silent.got.size(), 1u);
}

TEST_F(WatchHubTest, LargeBatchesAreSplit) {
  Collect c;
  std::string error;
  ASSERT_TRUE(hub_->add(&c, spec("big/", "big0"), &error));
  std::vector<kv::Event> events;
  for (size_t i = 0; i < WatchHub::kMaxEventsPerUpdate + 5; ++i) {
    kv::Event e;
    e.kv.key = "big/" + std::to_string(i);
    e.kv.mod_revision = 100;  // one revision: never split
    events.push_back(e);
  }
  for (size_t i = 0; i < 5; ++i) {
    kv::Event e;
    e.kv.key = "big/x" + std::to_string(i);
    e.kv.mod_revision = 101 + static_cast<int64_t>(i);
    events.push_back(e);
  }
  hub_->publish(events, 105);
  ASSERT_EQ(c.got.size(), 3u);  // created, then revision 100 whole, then 101..105
  EXPECT_EQ(c.got[1].events.size(), WatchHub::kMaxEventsPerUpdate + 5);
  EXPECT_EQ(c.got[2].events.size(), 5u);
  EXPECT_EQ(c.got[2].events.front().kv.mod_revision, 101);
}

TEST_F(WatchHubTest, AFutureStartRevisionSkipsEarlierEvents) {
  Collect c;
  std::string error;
  ASSERT_TRUE(hub_->add(&c, spec("f", "", store_->revision() + 2), &error));
  put("f", "1");
  put("f", "2");
  put("f", "3");
  auto ev = c.events();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].kv.value, "2");
}

TEST_F(WatchHubTest, ReplacingTheStoreResetsEveryStream) {
  Collect a, b;
  std::string error;
  ASSERT_TRUE(hub_->add(&a, spec("k"), &error));
  ASSERT_TRUE(hub_->add(&b, spec("k"), &error));
  hub_->reset(500);
  EXPECT_EQ(a.resets, 1);
  EXPECT_EQ(b.resets, 1);
  EXPECT_EQ(hub_->watcher_count(), 0u);
  EXPECT_EQ(hub_->revision(), 500);
}

// Puts `n` keys "h/<i>" (i from `first`) in one revision.
kv::Command put_many(int first, int n) {
  kv::TxnRequest t;
  for (int i = first; i < first + n; ++i)
    t.success.push_back(kv::RequestOp{kv::PutRequest{"h/" + std::to_string(i), "v"}});
  kv::Command c;
  c.op = t;
  return c;
}

TEST_F(WatchHubTest, ALongHistoryIsReadInChunksWhileWritesGoOnWithoutGapOrRepeat) {
  int64_t start = store_->revision() + 1;
  int next_key = 0;
  for (int r = 0; r < 30; ++r, next_key += 100)
    apply(put_many(next_key, 100));  // 3,000 events over 30 revisions
  Collect c;
  std::string error;
  ASSERT_TRUE(hub_->add(&c, spec("h/", "h0", start), &error));
  ASSERT_EQ(hub_->sync_step(), WatchHub::Step::kWorked);
  size_t first_chunk = c.events().size();
  EXPECT_GE(first_chunk, WatchHub::kMaxEventsPerUpdate);
  EXPECT_LT(first_chunk, 3000u) << "one step reads one chunk";
  EXPECT_EQ(hub_->unsynced_count(), 1u);
  // Writes published while the watcher catches up reach it from the store, once.
  for (int r = 0; r < 5; ++r, next_key += 100) {
    apply(put_many(next_key, 100));
    hub_->sync_step();  // one chunk, or nothing once synced
  }
  ASSERT_TRUE(sync());
  apply(put_many(next_key, 100));  // live
  next_key += 100;
  auto ev = c.events();
  ASSERT_EQ(ev.size(), static_cast<size_t>(next_key));
  for (int i = 0; i < next_key; ++i) {
    ASSERT_EQ(ev[i].kv.key, "h/" + std::to_string(i)) << "event " << i;
    ASSERT_EQ(ev[i].kv.mod_revision, start + i / 100);
  }
  for (size_t i = 1; i < c.got.size(); ++i) {
    EXPECT_LE(c.got[i].events.size(), WatchHub::kMaxEventsPerUpdate + 100);
    // Never half a revision in one response.
    if (!c.got[i].events.empty() && i + 1 < c.got.size() && !c.got[i + 1].events.empty()) {
      EXPECT_NE(c.got[i].events.back().kv.mod_revision,
                c.got[i + 1].events.front().kv.mod_revision);
    }
  }
}

TEST_F(WatchHubTest, AppliesRacingTheCatchUpNeitherLoseNorRepeatEvents) {
  for (int r = 0; r < 20; ++r)
    apply(put_many(r * 100, 100));
  // The apply thread's part: puts and publishes while this thread catches watchers up, one
  // after another, so the store moves between a step's reads.
  std::thread writer([this] {
    for (int i = 0; i < 1500; ++i)
      put("h/w" + std::to_string(i), "v");
  });
  std::vector<std::unique_ptr<Collect>> sinks;
  std::string error;
  for (int k = 0; k < 8; ++k) {
    sinks.push_back(std::make_unique<Collect>());
    ASSERT_TRUE(hub_->add(sinks.back().get(), spec("h/", "h0", 1), &error));
    while (hub_->unsynced_count() > 0)
      hub_->sync_step();
  }
  writer.join();
  for (const auto& c : sinks) {
    auto ev = c->events();
    ASSERT_EQ(ev.size(), 2000u + 1500u);
    for (size_t i = 1; i < ev.size(); ++i) {
      ASSERT_LE(ev[i - 1].kv.mod_revision, ev[i].kv.mod_revision) << i;
      if (ev[i - 1].kv.mod_revision == ev[i].kv.mod_revision) {
        ASSERT_NE(ev[i - 1].kv.key, ev[i].kv.key) << "repeated at " << i;
      }
    }
  }
}

TEST_F(WatchHubTest, ACatchUpStepReadsABoundedNumberOfBytes) {
  const std::string big(256 << 10, 'b');  // 40 x 256 KiB: 10 MiB of history
  for (int i = 0; i < 40; ++i)
    put("big/" + std::to_string(i), big);
  Collect c;
  std::string error;
  ASSERT_TRUE(hub_->add(&c, spec("big/", "big0", 1), &error));
  ASSERT_EQ(hub_->sync_step(), WatchHub::Step::kWorked);
  size_t first = c.events().size();
  EXPECT_GE(first * big.size(), WatchHub::kMaxBytesPerStep);
  EXPECT_LT(first, 40u) << "one step stops at its byte budget, not its event count";
  ASSERT_TRUE(sync());
  EXPECT_EQ(c.events().size(), 40u);
}

TEST_F(WatchHubTest, AStreamWithAFullQueueGetsNoHistoryUntilItDrains) {
  put("q", "1");
  put("q", "2");
  Collect c;
  c.backlog_bytes = WatchHub::kMaxBacklogForHistory + 1;
  std::string error;
  ASSERT_TRUE(hub_->add(&c, spec("q", "", 1), &error));
  EXPECT_EQ(hub_->sync_step(), WatchHub::Step::kBlocked);
  EXPECT_TRUE(c.events().empty());
  c.backlog_bytes = 0;
  ASSERT_TRUE(sync());
  EXPECT_EQ(c.events().size(), 2u);
  EXPECT_EQ(hub_->sync_step(), WatchHub::Step::kIdle);
}

TEST_F(WatchHubTest, CompactionDuringCatchUpCancelsWithTheCompactedRevision) {
  int64_t start = store_->revision() + 1;
  for (int r = 0; r < 30; ++r)
    apply(put_many(r * 100, 100));
  Collect c;
  std::string error;
  ASSERT_TRUE(hub_->add(&c, spec("h/", "h0", start), &error));
  ASSERT_EQ(hub_->sync_step(), WatchHub::Step::kWorked);
  kv::Command cmp;
  cmp.op = kv::CompactionRequest{store_->revision()};
  apply(cmp);
  ASSERT_TRUE(sync());
  ASSERT_TRUE(c.got.back().canceled);
  EXPECT_EQ(c.got.back().compact_revision, store_->compact_revision());
  EXPECT_NE(c.got.back().cancel_reason.find("compacted"), std::string::npos);
  EXPECT_EQ(hub_->watcher_count(), 0u);
  EXPECT_EQ(hub_->unsynced_count(), 0u);
}

TEST_F(WatchHubTest, WatchingFromTheCompactedRevisionItselfIsAllowed) {
  put("c", "1");
  put("c", "2");
  int64_t rev = store_->revision();
  kv::Command cmp;
  cmp.op = kv::CompactionRequest{rev};
  apply(cmp);
  Collect c;
  std::string error;
  ASSERT_TRUE(hub_->add(&c, spec("c", "", rev), &error));
  ASSERT_TRUE(sync());
  auto ev = c.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kv.value, "2");
}

TEST_F(WatchHubTest, ProgressWaitsUntilEveryWatcherOfTheStreamIsSynced) {
  put("p", "1");
  put("p", "2");
  Collect c;
  std::string error;
  WatchSpec s = spec("p", "", 1);
  s.progress_notify = true;
  ASSERT_TRUE(hub_->add(&c, s, &error));
  hub_->request_progress(&c);
  hub_->notify_progress();
  ASSERT_EQ(c.got.size(), 1u) << "no progress may claim events not yet sent";
  ASSERT_TRUE(sync());
  ASSERT_GE(c.got.size(), 3u);
  EXPECT_EQ(c.got.back().watch_id, -1);
  EXPECT_EQ(c.got.back().revision, store_->revision());
  EXPECT_EQ(c.events().size(), 2u) << "the events came before the progress";
  hub_->notify_progress();
  EXPECT_EQ(c.got.back().watch_id, 0) << "a synced watcher gets notifications";
}

TEST_F(WatchHubTest, CancellingAnUnsyncedWatcherStopsItsCatchUp) {
  put("u", "1");
  Collect c;
  std::string error;
  ASSERT_TRUE(hub_->add(&c, spec("u", "", 1), &error));
  ASSERT_TRUE(hub_->cancel(&c, 0));
  EXPECT_EQ(hub_->unsynced_count(), 0u);
  ASSERT_TRUE(sync());
  EXPECT_TRUE(c.events().empty());
  // And a stream that closes mid catch-up is simply forgotten.
  Collect d;
  ASSERT_TRUE(hub_->add(&d, spec("u", "", 1), &error));
  hub_->remove_sink(&d);
  ASSERT_TRUE(sync());
  EXPECT_TRUE(d.events().empty());
}

TEST_F(WatchHubTest, TheHubsThreadCatchesUpOnItsOwn) {
  for (int r = 0; r < 50; ++r)
    apply(put_many(r * 100, 100));
  Collect c;
  std::string error;
  hub_->start(std::chrono::milliseconds(60000));
  ASSERT_TRUE(hub_->add(&c, spec("h/", "h0", 1), &error));
  for (int i = 0; i < 2000 && hub_->unsynced_count() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  hub_->stop();
  EXPECT_EQ(hub_->unsynced_count(), 0u);
  EXPECT_EQ(c.events().size(), 5000u);
}

TEST(ProposalTest, RoundTripsAndRefusesOtherData) {
  std::string data = encode_proposal(ProposalHeader{ProposalKind::kCommand, 5, 9}, "payload");
  std::string_view cmd;
  auto h = decode_proposal(data, &cmd);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->proposer, 5u);
  EXPECT_EQ(h->request_id, 9u);
  EXPECT_EQ(cmd, "payload");
  EXPECT_FALSE(decode_proposal("", &cmd).has_value());
  EXPECT_FALSE(decode_proposal(data.substr(0, 10), &cmd).has_value());
  std::string bad = data;
  bad[1] = 9;  // unknown kind
  EXPECT_FALSE(decode_proposal(bad, &cmd).has_value());

  MemberAttributes a{42, "m1", {"http://127.0.0.1:2379"}};
  EXPECT_EQ(decode_member_attributes(encode_member_attributes(a)), a);
  std::string enc = encode_member_attributes(a);
  for (size_t i = 0; i < enc.size(); ++i)
    EXPECT_FALSE(decode_member_attributes(enc.substr(0, i)).has_value()) << i;
  MemberContext mc{"m2", {"http://127.0.0.1:2380"}};
  EXPECT_EQ(decode_member_context(encode_member_context(mc)), mc);
}

TEST(ProposalTest, ServerStateRoundTripsAndRefusesEveryTruncation) {
  ServerState st;
  st.index = 1234;
  st.revision = 99;
  st.members.push_back(
      MemberInfo{1, "m1", {"http://127.0.0.1:2380"}, {"http://127.0.0.1:2379"}, false});
  st.members.push_back(MemberInfo{2, "", {"http://127.0.0.1:22380"}, {}, true});
  st.removed = {7, 8};
  st.alarms.push_back(AlarmChange{true, 1, AlarmType::kNoSpace});
  std::string enc = encode_server_state(st);
  EXPECT_EQ(decode_server_state(enc), st);
  for (size_t i = 0; i < enc.size(); ++i)
    EXPECT_FALSE(decode_server_state(enc.substr(0, i)).has_value()) << i;
  EXPECT_FALSE(decode_server_state(enc + "x").has_value());
}

// The data groups' directory follows the rest of a server state; a state without it (written
// before it existed) ends where the directory would start, and decodes as having no groups.
TEST(ProposalTest, ServerStateWithGroupsRoundTripsAndEndsOnlyWhereOlderStatesDid) {
  ServerState st;
  st.index = 7;
  st.members.push_back(MemberInfo{1, "m1", {"http://127.0.0.1:2380"}, {}, false});
  const std::string without = encode_server_state(st);
  st.groups = {GroupDescriptor{2, {1, 2, 4}, {1, 2, 3}, {3}, {3}},
               GroupDescriptor{9, {3}, {3}, {}, {}}};
  st.deleted_groups = {4, 5};
  st.next_group = 10;
  st.initial_groups = 3;
  st.initial_members = {1, 2, 3};
  std::string enc = encode_server_state(st);
  EXPECT_EQ(decode_server_state(enc), st);
  for (size_t i = 0; i < enc.size(); ++i) {
    if (i == without.size()) {
      ServerState older = st;
      older.groups.clear();
      older.deleted_groups.clear();
      older.next_group = 0;
      older.initial_groups = 0;
      older.initial_members.clear();
      EXPECT_EQ(decode_server_state(enc.substr(0, i)), older);
      continue;
    }
    EXPECT_FALSE(decode_server_state(enc.substr(0, i)).has_value()) << i;
  }
  EXPECT_FALSE(decode_server_state(enc + "x").has_value());
}

TEST(ProposalTest, GroupChangesRoundTripAndRefuseDamage) {
  GroupChange c{GroupChange::Op::kCreate, 0, {3, 1, 2}, 0};
  std::string enc = encode_group_change(c);
  EXPECT_EQ(decode_group_change(enc), c);
  GroupChange init{GroupChange::Op::kCreateInitial, 0, {1, 2, 3}, 10000};
  EXPECT_EQ(decode_group_change(encode_group_change(init)), init);
  GroupChange add{GroupChange::Op::kAddReplica, 7, {4}, 0};
  EXPECT_EQ(decode_group_change(encode_group_change(add)), add);
  for (size_t i = 0; i < enc.size(); ++i)
    EXPECT_FALSE(decode_group_change(enc.substr(0, i)).has_value()) << i;
  EXPECT_FALSE(decode_group_change(enc + "x").has_value());
  std::string bad_op = enc;
  bad_op[0] = 9;
  EXPECT_FALSE(decode_group_change(bad_op).has_value());
  std::string_view payload;
  std::string entry = encode_proposal(ProposalHeader{ProposalKind::kGroupChange, 1, 2}, enc);
  auto h = decode_proposal(entry, &payload);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->kind, ProposalKind::kGroupChange);
  EXPECT_EQ(payload, enc);
}

TEST(LogTest, LinesAreJsonWithEscapedFieldsAndLevelsFilter) {
  EXPECT_EQ(format_log_line(LogLevel::kWarn, "slow \"x\"", {{"k", "a\nb"}}),
            "\"level\":\"warn\",\"msg\":\"slow \\\"x\\\"\",\"k\":\"a\\nb\"");
  LogLevel l = LogLevel::kInfo;
  EXPECT_TRUE(parse_log_level("debug", &l));
  EXPECT_EQ(l, LogLevel::kDebug);
  EXPECT_FALSE(parse_log_level("loud", &l));
  set_log_level(LogLevel::kWarn);
  EXPECT_FALSE(log_enabled(LogLevel::kInfo));
  EXPECT_TRUE(log_enabled(LogLevel::kError));
  set_log_level(LogLevel::kInfo);
}

}  // namespace
}  // namespace chorus::server
