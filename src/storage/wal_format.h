// The on-disk format of the write-ahead log. A segment file is a sequence of records, each
// 8-byte aligned:
//
//   offset 0  u32 crc32c    over bytes 4..24 of the header and the payload
//          4  u32 length    payload bytes
//          8  u8  type      RecordType
//          9  7 bytes       reserved, zero
//         16  u64 group     the Raft group the record belongs to
//         24  payload, then zero padding to a multiple of 8
//
// Segments are preallocated and read as zeros past the last record, so an all-zero header marks
// the end of the written data. All integers are little-endian.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "raft/types.h"

namespace chorus::storage {

enum class RecordType : uint8_t {
  kSegmentHeader = 1,  // first record of every segment: magic, version, sequence number
  kEntry = 2,          // one log entry; an index at or below the group's last truncates after it
  kHardState = 3,      // term, vote, commit
  kSnapshot = 4,       // snapshot marker: entries it covers may be dropped
  kGroupRemoved = 5,   // the group is gone: its log and state are forgotten (empty payload)
};

inline constexpr size_t kRecordHeaderBytes = 24;
inline constexpr size_t kRecordAlign = 8;
// No single record may exceed this: a length beyond it is damage, not data.
inline constexpr uint32_t kMaxRecordPayloadBytes = 256u << 20;
inline constexpr uint64_t kSegmentMagic = 0x4c41575355524f48ULL;  // "HORUSWAL" read backwards
inline constexpr uint32_t kWalVersion = 1;

inline size_t record_size(size_t payload_bytes) {
  return kRecordHeaderBytes + (payload_bytes + kRecordAlign - 1) / kRecordAlign * kRecordAlign;
}

// Appends one framed record to `out`.
void append_record(std::string* out, RecordType type, raft::GroupId group,
                   std::string_view payload);

struct RecordView {
  RecordType type = RecordType::kEntry;
  raft::GroupId group = 0;
  std::string_view payload;
  size_t size = 0;  // bytes the record occupies, padding included
};

enum class DecodeStatus : uint8_t {
  kOk,
  kEnd,        // an all-zero header: no more records were written here
  kTruncated,  // the record runs past the end of the input
  kCorrupt,    // framing or checksum is wrong
};

// Decodes the record at the start of `bytes`. Never reads outside `bytes`. On kCorrupt,
// `why` (if given) says what was wrong.
DecodeStatus decode_record(std::string_view bytes, RecordView* out, const char** why = nullptr);

// Payloads.
std::string encode_segment_header(uint64_t sequence);
bool decode_segment_header(std::string_view payload, uint64_t* sequence);

void encode_entry(const raft::Entry& e, std::string* out);
bool decode_entry(std::string_view payload, raft::Entry* out);

std::string encode_hard_state(const raft::HardState& hs);
bool decode_hard_state(std::string_view payload, raft::HardState* out);

// A snapshot marker. `replace` drops the whole log (a snapshot installed from the leader);
// otherwise entries up to `compact_to` are dropped and later ones kept (a local snapshot).
struct SnapshotMarker {
  raft::Snapshot snapshot;
  raft::Index compact_to = 0;
  bool replace = false;
};
std::string encode_snapshot_marker(const SnapshotMarker& m);
bool decode_snapshot_marker(std::string_view payload, SnapshotMarker* out);

void encode_conf_state(const raft::ConfState& cs, std::string* out);

}  // namespace chorus::storage
