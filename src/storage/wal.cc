#include "storage/wal.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "base/coding.h"
#include "base/ring.h"

namespace chorus::storage {

using raft::Entry;
using raft::GroupId;
using raft::Index;
using raft::Term;

std::string segment_name(uint64_t sequence) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64 ".wal", sequence);
  return buf;
}

namespace {

bool parse_segment_name(const std::string& name, uint64_t* sequence) {
  if (name.size() != 20 || name.substr(16) != ".wal") return false;
  uint64_t v = 0;
  for (size_t i = 0; i < 16; ++i) {
    char c = name[i];
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *sequence = v;
  return true;
}

std::string snapshot_record(const raft::Snapshot& s, Index compact_to, Term compact_term,
                            bool replace) {
  SnapshotMarker m{s, compact_to, replace};
  std::string payload = encode_snapshot_marker(m);
  base::put_u64(&payload, compact_term);
  return payload;
}

// The marker's payload ends with the term of the entry at `compact_to`.
bool decode_snapshot_record(std::string_view payload, SnapshotMarker* m, Term* compact_term) {
  if (payload.size() < 8) return false;
  *compact_term = base::load_u64(payload.data() + payload.size() - 8);
  return decode_snapshot_marker(payload.substr(0, payload.size() - 8), m);
}

constexpr const char* kRepairHint =
    "; the node must not serve from this log. See docs/OPERATIONS.md, \"A damaged write-ahead "
    "log\": `chorus-wal verify <dir>` shows the damage, `chorus-wal truncate <dir>` cuts the log "
    "before it";

}  // namespace

// Where an entry lives on disk.
struct EntryLocation {
  uint64_t segment;
  uint64_t offset;
  uint32_t size;
  Term term;
};

struct Wal::Segment {
  uint64_t sequence = 0;
  std::string path;
  // Highest entry index written here, per group: the segment may go once every group has
  // compacted past it.
  std::map<GroupId, Index> max_index;
  mutable std::unique_ptr<ReadableFile> reader;
};

struct Wal::GroupLog {
  raft::HardState hard_state;
  raft::Snapshot snapshot;
  Index compact_index = 0;  // first_index() - 1
  Term compact_term = 0;
  // During recovery: entries up to here are missing and must turn out to be compacted. The
  // entry record that opened the gap is at gap_offset of segment gap_segment.
  Index unresolved_gap = 0;
  uint64_t gap_segment = 0;
  uint64_t gap_offset = 0;
  base::Ring<EntryLocation> locations;  // entries (compact_index, last]
  base::Ring<Entry> cache;              // a suffix of them
  uint64_t cache_bytes = 0;
  // When the group last cached an entry (Wal::cache_clock_): the log's cache budget is taken
  // back from the groups that wrote least recently first.
  uint64_t cache_used = 0;
  // The segment of the group's latest record. Each segment holds, before a group's first record
  // in it, the group's snapshot marker and hard state (Wal::state_prefix_locked), so this
  // segment and every later one the group wrote to carry its whole state.
  uint64_t last_segment = 0;

  Index last_index() const { return compact_index + locations.size(); }
  Index cache_start() const { return last_index() + 1 - cache.size(); }

  void truncate_after(Index index) {  // keeps entries <= index
    while (last_index() > index) {
      locations.pop_back();
      if (!cache.empty()) {
        cache_bytes -= cache.back().size_bytes();
        cache.pop_back();
      }
    }
  }
  void drop_through(Index index) {  // drops entries <= index
    while (compact_index < index && !locations.empty()) {
      compact_term = locations.front().term;
      locations.pop_front();
      ++compact_index;
      if (cache.size() > locations.size()) {
        cache_bytes -= cache.front().size_bytes();
        cache.pop_front();
      }
    }
  }
  void push(Entry e, const EntryLocation& loc) {
    locations.push_back(loc);
    cache_bytes += e.size_bytes();
    cache.push_back(std::move(e));
  }
  void evict_front() {
    cache_bytes -= cache.front().size_bytes();
    cache.pop_front();
  }
};

// The Raft core's view of one group.
class WalGroupStorage final : public raft::LogStorage {
 public:
  WalGroupStorage(const Wal* wal, GroupId group) : wal_(wal), group_(group) {}

