#include "transport/codec.h"

#include <memory>

#include "base/coding.h"
#include "storage/crc32c.h"

namespace chorus::transport {
namespace {

using base::put_bytes;
using base::put_u32;
using base::put_u64;
using base::put_u8;
using base::Reader;

// The smallest encodings, for refusing a count the remaining bytes cannot hold. An entry: term,
// index, type and an empty data string. A message: every fixed field, no entries, no snapshot.
constexpr size_t kMinEntryBytes = 8 + 8 + 1 + 4;
constexpr size_t kMinMessageBytes = 8 + 1 + 8 * 5 + 4 + 8 + 1 + 8 + 8 + 1;
constexpr size_t kHelloBytes = 8 + 4 + 8 + 8 + 8;
constexpr size_t kNodeIdBytes = 8;

constexpr uint8_t kMaxMessageType = static_cast<uint8_t>(raft::MessageType::kReadIndexResp);
constexpr uint8_t kMaxEntryType = static_cast<uint8_t>(raft::EntryType::kConfChange);

uint32_t frame_crc(const char* header, std::string_view payload) {
  uint32_t crc = storage::crc32c_extend(0, header, 5);
  return storage::crc32c_extend(crc, payload.data(), payload.size());
}

void put_bool(std::string* out, bool v) {
  put_u8(out, v ? 1 : 0);
}

bool fail(const char** why, const char* what) {
  if (why != nullptr) *why = what;
  return false;
}

void put_nodes(std::string* out, const std::vector<raft::NodeId>& nodes) {
  put_u32(out, static_cast<uint32_t>(nodes.size()));
  for (raft::NodeId id : nodes)
    put_u64(out, id);
}

bool get_nodes(Reader* r, const CodecLimits& limits, std::vector<raft::NodeId>* nodes,
               const char** why) {
  uint32_t n = 0;
  if (!r->u32(&n)) return fail(why, "truncated node list");
  if (n > limits.max_nodes_per_conf_list) return fail(why, "node list over the limit");
  if (n > r->remaining() / kNodeIdBytes) return fail(why, "node count beyond the bytes");
  nodes->resize(n);
  for (raft::NodeId& id : *nodes)
    if (!r->u64(&id)) return fail(why, "truncated node list");
  return true;
}

void put_snapshot(std::string* out, const raft::Snapshot& s) {
  put_u64(out, s.metadata.index);
  put_u64(out, s.metadata.term);
  const raft::ConfState& cs = s.metadata.conf_state;
  put_nodes(out, cs.voters);
  put_nodes(out, cs.voters_outgoing);
  put_nodes(out, cs.learners);
  put_nodes(out, cs.learners_next);
  put_bool(out, cs.auto_leave);
  put_bytes(out, s.data);
}

bool get_snapshot(Reader* r, const CodecLimits& limits, raft::Snapshot* s, const char** why) {
  raft::ConfState& cs = s->metadata.conf_state;
  if (!r->u64(&s->metadata.index) || !r->u64(&s->metadata.term))
    return fail(why, "truncated snapshot metadata");
  if (!get_nodes(r, limits, &cs.voters, why) || !get_nodes(r, limits, &cs.voters_outgoing, why) ||
      !get_nodes(r, limits, &cs.learners, why) || !get_nodes(r, limits, &cs.learners_next, why))
    return false;
  if (!r->boolean(&cs.auto_leave)) return fail(why, "bad auto_leave");
  if (!r->bytes(&s->data)) return fail(why, "truncated snapshot data");
  return true;
}

bool get_entries(Reader* r, const CodecLimits& limits, std::vector<raft::Entry>* entries,
                 const char** why) {
  uint32_t n = 0;
  if (!r->u32(&n)) return fail(why, "truncated entry count");
  if (n > limits.max_entries_per_message) return fail(why, "entry count over the limit");
  if (n > r->remaining() / kMinEntryBytes) return fail(why, "entry count beyond the bytes");
  entries->resize(n);
  for (raft::Entry& e : *entries) {
    uint8_t type = 0;
    if (!r->u64(&e.term) || !r->u64(&e.index) || !r->u8(&type)) return fail(why, "truncated entry");
    if (type > kMaxEntryType) return fail(why, "unknown entry type");
    e.type = static_cast<raft::EntryType>(type);
    if (!r->bytes(&e.data)) return fail(why, "truncated entry data");
  }
  return true;
}

bool get_message(Reader* r, const CodecLimits& limits, raft::Message* m, const char** why) {
  uint8_t type = 0;
  if (!r->u64(&m->group) || !r->u8(&type)) return fail(why, "truncated message");
  if (type > kMaxMessageType) return fail(why, "unknown message type");
  m->type = static_cast<raft::MessageType>(type);
  if (!is_sendable(m->type)) return fail(why, "local message type on the wire");
  if (!r->u64(&m->from) || !r->u64(&m->to) || !r->u64(&m->term) || !r->u64(&m->log_term) ||
      !r->u64(&m->index))
    return fail(why, "truncated message");
  if (!get_entries(r, limits, &m->entries, why)) return false;
  if (!r->u64(&m->commit)) return fail(why, "truncated message");
  if (!r->boolean(&m->reject)) return fail(why, "bad reject flag");
  bool has_snapshot = false;
  if (!r->u64(&m->reject_hint) || !r->u64(&m->context)) return fail(why, "truncated message");
  if (!r->boolean(&has_snapshot)) return fail(why, "bad snapshot flag");
  if (has_snapshot) {
    auto snap = std::make_shared<raft::Snapshot>();
    if (!get_snapshot(r, limits, snap.get(), why)) return false;
    m->snapshot = std::move(snap);
  }
  return true;
}

}  // namespace

const char* to_string(FrameType type) {
  switch (type) {
    case FrameType::kHello:
      return "Hello";
    case FrameType::kHelloAck:
      return "HelloAck";
    case FrameType::kReject:
      return "Reject";
    case FrameType::kMessages:
      return "Messages";
    case FrameType::kPing:
      return "Ping";
    case FrameType::kPong:
      return "Pong";
    case FrameType::kJoin:
      return "Join";
    case FrameType::kJoinAck:
      return "JoinAck";
    case FrameType::kHashKv:
      return "HashKv";
    case FrameType::kHashKvAck:
      return "HashKvAck";
  }
  return "?";
}

void append_frame_header(std::string* out, FrameType type, std::string_view payload) {
  size_t at = out->size();
  put_u32(out, static_cast<uint32_t>(payload.size()));
  put_u8(out, static_cast<uint8_t>(type));
  put_u32(out, frame_crc(out->data() + at, payload));
}

void append_frame(std::string* out, FrameType type, std::string_view payload) {
  out->reserve(out->size() + kFrameHeaderBytes + payload.size());
  append_frame_header(out, type, payload);
  out->append(payload);
}

void FrameDecoder::feed(std::string_view bytes) {
  if (error_ != nullptr || bytes.empty()) return;
  // Drop what was handed out; what stays is at most one partial frame.
  if (start_ > 0) {
    buffer_.erase(0, start_);
    start_ = 0;
  }
  buffer_.append(bytes);
}

FrameDecoder::Result FrameDecoder::fail(const char* why) {
  error_ = why;
  buffer_.clear();
  start_ = 0;
  return Result::kError;
}

FrameDecoder::Result FrameDecoder::next(Frame* out) {
  if (error_ != nullptr) return Result::kError;
  size_t available = buffer_.size() - start_;
  if (available < kFrameHeaderBytes) return Result::kNeedMore;
  const char* header = buffer_.data() + start_;
  uint32_t length = base::load_u32(header);
  uint8_t type = static_cast<uint8_t>(header[4]);
  // Judged on the header alone, so a hostile length never makes us buffer its payload.
  if (type == 0 || type > kMaxFrameType) return fail("unknown frame type");
  if (length > max_frame_bytes_) return fail("frame longer than max_frame_bytes");
  if (available - kFrameHeaderBytes < length) return Result::kNeedMore;
  std::string_view payload(header + kFrameHeaderBytes, length);
  if (frame_crc(header, payload) != base::load_u32(header + 5)) return fail("frame checksum");
  out->type = static_cast<FrameType>(type);
  out->payload.assign(payload);
  start_ += kFrameHeaderBytes + length;
  if (start_ == buffer_.size()) {
    buffer_.clear();
    start_ = 0;
  }
  return Result::kFrame;
}

std::string encode_hello(const Hello& h) {
  std::string out;
  put_u64(&out, h.magic);
  put_u32(&out, h.version);
  put_u64(&out, h.cluster_id);
  put_u64(&out, h.from);
  put_u64(&out, h.to);
  return out;
}

bool decode_hello(std::string_view payload, Hello* out) {
  if (payload.size() != kHelloBytes) return false;
  Reader r(payload);
  return r.u64(&out->magic) && r.u32(&out->version) && r.u64(&out->cluster_id) &&
         r.u64(&out->from) && r.u64(&out->to);
}

std::string encode_reject(std::string_view reason) {
  std::string out;
  put_bytes(&out, reason.substr(0, kMaxRejectReasonBytes));
  return out;
}

bool decode_reject(std::string_view payload, std::string* reason) {
  Reader r(payload);
  uint32_t n = 0;
  return r.u32(&n) && n <= kMaxRejectReasonBytes && r.bytes(n, reason) && r.done();
}

namespace {

void put_urls(std::string* out, const std::vector<std::string>& urls) {
  put_u32(out, static_cast<uint32_t>(urls.size()));
  for (const std::string& u : urls)
    put_bytes(out, u);
}

bool read_urls(Reader* r, std::vector<std::string>* urls) {
  uint32_t count = 0;
  if (!r->u32(&count) || count > kMaxJoinUrls) return false;
  urls->clear();
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t n = 0;
    std::string url;
    if (!r->u32(&n) || n > kMaxJoinUrlBytes || !r->bytes(n, &url)) return false;
    urls->push_back(std::move(url));
  }
  return true;
}

}  // namespace

