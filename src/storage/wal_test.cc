#include "storage/wal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "storage/fault_fs.h"
#include "storage/forwarding_fs.h"
#include "storage/group_commit.h"
#include "storage/testing.h"

namespace chorus::storage {
namespace {

using testing::read_log;

using raft::Entry;
using raft::GroupId;
using raft::Index;

const raft::ConfState kConf{{1, 2, 3}, {}, {}, {}, false};

std::vector<Entry> make_entries(Index from, Index to, raft::Term term, size_t bytes = 10) {
  std::vector<Entry> out;
  for (Index i = from; i <= to; ++i) {
    Entry e;
    e.term = term;
    e.index = i;
    e.data = std::string(bytes, static_cast<char>('a' + i % 26));
    e.data += std::to_string(i);
    out.push_back(e);
  }
  return out;
}

class WalTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_.create_dir("wal").is_ok() || true); }

  std::unique_ptr<Wal> open_ok() {
    std::unique_ptr<Wal> wal;
    Status st = Wal::open(&fs_, "wal", options_, &wal);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    return wal;
  }
  Status open_status() {
    std::unique_ptr<Wal> wal;
    return Wal::open(&fs_, "wal", options_, &wal);
  }
  void commit_entries(Wal* wal, GroupId g, Index from, Index to, raft::Term term) {
    WalBatch b;
    b.append(g, make_entries(from, to, term));
    b.set_hard_state(g, {term, 1, from > 1 ? from - 1 : 0});
    Status st = wal->commit(b);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
  }
  // Entries 1..200 of group 1 over several small segments, with a cache too small to hold
  // them: a Wal opened afterwards reads most of them back from the files.
  void write_entries_beyond_the_cache() {
    options_.cache_bytes = 500;
    options_.segment_bytes = 8192;
    auto wal = open_ok();
    ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
    for (Index i = 1; i <= 200; i += 20)
      commit_entries(wal.get(), 1, i, i + 19, 1);
    EXPECT_EQ(read_log(*wal, 1), make_entries(1, 200, 1));
  }
  std::string last_segment_path(const Wal& wal) {
    return join_path("wal", wal.segment_names().back());
  }

  FaultFileSystem fs_;
  WalOptions options_{.segment_bytes = 1 << 20, .cache_bytes = 1 << 20};
};

TEST_F(WalTest, RecoversEntriesHardStateAndConfiguration) {
  {
    auto wal = open_ok();
    ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
    commit_entries(wal.get(), 1, 1, 10, 2);
  }
  auto wal = open_ok();
  const raft::LogStorage* s = wal->group(1);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->conf_state(), kConf);
  EXPECT_EQ(s->hard_state(), (raft::HardState{2, 1, 0}));
  EXPECT_EQ(s->first_index(), 1u);
  EXPECT_EQ(s->last_index(), 10u);
  EXPECT_EQ(read_log(*wal, 1), make_entries(1, 10, 2));
  raft::Term t = 0;
  EXPECT_EQ(s->term(0, &t), raft::Error::kOk);
  EXPECT_EQ(t, 0u);
  EXPECT_EQ(s->term(11, &t), raft::Error::kUnavailable);
}

TEST_F(WalTest, ManyGroupsInterleavedRecoverSeparately) {
  {
    auto wal = open_ok();
    for (GroupId g = 1; g <= 8; ++g)
      ASSERT_TRUE(wal->bootstrap(g, kConf).is_ok());
    for (Index i = 1; i <= 50; ++i) {
      WalBatch b;
      for (GroupId g = 1; g <= 8; ++g)
        if (i % g == 0 || g == 1)
          b.append(
              g, make_entries(wal->group(g)->last_index() + 1, wal->group(g)->last_index() + 1, g));
      ASSERT_TRUE(wal->commit(b).is_ok());
    }
  }
  auto wal = open_ok();
  EXPECT_EQ(wal->groups().size(), 8u);
  for (GroupId g = 1; g <= 8; ++g) {
    Index n = g == 1 ? 50 : 50 / g;
    EXPECT_EQ(read_log(*wal, g), make_entries(1, n, g)) << "group " << g;
  }
}

TEST_F(WalTest, ManyGroupsBootstrapInOneWriteAndRecoverTheirConfigurations) {
  {
    auto wal = open_ok();
    std::vector<std::pair<GroupId, raft::ConfState>> groups;
    for (GroupId g = 2; g <= 1001; ++g)
      groups.emplace_back(g, raft::ConfState{{1, 2, g % 7 + 3}, {}, {}, {}, false});
    ASSERT_TRUE(wal->bootstrap(groups).is_ok());
    // A group that exists, or appears twice, fails the whole call: nothing is created.
    EXPECT_FALSE(wal->bootstrap({{2000, kConf}, {2, kConf}}).is_ok());
    EXPECT_FALSE(wal->bootstrap({{3000, kConf}, {3000, kConf}}).is_ok());
    EXPECT_EQ(wal->group(2000), nullptr);
    EXPECT_EQ(wal->group(3000), nullptr);
    EXPECT_TRUE(wal->bootstrap({}).is_ok());
  }
  auto wal = open_ok();
  ASSERT_EQ(wal->groups().size(), 1000u);
  for (GroupId g = 2; g <= 1001; ++g) {
    raft::Snapshot snap;
    ASSERT_EQ(wal->group(g)->snapshot(&snap), raft::Error::kOk);
    EXPECT_EQ(snap.metadata.conf_state.voters, (std::vector<raft::NodeId>{1, 2, g % 7 + 3}));
    EXPECT_EQ(wal->group(g)->last_index(), 0u);
  }
}