  raft::HardState hard_state() const override {
    std::lock_guard lock(wal_->mu_);
    return log().hard_state;
  }
  raft::ConfState conf_state() const override {
    std::lock_guard lock(wal_->mu_);
    return log().snapshot.metadata.conf_state;
  }
  raft::Error entries(Index lo, Index hi, uint64_t max_bytes,
                      std::vector<Entry>* out) const override {
    std::lock_guard lock(wal_->mu_);
    const Wal::GroupLog& g = log();
    if (lo <= g.compact_index) return raft::Error::kCompacted;
    if (hi > g.last_index() + 1) return raft::Error::kUnavailable;
    uint64_t bytes = 0;
    Index cache_start = g.cache_start();
    for (Index i = lo; i < hi; ++i) {
      if (i >= cache_start) {
        const Entry& e = g.cache[i - cache_start];
        bytes += e.size_bytes();
        if (i > lo && bytes > max_bytes) break;
        out->push_back(e);
        continue;
      }
      Entry e;
      if (Status st = wal_->read_entry_locked(g, i, &e); !st.is_ok()) {
        if (wal_->read_failure_.empty()) wal_->read_failure_ = st.to_string();
        return raft::Error::kStorageFailed;
      }
      bytes += e.size_bytes();
      if (i > lo && bytes > max_bytes) break;
      out->push_back(std::move(e));
    }
    return raft::Error::kOk;
  }
  raft::Error term(Index index, Term* out) const override {
    std::lock_guard lock(wal_->mu_);
    const Wal::GroupLog& g = log();
    if (index < g.compact_index) return raft::Error::kCompacted;
    if (index > g.last_index()) return raft::Error::kUnavailable;
    *out =
        index == g.compact_index ? g.compact_term : g.locations[index - g.compact_index - 1].term;
    return raft::Error::kOk;
  }
  Index first_index() const override {
    std::lock_guard lock(wal_->mu_);
    return log().compact_index + 1;
  }
  Index last_index() const override {
    std::lock_guard lock(wal_->mu_);
    return log().last_index();
  }
  raft::Error snapshot(raft::Snapshot* out) const override {
    std::lock_guard lock(wal_->mu_);
    *out = log().snapshot;
    return raft::Error::kOk;
  }

 private:
  const Wal::GroupLog& log() const { return *wal_->groups_.at(group_); }
  const Wal* wal_;
  GroupId group_;
};

// ---- WalBatch ----

void WalBatch::set_hard_state(GroupId group, const raft::HardState& hs) {
  append_record(&encoded_, RecordType::kHardState, group, encode_hard_state(hs));
}

void WalBatch::append(GroupId group, std::span<const Entry> entries) {
  std::string payload;
  for (const Entry& e : entries) {
    payload.clear();
    encode_entry(e, &payload);
    append_record(&encoded_, RecordType::kEntry, group, payload);
  }
}

void WalBatch::apply_snapshot(GroupId group, const raft::Snapshot& snapshot) {
  append_record(&encoded_, RecordType::kSnapshot, group,
                snapshot_record(snapshot, snapshot.metadata.index, snapshot.metadata.term, true));
}

// ---- Wal ----

Wal::Wal(FileSystem* fs, std::string dir, const WalOptions& options)
    : fs_(fs), dir_(std::move(dir)), options_(options) {}

Wal::~Wal() {
  if (writer_) (void)writer_->close();
}

Wal::GroupLog& Wal::group_locked(GroupId group) {
  auto& g = groups_[group];
  if (!g) g = std::make_unique<GroupLog>();
  return *g;
}

// Applies one record to the in-memory state; the record sits at `offset` of `segment`. A record
// that breaks a rule of the log comes back as kCorruption with the reason alone.
Status Wal::apply_record(const RecordView& rec, uint64_t segment, uint64_t offset) {
  auto bad = [](const char* why) { return Status::corruption(why); };
  switch (rec.type) {
    case RecordType::kSegmentHeader:
      return bad("segment header in the middle of a segment");
    case RecordType::kHardState: {
      raft::HardState hs;
      if (!decode_hard_state(rec.payload, &hs)) return bad("malformed hard state");
      GroupLog& g = group_locked(rec.group);
      g.hard_state = hs;
      g.last_segment = segment;
      return Status::ok();
    }
    case RecordType::kSnapshot: {
      SnapshotMarker m;
      Term compact_term = 0;
      if (!decode_snapshot_record(rec.payload, &m, &compact_term))
        return bad("malformed snapshot marker");
      GroupLog& g = group_locked(rec.group);
      g.last_segment = segment;
      const uint64_t cached = g.cache_bytes;
      if (m.replace) {
        g.truncate_after(g.compact_index);
        g.compact_index = m.compact_to;
        g.compact_term = compact_term;
        g.unresolved_gap = 0;
      } else if (m.compact_to > g.last_index()) {
        // compact() never writes this, but recovery sees it when the segments holding the
        // entries up to `compact_to` were deleted: the marker then starts the group's log (every
        // segment repeats the group's marker before the group's first record in it).
        if (!recovering_) return bad("snapshot marker compacts past the log");
        g.truncate_after(g.compact_index);
        g.compact_index = m.compact_to;
        g.compact_term = compact_term;
        if (m.compact_to >= g.unresolved_gap) g.unresolved_gap = 0;
      } else if (m.compact_to >= g.compact_index) {
        g.drop_through(m.compact_to);
        g.compact_term = compact_term;
        if (m.compact_to >= g.unresolved_gap) g.unresolved_gap = 0;
      }
      if (m.replace || m.snapshot.metadata.index >= g.snapshot.metadata.index)
        g.snapshot = std::move(m.snapshot);
      cache_changed_locked(rec.group, g, cached, false);
      return Status::ok();
    }
    case RecordType::kEntry: {
      Entry e;
      if (!decode_entry(rec.payload, &e)) return bad("malformed entry");
      if (!groups_.contains(rec.group)) return bad("entry for a group that was never created");
      GroupLog& g = *groups_[rec.group];
      g.last_segment = segment;
      if (e.index <= g.compact_index) return Status::ok();
      const uint64_t cached = g.cache_bytes;
      if (e.index > g.last_index() + 1) {
        // Recovery reads the first remaining segment after older ones were deleted: its
        // entries start past the compaction recorded in its header, and a later snapshot
        // marker must cover the gap (checked when recovery ends).
        if (!recovering_) return bad("entry leaves a gap in its group's log");
        g.truncate_after(g.compact_index);
        g.compact_index = e.index - 1;
        g.compact_term = 0;
        if (g.unresolved_gap == 0) {
          g.gap_segment = segment;
          g.gap_offset = offset;
        }
        g.unresolved_gap = e.index - 1;
      }
      g.truncate_after(e.index - 1);
      Segment& seg = *segments_.back();
      Index& max = seg.max_index[rec.group];
      max = std::max(max, e.index);
      Term term = e.term;
      g.push(std::move(e), {segment, offset, static_cast<uint32_t>(rec.size), term});
      cache_changed_locked(rec.group, g, cached, true);
      return Status::ok();
    }
    case RecordType::kGroupRemoved: {
      // Recovery may meet the removal of a group whose earlier segments are gone already.
      auto it = groups_.find(rec.group);
      if (it == groups_.end()) return Status::ok();
      GroupLog& g = *it->second;
      if (g.cache_used != 0) cache_lru_.erase({g.cache_used, rec.group});
      cache_total_ -= g.cache_bytes;
      views_.erase(rec.group);
      groups_.erase(it);
      return Status::ok();
    }
  }
  return bad("unknown record type");
}

void Wal::cache_changed_locked(GroupId id, GroupLog& g, uint64_t before, bool pushed) {
  cache_total_ = cache_total_ - before + g.cache_bytes;
  if (pushed) {
    if (g.cache_used != cache_clock_ || g.cache_used == 0) {  // not the latest to push already
      if (g.cache_used != 0) cache_lru_.erase({g.cache_used, id});
      g.cache_used = ++cache_clock_;
      cache_lru_.insert({g.cache_used, id});
    }
  } else if (g.cache.empty() && g.cache_used != 0) {
    cache_lru_.erase({g.cache_used, id});
    g.cache_used = 0;
  }
  // Over budget: the oldest entries of the group that cached least recently go first (an idle
  // group's before an active one's), read back from the files if ever needed.
  while (cache_total_ > options_.cache_bytes && !cache_lru_.empty()) {
    auto [used, victim_id] = *cache_lru_.begin();
    GroupLog& v = *groups_.at(victim_id);
    if (!v.cache.empty()) {
      cache_total_ -= v.cache.front().size_bytes();
      v.evict_front();
    }
    if (v.cache.empty()) {
      cache_lru_.erase(cache_lru_.begin());
      v.cache_used = 0;
    }
  }
}

// Recovery: replays every segment in order into the Wal's state and stops at the first record
// it cannot accept. open() and verify() both run it, so the read-only check and the real
// recovery can never disagree about what is damage.
class Wal::Recovery {
 public:
  // `report` (may be null) receives counts per segment and group.
  Recovery(Wal* wal, WalReport* report) : wal_(wal), report_(report) {}

