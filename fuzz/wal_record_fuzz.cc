// libFuzzer target: arbitrary bytes as write-ahead log records and as a whole segment file.
// Decoding and recovery must only ever return errors, never crash, and the read-only check must
// agree with recovery: verify() finds damage exactly when open() refuses the log, and cutting
// at the damage always leads to a log that opens and takes new writes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "storage/fault_fs.h"
#include "storage/wal.h"

namespace chorus::storage {
namespace {

const WalOptions kOptions{.segment_bytes = 64 << 10, .cache_bytes = 4 << 10};
constexpr int kMaxCuts = 16;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "wal_record_fuzz: %s\n", what);
    std::abort();
  }
}

void decode_payloads(std::string_view payload) {
  uint64_t sequence = 0;
  raft::Entry e;
  raft::HardState hs;
  SnapshotMarker m;
  (void)decode_segment_header(payload, &sequence);
  (void)decode_entry(payload, &e);
  (void)decode_hard_state(payload, &hs);
  (void)decode_snapshot_marker(payload, &m);
}

void decode_records(std::string_view bytes) {
  decode_payloads(bytes);
  size_t at = 0;
  while (at < bytes.size()) {
    RecordView rec;
    const char* why = nullptr;
    if (decode_record(bytes.substr(at), &rec, &why) != DecodeStatus::kOk) return;
    check(rec.size >= kRecordHeaderBytes && rec.size <= bytes.size() - at, "record size");
    decode_payloads(rec.payload);
    at += rec.size;
  }
}

// Reads everything the core could ask for.
void read_all(const Wal& wal) {
  for (raft::GroupId id : wal.groups()) {
    const raft::LogStorage* s = wal.group(id);
    check(s != nullptr, "listed group without storage");
    (void)s->hard_state();
    (void)s->conf_state();
    raft::Snapshot snap;
    (void)s->snapshot(&snap);
    raft::Term t = 0;
    (void)s->term(s->first_index() - 1, &t);
    if (s->last_index() >= s->first_index()) {
      std::vector<raft::Entry> entries;
      check(s->entries(s->first_index(), s->last_index() + 1, raft::kNoLimit, &entries) ==
                raft::Error::kOk,
            "recovered entries cannot be read");
    }
  }
}

void recover_segment(std::string_view bytes) {
  FaultFileSystem fs;
  check(fs.create_dir("wal").is_ok(), "create_dir");
  std::string path = join_path("wal", segment_name(1));
  {
    std::unique_ptr<WritableFile> f;
    check(fs.open_writable(path, &f).is_ok(), "open_writable");
    check(f->write_at(0, bytes).is_ok(), "write_at");
  }
  WalReport report;
  check(Wal::verify(&fs, "wal", &report).is_ok(), "verify failed to read");
  (void)report.to_string();
  std::unique_ptr<Wal> wal;
  Status st = Wal::open(&fs, "wal", kOptions, &wal);
  check(st.is_ok() == report.clean(), "verify and open disagree");
  for (int cut = 0; !st.is_ok(); ++cut) {
    check(st.code() == Status::Code::kCorruption, "open failed without damage");
    check(cut < kMaxCuts, "cutting at the damage does not converge");
    check(Wal::truncate_at_damage(&fs, "wal", &report).is_ok(), "truncate failed");
    st = Wal::open(&fs, "wal", kOptions, &wal);
  }
  read_all(*wal);
  // The recovered log takes a new write of every group and keeps it.
  WalBatch batch;
  std::vector<std::pair<raft::GroupId, raft::Index>> written;
  for (raft::GroupId id : wal->groups()) {
    const raft::LogStorage* s = wal->group(id);
    // Checksummed records may still hold absurd indexes; the log has no room after them.
    if (s->last_index() >= UINT64_MAX / 2) continue;
    raft::Index next = s->last_index() + 1;
    raft::Term term = 1;
    if (s->last_index() > 0) (void)s->term(s->last_index(), &term);
    batch.append(id, {{term == 0 ? 1 : term, next, raft::EntryType::kNormal, "fuzz"}});
    written.emplace_back(id, next);
  }
  check(wal->commit(batch).is_ok(), "a write after recovery failed");
  wal.reset();
  st = Wal::open(&fs, "wal", kOptions, &wal);
  check(st.is_ok(), "the log does not reopen after a write");
  for (const auto& [id, index] : written)
    check(wal->group(id) != nullptr && wal->group(id)->last_index() == index,
          "the write after recovery was lost");
  read_all(*wal);
}

}  // namespace
}  // namespace chorus::storage

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  chorus::storage::decode_records(bytes);
  chorus::storage::recover_segment(bytes);
  return 0;
}
