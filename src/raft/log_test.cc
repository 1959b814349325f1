#include "raft/log.h"

#include <gtest/gtest.h>

namespace chorus::raft {
namespace {

std::vector<Entry> make_entries(std::initializer_list<std::pair<Index, Term>> ids) {
  std::vector<Entry> out;
  for (auto [i, t] : ids)
    out.push_back(Entry{t, i, EntryType::kNormal, "x"});
  return out;
}

TEST(RaftLog, AppendsAndTruncatesConflictingSuffix) {
  MemoryLogStorage storage;
  storage.append(make_entries({{1, 1}, {2, 1}, {3, 2}}));
  RaftLog log(&storage, kNoLimit);
  EXPECT_EQ(log.last_index(), 3u);
  auto last = log.maybe_append(1, 1, 0, make_entries({{2, 1}, {3, 3}, {4, 3}}));
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(*last, 4u);
  EXPECT_EQ(log.term_or_zero(3), 3u);
  EXPECT_EQ(log.stable_last_index(), 2u);
}

TEST(RaftLog, RejectsAppendWhenPreviousTermDiffers) {
  MemoryLogStorage storage;
  storage.append(make_entries({{1, 1}, {2, 1}}));
  RaftLog log(&storage, kNoLimit);
  EXPECT_FALSE(log.maybe_append(2, 2, 0, make_entries({{3, 2}})).has_value());
  EXPECT_FALSE(log.maybe_append(3, 1, 0, {}).has_value());
}

TEST(RaftLog, CommitIsCappedByLastNewEntry) {
  MemoryLogStorage storage;
  storage.append(make_entries({{1, 1}, {2, 1}, {3, 1}}));
  RaftLog log(&storage, kNoLimit);
  // The leader's commit is 3 but it only proved our log matches up to index 1.
  ASSERT_TRUE(log.maybe_append(1, 1, 3, {}).has_value());
  EXPECT_EQ(log.committed(), 1u);
}

TEST(RaftLog, FindConflictByTermSkipsWholeTerms) {
  MemoryLogStorage storage;
  storage.append(make_entries({{1, 1}, {2, 2}, {3, 2}, {4, 4}, {5, 4}, {6, 4}}));
  RaftLog log(&storage, kNoLimit);
  EXPECT_EQ(log.find_conflict_by_term(6, 3), (std::pair<Index, Term>{3, 2}));
  EXPECT_EQ(log.find_conflict_by_term(6, 1), (std::pair<Index, Term>{1, 1}));
  EXPECT_EQ(log.find_conflict_by_term(6, 4), (std::pair<Index, Term>{6, 4}));
}

TEST(RaftLog, SliceRespectsByteLimitButReturnsAtLeastOne) {
  MemoryLogStorage storage;
  storage.append(make_entries({{1, 1}, {2, 1}, {3, 1}}));
  RaftLog log(&storage, kNoLimit);
  std::vector<Entry> out;
  ASSERT_EQ(log.slice(1, 4, 1, &out), Error::kOk);
  EXPECT_EQ(out.size(), 1u);
  out.clear();
  ASSERT_EQ(log.slice(1, 4, 2 * (Entry::kOverheadBytes + 1), &out), Error::kOk);
  EXPECT_EQ(out.size(), 2u);
}

TEST(RaftLog, CompactedIndexesReportCompacted) {
  MemoryLogStorage storage;
  storage.append(make_entries({{1, 1}, {2, 1}, {3, 1}, {4, 2}}));
  ASSERT_EQ(storage.create_snapshot(3, ConfState{{1}, {}, {}, {}, false}, "snap"), Error::kOk);
  ASSERT_EQ(storage.compact(3), Error::kOk);
  RaftLog log(&storage, kNoLimit);
  Term t = 0;
  EXPECT_EQ(log.term(2, &t), Error::kCompacted);
  EXPECT_EQ(log.term(3, &t), Error::kOk);
  EXPECT_EQ(t, 1u);
  EXPECT_EQ(log.first_index(), 4u);
}

TEST(ConfChangeCodec, RoundTripsAndRejectsTruncation) {
  ConfChange cc;
  cc.transition = ConfChangeTransition::kJointExplicit;
  cc.changes = {{ConfChangeType::kAddNode, 4}, {ConfChangeType::kRemoveNode, 1}};
  cc.context = "ctx";
  std::string bytes = cc.encode();
  auto back = ConfChange::decode(bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, cc);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_FALSE(ConfChange::decode(std::string_view(bytes).substr(0, cut)).has_value()) << cut;
  }
}

}  // namespace
}  // namespace chorus::raft
