// The wire format between Chorus nodes: Raft messages in checksummed frames. Pure functions and
// a byte-fed frame decoder, no I/O, so every rule here is testable and fuzzable without sockets.
//
// A frame is a 9-byte header and a payload:
//
//   offset 0  u32 length   payload bytes, at most the receiver's max_frame_bytes
//          4  u8  type     FrameType
//          5  u32 crc32c   over bytes 0..5 of the header and the payload
//          9  payload
//
// All integers are little-endian. The checksum is not redundant with TCP's: the 16-bit TCP
// checksum lets through roughly one damaged segment in millions that the network, a NIC with
// checksum offload or a middlebox corrupted (Stone & Partridge, "When the CRC and TCP checksum
// disagree", SIGCOMM 2000), and a Raft entry damaged in flight would be persisted on a quorum
// and applied forever. CRC-32C runs on the SSE4.2 instruction, cheaper than the copy into the
// socket, so every frame carries one.
//
// Payloads:
//   kHello, kHelloAck   Hello: u64 magic, u32 version, u64 cluster id, u64 sender, u64 receiver
//   kReject             u32-length-prefixed reason, UTF-8 text for the operator
//   kMessages           u32 count, then each raft::Message (see encode_message)
//   kPing, kPong        u64 opaque token; a pong echoes the ping's token
//   kJoin               u64 magic, u32 version, u32 count, then count u32-length-prefixed peer URLs
//   kJoinAck            u64 cluster id, u64 member id, u64 the answering node's applied index,
//                       u32 count, then per member: u64 id, u32 count, u32-length-prefixed URLs
//   kHashKv             u64 magic, u32 version, u64 cluster id, i64 revision (0: the current)
//   kHashKvAck          u32 hash, i64 the answering member's revision, i64 its compaction
//
// Decoders refuse rather than guess: unknown frame or enum values, non-canonical booleans,
// trailing bytes, counts the remaining bytes cannot hold (checked before anything is allocated
// for them) and counts beyond CodecLimits. Whatever decodes re-encodes to the same bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "raft/types.h"

namespace chorus::transport {

enum class FrameType : uint8_t {
  kHello = 1,     // dialer -> acceptor: who I am and whom I expect to reach
  kHelloAck = 2,  // acceptor -> dialer: the same, from the acceptor's side
  kReject = 3,    // acceptor -> dialer: the handshake failed, then the connection closes
  kMessages = 4,  // dialer -> acceptor: a batch of Raft messages, for any groups
  kPing = 5,      // dialer -> acceptor: round-trip probe
  kPong = 6,      // acceptor -> dialer: the probe's echo
  // A member starting with an empty data directory to join an existing cluster asks a peer
  // which member id the cluster gave its peer URLs (MemberAdd chose it) and who the members
  // are; the answer is kJoinAck, or kReject, and the connection closes.
  kJoin = 7,
  kJoinAck = 8,
  // A member's corruption check asks another member for the hash of its key-value history at
  // a revision (etcd's /members/hashkv on the peer port); the answer is kHashKvAck, or kReject
  // with the reason, and the connection closes.
  kHashKv = 9,
  kHashKvAck = 10,
};
inline constexpr uint8_t kMaxFrameType = 10;
const char* to_string(FrameType type);

inline constexpr size_t kFrameHeaderBytes = 9;
inline constexpr uint32_t kDefaultMaxFrameBytes = 64u << 20;

inline constexpr uint64_t kHelloMagic = 0x544e5355524f4843ULL;  // "CHORUSNT" read backwards
inline constexpr uint32_t kProtocolVersion = 1;
// A reject reason longer than this is cut; the reason is for a log line, not for data.
inline constexpr size_t kMaxRejectReasonBytes = 1024;

// Bounds on counts inside a kMessages payload. Memory is already bounded by the frame size
// (every element costs input bytes, checked before allocation); these catch a peer whose
// batches are absurd even though they fit, and give the fuzzer a smaller space.
struct CodecLimits {
  uint32_t max_messages_per_frame = 1u << 20;
  uint32_t max_entries_per_message = 1u << 20;
  uint32_t max_nodes_per_conf_list = 1u << 16;
};

// ---- frames ----

struct Frame {
  FrameType type = FrameType::kMessages;
  std::string payload;
};

// Appends a whole frame to `out`. The payload must fit in a u32.
void append_frame(std::string* out, FrameType type, std::string_view payload);
// Appends only the header of a frame with this payload, for writes that gather the header and a
// payload kept elsewhere without copying it.
void append_frame_header(std::string* out, FrameType type, std::string_view payload);

// Splits a byte stream into frames. Bytes may arrive in chunks cut anywhere; a frame is handed
// out once complete. A header announcing more than max_frame_bytes or an unknown type is refused
// as soon as the header is in, before its payload is buffered. Errors are sticky: the stream has
// lost its framing and the connection must close.
class FrameDecoder {
 public:
  enum class Result : uint8_t { kFrame, kNeedMore, kError };

