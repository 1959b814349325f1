// Wal::verify and Wal::truncate_at_damage: the read-only scan names the first damaged record,
// and the cut at it lets the log open again with everything before it.
#include <gtest/gtest.h>

#include "storage/fault_fs.h"
#include "storage/testing.h"
#include "storage/wal.h"

namespace chorus::storage {
namespace {

using testing::read_log;

using raft::Entry;
using raft::GroupId;
using raft::Index;

const raft::ConfState kConf{{1, 2, 3}, {}, {}, {}, false};

std::vector<Entry> make_entries(Index from, Index to, raft::Term term) {
  std::vector<Entry> out;
  for (Index i = from; i <= to; ++i)
    out.push_back({term, i, raft::EntryType::kNormal, "entry-" + std::to_string(i)});
  return out;
}

// Offsets of the entry records of a segment image, in order.
std::vector<uint64_t> entry_offsets(const std::string& image) {
  std::vector<uint64_t> out;
  uint64_t at = 0;
  for (RecordView rec; decode_record(std::string_view(image).substr(at), &rec) == DecodeStatus::kOk;
       at += rec.size)
    if (rec.type == RecordType::kEntry) out.push_back(at);
  return out;
}

class WalToolTest : public ::testing::Test {
 protected:
  std::unique_ptr<Wal> open_ok() {
    std::unique_ptr<Wal> wal;
    Status st = Wal::open(&fs_, "wal", options_, &wal);
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    return wal;
  }
  // Groups 1 and 2, entries 1..n each, one entry per commit.
  void write_log(Index n) {
    auto wal = open_ok();
    ASSERT_TRUE(wal->bootstrap(1, kConf).is_ok());
    ASSERT_TRUE(wal->bootstrap(2, kConf).is_ok());
    for (Index i = 1; i <= n; ++i) {
      WalBatch b;
      b.append(1, make_entries(i, i, 1));
      b.append(2, make_entries(i, i, 2));
      b.set_hard_state(1, {1, 1, i});
      ASSERT_TRUE(wal->commit(b).is_ok());
    }
  }
  std::vector<std::string> segments() {
    std::vector<std::string> names;
    EXPECT_TRUE(fs_.list_dir("wal", &names).is_ok());
    std::sort(names.begin(), names.end());
    return names;
  }

