#include "sim/storage.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "engine/replica.h"
#include "sim/rng.h"
#include "storage/forwarding_fs.h"

namespace chorus::sim {
namespace {

constexpr const char* kWalDir = "wal";

std::string str(uint64_t v) {
  return std::to_string(v);
}

// The first difference between the model's state and the recovered one, or "".
std::string difference(const raft::MemoryLogStorage& want, const raft::LogStorage& got) {
  raft::HardState wh = want.hard_state();
  raft::HardState gh = got.hard_state();
  if (!(wh == gh)) {
    return "hard state (term " + str(gh.term) + ", vote " + str(gh.vote) + ", commit " +
           str(gh.commit) + ") instead of (term " + str(wh.term) + ", vote " + str(wh.vote) +
           ", commit " + str(wh.commit) + ")";
  }
  if (want.first_index() != got.first_index() || want.last_index() != got.last_index()) {
    return "log " + str(got.first_index()) + ".." + str(got.last_index()) + " instead of " +
           str(want.first_index()) + ".." + str(want.last_index());
  }
  raft::Snapshot ws;
  raft::Snapshot gs;
  (void)want.snapshot(&ws);
  (void)got.snapshot(&gs);
  if (!(ws.metadata == gs.metadata) || ws.data != gs.data) {
    return "snapshot at " + str(gs.metadata.index) + " (term " + str(gs.metadata.term) +
           ") instead of " + str(ws.metadata.index) + " (term " + str(ws.metadata.term) + ")";
  }
  raft::Term wt = 0;
  raft::Term gt = 0;
  raft::Index compacted = want.first_index() - 1;
  if (want.term(compacted, &wt) != raft::Error::kOk ||
      got.term(compacted, &gt) != raft::Error::kOk || wt != gt) {
    return "term " + str(gt) + " instead of " + str(wt) + " at compacted index " + str(compacted);
  }
  if (want.last_index() < want.first_index()) return "";
  std::vector<raft::Entry> we;
  std::vector<raft::Entry> ge;
  raft::Error werr = want.entries(want.first_index(), want.last_index() + 1, raft::kNoLimit, &we);
  raft::Error gerr = got.entries(got.first_index(), got.last_index() + 1, raft::kNoLimit, &ge);
  if (werr != raft::Error::kOk || gerr != raft::Error::kOk || we.size() != ge.size())
    return "entries unreadable (" + std::string(raft::to_string(gerr)) + ")";
  for (size_t i = 0; i < we.size(); ++i) {
    if (!(we[i] == ge[i])) {
      return "entry " + str(we[i].index) + " of term " + str(ge[i].term) + " instead of term " +
             str(we[i].term) + (we[i].term == ge[i].term ? " (different data)" : "");
    }
  }
  return "";
}

}  // namespace

// FaultFileSystem fails only the very next syncs; a sync failure deeper inside one Wal operation
// (a new segment's directory sync during rotation, the directory sync after deleting segments)
// needs the count of syncs to let pass first.
class SimStorage::FailingFileSystem final : public storage::ForwardingFileSystem {
 public:
  explicit FailingFileSystem(storage::FaultFileSystem* fs) : ForwardingFileSystem(fs) {}

  void fail_after(uint64_t skip) {
    armed_ = true;
    skip_ = skip;
    reached_ = false;
  }
  bool disarm() {
    armed_ = false;
    return reached_;
  }

  storage::Status sync_dir(const std::string& dir) override {
    CHORUS_RETURN_IF_ERROR(check_sync());
    return ForwardingFileSystem::sync_dir(dir);
  }

 private:
  storage::Status on_file_sync() override { return check_sync(); }

  storage::Status check_sync() {
    if (!armed_) return storage::Status::ok();
    if (skip_ > 0) {
      --skip_;
      return storage::Status::ok();
    }
    armed_ = false;
    reached_ = true;
    return storage::Status::io_error("fsync: input/output error (injected)");
  }

