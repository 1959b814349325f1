#include "raft/log.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace chorus::raft {
namespace {

[[noreturn]] void fatal(const char* what, Index a, Index b) {
  std::fprintf(stderr, "raft log invariant broken: %s (%llu, %llu)\n", what,
               static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
  std::abort();
}

}  // namespace

std::optional<Index> Unstable::maybe_first_index() const {
  if (snapshot) return snapshot->metadata.index + 1;
  return std::nullopt;
}

std::optional<Index> Unstable::maybe_last_index() const {
  if (!entries.empty()) return offset + entries.size() - 1;
  if (snapshot) return snapshot->metadata.index;
  return std::nullopt;
}

std::optional<Term> Unstable::maybe_term(Index i) const {
  if (i < offset) {
    if (snapshot && snapshot->metadata.index == i) return snapshot->metadata.term;
    return std::nullopt;
  }
  auto last = maybe_last_index();
  if (!last || i > *last) return std::nullopt;
  return entries[i - offset].term;
}

void Unstable::stable_to(Index i, Term t) {
  auto term = maybe_term(i);
  if (!term || i < offset) return;
  // Only mark stable if the entry was not replaced meanwhile by one of a newer term.
  if (*term != t) return;
  size_t n = i + 1 - offset;
  entries.erase(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(n));
  offset = i + 1;
}

void Unstable::stable_snap_to(Index i) {
  if (snapshot && snapshot->metadata.index == i) snapshot.reset();
}

void Unstable::restore(const Snapshot& s) {
  offset = s.metadata.index + 1;
  entries.clear();
  snapshot = s;
}

void Unstable::truncate_and_append(const std::vector<Entry>& ents, size_t from) {
  Index after = ents[from].index;
  if (after == offset + entries.size()) {
    // Directly after the unstable entries.
  } else if (after <= offset) {
    // Replaces all unstable entries; the stable ones after `after` are shadowed by these.
    offset = after;
    entries.clear();
  } else {
    entries.resize(after - offset);
  }
  entries.insert(entries.end(), ents.begin() + static_cast<std::ptrdiff_t>(from), ents.end());
}

RaftLog::RaftLog(const LogStorage* storage, uint64_t max_committed_bytes_per_ready)
    : storage_(storage), max_committed_bytes_per_ready_(max_committed_bytes_per_ready) {
  Index first = storage_->first_index();
  Index last = storage_->last_index();
  unstable_.offset = last + 1;
  committed_ = first - 1;
  applied_ = first - 1;
}

Index RaftLog::first_index() const {
  if (auto i = unstable_.maybe_first_index()) return *i;
  return storage_->first_index();
}

Index RaftLog::last_index() const {
  if (auto i = unstable_.maybe_last_index()) return *i;
  return storage_->last_index();
}

Index RaftLog::stable_last_index() const {
  if (unstable_.snapshot) return unstable_.snapshot->metadata.index - 1;  // nothing after it yet
  return unstable_.offset - 1;
}

Term RaftLog::last_term() const {
  return term_or_zero(last_index());
}

Error RaftLog::term(Index i, Term* out) const {
  Index dummy = first_index() - 1;
  if (i < dummy) return Error::kCompacted;
  if (i > last_index()) return Error::kUnavailable;
  if (auto t = unstable_.maybe_term(i)) {
    *out = *t;
    return Error::kOk;
  }
  return storage_->term(i, out);
}

Term RaftLog::term_or_zero(Index i) const {
  Term t = 0;
  if (term(i, &t) != Error::kOk) return 0;
  return t;
}

bool RaftLog::match_term(Index i, Term t) const {
  Term actual = 0;
  if (term(i, &actual) != Error::kOk) return false;
  return actual == t;
}

bool RaftLog::is_up_to_date(Index index, Term t) const {
  Term lt = last_term();
  return t > lt || (t == lt && index >= last_index());
}

std::optional<Index> RaftLog::maybe_append(Index index, Term log_term, Index commit,
                                           const std::vector<Entry>& ents) {
  if (!match_term(index, log_term)) return std::nullopt;
  Index last_new = index + ents.size();
  size_t ci = find_conflict(ents);
  if (ci < ents.size()) {
    if (ents[ci].index <= committed_)
      fatal("conflict with committed entry", ents[ci].index, committed_);
    append(ents, ci);
  }
  commit_to(std::min(commit, last_new));
  return last_new;
}

Index RaftLog::append(const std::vector<Entry>& ents, size_t from) {
  if (from >= ents.size()) return last_index();
  if (ents[from].index - 1 < committed_) fatal("append below commit", ents[from].index, committed_);
  unstable_.truncate_and_append(ents, from);
  return last_index();
}

size_t RaftLog::find_conflict(const std::vector<Entry>& ents) const {
  for (size_t i = 0; i < ents.size(); ++i) {
    if (!match_term(ents[i].index, ents[i].term)) return i;
  }
  return ents.size();
}

std::pair<Index, Term> RaftLog::find_conflict_by_term(Index index, Term t) const {
  for (; index > 0; --index) {
    Term our = 0;
    if (term(index, &our) != Error::kOk) return {index, 0};
    if (our <= t) return {index, our};
  }
  return {0, 0};
}

Error RaftLog::slice(Index lo, Index hi, uint64_t max_bytes, std::vector<Entry>* out) const {
  if (lo > hi) fatal("invalid slice", lo, hi);
  if (lo < first_index()) return Error::kCompacted;
  if (hi > last_index() + 1) fatal("slice out of bound", hi, last_index());
  if (lo == hi) return Error::kOk;
  size_t start = out->size();
  // One allocation for the common message instead of one per doubling; bounded, because a
  // byte limit may cut a long range short.
  constexpr Index kMaxReserve = 4096;
  out->reserve(start + static_cast<size_t>(std::min(hi - lo, kMaxReserve)));
  if (lo < unstable_.offset) {
    Index stable_hi = std::min(hi, unstable_.offset);
    Error err = storage_->entries(lo, stable_hi, max_bytes, out);
    if (err != Error::kOk) return err;
    if (out->size() - start < stable_hi - lo) return Error::kOk;  // hit the byte limit
  }
  if (hi > unstable_.offset) {
    Index from = std::max(lo, unstable_.offset);
    uint64_t bytes = 0;
    for (size_t k = start; k < out->size(); ++k)
      bytes += (*out)[k].size_bytes();
    for (Index i = from; i < hi; ++i) {
      const Entry& e = unstable_.entries[i - unstable_.offset];
      bytes += e.size_bytes();
      if (out->size() > start && bytes > max_bytes) break;
      out->push_back(e);
    }
  }
  return Error::kOk;
}

Error RaftLog::entries_from(Index lo, uint64_t max_bytes, std::vector<Entry>* out) const {
  if (lo > last_index()) return Error::kOk;
  return slice(lo, last_index() + 1, max_bytes, out);
}

bool RaftLog::maybe_commit(Index max_index, Term t) {
  if (max_index > committed_ && term_or_zero(max_index) == t) {
    commit_to(max_index);
    return true;
  }
  return false;
}

void RaftLog::commit_to(Index to) {
  if (to <= committed_) return;  // never decrease commit
  if (to > last_index()) fatal("commit beyond last index", to, last_index());
  committed_ = to;
}

void RaftLog::applied_to(Index i) {
  if (i == 0) return;
  if (i > committed_ || i < applied_) fatal("applied out of range", i, committed_);
  applied_ = i;
}

bool RaftLog::has_next_committed_entries() const {
  Index lo = std::max(applied_ + 1, first_index());
  return committed_ + 1 > lo && !unstable_.snapshot;
}

Error RaftLog::next_committed_entries(std::vector<Entry>* out) const {
  if (!has_next_committed_entries()) return Error::kOk;
  Index lo = std::max(applied_ + 1, first_index());
  return slice(lo, committed_ + 1, max_committed_bytes_per_ready_, out);
}

Error RaftLog::snapshot(Snapshot* out) const {
  if (unstable_.snapshot) {
    *out = *unstable_.snapshot;
    return Error::kOk;
  }
  return storage_->snapshot(out);
}

void RaftLog::restore(const Snapshot& s) {
  committed_ = s.metadata.index;
  unstable_.restore(s);
}

}  // namespace chorus::raft