TEST_F(WalTest, ManyGroupsCompactInOneWriteOrNoneDoes) {
  {
    auto wal = open_ok();
    for (GroupId g = 1; g <= 4; ++g) {
      ASSERT_TRUE(wal->bootstrap(g, kConf).is_ok());
      commit_entries(wal.get(), g, 1, 10, 1);
    }
    auto compaction = [](GroupId g, Index index) {
      WalCompaction c;
      c.group = g;
      c.snapshot.metadata = {index, 1, kConf};
      c.compact_to = index;
      return c;
    };
    // One bad compaction (past the log, an unknown group, a group twice) fails them all.
    EXPECT_FALSE(wal->compact({compaction(1, 5), compaction(2, 11)}).is_ok());
    EXPECT_FALSE(wal->compact({compaction(1, 5), compaction(9, 5)}).is_ok());
    EXPECT_FALSE(wal->compact({compaction(1, 5), compaction(1, 6)}).is_ok());
    EXPECT_EQ(wal->group(1)->first_index(), 1u);
    ASSERT_TRUE(wal->compact({compaction(1, 5), compaction(2, 10), compaction(3, 7)}).is_ok());
    EXPECT_TRUE(wal->compact({}).is_ok());
  }
  auto wal = open_ok();
  EXPECT_EQ(wal->group(1)->first_index(), 6u);
  EXPECT_EQ(wal->group(2)->first_index(), 11u);
  EXPECT_EQ(wal->group(3)->first_index(), 8u);
  EXPECT_EQ(wal->group(4)->first_index(), 1u);
  EXPECT_EQ(read_log(*wal, 1), make_entries(6, 10, 1));
  EXPECT_EQ(read_log(*wal, 4), make_entries(1, 10, 1));
}

TEST_F(WalTest, AConflictingAppendReplacesTheSuffix) {
  {
    auto wal = open_ok();
    ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
    commit_entries(wal.get(), 1, 1, 10, 1);
    commit_entries(wal.get(), 1, 6, 8, 3);  // a new leader's entries from index 6
  }
  auto wal = open_ok();
  auto expected = make_entries(1, 5, 1);
  auto tail = make_entries(6, 8, 3);
  expected.insert(expected.end(), tail.begin(), tail.end());
  EXPECT_EQ(read_log(*wal, 1), expected);
}

TEST_F(WalTest, AnInstalledSnapshotReplacesTheWholeLog) {
  {
    auto wal = open_ok();
    ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
    commit_entries(wal.get(), 1, 1, 10, 1);
    raft::Snapshot snap;
    snap.metadata = {7, 4, kConf};
    snap.data = "state";
    WalBatch b;
    b.apply_snapshot(1, snap);
    ASSERT_TRUE(wal->commit(b).is_ok());
  }
  auto wal = open_ok();
  const raft::LogStorage* s = wal->group(1);
  EXPECT_EQ(s->first_index(), 8u);
  EXPECT_EQ(s->last_index(), 7u);
  raft::Snapshot got;
  ASSERT_EQ(s->snapshot(&got), raft::Error::kOk);
  EXPECT_EQ(got.metadata.index, 7u);
  EXPECT_EQ(got.data, "state");
  raft::Term t = 0;
  ASSERT_EQ(s->term(7, &t), raft::Error::kOk);
  EXPECT_EQ(t, 4u);
}