  explicit FrameDecoder(uint32_t max_frame_bytes = kDefaultMaxFrameBytes)
      : max_frame_bytes_(max_frame_bytes) {}

  // A connection raises its limit once the peer has proven who it is.
  void set_max_frame_bytes(uint32_t max_frame_bytes) { max_frame_bytes_ = max_frame_bytes; }
  // Adds received bytes. Ignored after an error.
  void feed(std::string_view bytes);
  // Takes the next complete frame out of the buffer into `out`.
  Result next(Frame* out);
  // Why the stream was refused, after next() returned kError; nullptr before.
  const char* error() const { return error_; }
  // Bytes of a frame not yet complete. Non-zero when the stream ends means a truncated frame.
  size_t buffered_bytes() const { return buffer_.size() - start_; }

 private:
  Result fail(const char* why);

  uint32_t max_frame_bytes_;
  std::string buffer_;
  size_t start_ = 0;  // bytes before this offset were handed out already
  const char* error_ = nullptr;
};

// ---- payloads ----

struct Hello {
  uint64_t magic = kHelloMagic;
  uint32_t version = kProtocolVersion;
  uint64_t cluster_id = 0;
  raft::NodeId from = raft::kNoNode;
  raft::NodeId to = raft::kNoNode;
  bool operator==(const Hello&) const = default;
};
std::string encode_hello(const Hello& h);
// Refuses only malformed bytes; whether magic, version and ids are acceptable is the caller's
// decision, so it can say which one was wrong.
[[nodiscard]] bool decode_hello(std::string_view payload, Hello* out);

std::string encode_reject(std::string_view reason);
[[nodiscard]] bool decode_reject(std::string_view payload, std::string* reason);

struct JoinRequest {
  uint64_t magic = kHelloMagic;
  uint32_t version = kProtocolVersion;
  std::vector<std::string> peer_urls;
  bool operator==(const JoinRequest&) const = default;
};
// A join request must fit an unauthenticated frame; these bound it well inside that.
inline constexpr uint32_t kMaxJoinUrls = 16;
inline constexpr uint32_t kMaxJoinUrlBytes = 200;
std::string encode_join(const JoinRequest& j);
[[nodiscard]] bool decode_join(std::string_view payload, JoinRequest* out);

struct JoinAck {
  uint64_t cluster_id = 0;
  raft::NodeId member_id = raft::kNoNode;
  // How far the answering node has applied its log: of several answers, the one applied
  // furthest knows the latest membership.
  uint64_t applied_index = 0;
  struct Member {
    raft::NodeId id = raft::kNoNode;
    std::vector<std::string> peer_urls;
    bool operator==(const Member&) const = default;
  };
  std::vector<Member> members;  // every member, so the joiner can reach them at once
  bool operator==(const JoinAck&) const = default;
};
// Bounds on an answer: a cluster far larger than any Raft group runs with still fits.
inline constexpr uint32_t kMaxJoinMembers = 1024;
inline constexpr uint32_t kMaxJoinAckBytes = 1u << 20;
std::string encode_join_ack(const JoinAck& a);
[[nodiscard]] bool decode_join_ack(std::string_view payload, JoinAck* out);

struct HashKvRequest {
  uint64_t magic = kHelloMagic;
  uint32_t version = kProtocolVersion;
  uint64_t cluster_id = 0;
  int64_t revision = 0;
  bool operator==(const HashKvRequest&) const = default;
};
std::string encode_hash_kv(const HashKvRequest& q);
[[nodiscard]] bool decode_hash_kv(std::string_view payload, HashKvRequest* out);

struct HashKvAck {
  uint32_t hash = 0;
  int64_t revision = 0;          // the answering member's current revision
  int64_t compact_revision = 0;  // and its compaction
  bool operator==(const HashKvAck&) const = default;
};
std::string encode_hash_kv_ack(const HashKvAck& a);
[[nodiscard]] bool decode_hash_kv_ack(std::string_view payload, HashKvAck* out);

std::string encode_ping(uint64_t token);
[[nodiscard]] bool decode_ping(std::string_view payload, uint64_t* token);

// Whether a message may travel between nodes: the local inputs (Hup, Beat, CheckQuorum,
// SnapStatus, Unreachable) never do, and a decoder refuses them.
bool is_sendable(raft::MessageType type);

// Appends one message, without the batch count. Entry, node-list and byte-string counts must fit
// in a u32 (raft's own limits keep them far below).
void encode_message(const raft::Message& m, std::string* out);
// A whole kMessages payload: the count, then each message.
std::string encode_messages(const std::vector<raft::Message>& messages);
// Decodes a kMessages payload, appending to `out`. On failure `out` may hold a partial batch the
// caller must discard, and `why` (if given) says what was wrong.
[[nodiscard]] bool decode_messages(std::string_view payload, std::vector<raft::Message>* out,
                                   const CodecLimits& limits = {}, const char** why = nullptr);

// Field-by-field equality, the snapshot compared by value; for tests and the fuzzer.
bool same_message(const raft::Message& a, const raft::Message& b);

}  // namespace chorus::transport