std::string encode_join(const JoinRequest& j) {
  std::string out;
  put_u64(&out, j.magic);
  put_u32(&out, j.version);
  put_urls(&out, j.peer_urls);
  return out;
}

bool decode_join(std::string_view payload, JoinRequest* out) {
  Reader r(payload);
  return r.u64(&out->magic) && r.u32(&out->version) && read_urls(&r, &out->peer_urls) && r.done();
}

std::string encode_join_ack(const JoinAck& a) {
  std::string out;
  put_u64(&out, a.cluster_id);
  put_u64(&out, a.member_id);
  put_u64(&out, a.applied_index);
  put_u32(&out, static_cast<uint32_t>(a.members.size()));
  for (const JoinAck::Member& m : a.members) {
    put_u64(&out, m.id);
    put_urls(&out, m.peer_urls);
  }
  return out;
}

bool decode_join_ack(std::string_view payload, JoinAck* out) {
  Reader r(payload);
  uint32_t count = 0;
  if (!r.u64(&out->cluster_id) || !r.u64(&out->member_id) || !r.u64(&out->applied_index) ||
      !r.u32(&count) || count > kMaxJoinMembers)
    return false;
  out->members.clear();
  for (uint32_t i = 0; i < count; ++i) {
    JoinAck::Member m;
    if (!r.u64(&m.id) || !read_urls(&r, &m.peer_urls)) return false;
    out->members.push_back(std::move(m));
  }
  return r.done();
}