// Cut the last records at every byte: recovery keeps every record that was whole and nothing
// after the cut, and the log can be written and recovered again.
TEST_F(WalTest, ATornTailAtEveryByteRecoversThePrefix) {
  std::string image;
  {
    auto wal = open_ok();
    ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
    commit_entries(wal.get(), 1, 1, 20, 1);
    image = *fs_.contents(last_segment_path(*wal));
  }
  // Where each entry record ends, read from the intact image.
  std::vector<uint64_t> entry_ends;
  uint64_t end = 0;
  for (RecordView rec;
       decode_record(std::string_view(image).substr(end), &rec) == DecodeStatus::kOk;) {
    end += rec.size;
    if (rec.type == RecordType::kEntry) entry_ends.push_back(end);
  }
  ASSERT_EQ(entry_ends.size(), 20u);
  std::string path = join_path("wal", segment_name(1));
  int checked = 0;
  // Every byte of the last four entries and the hard state after them.
  for (uint64_t cut = entry_ends[15]; cut < end; ++cut) {
    std::string torn = image.substr(0, cut) + std::string(image.size() - cut, '\0');
    *fs_.contents(path) = torn;
    auto wal = open_ok();
    ASSERT_NE(wal, nullptr) << "cut " << cut;
    auto got = read_log(*wal, 1);
    size_t whole =
        static_cast<size_t>(std::count_if(entry_ends.begin(), entry_ends.end(), [&](uint64_t e) {
          // A cut inside a record's zero padding leaves the record whole.
          return e <= cut || image.find_first_not_of('\0', cut) >= e;
        }));
    ASSERT_EQ(got, make_entries(1, whole, 1)) << "cut " << cut;
    // Writing after the recovered prefix works and survives another recovery.
    commit_entries(wal.get(), 1, whole + 1, whole + 2, 5);
    wal.reset();
    auto again = open_ok();
    EXPECT_EQ(read_log(*again, 1).size(), whole + 2) << "cut " << cut;
    ++checked;
  }
  EXPECT_GT(checked, 200);
}

// Defence in depth for logs written with the hard state before the entries it commits: a tear
// between them leaves a commit index past the log, which recovery lowers to the log's end with
// a warning instead of leaving a member that can never start.
TEST_F(WalTest, ACommitPastTheTornLogIsClampedWithAWarning) {
  std::string image;
  uint64_t before = 0;
  {
    auto wal = open_ok();
    ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
    commit_entries(wal.get(), 1, 1, 5, 1);
    before = fs_.contents(last_segment_path(*wal))->find_last_not_of('\0') + 1;
    WalBatch b;
    b.set_hard_state(1, {2, 1, 20});
    b.append(1, make_entries(6, 20, 2));
    ASSERT_TRUE(wal->commit(b).is_ok());
    image = *fs_.contents(last_segment_path(*wal));
  }
  const uint64_t end = image.find_last_not_of('\0') + 1;
  std::string path = join_path("wal", segment_name(1));
  int clamped = 0;
  for (uint64_t cut = before; cut <= end; ++cut) {
    *fs_.contents(path) = image.substr(0, cut) + std::string(image.size() - cut, '\0');
    auto wal = open_ok();
    ASSERT_NE(wal, nullptr) << "cut " << cut;
    const raft::LogStorage* s = wal->group(1);
    raft::HardState hs = s->hard_state();
    ASSERT_LE(hs.commit, s->last_index()) << "cut " << cut;
    if (hs.term == 2 && s->last_index() < 20) {
      ASSERT_EQ(wal->recovery_warnings().size(), 1u) << "cut " << cut;
      EXPECT_NE(wal->recovery_warnings()[0].find("commits through index 20"), std::string::npos)
          << wal->recovery_warnings()[0];
      EXPECT_EQ(hs.commit, s->last_index());
      ++clamped;
    } else {
      EXPECT_TRUE(wal->recovery_warnings().empty()) << "cut " << cut;
    }
  }
  EXPECT_GT(clamped, 100);
}

TEST_F(WalTest, AFlippedBitBeforeTheTailStopsRecoveryNamingFileAndOffset) {
  {
    auto wal = open_ok();
    ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
    commit_entries(wal.get(), 1, 1, 20, 1);
  }
  std::string path = join_path("wal", segment_name(1));
  std::string image = *fs_.contents(path);
  // Flip one bit in each record header and payload region of the first half of the log.
  int caught = 0;
  for (uint64_t pos = 0; pos < 600; pos += 13) {
    std::string damaged = image;
    damaged[pos] = static_cast<char>(damaged[pos] ^ 0x10);
    *fs_.contents(path) = damaged;
    Status st = open_status();
    ASSERT_EQ(st.code(), Status::Code::kCorruption) << "pos " << pos << " " << st.to_string();
    EXPECT_NE(st.message().find(segment_name(1)), std::string::npos);
    EXPECT_NE(st.message().find("offset"), std::string::npos);
    ++caught;
  }
  EXPECT_GT(caught, 40);
  *fs_.contents(path) = image;
  EXPECT_TRUE(open_status().is_ok());
}

// Found by fuzz/wal_record_fuzz: a last segment shorter than a segment header holding a few
// torn bytes made open() compute the torn tail's length as negative and throw.
TEST_F(WalTest, ALastSegmentShorterThanItsHeaderIsATornHeader) {
  { open_ok(); }
  std::string path = join_path("wal", segment_name(1));
  *fs_.contents(path) = std::string("\x07\x01\x02", 3);
  auto wal = open_ok();
  ASSERT_NE(wal, nullptr);
  ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
  commit_entries(wal.get(), 1, 1, 3, 1);
  wal.reset();
  EXPECT_EQ(read_log(*open_ok(), 1), make_entries(1, 3, 1));
}