  FaultFileSystem fs_;
  WalOptions options_{.segment_bytes = 1 << 20, .cache_bytes = 1 << 20};
};

TEST_F(WalToolTest, VerifyCountsRecordsPerGroupOfACleanLog) {
  write_log(20);
  WalReport report;
  ASSERT_TRUE(Wal::verify(&fs_, "wal", &report).is_ok());
  EXPECT_TRUE(report.clean()) << report.to_string();
  ASSERT_EQ(report.segments.size(), 1u);
  EXPECT_EQ(report.segments[0].records, 1u + 2 + 20 * 3);
  EXPECT_EQ(report.groups[1].entries, 20u);
  EXPECT_EQ(report.groups[1].hard_states, 20u);
  EXPECT_EQ(report.groups[1].snapshots, 1u);
  EXPECT_EQ(report.groups[2].hard_states, 0u);
  EXPECT_EQ(report.groups[2].last_index, 20u);
  EXPECT_EQ(report.groups[1].hard_state, (raft::HardState{1, 1, 20}));
  EXPECT_NE(report.to_string().find("clean"), std::string::npos);
}

TEST_F(WalToolTest, VerifyNamesTheFileAndOffsetOfAFlippedBitAndChangesNothing) {
  write_log(20);
  std::string path = join_path("wal", segment_name(1));
  std::vector<uint64_t> entries = entry_offsets(*fs_.contents(path));
  ASSERT_EQ(entries.size(), 40u);
  // Group 1's entry 10 is the 19th entry record.
  uint64_t damaged = entries[18];
  (*fs_.contents(path))[damaged + 30] ^= 0x04;
  std::string before = *fs_.contents(path);

  WalReport report;
  ASSERT_TRUE(Wal::verify(&fs_, "wal", &report).is_ok());
  ASSERT_FALSE(report.clean());
  EXPECT_EQ(report.damage->file, segment_name(1));
  EXPECT_EQ(report.damage->offset, damaged);
  EXPECT_EQ(report.damage->reason, "checksum mismatch");
  EXPECT_EQ(report.groups[1].last_index, 9u) << "the prefix before the damage";
  EXPECT_EQ(report.groups[2].last_index, 9u);
  EXPECT_EQ(*fs_.contents(path), before) << "verify must not write";
  std::string text = report.to_string();
  EXPECT_NE(text.find("DAMAGED: " + segment_name(1) + " at offset " + std::to_string(damaged)),
            std::string::npos)
      << text;

  // open() refuses the same log with the same place.
  std::unique_ptr<Wal> wal;
  Status st = Wal::open(&fs_, "wal", options_, &wal);
  EXPECT_EQ(st.code(), Status::Code::kCorruption);
  EXPECT_NE(st.message().find("offset " + std::to_string(damaged)), std::string::npos)
      << st.to_string();
}

TEST_F(WalToolTest, TruncateLetsTheLogOpenAndKeepsThePrefix) {
  write_log(20);
  std::string path = join_path("wal", segment_name(1));
  uint64_t damaged = entry_offsets(*fs_.contents(path))[18];
  (*fs_.contents(path))[damaged + 30] ^= 0x04;

  WalReport report;
  ASSERT_TRUE(Wal::truncate_at_damage(&fs_, "wal", &report).is_ok());
  ASSERT_FALSE(report.clean());
  EXPECT_EQ(report.cut_bytes, fs_.contents(path)->size() - damaged);
  fs_.crash(1, false);  // the cut is durable
  {
    auto wal = open_ok();
    ASSERT_NE(wal, nullptr);
    EXPECT_EQ(read_log(*wal, 1), make_entries(1, 9, 1));
    EXPECT_EQ(read_log(*wal, 2), make_entries(1, 9, 2));
    EXPECT_EQ(wal->group(1)->hard_state(), (raft::HardState{1, 1, 9}));
    // The node catches up from here: appends after the cut work and survive.
    WalBatch b;
    b.append(1, make_entries(10, 12, 3));
    ASSERT_TRUE(wal->commit(b).is_ok());
  }
  auto wal = open_ok();
  EXPECT_EQ(read_log(*wal, 1).size(), 12u);
  WalReport after;
  ASSERT_TRUE(Wal::verify(&fs_, "wal", &after).is_ok());
  EXPECT_TRUE(after.clean()) << after.to_string();
}

TEST_F(WalToolTest, TruncateDeletesTheSegmentsAfterTheDamage) {
  options_.segment_bytes = 4096;
  write_log(200);
  std::vector<std::string> names = segments();
  ASSERT_GE(names.size(), 4u);
  std::string path = join_path("wal", names[1]);
  std::vector<uint64_t> entries = entry_offsets(*fs_.contents(path));
  ASSERT_GT(entries.size(), 6u);
  uint64_t damaged = entries[5];
  (*fs_.contents(path))[damaged + 8] = 9;  // an unknown record type

  WalReport report;
  ASSERT_TRUE(Wal::verify(&fs_, "wal", &report).is_ok());
  ASSERT_FALSE(report.clean());
  EXPECT_EQ(report.damage->file, names[1]);
  EXPECT_EQ(report.damage->offset, damaged);
  EXPECT_EQ(report.cut_segments, std::vector<std::string>(names.begin() + 2, names.end()));
  EXPECT_FALSE(report.segments.back().scanned);
  Index kept = report.groups[1].last_index;
  ASSERT_GT(kept, 1u);

  ASSERT_TRUE(Wal::truncate_at_damage(&fs_, "wal", &report).is_ok());
  fs_.crash(2, false);
  EXPECT_EQ(segments(), std::vector<std::string>(names.begin(), names.begin() + 2));
  auto wal = open_ok();
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(read_log(*wal, 1), make_entries(1, kept, 1));
}

TEST_F(WalToolTest, AMissingSegmentIsCutWithEverythingAfterIt) {
  options_.segment_bytes = 4096;
  write_log(200);
  std::vector<std::string> names = segments();
  ASSERT_GE(names.size(), 4u);
  ASSERT_TRUE(fs_.remove(join_path("wal", names[2])).is_ok());
  WalReport report;
  ASSERT_TRUE(Wal::verify(&fs_, "wal", &report).is_ok());
  ASSERT_FALSE(report.clean());
  EXPECT_EQ(report.damage->file, names[2]);
  EXPECT_NE(report.damage->reason.find("missing"), std::string::npos);
  ASSERT_TRUE(Wal::truncate_at_damage(&fs_, "wal", &report).is_ok());
  EXPECT_EQ(segments(), std::vector<std::string>(names.begin(), names.begin() + 2));
  EXPECT_NE(open_ok(), nullptr);
}

TEST_F(WalToolTest, ATornTailIsNotDamage) {
  write_log(5);
  std::string path = join_path("wal", segment_name(1));
  std::vector<uint64_t> entries = entry_offsets(*fs_.contents(path));
  std::string& image = *fs_.contents(path);
  // Cut the last entry record short, as a crash during its write would.
  uint64_t last = entries.back();
  std::fill(image.begin() + static_cast<std::ptrdiff_t>(last) + 20, image.end(), '\0');
  WalReport report;
  ASSERT_TRUE(Wal::verify(&fs_, "wal", &report).is_ok());
  EXPECT_TRUE(report.clean()) << report.to_string();
  EXPECT_EQ(report.segments[0].end, last);
  EXPECT_GT(report.segments[0].torn_bytes, 0u);
  EXPECT_LE(report.segments[0].torn_bytes, 20u);
  EXPECT_EQ(report.groups[2].last_index, 4u);
  WalReport cut;
  ASSERT_TRUE(Wal::truncate_at_damage(&fs_, "wal", &cut).is_ok());
  EXPECT_EQ(cut.cut_bytes, 0u) << "a clean log is left alone";
}

TEST_F(WalToolTest, VerifyOfAMissingDirectoryIsAnError) {
  WalReport report;
  EXPECT_EQ(Wal::verify(&fs_, "nowhere", &report).code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace chorus::storage
