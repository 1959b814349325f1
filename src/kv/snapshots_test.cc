#include "kv/snapshots.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "kv/codec.h"
#include "storage/fault_fs.h"
#include "storage/wal.h"

namespace chorus::kv {
namespace {

const std::string kAll(1, '\0');
const raft::ConfState kConf{{1, 2, 3}, {}, {}, {}, false};

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "chorus-snap-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    fs_ = storage::make_posix_file_system();
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::unique_ptr<MvccStore> open(const std::string& name) {
    std::unique_ptr<MvccStore> s;
    storage::Status st = MvccStore::open(root_ + "/" + name, {}, &s);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    return s;
  }
  // Applies commands as the next log entries; returns the events.
  std::vector<Event> apply(MvccStore* s, const std::vector<Command>& commands) {
    std::vector<std::string> data;
    for (const Command& c : commands)
      data.push_back(encode_command(c));
    std::vector<AppliedEntry> entries;
    for (size_t i = 0; i < data.size(); ++i)
      entries.push_back({s->applied_index() + 1 + i, 2, data[i]});
    MvccStore::ApplyResult result;
    storage::Status st = s->apply(entries, &result);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    return result.events;
  }
  static std::vector<Command> workload(int from, int n) {
    std::vector<Command> out;
    for (int i = from; i < from + n; ++i) {
      Command c;
      if (i % 7 == 3) {
        c.op = DeleteRangeRequest{"key" + std::to_string(i - 3), "", false};
      } else {
        c.op = PutRequest{"key" + std::to_string(i % 50),
                          std::string(200, char('a' + i % 26)),
                          0,
                          false,
                          false,
                          false};
      }
      out.push_back(c);
    }
    return out;
  }
  static RangeResponse everything(const MvccStore& s) {
    RangeRequest q;
    q.key = kAll;
    q.range_end = kAll;
    RangeResponse r;
    EXPECT_TRUE(s.range(q, &r).ok());
    return r;
  }
  // Streams `dir` into a receiver for `<root>/<name>`.
  void transfer(const std::string& dir, storage::SnapshotReceiver* receiver) {
    storage::SnapshotSender sender(fs_.get(), dir, 77, 4096);
    while (!sender.done()) {
      storage::SnapshotChunk chunk;
      ASSERT_TRUE(sender.next(&chunk).is_ok());
      storage::Status st = receiver->add(storage::encode_snapshot_chunk(chunk));
      ASSERT_TRUE(st.is_ok()) << st.to_string();
    }
  }