TEST_F(WalTest, AMissingSegmentIsReported) {
  options_.segment_bytes = 4096;
  {
    auto wal = open_ok();
    ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
    for (Index i = 1; i <= 400; i += 10)
      commit_entries(wal.get(), 1, i, i + 9, 1);
    ASSERT_GE(wal->segment_count(), 4u);
  }
  ASSERT_TRUE(fs_.remove(join_path("wal", segment_name(2))).is_ok());
  Status st = open_status();
  EXPECT_EQ(st.code(), Status::Code::kCorruption);
  EXPECT_NE(st.message().find("missing"), std::string::npos) << st.to_string();
}

TEST_F(WalTest, SegmentsAreDeletedOnlyOnceEveryGroupHasCompactedPastThem) {
  options_.segment_bytes = 4096;
  auto wal = open_ok();
  ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
  ASSERT_TRUE(wal->bootstrap(2, kConf).is_ok());
  for (Index i = 1; i <= 300; i += 10) {
    WalBatch b;
    b.append(1, make_entries(i, i + 9, 1));
    b.append(2, make_entries(i, i + 9, 2));
    b.set_hard_state(1, {1, 1, i + 9});
    b.set_hard_state(2, {2, 2, i + 9});
    ASSERT_TRUE(wal->commit(b).is_ok());
  }
  size_t before = wal->segment_count();
  ASSERT_GE(before, 5u);
  raft::Snapshot s1;
  s1.metadata = {280, 1, kConf};
  s1.data = "g1";
  ASSERT_TRUE(wal->compact(1, s1, 270).is_ok());
  EXPECT_GE(wal->segment_count(), before) << "group 2 still needs the old segments";
  before = wal->segment_count();
  raft::Snapshot s2;
  s2.metadata = {290, 2, kConf};
  s2.data = "g2";
  ASSERT_TRUE(wal->compact(2, s2, 290).is_ok());
  EXPECT_LT(wal->segment_count(), before);
  EXPECT_EQ(wal->group(1)->first_index(), 271u);
  wal.reset();

  auto reopened = open_ok();
  const raft::LogStorage* g1 = reopened->group(1);
  const raft::LogStorage* g2 = reopened->group(2);
  EXPECT_EQ(g1->hard_state(), (raft::HardState{1, 1, 300}));
  EXPECT_EQ(g2->hard_state(), (raft::HardState{2, 2, 300}));
  EXPECT_EQ(g1->first_index(), 271u);
  EXPECT_EQ(g2->first_index(), 291u);
  EXPECT_EQ(read_log(*reopened, 1), make_entries(271, 300, 1));
  EXPECT_EQ(read_log(*reopened, 2), make_entries(291, 300, 2));
  raft::Snapshot got;
  ASSERT_EQ(g1->snapshot(&got), raft::Error::kOk);
  EXPECT_EQ(got.data, "g1");
  raft::Term t = 0;
  ASSERT_EQ(g1->term(270, &t), raft::Error::kOk);
  EXPECT_EQ(t, 1u);
  EXPECT_EQ(g1->term(269, &t), raft::Error::kCompacted);
}

// A removed group is forgotten at once and after a restart, its segments go once no other group
// needs them.
TEST_F(WalTest, ARemovedGroupIsForgottenAndReleasesItsSegments) {
  options_.segment_bytes = 4096;
  auto wal = open_ok();
  ASSERT_TRUE(wal->bootstrap({{1, kConf}, {2, kConf}}).is_ok());
  for (Index i = 1; i <= 300; i += 10)
    commit_entries(wal.get(), 2, i, i + 9, 1);
  commit_entries(wal.get(), 1, 1, 5, 1);
  size_t before = wal->segment_count();
  ASSERT_GE(before, 5u);
  EXPECT_GT(wal->cache_bytes(), 0u);
  EXPECT_FALSE(wal->remove(7).is_ok()) << "no such group";
  ASSERT_TRUE(wal->remove(2).is_ok());
  EXPECT_EQ(wal->group(2), nullptr);
  EXPECT_EQ(wal->groups(), (std::vector<GroupId>{1}));
  EXPECT_LT(wal->segment_count(), before) << "only group 2 needed the old segments";
  EXPECT_LT(wal->cache_bytes(), 1000u) << "group 2's cached entries are gone";
  EXPECT_FALSE(wal->remove(2).is_ok());
  wal.reset();

  auto reopened = open_ok();
  EXPECT_EQ(reopened->group(2), nullptr);
  EXPECT_EQ(reopened->groups(), (std::vector<GroupId>{1}));
  EXPECT_EQ(read_log(*reopened, 1), make_entries(1, 5, 1));
  // The id can be created afresh (the node never does: removed ids are not reused).
  ASSERT_TRUE(reopened->bootstrap(2, kConf).is_ok());
  EXPECT_EQ(reopened->group(2)->last_index(), 0u);
  WalReport report;
  ASSERT_TRUE(Wal::verify(&fs_, "wal", &report).is_ok());
  EXPECT_FALSE(report.groups[2].removed) << "created again after its removal";
}