  // Fails only when a file cannot be read; damage is left in damage().
  Status run(const std::vector<uint64_t>& sequences) {
    for (size_t i = 0; i < sequences.size(); ++i) {
      if (i > 0 && sequences[i] != sequences[i - 1] + 1) {
        damage_ = WalDamage{segment_name(sequences[i - 1] + 1), 0,
                            "segment is missing (segments before and after it exist)"};
        break;
      }
      auto seg = std::make_unique<Segment>();
      seg->sequence = sequences[i];
      seg->path = join_path(wal_->dir_, segment_name(sequences[i]));
      wal_->segments_.push_back(std::move(seg));
      CHORUS_RETURN_IF_ERROR(scan(*wal_->segments_.back(), i + 1 == sequences.size()));
      if (damage_) break;
    }
    // A gap no snapshot marker covered starts before anything scanned after it, so it is the
    // first damage: cutting the log later would leave it.
    for (const auto& [id, g] : wal_->groups_) {
      if (g->unresolved_gap == 0) continue;
      bool earlier =
          !damage_ || damage_->file > segment_name(g->gap_segment) ||
          (damage_->file == segment_name(g->gap_segment) && damage_->offset > g->gap_offset);
      if (earlier)
        damage_ = WalDamage{segment_name(g->gap_segment), g->gap_offset,
                            "group " + std::to_string(id) + " is missing entries up to " +
                                std::to_string(g->unresolved_gap) +
                                " and no snapshot marker covers them"};
    }
    clamp_commits();
    if (report_ != nullptr) fill_groups();
    return Status::ok();
  }

  const std::optional<WalDamage>& damage() const { return damage_; }
  // Of the last segment: where its records end, whether bytes follow, and its size.
  uint64_t end() const { return end_; }
  bool tail_dirty() const { return tail_dirty_; }
  uint64_t size() const { return size_; }

