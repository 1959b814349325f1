#include "storage/wal_format.h"

#include "base/coding.h"
#include "storage/crc32c.h"

namespace chorus::storage {
namespace {

using base::load_u32;
using base::load_u64;
using base::put_bytes;
using base::put_u32;
using base::put_u64;
using base::put_u8;
using base::Reader;

constexpr size_t kCrcOffset = 0;
constexpr size_t kLengthOffset = 4;
constexpr size_t kTypeOffset = 8;
constexpr size_t kGroupOffset = 16;
// Bound on ids in a decoded configuration, so a damaged count cannot ask for gigabytes.
constexpr uint32_t kMaxConfNodes = 1u << 16;

bool valid_type(uint8_t t) {
  return t >= 1 && t <= 5;
}

bool decode_conf_state(Reader* r, raft::ConfState* cs) {
  return r->u64s(kMaxConfNodes, &cs->voters) && r->u64s(kMaxConfNodes, &cs->voters_outgoing) &&
         r->u64s(kMaxConfNodes, &cs->learners) && r->u64s(kMaxConfNodes, &cs->learners_next) &&
         r->boolean(&cs->auto_leave);
}

}  // namespace

void append_record(std::string* out, RecordType type, raft::GroupId group,
                   std::string_view payload) {
  size_t start = out->size();
  out->resize(start + kRecordHeaderBytes, '\0');
  char* h = out->data() + start;
  for (int i = 0; i < 4; ++i)
    h[kLengthOffset + i] = static_cast<char>((payload.size() >> (8 * i)) & 0xff);
  h[kTypeOffset] = static_cast<char>(type);
  for (int i = 0; i < 8; ++i)
    h[kGroupOffset + i] = static_cast<char>((group >> (8 * i)) & 0xff);
  uint32_t crc = crc32c_extend(0, h + kLengthOffset, kRecordHeaderBytes - kLengthOffset);
  crc = crc32c_extend(crc, payload.data(), payload.size());
  for (int i = 0; i < 4; ++i)
    (*out)[start + kCrcOffset + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  out->append(payload);
  out->resize(start + record_size(payload.size()), '\0');
}

DecodeStatus decode_record(std::string_view bytes, RecordView* out, const char** why) {
  auto corrupt = [&](const char* reason) {
    if (why != nullptr) *why = reason;
    return DecodeStatus::kCorrupt;
  };
  if (bytes.size() < kRecordHeaderBytes) {
    for (char c : bytes)
      if (c != 0) return DecodeStatus::kTruncated;
    return DecodeStatus::kEnd;
  }
  const char* h = bytes.data();
  bool zero = true;
  for (size_t i = 0; i < kRecordHeaderBytes && zero; ++i)
    zero = h[i] == 0;
  if (zero) return DecodeStatus::kEnd;
  uint32_t length = load_u32(h + kLengthOffset);
  auto type = static_cast<uint8_t>(h[kTypeOffset]);
  if (!valid_type(type)) return corrupt("unknown record type");
  for (size_t i = kTypeOffset + 1; i < kGroupOffset; ++i)
    if (h[i] != 0) return corrupt("reserved header bytes are not zero");
  if (length > kMaxRecordPayloadBytes) return corrupt("record length out of range");
  size_t size = record_size(length);
  if (bytes.size() < size) return DecodeStatus::kTruncated;
  uint32_t crc = crc32c_extend(0, h + kLengthOffset, kRecordHeaderBytes - kLengthOffset + length);
  if (crc != load_u32(h + kCrcOffset)) return corrupt("checksum mismatch");
  for (size_t i = kRecordHeaderBytes + length; i < size; ++i)
    if (h[i] != 0) return corrupt("padding is not zero");
  out->type = static_cast<RecordType>(type);
  out->group = load_u64(h + kGroupOffset);
  out->payload = bytes.substr(kRecordHeaderBytes, length);
  out->size = size;
  return DecodeStatus::kOk;
}

std::string encode_segment_header(uint64_t sequence) {
  std::string out;
  put_u64(&out, kSegmentMagic);
  put_u32(&out, kWalVersion);
  put_u64(&out, sequence);
  return out;
}

bool decode_segment_header(std::string_view payload, uint64_t* sequence) {
  Reader r(payload);
  uint64_t magic = 0;
  uint32_t version = 0;
  return r.u64(&magic) && magic == kSegmentMagic && r.u32(&version) && version == kWalVersion &&
         r.u64(sequence) && r.done();
}

void encode_entry(const raft::Entry& e, std::string* out) {
  put_u64(out, e.term);
  put_u64(out, e.index);
  put_u8(out, static_cast<uint8_t>(e.type));
  out->append(e.data);
}

bool decode_entry(std::string_view payload, raft::Entry* out) {
  Reader r(payload);
  uint8_t type = 0;
  if (!r.u64(&out->term) || !r.u64(&out->index) || !r.u8(&type) || type > 1) return false;
  if (out->index == 0 || out->term == 0) return false;
  out->type = static_cast<raft::EntryType>(type);
  return r.bytes(r.remaining(), &out->data);
}

std::string encode_hard_state(const raft::HardState& hs) {
  std::string out;
  put_u64(&out, hs.term);
  put_u64(&out, hs.vote);
  put_u64(&out, hs.commit);
  return out;
}

bool decode_hard_state(std::string_view payload, raft::HardState* out) {
  Reader r(payload);
  return r.u64(&out->term) && r.u64(&out->vote) && r.u64(&out->commit) && r.done();
}

void encode_conf_state(const raft::ConfState& cs, std::string* out) {
  base::put_u64s(out, cs.voters);
  base::put_u64s(out, cs.voters_outgoing);
  base::put_u64s(out, cs.learners);
  base::put_u64s(out, cs.learners_next);
  put_u8(out, cs.auto_leave ? 1 : 0);
}

std::string encode_snapshot_marker(const SnapshotMarker& m) {
  std::string out;
  put_u64(&out, m.snapshot.metadata.index);
  put_u64(&out, m.snapshot.metadata.term);
  put_u64(&out, m.compact_to);
  put_u8(&out, m.replace ? 1 : 0);
  encode_conf_state(m.snapshot.metadata.conf_state, &out);
  put_bytes(&out, m.snapshot.data);
  return out;
}

bool decode_snapshot_marker(std::string_view payload, SnapshotMarker* out) {
  Reader r(payload);
  auto& md = out->snapshot.metadata;
  if (!r.u64(&md.index) || !r.u64(&md.term) || !r.u64(&out->compact_to) ||
      !r.boolean(&out->replace) || !decode_conf_state(&r, &md.conf_state) ||
      !r.bytes(&out->snapshot.data) || !r.done())
    return false;
  return out->compact_to <= md.index;
}

}  // namespace chorus::storage