// Removal before a restart with every segment kept (another group still needs them): the
// group's earlier records replay, then its removal.
TEST_F(WalTest, ARemovalReplaysAfterTheRecordsItForgets) {
  auto wal = open_ok();
  ASSERT_TRUE(wal->bootstrap({{1, kConf}, {2, kConf}, {3, kConf}}).is_ok());
  commit_entries(wal.get(), 2, 1, 10, 1);
  commit_entries(wal.get(), 3, 1, 10, 1);
  ASSERT_TRUE(wal->remove(2).is_ok());
  commit_entries(wal.get(), 3, 11, 12, 1);
  wal.reset();
  auto reopened = open_ok();
  EXPECT_EQ(reopened->groups(), (std::vector<GroupId>{1, 3}));
  EXPECT_EQ(read_log(*reopened, 3), make_entries(1, 12, 1));
  WalReport report;
  ASSERT_TRUE(Wal::verify(&fs_, "wal", &report).is_ok());
  EXPECT_TRUE(report.groups[2].removed);
  EXPECT_NE(report.to_string().find("group 2: removed"), std::string::npos) << report.to_string();
}

// The first segment left after deletions may have been created after a compaction: its header's
// snapshot marker then compacts past everything recovery has seen so far. Recovery used to
// refuse such a log ("snapshot marker compacts past the log").
TEST_F(WalTest, ALogWhoseFirstSegmentStartsAfterACompactionRecovers) {
  options_.segment_bytes = 4096;
  {
    auto wal = open_ok();
    ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
    raft::Snapshot s;
    s.metadata = {0, 0, kConf};
    for (Index i = 1; i <= 600; i += 10) {
      commit_entries(wal.get(), 1, i, i + 9, 1);
      if (i % 100 == 91) {
        s.metadata.index = i;
        s.metadata.term = 1;
        ASSERT_TRUE(wal->compact(1, s, i).is_ok());
      }
    }
    ASSERT_GT(wal->segment_names().front(), segment_name(2)) << "older segments were deleted";
  }
  auto wal = open_ok();
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(wal->group(1)->first_index(), 592u);
  EXPECT_EQ(read_log(*wal, 1), make_entries(592, 600, 1));
  raft::Term t = 0;
  ASSERT_EQ(wal->group(1)->term(591, &t), raft::Error::kOk);
  EXPECT_EQ(t, 1u);
}

TEST_F(WalTest, EntriesBeyondTheCacheAreReadFromTheFiles) {
  write_entries_beyond_the_cache();
  auto wal = open_ok();
  EXPECT_EQ(read_log(*wal, 1), make_entries(1, 200, 1));
  std::vector<Entry> some;
  ASSERT_EQ(wal->group(1)->entries(5, 200, 100, &some), raft::Error::kOk);
  ASSERT_FALSE(some.empty());
  EXPECT_LT(some.size(), 10u) << "the byte limit applies to entries read from disk";
  EXPECT_EQ(some.front().index, 5u);
}

// A record that changes on disk after recovery read it (a failing disk) is found when the entry
// is read back from the file: the group's LogStorage answers kStorageFailed, which stops the
// Raft core, never kUnavailable, which a leader would take for a compacted log.
TEST_F(WalTest, ARecordDamagedAfterRecoveryReadsBackAsAStorageFailure) {
  write_entries_beyond_the_cache();
  auto wal = open_ok();
  EXPECT_EQ(wal->read_failure(), "");
  std::string* first = fs_.contents(join_path("wal", wal->segment_names().front()));
  ASSERT_NE(first, nullptr);
  ASSERT_GT(first->size(), 400u);
  (*first)[300] = static_cast<char>((*first)[300] ^ 0x10);
  std::vector<Entry> out;
  EXPECT_EQ(wal->group(1)->entries(1, 200, UINT64_MAX, &out), raft::Error::kStorageFailed);
  EXPECT_NE(wal->read_failure().find("reads back damaged"), std::string::npos)
      << wal->read_failure();
}

TEST_F(WalTest, AFailedSyncStopsEveryLaterWrite) {
  auto wal = open_ok();
  ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
  commit_entries(wal.get(), 1, 1, 5, 1);
  fs_.fail_next_syncs(1);
  WalBatch b;
  b.append(1, make_entries(6, 6, 1));
  EXPECT_EQ(wal->commit(b).code(), Status::Code::kIoError);
  EXPECT_EQ(wal->health().code(), Status::Code::kIoError);
  WalBatch c;
  c.append(1, make_entries(7, 7, 1));
  EXPECT_FALSE(wal->commit(c).is_ok()) << "the Wal must not go on after a failed sync";
}

// FaultFileSystem with directory syncs that fail on demand while file syncs go on.
class DirSyncFailingFileSystem final : public ForwardingFileSystem {
 public:
  explicit DirSyncFailingFileSystem(FaultFileSystem* fs) : ForwardingFileSystem(fs) {}
  bool fail_dir_syncs = false;

  Status sync_dir(const std::string& dir) override {
    if (fail_dir_syncs) return Status::io_error("fsync " + dir + ": input/output error");
    return ForwardingFileSystem::sync_dir(dir);
  }
};