  std::string root_;
  std::unique_ptr<storage::FileSystem> fs_;
};

TEST_F(SnapshotTest, AFollowerInstallsTheLeadersCheckpointAndContinuesIdentically) {
  auto leader = open("leader");
  apply(leader.get(), workload(0, 3000));
  raft::Snapshot snap;
  ASSERT_TRUE(take_snapshot(leader.get(), fs_.get(), root_ + "/snap", kConf, &snap).is_ok());
  EXPECT_EQ(snap.metadata.index, 3000u);
  EXPECT_EQ(snap.metadata.term, 2u);
  SnapshotDescriptor d;
  ASSERT_TRUE(decode_snapshot_descriptor(snap.data, &d));
  EXPECT_EQ(d.revision, leader->revision());

  auto follower = open("follower");
  apply(follower.get(), workload(0, 10));  // an old state the snapshot replaces
  storage::SnapshotReceiver receiver(fs_.get(), root_, "follower");
  transfer(snapshot_dir(root_ + "/snap", 3000), &receiver);
  ASSERT_TRUE(receiver.complete());
  ASSERT_TRUE(install_snapshot(&follower, &receiver, root_ + "/follower", {}).is_ok());
  ASSERT_NE(follower, nullptr);
  EXPECT_EQ(follower->applied_index(), 3000u);
  EXPECT_EQ(follower->revision(), leader->revision());
  EXPECT_EQ(everything(*follower), everything(*leader));

  auto more = workload(3000, 200);
  EXPECT_EQ(apply(follower.get(), more), apply(leader.get(), more));
  EXPECT_EQ(everything(*follower), everything(*leader));
}

TEST_F(SnapshotTest, ADamagedChunkIsRefusedAndTheOldStoreStays) {
  auto leader = open("leader");
  apply(leader.get(), workload(0, 500));
  raft::Snapshot snap;
  ASSERT_TRUE(take_snapshot(leader.get(), fs_.get(), root_ + "/snap", kConf, &snap).is_ok());
  auto follower = open("follower");
  apply(follower.get(), workload(0, 10));
  RangeResponse before = everything(*follower);

  storage::SnapshotSender sender(fs_.get(), snapshot_dir(root_ + "/snap", 500), 5, 1024);
  storage::SnapshotReceiver receiver(fs_.get(), root_, "follower");
  storage::SnapshotChunk chunk;
  ASSERT_TRUE(sender.next(&chunk).is_ok());
  std::string bytes = storage::encode_snapshot_chunk(chunk);
  bytes[bytes.size() / 2] ^= 0x40;
  EXPECT_FALSE(receiver.add(bytes).is_ok());
  EXPECT_FALSE(receiver.complete());
  EXPECT_FALSE(install_snapshot(&follower, &receiver, root_ + "/follower", {}).is_ok());
  ASSERT_NE(follower, nullptr) << "an incomplete transfer does not close the store";
  EXPECT_EQ(everything(*follower), before);
  ASSERT_TRUE(receiver.abort().is_ok());
}

TEST_F(SnapshotTest, TakingASnapshotLetsTheLogBeCompactedAndKeepsOnlyTheNewestCheckpoint) {
  storage::FaultFileSystem wal_fs;
  std::unique_ptr<storage::Wal> wal;
  ASSERT_TRUE(storage::Wal::open(&wal_fs, "wal", {.segment_bytes = 1 << 16}, &wal).is_ok());
  ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
  auto store = open("store");
  SnapshotPolicy policy{.snapshot_entries = 1000, .catch_up_entries = 100};
  raft::Index last_snapshot = 0;
  int snapshots = 0;
  for (int round = 0; round < 25; ++round) {
    auto commands = workload(round * 100, 100);
    std::vector<raft::Entry> entries;
    for (const Command& c : commands)
      entries.push_back({2, wal->group(1)->last_index() + 1 + entries.size(),
                         raft::EntryType::kNormal, encode_command(c)});
    storage::WalBatch b;
    b.append(1, entries);
    ASSERT_TRUE(wal->commit(b).is_ok());
    apply(store.get(), commands);
    if (snapshot_due(store->applied_index(), last_snapshot, policy)) {
      raft::Snapshot snap;
      ASSERT_TRUE(take_snapshot(store.get(), fs_.get(), root_ + "/snap", kConf, &snap).is_ok());
      ASSERT_TRUE(wal->compact(1, snap, compact_index(snap.metadata.index, policy)).is_ok());
      ASSERT_TRUE(prune_snapshots(fs_.get(), root_ + "/snap", snap.metadata.index).is_ok());
      last_snapshot = snap.metadata.index;
      ++snapshots;
    }
  }
  EXPECT_EQ(snapshots, 2);
  EXPECT_EQ(wal->group(1)->first_index(), 2000u - 100 + 1);
  std::vector<std::string> names;
  ASSERT_TRUE(fs_->list_dir(root_ + "/snap", &names).is_ok());
  EXPECT_EQ(names.size(), 1u);
  EXPECT_FALSE(snapshot_due(2400, 2000, policy));
  EXPECT_TRUE(snapshot_due(3000, 2000, policy));
  EXPECT_EQ(compact_index(50, policy), 0u);
}

TEST_F(SnapshotTest, OpeningTheStoreClearsAnInterruptedTransfer) {
  auto leader = open("leader");
  apply(leader.get(), workload(0, 100));
  raft::Snapshot snap;
  ASSERT_TRUE(take_snapshot(leader.get(), fs_.get(), root_ + "/snap", kConf, &snap).is_ok());
  {
    auto follower = open("follower");
    apply(follower.get(), workload(0, 10));
  }
  {
    // The follower crashes with half a snapshot received.
    storage::SnapshotSender sender(fs_.get(), snapshot_dir(root_ + "/snap", 100), 9, 512);
    storage::SnapshotReceiver receiver(fs_.get(), root_, "follower");
    storage::SnapshotChunk chunk;
    ASSERT_TRUE(sender.next(&chunk).is_ok());
    ASSERT_TRUE(receiver.add(chunk).is_ok());
  }
  ASSERT_TRUE(std::filesystem::exists(root_ + "/follower.tmp"));
  std::unique_ptr<MvccStore> follower;
  ASSERT_TRUE(open_store(fs_.get(), root_, "follower", {}, &follower).is_ok());
  EXPECT_FALSE(std::filesystem::exists(root_ + "/follower.tmp"));
  EXPECT_EQ(follower->applied_index(), 10u) << "the old store is intact";
}

TEST(SnapshotDescriptor, RoundTripsAndRejectsGarbage) {
  SnapshotDescriptor d{123, 456};
  SnapshotDescriptor got;
  ASSERT_TRUE(decode_snapshot_descriptor(encode_snapshot_descriptor(d), &got));
  EXPECT_EQ(got, d);
  std::string bytes = encode_snapshot_descriptor(d);
  EXPECT_FALSE(decode_snapshot_descriptor(bytes.substr(1), &got));
  EXPECT_FALSE(decode_snapshot_descriptor("not a snapshot", &got));
}

}  // namespace
}  // namespace chorus::kv