 private:
  // A torn batch that held a hard state before its entries (as older drivers wrote it) leaves a
  // commit index past the log's end, and the core refuses to start on that. Nothing past the
  // end was ever synced, so this member never acknowledged it: the commit index goes back to
  // the end of the log, and the leader tells the member the real one again.
  void clamp_commits() {
    for (auto& [id, g] : wal_->groups_) {
      if (g->hard_state.commit <= g->last_index()) continue;
      wal_->recovery_warnings_.push_back(
          "group " + std::to_string(id) + ": the hard state commits through index " +
          std::to_string(g->hard_state.commit) + " but the log ends at " +
          std::to_string(g->last_index()) + " (a torn write); commit index lowered to " +
          std::to_string(g->last_index()));
      g->hard_state.commit = g->last_index();
    }
  }

  Status scan(const Segment& seg, bool last) {
    std::string data;
    CHORUS_RETURN_IF_ERROR(wal_->fs_->read_file(seg.path, &data));
    std::string_view bytes = data;
    WalReport::Segment* info = nullptr;
    if (report_ != nullptr) {
      for (auto& s : report_->segments)
        if (s.name == segment_name(seg.sequence)) info = &s;
      if (info != nullptr) info->scanned = true;
    }
    uint64_t offset = 0;
    while (true) {
      RecordView rec;
      const char* why = "record cut short";
      DecodeStatus st = decode_record(bytes.substr(offset), &rec, &why);
      if (st == DecodeStatus::kOk) {
        if (offset == 0) {
          uint64_t seq = 0;
          if (rec.type != RecordType::kSegmentHeader || !decode_segment_header(rec.payload, &seq) ||
              seq != seg.sequence)
            return damaged(seg, offset, "missing or wrong segment header");
        } else {
          Status s = wal_->apply_record(rec, seg.sequence, offset);
          if (!s.is_ok()) return damaged(seg, offset, s.message());
          count(rec);
        }
        if (info != nullptr) ++info->records;
        offset += rec.size;
        continue;
      }
      if (info != nullptr) info->end = offset;
      if (offset == 0 && !last) return damaged(seg, 0, "segment has no header");
      // End of the written data, or a damaged record. Only the last segment may end in a torn
      // write, and only if nothing valid follows the damage.
      if (st != DecodeStatus::kEnd) {
        if (!last || valid_record_after(bytes, offset)) return damaged(seg, offset, why);
      } else if (!last && !all_zero(bytes, offset)) {
        return damaged(seg, offset, "data after the end of a finished segment");
      }
      end_ = offset;
      tail_dirty_ = !all_zero(bytes, offset);
      size_ = bytes.size();
      if (info != nullptr && tail_dirty_) {
        uint64_t last_nonzero = bytes.find_last_not_of('\0');
        info->torn_bytes = last_nonzero + 1 - offset;
      }
      return Status::ok();
    }
  }

  Status damaged(const Segment& seg, uint64_t offset, std::string why) {
    damage_ = WalDamage{segment_name(seg.sequence), offset, std::move(why)};
    return Status::ok();
  }
  void count(const RecordView& rec) {
    if (report_ == nullptr) return;
    WalReport::Group& g = report_->groups[rec.group];
    if (rec.type == RecordType::kEntry) ++g.entries;
    if (rec.type == RecordType::kHardState) ++g.hard_states;
    if (rec.type == RecordType::kSnapshot) ++g.snapshots;
    g.removed = rec.type == RecordType::kGroupRemoved;
  }
  void fill_groups() {
    for (const auto& [id, g] : wal_->groups_) {
      WalReport::Group& r = report_->groups[id];
      r.first_index = g->compact_index + 1;
      r.last_index = g->last_index();
      r.hard_state = g->hard_state;
      r.snapshot_index = g->snapshot.metadata.index;
    }
  }
  static bool all_zero(std::string_view bytes, uint64_t from) {
    for (size_t i = from; i < bytes.size(); ++i)
      if (bytes[i] != 0) return false;
    return true;
  }
  static bool valid_record_after(std::string_view bytes, uint64_t offset) {
    for (uint64_t at = offset + kRecordAlign; at + kRecordHeaderBytes <= bytes.size();
         at += kRecordAlign) {
      RecordView rec;
      if (decode_record(bytes.substr(at), &rec) == DecodeStatus::kOk) return true;
    }
    return false;
  }