// A rotation whose directory sync fails leaves a new segment that the restarted process lists
// but that a power cut would take away. Records synced into it after the restart must survive
// the power cut, so open() makes the directory durable before taking writes. (Found by the
// simulator: a node lost synced entries and its vote.)
TEST_F(WalTest, ASegmentListedAfterAFailedDirectorySyncSurvivesAPowerCut) {
  options_.segment_bytes = 4096;
  DirSyncFailingFileSystem fs(&fs_);
  Index synced = 0;
  {
    std::unique_ptr<Wal> wal;
    ASSERT_TRUE(Wal::open(&fs, "wal", options_, &wal).is_ok());
    ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
    fs.fail_dir_syncs = true;
    Status st;
    for (Index i = 1; st.is_ok(); i += 5) {
      WalBatch b;
      b.append(1, make_entries(i, i + 4, 1));
      st = wal->commit(b);
      if (st.is_ok()) synced = i + 4;
    }
    ASSERT_EQ(st.code(), Status::Code::kIoError) << "the first rotation fails";
    ASSERT_TRUE(fs_.exists(join_path("wal", segment_name(2))));
    fs.fail_dir_syncs = false;
  }
  {
    // The process restarts without a power cut and goes on writing.
    std::unique_ptr<Wal> wal;
    ASSERT_TRUE(Wal::open(&fs, "wal", options_, &wal).is_ok());
    ASSERT_EQ(read_log(*wal, 1), make_entries(1, synced, 1));
    commit_entries(wal.get(), 1, synced + 1, synced + 5, 2);
  }
  fs_.crash(7, /*tear=*/false);
  auto wal = open_ok();
  ASSERT_EQ(wal->group(1)->last_index(), synced + 5) << "entries synced after the restart";
  auto expected = make_entries(1, synced, 1);
  auto tail = make_entries(synced + 1, synced + 5, 2);
  expected.insert(expected.end(), tail.begin(), tail.end());
  EXPECT_EQ(read_log(*wal, 1), expected);
}

TEST_F(WalTest, RunningOutOfSpaceMakesTheLogReadOnlyAndLosesNothingSynced) {
  options_.segment_bytes = 4096;
  auto wal = open_ok();
  ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
  commit_entries(wal.get(), 1, 1, 20, 1);
  fs_.set_space_limit(fs_.bytes_used() + 100);
  Status st;
  Index next = 21;
  for (int i = 0; i < 100 && st.is_ok(); ++i, next += 10) {
    WalBatch b;
    b.append(1, make_entries(next, next + 9, 1));
    st = wal->commit(b);
  }
  EXPECT_EQ(st.code(), Status::Code::kNoSpace) << st.to_string();
  EXPECT_EQ(wal->health().code(), Status::Code::kReadOnly);
  Index synced = wal->group(1)->last_index();
  EXPECT_EQ(read_log(*wal, 1), make_entries(1, synced, 1)) << "reads still work";
  wal.reset();
  fs_.set_space_limit(UINT64_MAX);
  auto reopened = open_ok();
  EXPECT_EQ(read_log(*reopened, 1), make_entries(1, synced, 1));
}

// Random workloads cut by torn crashes, with overwrites of unsynced suffixes. After each crash
// the recovered logs must equal the synced state plus some prefix of the unsynced records: a
// synced record is never lost, and nothing appears that was not written.
// Thousands of groups on one log: a new segment holds its own header and the records of the
// groups that write to it, each group's state before its first record there, never a copy of
// every group's state.
TEST_F(WalTest, SegmentsDoNotGrowWithTheNumberOfGroups) {
  options_.segment_bytes = 16384;
  auto wal = open_ok();
  for (GroupId g = 1; g <= 2000; ++g)
    ASSERT_TRUE(wal->bootstrap(g, kConf).is_ok());
  for (Index i = 1; i <= 400; i += 10)
    commit_entries(wal.get(), 7, i, i + 9, 1);
  ASSERT_GE(wal->segment_count(), 4u);
  wal.reset();
  WalReport report;
  ASSERT_TRUE(Wal::verify(&fs_, "wal", &report).is_ok());
  ASSERT_TRUE(report.clean()) << report.to_string();
  // The bootstrap markers of 2,000 groups fill the first segments; afterwards a segment holds
  // group 7's state and entries alone: 1 header + 2 state records + batches of 11 records.
  const WalReport::Segment& last = report.segments.back();
  EXPECT_LT(last.records, 200u) << report.to_string();
  auto reopened = open_ok();
  EXPECT_EQ(reopened->groups().size(), 2000u);
  EXPECT_EQ(read_log(*reopened, 7), make_entries(1, 400, 1));
}