  bool armed_ = false;
  bool reached_ = false;
  uint64_t skip_ = 0;
};

SimStorage::SimStorage(const std::map<raft::GroupId, raft::ConfState>& groups,
                       const storage::WalOptions& options)
    : failing_(std::make_unique<FailingFileSystem>(&fs_)), options_(options) {
  std::string err = open_wal();
  storage::Status st = storage::Status::ok();
  for (const auto& [group, conf] : groups) {
    if (!err.empty() || !st.is_ok()) break;
    st = wal_->bootstrap(group, conf);
    synced_.emplace(group, raft::MemoryLogStorage(conf));
  }
  if (!err.empty() || !st.is_ok()) {
    std::fprintf(stderr, "sim: cannot create a node's log: %s%s\n", err.c_str(),
                 st.to_string().c_str());
    std::abort();
  }
}

SimStorage::~SimStorage() = default;

const raft::LogStorage* SimStorage::view(raft::GroupId group) const {
  return wal_ != nullptr ? wal_->group(group) : nullptr;
}

const raft::LogStorage& SimStorage::durable(raft::GroupId group) const {
  if (const raft::LogStorage* v = view(group)) return *v;
  return synced_.at(group);
}

std::string SimStorage::open_wal() {
  storage::Status st = storage::Wal::open(failing_.get(), kWalDir, options_, &wal_);
  if (!st.is_ok()) {
    wal_.reset();
    if (disk_full_ && st.code() == storage::Status::Code::kNoSpace) return "";
    if (damaged() && st.code() == storage::Status::Code::kCorruption &&
        explained_by_damage(st.to_string())) {
      lost_reason_ = st.to_string();
      return "";
    }
    return "recovery failed: " + st.to_string();
  }
  return "";
}

// A refusal the injected damage explains: it names the damaged segment, or it is a gap in an
// earlier segment's entries that only a snapshot marker in the damaged one could have covered
// (segments before the gap were deleted by compaction; recovery reports the gap as the first
// damage, since cutting the log later would leave it).
bool SimStorage::explained_by_damage(const std::string& error) const {
  if (error.find(damaged_segment_) != std::string::npos) return true;
  if (error.find("is missing entries up to") == std::string::npos) return false;
  size_t at = error.find(std::string(kWalDir) + "/");
  if (at == std::string::npos) return false;
  at += std::string(kWalDir).size() + 1;
  std::string named = error.substr(at, damaged_segment_.size());
  return named.size() == damaged_segment_.size() && named < damaged_segment_;
}

void SimStorage::fill_disk(uint64_t slack) {
  disk_full_ = true;
  fs_.set_space_limit(fs_.bytes_used() + slack);
}

bool SimStorage::damage(uint64_t seed) {
  if (wal_ == nullptr) return false;
  std::vector<std::string> segments = wal_->segment_names();
  if (segments.size() < 2) return false;
  Rng rng(seed);
  // The newest segment but one: it holds entries a follower that lags may need, read back from
  // the file once the cache dropped them.
  const std::string& name = segments[segments.size() - 2];
  std::string path = storage::join_path(kWalDir, name);
  std::string* bytes = fs_.contents(path);
  if (bytes == nullptr || bytes->empty()) return false;
  uint64_t offset = rng.below(bytes->size());
  uint8_t mask = static_cast<uint8_t>(1u << rng.below(8));
  if (!fs_.damage(path, offset, mask)) return false;
  damaged_segment_ = name;
  return true;
}

bool SimStorage::damaged() {
  return !damaged_segment_.empty() && fs_.exists(storage::join_path(kWalDir, damaged_segment_));
}

void SimStorage::free_disk() {
  disk_full_ = false;
  fs_.set_space_limit(UINT64_MAX);
}

void SimStorage::fail_sync_after(uint64_t skip) {
  failing_->fail_after(skip);
}

bool SimStorage::clear_injected_failure() {
  return failing_->disarm();
}

void SimStorage::apply(raft::MemoryLogStorage* s, const Record& r) {
  if (auto* hs = std::get_if<raft::HardState>(&r)) {
    s->set_hard_state(*hs);
  } else if (auto* entries = std::get_if<std::vector<raft::Entry>>(&r)) {
    s->append(*entries);
  } else if (auto* snap = std::get_if<raft::Snapshot>(&r)) {
    // An installed snapshot replaces the whole log, as the Wal's record does.
    raft::HardState kept = s->hard_state();
    *s = raft::MemoryLogStorage();
    (void)s->apply_snapshot(*snap);
    s->set_hard_state(kept);
  } else if (auto* c = std::get_if<Compaction>(&r)) {
    const raft::SnapshotMetadata& m = c->snapshot.metadata;
    if (s->create_snapshot(m.index, m.conf_state, c->snapshot.data) == raft::Error::kOk) {
      (void)s->compact(c->compact_to);
    }
  }
}

void SimStorage::sync_model() {
  for (const Pending& p : pending_)
    apply(&synced_.at(p.group), p.record);
  pending_.clear();
}

storage::Status SimStorage::write(const storage::WalBatch& batch,
                                  const std::vector<GroupWrite>& writes) {
  static const std::vector<raft::Entry> kNone;
  for (const GroupWrite& w : writes) {
    // The records exactly as the engine wrote them (engine::append_ready).
    std::optional<raft::HardState> hs;
    if (w.hard_state != nullptr) hs = *w.hard_state;
    for (const engine::ReadyRecord& r :
         engine::ready_records(w.snapshot, w.entries != nullptr ? *w.entries : kNone, hs)) {
      if (r.snapshot != nullptr) {
        pending_.push_back({w.group, *r.snapshot});
      } else if (r.hard_state) {
        pending_.push_back({w.group, *r.hard_state});
      } else {
        pending_.push_back({w.group, std::vector<raft::Entry>(r.entries.begin(), r.entries.end())});
      }
    }
  }
  return wal_->write(batch);
}

storage::Status SimStorage::sync() {
  CHORUS_RETURN_IF_ERROR(wal_->sync());
  sync_model();
  return storage::Status::ok();
}

storage::Status SimStorage::snapshot_and_compact(raft::GroupId group, raft::Index index,
                                                 const raft::ConfState& cs, std::string data,
                                                 raft::Index compact_to) {
  const raft::LogStorage* log = view(group);
  raft::Snapshot snap;
  if (log->snapshot(&snap) != raft::Error::kOk || index <= snap.metadata.index)
    return storage::Status::ok();
  snap.metadata.index = index;
  snap.metadata.conf_state = cs;
  snap.data = std::move(data);
  if (log->term(index, &snap.metadata.term) != raft::Error::kOk) return storage::Status::ok();
  // The Wal never compacts behind its log's start; neither does the model.
  compact_to = std::max(compact_to, log->first_index() - 1);
  pending_.push_back({group, Compaction{snap, compact_to}});
  CHORUS_RETURN_IF_ERROR(wal_->compact(group, snap, compact_to));
  sync_model();
  return storage::Status::ok();
}

std::string SimStorage::crash(bool power_cut, uint64_t seed) {
  wal_.reset();
  if (power_cut) fs_.crash(seed, /*tear=*/true);
  return recover();
}

std::string SimStorage::reopen() {
  return wal_ != nullptr ? "" : recover();
}

std::string SimStorage::recover() {
  std::string err = open_wal();
  if (!err.empty() || wal_ == nullptr) return err;
  // The unsynced records one by one in write order (an entry is a record of its own), and
  // for each group, the prefixes of that sequence its recovered state matches. Recovery is
  // right when some prefix is matched by every group.
  std::vector<Pending> flat;
  for (const Pending& p : pending_) {
    if (auto* entries = std::get_if<std::vector<raft::Entry>>(&p.record)) {
      for (const raft::Entry& e : *entries)
        flat.push_back({p.group, std::vector<raft::Entry>{e}});
    } else {
      flat.push_back(p);
    }
  }
  std::vector<char> explained(flat.size() + 1, 1);
  std::string first_difference;
  for (const auto& [group, synced] : synced_) {
    const raft::LogStorage* got = wal_->group(group);
    if (got == nullptr) return "recovered no log of group " + str(group);
    raft::MemoryLogStorage candidate = synced;
    std::string diff = difference(candidate, *got);
    if (!diff.empty() && first_difference.empty())
      first_difference = "group " + str(group) + ": " + diff;
    bool matches = diff.empty();
    for (size_t k = 0; k <= flat.size(); ++k) {
      if (k > 0 && flat[k - 1].group == group) {
        apply(&candidate, flat[k - 1].record);
        matches = difference(candidate, *got).empty();
      }
      if (!matches) explained[k] = 0;
    }
  }
  size_t prefix = flat.size() + 1;
  for (size_t k = flat.size() + 1; k-- > 0;) {
    if (explained[k]) {
      prefix = k;
      break;
    }
  }
  if (prefix > flat.size()) {
    return "recovered " + first_difference + " synced, and no prefix of the " + str(flat.size()) +
           " unsynced records explains every group";
  }
  // What survived is durable now: the crash kept it, and Wal::open synced the rest.
  for (size_t k = 0; k < prefix; ++k)
    apply(&synced_.at(flat[k].group), flat[k].record);
  pending_.clear();
  return "";
}

}  // namespace chorus::sim