  Wal* wal_;
  WalReport* report_;
  std::optional<WalDamage> damage_;
  uint64_t end_ = 0;
  uint64_t size_ = 0;
  bool tail_dirty_ = false;
};

namespace {

Status damage_status(const std::string& dir, const WalDamage& d) {
  return Status::corruption("wal: damaged record in " + join_path(dir, d.file) + " at offset " +
                            std::to_string(d.offset) + ": " + d.reason + kRepairHint);
}

}  // namespace

Status Wal::list_segments(FileSystem* fs, const std::string& dir, std::vector<uint64_t>* sequences,
                          std::vector<std::string>* leftovers) {
  std::vector<std::string> names;
  CHORUS_RETURN_IF_ERROR(fs->list_dir(dir, &names));
  for (const std::string& name : names) {
    uint64_t seq = 0;
    if (parse_segment_name(name, &seq)) {
      sequences->push_back(seq);
    } else if (name.ends_with(".wal.tmp")) {
      // A segment whose creation a crash interrupted: never part of the log.
      leftovers->push_back(name);
    }
  }
  std::sort(sequences->begin(), sequences->end());
  return Status::ok();
}

Status Wal::open(FileSystem* fs, const std::string& dir, const WalOptions& options,
                 std::unique_ptr<Wal>* out) {
  std::unique_ptr<Wal> wal(new Wal(fs, dir, options));
  CHORUS_RETURN_IF_ERROR(fs->create_dir(dir));
  std::vector<uint64_t> sequences;
  std::vector<std::string> leftovers;
  CHORUS_RETURN_IF_ERROR(list_segments(fs, dir, &sequences, &leftovers));
  for (const std::string& name : leftovers)
    CHORUS_RETURN_IF_ERROR(fs->remove(join_path(dir, name)));
  // The listing may show changes that are not durable: a process that restarted after a failed
  // directory sync (a rotation's, a segment deletion's) still sees the renamed or removed files.
  // Records synced into a segment whose name a power cut would take away are lost with it.
  CHORUS_RETURN_IF_ERROR(fs->sync_dir(dir));
  std::lock_guard lock(wal->mu_);
  if (sequences.empty()) {
    wal->recovering_ = false;
    CHORUS_RETURN_IF_ERROR(wal->create_segment_locked(1));
    *out = std::move(wal);
    return Status::ok();
  }
  Recovery recovery(wal.get(), nullptr);
  CHORUS_RETURN_IF_ERROR(recovery.run(sequences));
  if (recovery.damage()) return damage_status(dir, *recovery.damage());
  wal->recovering_ = false;
  Segment& last = *wal->segments_.back();
  CHORUS_RETURN_IF_ERROR(fs->open_writable(last.path, &wal->writer_));
  wal->write_offset_ = recovery.end();
  wal->allocated_ = std::max(recovery.size(), options.segment_bytes);
  if (wal->write_offset_ == 0) {
    // The last segment lost even its header to a crash: write it again.
    std::string header;
    append_record(&header, RecordType::kSegmentHeader, 0, encode_segment_header(last.sequence));
    CHORUS_RETURN_IF_ERROR(wal->writer_->write_at(0, header));
    wal->write_offset_ = header.size();
  }
  if (recovery.tail_dirty() && recovery.size() > wal->write_offset_) {
    // Clear the torn tail so no stale bytes can ever line up as a record after new writes. (A
    // file shorter than the header just rewritten has nothing left to clear.)
    std::string zeros(recovery.size() - wal->write_offset_, '\0');
    CHORUS_RETURN_IF_ERROR(wal->writer_->write_at(wal->write_offset_, zeros));
  }
  CHORUS_RETURN_IF_ERROR(wal->writer_->sync());
  *out = std::move(wal);
  return Status::ok();
}

Status Wal::verify(FileSystem* fs, const std::string& dir, WalReport* out) {
  *out = WalReport{};
  out->dir = dir;
  if (!fs->exists(dir)) return Status::not_found("wal: no directory " + dir);
  std::vector<uint64_t> sequences;
  CHORUS_RETURN_IF_ERROR(list_segments(fs, dir, &sequences, &out->leftover_files));
  for (uint64_t seq : sequences) {
    WalReport::Segment s;
    s.name = segment_name(seq);
    std::unique_ptr<ReadableFile> f;
    CHORUS_RETURN_IF_ERROR(fs->open_readable(join_path(dir, s.name), &f));
    CHORUS_RETURN_IF_ERROR(f->size(&s.file_bytes));
    out->segments.push_back(std::move(s));
  }
  // A Wal that never opens a file for writing: recovery only builds its in-memory state. No
  // entry cache: the scan needs entry locations, not their data.
  Wal wal(fs, dir, WalOptions{.cache_bytes = 0});
  std::lock_guard lock(wal.mu_);
  Recovery recovery(&wal, out);
  CHORUS_RETURN_IF_ERROR(recovery.run(sequences));
  out->damage = recovery.damage();
  if (out->damage) {
    for (const WalReport::Segment& s : out->segments) {
      if (s.name > out->damage->file) out->cut_segments.push_back(s.name);
      if (s.name == out->damage->file && s.file_bytes > out->damage->offset)
        out->cut_bytes = s.file_bytes - out->damage->offset;
    }
  }
  return Status::ok();
}

Status Wal::truncate_at_damage(FileSystem* fs, const std::string& dir, WalReport* out) {
  CHORUS_RETURN_IF_ERROR(verify(fs, dir, out));
  if (out->clean()) return Status::ok();
  // Newest first, so a crash part-way leaves a shorter log, never one with a hole in it.
  for (auto it = out->cut_segments.rbegin(); it != out->cut_segments.rend(); ++it)
    CHORUS_RETURN_IF_ERROR(fs->remove(join_path(dir, *it)));
  CHORUS_RETURN_IF_ERROR(fs->sync_dir(dir));
  if (out->cut_bytes == 0) return Status::ok();
  // Zeros rather than a shorter file: the segment stays preallocated and reads as the end of
  // the written data from the damage on.
  std::unique_ptr<WritableFile> f;
  CHORUS_RETURN_IF_ERROR(fs->open_writable(join_path(dir, out->damage->file), &f));
  constexpr uint64_t kStep = 1 << 20;
  const std::string zeros(kStep, '\0');
  for (uint64_t at = out->damage->offset; at < out->damage->offset + out->cut_bytes; at += kStep) {
    uint64_t n = std::min(kStep, out->damage->offset + out->cut_bytes - at);
    CHORUS_RETURN_IF_ERROR(f->write_at(at, std::string_view(zeros).substr(0, n)));
  }
  CHORUS_RETURN_IF_ERROR(f->sync());
  return f->close();
}

std::string WalReport::to_string() const {
  std::string s = "wal " + dir + ": " + std::to_string(segments.size()) + " segment(s)\n";
  char line[256];
  for (const Segment& seg : segments) {
    if (!seg.scanned) {
      std::snprintf(line, sizeof(line), "  %s  %" PRIu64 " bytes  not scanned (after the damage)\n",
                    seg.name.c_str(), seg.file_bytes);
    } else {
      std::snprintf(line, sizeof(line),
                    "  %s  %" PRIu64 " bytes  %" PRIu64 " records  records end at %" PRIu64 "%s\n",
                    seg.name.c_str(), seg.file_bytes, seg.records, seg.end,
                    seg.torn_bytes > 0 ? "  (torn tail, cleared at open)" : "");
    }
    s += line;
  }
  for (const std::string& name : leftover_files)
    s += "  " + name + "  interrupted segment creation, deleted at open\n";
  for (const auto& [id, g] : groups) {
    if (id == 0) continue;
    if (g.removed) {
      std::snprintf(line, sizeof(line), "  group %" PRIu64 ": removed\n", id);
      s += line;
      continue;
    }
    std::snprintf(line, sizeof(line),
                  "  group %" PRIu64 ": %" PRIu64 " entry, %" PRIu64 " hard state, %" PRIu64
                  " snapshot records; log [%" PRIu64 ", %" PRIu64 "], snapshot at %" PRIu64
                  ", term %" PRIu64 " vote %" PRIu64 " commit %" PRIu64 "\n",
                  id, g.entries, g.hard_states, g.snapshots, g.first_index, g.last_index,
                  g.snapshot_index, g.hard_state.term, g.hard_state.vote, g.hard_state.commit);
    s += line;
  }
  if (!damage) {
    s += "clean\n";
    return s;
  }
  s += "DAMAGED: " + damage->file + " at offset " + std::to_string(damage->offset) + ": " +
       damage->reason + "\n";
  s += "a cut at the damage clears " + std::to_string(cut_bytes) + " bytes of " + damage->file;
  if (!cut_segments.empty()) {
    s += " and deletes";
    for (const std::string& name : cut_segments)
      s += " " + name;
  }
  s += "; the groups keep the logs shown above\n";
  return s;
}

Status Wal::create_segment_locked(uint64_t sequence) {
  std::string name = segment_name(sequence);
  std::string tmp = join_path(dir_, name + ".tmp");
  std::string path = join_path(dir_, name);
  std::unique_ptr<WritableFile> f;
  CHORUS_RETURN_IF_ERROR(fs_->open_writable(tmp, &f));
  CHORUS_RETURN_IF_ERROR(f->truncate(0));
  CHORUS_RETURN_IF_ERROR(f->preallocate(options_.segment_bytes));
  // Only the segment's own header: the groups' state follows each group's first record here
  // (state_prefix_locked), so the header does not grow with the number of groups.
  std::string head;
  append_record(&head, RecordType::kSegmentHeader, 0, encode_segment_header(sequence));
  CHORUS_RETURN_IF_ERROR(f->write_at(0, head));
  CHORUS_RETURN_IF_ERROR(f->sync());
  CHORUS_RETURN_IF_ERROR(fs_->rename(tmp, path));
  CHORUS_RETURN_IF_ERROR(fs_->sync_dir(dir_));
  auto seg = std::make_unique<Segment>();
  seg->sequence = sequence;
  seg->path = path;
  segments_.push_back(std::move(seg));
  if (writer_) (void)writer_->close();
  writer_ = std::move(f);
  rotated_ = true;
  write_offset_ = head.size();
  head_end_ = head.size();
  allocated_ = std::max<uint64_t>(options_.segment_bytes, head.size());
  return Status::ok();
}

Status Wal::fail_locked(Status st) {
  if (health_.is_ok()) {
    if (st.code() == Status::Code::kNoSpace) {
      health_ = Status::read_only("wal is read-only: " + st.message());
    } else {
      health_ = Status::io_error("wal stopped after a failed write or sync (" + st.message() +
                                 "); the node must restart and recover");
    }
  }
  return st;
}

Status Wal::health() const {
  std::lock_guard lock(mu_);
  return health_;
}

Status Wal::rotate_locked() {
  // Everything in the current segment is made durable first, so only the last segment can ever
  // end in a torn write.
  Status st = writer_->sync();
  if (!st.is_ok()) return fail_locked(st);
  st = create_segment_locked(segments_.back()->sequence + 1);
  if (!st.is_ok()) return fail_locked(st);
  return Status::ok();
}

Status Wal::write_locked(std::string_view encoded, bool state_first) {
  if (!health_.is_ok()) return health_;
  if (write_offset_ + encoded.size() > options_.segment_bytes && write_offset_ > head_end_) {
    CHORUS_RETURN_IF_ERROR(rotate_locked());
  }
  // Groups writing their first record to this segment: their state goes first.
  std::string prefixed = state_first ? state_prefix_locked(encoded) : std::string();
  if (!prefixed.empty()) {
    prefixed += encoded;
    encoded = prefixed;
  }
  if (write_offset_ + encoded.size() > allocated_) {
    // A batch larger than a segment: grow this one rather than split the batch.
    Status st = writer_->preallocate(write_offset_ + encoded.size());
    if (!st.is_ok()) return fail_locked(st);
    allocated_ = write_offset_ + encoded.size();
  }
  Status st = writer_->write_at(write_offset_, encoded);
  if (!st.is_ok()) return fail_locked(st);
  uint64_t seq = segments_.back()->sequence;
  uint64_t pos = 0;
  while (pos < encoded.size()) {
    RecordView rec;
    if (decode_record(encoded.substr(pos), &rec) != DecodeStatus::kOk) {
      std::fprintf(stderr, "wal: a batch built in memory does not decode\n");
      std::abort();
    }
    st = apply_record(rec, seq, write_offset_ + pos);
    if (!st.is_ok()) {
      // The batch broke a rule of the log (a gap, an entry of an unknown group). It is on
      // disk but not synced; stop rather than leave a log that recovery would refuse.
      return fail_locked(Status::invalid_argument("wal: " + segment_name(seq) + " offset " +
                                                  std::to_string(write_offset_ + pos) + ": " +
                                                  st.message()));
    }
    pos += rec.size;
  }
  write_offset_ += encoded.size();
  return Status::ok();
}

std::string Wal::state_prefix_locked(std::string_view encoded) const {
  const uint64_t current = segments_.back()->sequence;
  std::string prefix;
  std::vector<GroupId> added;
  GroupId previous = 0;
  size_t pos = 0;
  while (pos + kRecordHeaderBytes <= encoded.size()) {
    // The batch was built in memory by WalBatch: its framing is trusted here and checked
    // record by record once written (write_locked).
    uint32_t length = base::load_u32(encoded.data() + pos + 4);
    GroupId group = base::load_u64(encoded.data() + pos + 16);
    pos += record_size(length);
    // A group's records come in runs (its entries, then its hard state): one look per run.
    if (group == previous) continue;
    previous = group;
    auto it = groups_.find(group);
    if (it == groups_.end() || it->second->last_segment == current) continue;
    if (std::find(added.begin(), added.end(), group) != added.end()) continue;
    added.push_back(group);
    append_state_locked(group, *it->second, &prefix);
  }
  return prefix;
}

void Wal::append_state_locked(GroupId id, const GroupLog& g, std::string* out) const {
  append_record(out, RecordType::kSnapshot, id,
                snapshot_record(g.snapshot, g.compact_index, g.compact_term, false));
  if (!g.hard_state.empty())
    append_record(out, RecordType::kHardState, id, encode_hard_state(g.hard_state));
}

Status Wal::write(const WalBatch& batch) {
  std::lock_guard lock(mu_);
  if (batch.empty()) return health_;
  CHORUS_RETURN_IF_ERROR(write_locked(batch.encoded()));
  if (!rotated_) return Status::ok();
  // A new segment: older ones that only the state of idle groups still holds can go.
  return release_segments_locked();
}

Status Wal::sync() {
  WritableFile* w = nullptr;
  {
    std::lock_guard lock(mu_);
    if (!health_.is_ok()) return health_;
    w = writer_.get();
  }
  // Only the writer thread rotates, so `w` stays the current file during the sync.
  Status st = w->sync();
  if (!st.is_ok()) {
    std::lock_guard lock(mu_);
    return fail_locked(st);
  }
  return Status::ok();
}

Status Wal::bootstrap(GroupId group, const raft::ConfState& initial) {
  return bootstrap({{group, initial}});
}

Status Wal::bootstrap(const std::vector<std::pair<GroupId, raft::ConfState>>& groups, Index start) {
  std::lock_guard lock(mu_);
  std::set<GroupId> seen;
  for (const auto& [group, initial] : groups) {
    if (groups_.contains(group) || !seen.insert(group).second)
      return Status::invalid_argument("group " + std::to_string(group) + " already exists");
  }
  if (groups.empty()) return Status::ok();
  std::string rec;
  for (const auto& [group, initial] : groups) {
    raft::Snapshot s;
    s.metadata.conf_state = initial;
    s.metadata.index = start;
    s.metadata.term = start;
    append_record(&rec, RecordType::kSnapshot, group, snapshot_record(s, start, start, true));
  }
  CHORUS_RETURN_IF_ERROR(write_locked(rec));
  Status st = writer_->sync();
  if (!st.is_ok()) return fail_locked(st);
  return Status::ok();
}

Status Wal::remove(GroupId group) {
  std::lock_guard lock(mu_);
  if (!groups_.contains(group))
    return Status::invalid_argument("no group " + std::to_string(group));
  std::string rec;
  append_record(&rec, RecordType::kGroupRemoved, group, {});
  // No state before the removal: the group is forgotten whatever it held.
  CHORUS_RETURN_IF_ERROR(write_locked(rec, false));
  Status st = writer_->sync();
  if (!st.is_ok()) return fail_locked(st);
  return release_segments_locked();
}

Status Wal::compact(GroupId group, const raft::Snapshot& snapshot, Index compact_to) {
  return compact({WalCompaction{group, snapshot, compact_to}});
}

Status Wal::compact(const std::vector<WalCompaction>& list) {
  std::lock_guard lock(mu_);
  std::string rec;
  std::set<GroupId> seen;
  for (const WalCompaction& c : list) {
    auto it = groups_.find(c.group);
    if (it == groups_.end()) return Status::invalid_argument("no group " + std::to_string(c.group));
    if (!seen.insert(c.group).second)
      return Status::invalid_argument("group " + std::to_string(c.group) + " listed twice");
    const GroupLog& g = *it->second;
    Index compact_to = c.compact_to;
    if (compact_to > c.snapshot.metadata.index || c.snapshot.metadata.index > g.last_index())
      return Status::invalid_argument("compaction beyond the snapshot or the log");
    if (compact_to < g.compact_index) compact_to = g.compact_index;
    Term compact_term = compact_to == g.compact_index
                            ? g.compact_term
                            : g.locations[compact_to - g.compact_index - 1].term;
    append_record(&rec, RecordType::kSnapshot, c.group,
                  snapshot_record(c.snapshot, compact_to, compact_term, false));
  }
  if (rec.empty()) return Status::ok();
  CHORUS_RETURN_IF_ERROR(write_locked(rec));
  Status st = writer_->sync();
  if (!st.is_ok()) return fail_locked(st);
  return release_segments_locked();
}

Status Wal::release_segments_locked() {
  rotated_ = false;
  bool removed = false;
  // Only segments older than the current one at the start: moving state forward may fill the
  // current segment and open another, and what it moved there stays.
  const uint64_t current = segments_.back()->sequence;
  while (segments_.size() > 1 && segments_.front()->sequence < current) {
    const Segment& seg = *segments_.front();
    bool needed = false;
    for (const auto& [id, max] : seg.max_index) {
      auto it = groups_.find(id);
      if (it != groups_.end() && max > it->second->compact_index) needed = true;
    }
    if (needed) break;
    // Groups whose latest record is here (idle since): their state is written again at the
    // end of the log, and made durable, before the segment goes.
    std::string moved;
    for (const auto& [id, g] : groups_) {
      if (g->last_segment <= seg.sequence) append_state_locked(id, *g, &moved);
    }
    if (!moved.empty()) {
      // State records alone: no state to put before them.
      CHORUS_RETURN_IF_ERROR(write_locked(moved, false));
      Status st = writer_->sync();
      if (!st.is_ok()) return fail_locked(st);
    }
    Status st = fs_->remove(seg.path);
    if (!st.is_ok()) return fail_locked(st);
    segments_.pop_front();
    removed = true;
  }
  if (removed) {
    Status st = fs_->sync_dir(dir_);
    if (!st.is_ok()) return fail_locked(st);
  }
  return Status::ok();
}

Status Wal::read_entry_locked(const GroupLog& g, Index index, Entry* out) const {
  const EntryLocation& loc = g.locations[index - g.compact_index - 1];
  const Segment* seg = nullptr;
  for (const auto& s : segments_)
    if (s->sequence == loc.segment) seg = s.get();
  if (seg == nullptr) return Status::not_found("segment of entry " + std::to_string(index));
  if (!seg->reader) CHORUS_RETURN_IF_ERROR(fs_->open_readable(seg->path, &seg->reader));
  std::string buf;
  CHORUS_RETURN_IF_ERROR(seg->reader->read_at(loc.offset, loc.size, &buf));
  RecordView rec;
  if (decode_record(buf, &rec) != DecodeStatus::kOk || rec.type != RecordType::kEntry ||
      !decode_entry(rec.payload, out) || out->index != index)
    return Status::corruption("wal: entry " + std::to_string(index) + " in " + seg->path +
                              " at offset " + std::to_string(loc.offset) + " reads back damaged");
  return Status::ok();
}

const raft::LogStorage* Wal::group(GroupId group) const {
  std::lock_guard lock(mu_);
  auto it = groups_.find(group);
  if (it == groups_.end()) return nullptr;
  return views_.try_emplace(group, std::make_unique<WalGroupStorage>(this, group))
      .first->second.get();
}

std::vector<GroupId> Wal::groups() const {
  std::lock_guard lock(mu_);
  std::vector<GroupId> ids;
  for (const auto& [id, g] : groups_)
    ids.push_back(id);
  return ids;
}

uint64_t Wal::cache_bytes() const {
  std::lock_guard lock(mu_);
  return cache_total_;
}

size_t Wal::cached_entries(GroupId group) const {
  std::lock_guard lock(mu_);
  auto it = groups_.find(group);
  return it == groups_.end() ? 0 : it->second->cache.size();
}

size_t Wal::segment_count() const {
  std::lock_guard lock(mu_);
  return segments_.size();
}

std::vector<std::string> Wal::segment_names() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> names;
  for (const auto& s : segments_)
    names.push_back(segment_name(s->sequence));
  return names;
}

}  // namespace chorus::storage