// Idle groups keep their state in old segments; once the active groups have compacted past
// those, the idle groups' state is written again at the end of the log and the segments go,
// across restarts and power cuts at any point.
TEST_F(WalTest, IdleGroupsStateMovesForwardAndOldSegmentsAreReleased) {
  options_.segment_bytes = 4096;
  auto check_idle = [](const Wal& wal) {
    for (GroupId g = 1; g <= 50; ++g) {
      const raft::LogStorage* log = wal.group(g);
      ASSERT_NE(log, nullptr) << g;
      EXPECT_EQ(log->hard_state(), (raft::HardState{1, g % 3 + 1, 1})) << g;
      EXPECT_EQ(log->first_index(), 2u) << g;
      EXPECT_EQ(log->last_index(), 1u) << g;
      raft::Snapshot got;
      ASSERT_EQ(log->snapshot(&got), raft::Error::kOk);
      EXPECT_EQ(got.data, "idle" + std::to_string(g));
      EXPECT_EQ(log->conf_state(), kConf);
    }
  };
  // Writes entries [from, to] of the two active groups in batches of 10, compacting both every
  // 100 entries to 10 entries behind.
  auto run_active = [](Wal* wal, Index from, Index to) {
    for (Index i = from; i <= to; i += 10) {
      WalBatch b;
      b.append(100, make_entries(i, i + 9, 1));
      b.append(101, make_entries(i, i + 9, 1));
      b.set_hard_state(100, {1, 1, i + 9});
      ASSERT_TRUE(wal->commit(b).is_ok());
      if ((i + 9) % 100 == 0) {
        raft::Snapshot s;
        s.metadata = {i + 9, 1, kConf};
        ASSERT_TRUE(wal->compact(100, s, i - 1).is_ok());
        ASSERT_TRUE(wal->compact(101, s, i - 1).is_ok());
      }
    }
  };
  {
    auto wal = open_ok();
    for (GroupId g = 1; g <= 50; ++g) {
      ASSERT_TRUE(wal->bootstrap(g, kConf).is_ok());
      WalBatch b;
      b.append(g, make_entries(1, 1, 1));
      b.set_hard_state(g, {1, g % 3 + 1, 1});
      ASSERT_TRUE(wal->commit(b).is_ok());
      raft::Snapshot s;
      s.metadata = {1, 1, kConf};
      s.data = "idle" + std::to_string(g);
      ASSERT_TRUE(wal->compact(g, s, 1).is_ok());
    }
    ASSERT_TRUE(wal->bootstrap(100, kConf).is_ok());
    ASSERT_TRUE(wal->bootstrap(101, kConf).is_ok());
    run_active(wal.get(), 1, 3000);
    EXPECT_LE(wal->segment_count(), 6u) << "the idle groups' state pinned the old segments";
    EXPECT_GT(wal->segment_names().front(), segment_name(20));
  }
  Index next = 3001;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    auto wal = open_ok();
    ASSERT_NE(wal, nullptr) << "seed " << seed;
    check_idle(*wal);
    // Every synced batch of the active groups survived; an unsynced tail may or may not have.
    ASSERT_GE(wal->group(100)->last_index(), next - 1);
    EXPECT_EQ(read_log(*wal, 101).back().index, next - 1);
    run_active(wal.get(), next, next + 599);
    next += 600;
    WalBatch tail;
    tail.append(100, make_entries(next, next + 4, 1));
    ASSERT_TRUE(wal->write(tail).is_ok());
    wal.reset();
    fs_.crash(seed, true);
  }
}

// One cache budget for every group: an active group takes memory back from idle ones first,
// and what left the cache is read back from the files.
TEST_F(WalTest, TheEntryCacheIsOneBudgetTakenFromTheLeastRecentlyWrittenGroupsFirst) {
  auto entries = [](Index from, Index to) { return make_entries(from, to, 1, 200); };
  auto bytes = [](const std::vector<Entry>& es) {
    uint64_t n = 0;
    for (const Entry& e : es)
      n += e.size_bytes();
    return n;
  };
  // Room for 40 entries: groups 1 and 2 cache 15 each, then group 3 writes 30, and 20 must go.
  options_.cache_bytes = bytes(entries(1, 40));
  options_.segment_bytes = 1 << 16;
  auto wal = open_ok();
  for (GroupId g = 1; g <= 3; ++g)
    ASSERT_TRUE(wal->bootstrap(g, kConf).is_ok());
  for (GroupId g = 1; g <= 2; ++g) {
    WalBatch b;
    b.append(g, entries(1, 15));
    ASSERT_TRUE(wal->commit(b).is_ok());
  }
  EXPECT_EQ(wal->cache_bytes(), 2 * bytes(entries(1, 15)));
  WalBatch b;
  b.append(3, entries(1, 30));
  ASSERT_TRUE(wal->commit(b).is_ok());
  EXPECT_LE(wal->cache_bytes(), options_.cache_bytes);
  // Group 1 wrote least recently and gave up everything before group 2 gave up anything; group
  // 3, the latest, kept all it wrote.
  EXPECT_EQ(wal->cached_entries(1), 0u);
  EXPECT_EQ(wal->cached_entries(3), 30u);
  size_t kept = wal->cached_entries(2);
  EXPECT_GE(kept, 9u);
  EXPECT_LE(kept, 11u);
  EXPECT_EQ(wal->cache_bytes(), bytes(entries(16 - kept, 15)) + bytes(entries(1, 30)));
  // Every entry still reads back, from the files where the cache let go.
  for (GroupId g = 1; g <= 3; ++g)
    EXPECT_EQ(read_log(*wal, g), entries(1, g == 3 ? 30 : 15)) << g;
  // Compaction gives the budget back.
  raft::Snapshot s;
  s.metadata = {30, 1, kConf};
  ASSERT_TRUE(wal->compact(3, s, 30).is_ok());
  EXPECT_EQ(wal->cached_entries(3), 0u);
  EXPECT_EQ(wal->cache_bytes(), bytes(entries(16 - kept, 15)));
}