std::string encode_hash_kv(const HashKvRequest& q) {
  std::string out;
  put_u64(&out, q.magic);
  put_u32(&out, q.version);
  put_u64(&out, q.cluster_id);
  put_u64(&out, static_cast<uint64_t>(q.revision));
  return out;
}

bool decode_hash_kv(std::string_view payload, HashKvRequest* out) {
  Reader r(payload);
  uint64_t revision = 0;
  if (!r.u64(&out->magic) || !r.u32(&out->version) || !r.u64(&out->cluster_id) ||
      !r.u64(&revision) || !r.done())
    return false;
  out->revision = static_cast<int64_t>(revision);
  return out->revision >= 0;
}

std::string encode_hash_kv_ack(const HashKvAck& a) {
  std::string out;
  put_u32(&out, a.hash);
  put_u64(&out, static_cast<uint64_t>(a.revision));
  put_u64(&out, static_cast<uint64_t>(a.compact_revision));
  return out;
}

bool decode_hash_kv_ack(std::string_view payload, HashKvAck* out) {
  Reader r(payload);
  uint64_t revision = 0;
  uint64_t compact = 0;
  if (!r.u32(&out->hash) || !r.u64(&revision) || !r.u64(&compact) || !r.done()) return false;
  out->revision = static_cast<int64_t>(revision);
  out->compact_revision = static_cast<int64_t>(compact);
  return out->revision >= 0 && out->compact_revision >= 0;
}

