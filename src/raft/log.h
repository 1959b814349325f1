// The Raft log as the core sees it: stable entries in LogStorage followed by unstable entries
// (and possibly an unstable snapshot) that the driver has not yet persisted.
#pragma once

#include <optional>
#include <vector>

#include "raft/log_storage.h"
#include "raft/types.h"

namespace chorus::raft {

// Entries not yet persisted. `offset` is the index of entries[0].
struct Unstable {
  std::optional<Snapshot> snapshot;
  std::vector<Entry> entries;
  Index offset = 1;

  std::optional<Index> maybe_first_index() const;
  std::optional<Index> maybe_last_index() const;
  std::optional<Term> maybe_term(Index i) const;
  void stable_to(Index i, Term t);
  void stable_snap_to(Index i);
  void restore(const Snapshot& s);
  void truncate_and_append(const std::vector<Entry>& ents, size_t from);
};

class RaftLog {
 public:
  RaftLog(const LogStorage* storage, uint64_t max_committed_bytes_per_ready);

  Index first_index() const;
  Index last_index() const;
  Term last_term() const;
  Index committed() const { return committed_; }
  Index applied() const { return applied_; }
  // Term of entry i, or 0 when it is compacted or beyond the log.
  Term term_or_zero(Index i) const;
  [[nodiscard]] Error term(Index i, Term* out) const;
  bool match_term(Index i, Term t) const;
  bool is_up_to_date(Index last_index, Term term) const;

  // Follower side of AppendEntries: returns the last new index when the entry at `index`
  // has term `log_term`, after appending `ents` and committing up to min(commit, last new).
  std::optional<Index> maybe_append(Index index, Term log_term, Index commit,
                                    const std::vector<Entry>& ents);
  Index append(const std::vector<Entry>& ents, size_t from = 0);
  // Index of the first entry in `ents` whose term conflicts with the log, or 0.
  size_t find_conflict(const std::vector<Entry>& ents) const;
  // Largest index <= `index` whose term is <= `term`, with that term (fast backtracking).
  std::pair<Index, Term> find_conflict_by_term(Index index, Term term) const;

  // Appends entries in [lo, hi) bounded by max_bytes to *out.
  [[nodiscard]] Error slice(Index lo, Index hi, uint64_t max_bytes, std::vector<Entry>* out) const;
  [[nodiscard]] Error entries_from(Index lo, uint64_t max_bytes, std::vector<Entry>* out) const;

  bool maybe_commit(Index max_index, Term term);
  void commit_to(Index to);
  void applied_to(Index i);
  bool has_next_committed_entries() const;
  // kStorageFailed (or another storage error) if the storage cannot read them back.
  [[nodiscard]] Error next_committed_entries(std::vector<Entry>* out) const;

  const Unstable& unstable() const { return unstable_; }
  bool has_unstable_entries() const { return !unstable_.entries.empty(); }
  void stable_to(Index i, Term t) { unstable_.stable_to(i, t); }
  void stable_snap_to(Index i) { unstable_.stable_snap_to(i); }
  // Last index known to be persisted: everything before the unstable part.
  Index stable_last_index() const;

  [[nodiscard]] Error snapshot(Snapshot* out) const;
  void restore(const Snapshot& s);

  const LogStorage& storage() const { return *storage_; }

 private:
  const LogStorage* storage_;
  Unstable unstable_;
  Index committed_ = 0;
  Index applied_ = 0;
  uint64_t max_committed_bytes_per_ready_;
};

}  // namespace chorus::raft