TEST_F(WalTest, TornCrashesRecoverSyncedStatePlusAPrefixOfTheRest) {
  using Logs = std::map<GroupId, std::vector<Entry>>;
  auto apply = [](Logs* logs, GroupId g, const Entry& e) {
    auto& log = (*logs)[g];
    log.resize(e.index - 1);
    log.push_back(e);
  };
  int tails_kept = 0;
  for (uint64_t seed = 1; seed <= 150; ++seed) {
    FaultFileSystem fs;
    WalOptions options{.segment_bytes = 2048, .cache_bytes = 256};
    std::mt19937_64 rng(seed);
    Logs synced;
    std::vector<std::pair<GroupId, Entry>> unsynced;
    for (int round = 0; round < 4; ++round) {
      std::unique_ptr<Wal> wal;
      Status st = Wal::open(&fs, "wal", options, &wal);
      ASSERT_TRUE(st.is_ok()) << "seed " << seed << ": " << st.to_string();
      Logs got;
      for (GroupId g = 1; g <= 3; ++g) {
        if (wal->group(g) == nullptr) {
          ASSERT_TRUE(wal->bootstrap(g, kConf).is_ok());
        }
        got[g] = read_log(*wal, g);
      }
      Logs candidate = synced;
      bool matched = false;
      for (size_t k = 0; k <= unsynced.size() && !matched; ++k) {
        if (k > 0) apply(&candidate, unsynced[k - 1].first, unsynced[k - 1].second);
        bool same = true;
        for (GroupId g = 1; g <= 3; ++g)
          same = same && candidate[g] == got[g];
        matched = same;
        if (matched && k > 0) ++tails_kept;
      }
      ASSERT_TRUE(matched) << "seed " << seed << " round " << round;
      synced = got;
      unsynced.clear();
      int batches = static_cast<int>(rng() % 12);
      for (int b = 0; b < batches; ++b) {
        WalBatch batch;
        GroupId g = 1 + rng() % 3;
        Index last = wal->group(g)->last_index();
        Index from = last == 0 ? 1 : last + 1 - rng() % std::min<Index>(last, 3);
        auto entries = make_entries(from, from + rng() % 8, round + 1, rng() % 40);
        batch.append(g, entries);
        ASSERT_TRUE(wal->write(batch).is_ok());
        for (const Entry& e : entries)
          unsynced.emplace_back(g, e);
        if (rng() % 3 != 0) {
          ASSERT_TRUE(wal->sync().is_ok());
          for (const auto& [h, e] : unsynced)
            apply(&synced, h, e);
          unsynced.clear();
        }
      }
      wal.reset();
      fs.crash(seed * 31 + round, true);
    }
  }
  EXPECT_GT(tails_kept, 0) << "some crashes should keep part of the unsynced writes";
}

TEST(WalPosix, GroupCommitSharesSyncsAndRecoversEveryBatch) {
  auto fs = make_posix_file_system();
  testing::TempDir tmp("chorus-wal");
  std::string dir = tmp.path() + "/wal";
  constexpr int kThreads = 8;
  constexpr int kPerThread = 50;
  {
    std::unique_ptr<Wal> wal;
    ASSERT_TRUE(Wal::open(fs.get(), dir, {}, &wal).is_ok());
    for (GroupId g = 1; g <= kThreads; ++g)
      ASSERT_TRUE(wal->bootstrap(g, kConf).is_ok());
    GroupCommitter committer(wal.get());
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 1; i <= kPerThread; ++i) {
          WalBatch b;
          b.append(t + 1, make_entries(i, i, 1));
          if (!committer.commit(std::move(b)).is_ok()) ++failures;
        }
      });
    }
    for (auto& th : threads)
      th.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(committer.batches(), uint64_t{kThreads * kPerThread});
    EXPECT_LE(committer.syncs(), committer.batches());
  }
  std::unique_ptr<Wal> wal;
  ASSERT_TRUE(Wal::open(fs.get(), dir, {}, &wal).is_ok());
  for (GroupId g = 1; g <= kThreads; ++g)
    EXPECT_EQ(read_log(*wal, g), make_entries(1, kPerThread, 1));
}

}  // namespace
}  // namespace chorus::storage