std::string encode_ping(uint64_t token) {
  std::string out;
  put_u64(&out, token);
  return out;
}

bool decode_ping(std::string_view payload, uint64_t* token) {
  Reader r(payload);
  return r.u64(token) && r.done();
}

bool is_sendable(raft::MessageType type) {
  return !raft::is_local(type);
}

void encode_message(const raft::Message& m, std::string* out) {
  put_u64(out, m.group);
  put_u8(out, static_cast<uint8_t>(m.type));
  put_u64(out, m.from);
  put_u64(out, m.to);
  put_u64(out, m.term);
  put_u64(out, m.log_term);
  put_u64(out, m.index);
  put_u32(out, static_cast<uint32_t>(m.entries.size()));
  for (const raft::Entry& e : m.entries) {
    put_u64(out, e.term);
    put_u64(out, e.index);
    put_u8(out, static_cast<uint8_t>(e.type));
    put_bytes(out, e.data);
  }
  put_u64(out, m.commit);
  put_bool(out, m.reject);
  put_u64(out, m.reject_hint);
  put_u64(out, m.context);
  put_bool(out, m.snapshot != nullptr);
  if (m.snapshot != nullptr) put_snapshot(out, *m.snapshot);
}

std::string encode_messages(const std::vector<raft::Message>& messages) {
  std::string out;
  put_u32(&out, static_cast<uint32_t>(messages.size()));
  for (const raft::Message& m : messages)
    encode_message(m, &out);
  return out;
}

bool decode_messages(std::string_view payload, std::vector<raft::Message>* out,
                     const CodecLimits& limits, const char** why) {
  Reader r(payload);
  uint32_t n = 0;
  if (!r.u32(&n)) return fail(why, "truncated message count");
  if (n > limits.max_messages_per_frame) return fail(why, "message count over the limit");
  if (n > r.remaining() / kMinMessageBytes) return fail(why, "message count beyond the bytes");
  out->reserve(out->size() + n);
  for (uint32_t i = 0; i < n; ++i)
    if (!get_message(&r, limits, &out->emplace_back(), why)) return false;
  if (!r.done()) return fail(why, "bytes after the last message");
  return true;
}

bool same_message(const raft::Message& a, const raft::Message& b) {
  if (a.group != b.group || a.type != b.type || a.from != b.from || a.to != b.to ||
      a.term != b.term || a.log_term != b.log_term || a.index != b.index ||
      a.entries != b.entries || a.commit != b.commit || a.reject != b.reject ||
      a.reject_hint != b.reject_hint || a.context != b.context)
    return false;
  if ((a.snapshot == nullptr) != (b.snapshot == nullptr)) return false;
  if (a.snapshot == nullptr) return true;
  return a.snapshot->metadata == b.snapshot->metadata && a.snapshot->data == b.snapshot->data;
}

}  // namespace chorus::transport
