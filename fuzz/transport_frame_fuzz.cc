// libFuzzer target: arbitrary bytes as a peer's TCP stream and as a batch of Raft messages.
// The first input byte seeds the sizes of the chunks the stream is fed in; the rest is the
// stream. Decoding must only ever refuse, never crash; cutting the stream differently must not
// change which frames come out or whether it fails; and whatever decodes must encode back to the
// same bytes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "transport/codec.h"

namespace chorus::transport {
namespace {

// Small enough that the fuzzer reaches the limits, large enough for real batches.
constexpr uint32_t kMaxFrameBytes = 1 << 16;
const CodecLimits kSmallLimits{
    .max_messages_per_frame = 8, .max_entries_per_message = 8, .max_nodes_per_conf_list = 4};

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "transport_frame_fuzz: %s\n", what);
    std::abort();
  }
}

void check_messages(std::string_view payload) {
  std::vector<raft::Message> messages;
  const char* why = nullptr;
  if (decode_messages(payload, &messages, {}, &why)) {
    check(encode_messages(messages) == payload, "a batch does not re-encode to its bytes");
    for (const raft::Message& m : messages)
      check(is_sendable(m.type), "a local message type was accepted");
    std::vector<raft::Message> again;
    check(decode_messages(encode_messages(messages), &again), "a re-encoded batch is refused");
    check(again.size() == messages.size(), "a re-encoded batch changed size");
    for (size_t i = 0; i < again.size(); ++i)
      check(same_message(again[i], messages[i]), "a re-encoded message changed");
  } else {
    check(why != nullptr, "a refusal without a reason");
  }
  // Tighter limits only ever refuse more.
  std::vector<raft::Message> limited;
  if (decode_messages(payload, &limited, kSmallLimits)) {
    check(!messages.empty() || encode_messages({}) == payload,
          "small limits accepted what the default limits refused");
    check(encode_messages(limited) == payload, "a batch under small limits does not re-encode");
  }
}

void check_payload(const Frame& f) {
  switch (f.type) {
    case FrameType::kHello:
    case FrameType::kHelloAck: {
      Hello h;
      if (decode_hello(f.payload, &h)) check(encode_hello(h) == f.payload, "hello re-encode");
      break;
    }
    case FrameType::kReject: {
      std::string reason;
      if (decode_reject(f.payload, &reason))
        check(encode_reject(reason) == f.payload, "reject re-encode");
      break;
    }
    case FrameType::kMessages:
      check_messages(f.payload);
      break;
    case FrameType::kPing:
    case FrameType::kPong: {
      uint64_t token = 0;
      if (decode_ping(f.payload, &token)) check(encode_ping(token) == f.payload, "ping re-encode");
      break;
    }
    case FrameType::kJoin: {
      JoinRequest j;
      if (decode_join(f.payload, &j)) {
        check(encode_join(j) == f.payload, "join re-encode");
        check(j.peer_urls.size() <= kMaxJoinUrls, "a join over the URL limit was accepted");
      }
      break;
    }
    case FrameType::kJoinAck: {
      JoinAck a;
      if (decode_join_ack(f.payload, &a)) check(encode_join_ack(a) == f.payload, "ack re-encode");
      break;
    }
    case FrameType::kHashKv: {
      HashKvRequest q;
      if (decode_hash_kv(f.payload, &q)) {
        check(encode_hash_kv(q) == f.payload, "hash request re-encode");
        check(q.revision >= 0, "a negative revision was accepted");
      }
      break;
    }
    case FrameType::kHashKvAck: {
      HashKvAck a;
      if (decode_hash_kv_ack(f.payload, &a))
        check(encode_hash_kv_ack(a) == f.payload, "hash answer re-encode");
      break;
    }
  }
}

struct Outcome {
  std::vector<Frame> frames;
  bool failed = false;
  size_t buffered = 0;
};

// Feeds `stream` in chunks whose sizes come from `seed` (0: all at once).
Outcome decode_stream(std::string_view stream, uint8_t seed) {
  Outcome out;
  FrameDecoder d(kMaxFrameBytes);
  uint32_t state = seed * 2654435761u + 1;
  size_t at = 0;
  while (at < stream.size() && !out.failed) {
    size_t n = stream.size() - at;
    if (seed != 0) {
      state = state * 1103515245u + 12345u;
      n = std::min<size_t>(n, (state >> 16) % 37);
    }
    d.feed(stream.substr(at, n));
    at += n;
    for (;;) {
      Frame f;
      FrameDecoder::Result r = d.next(&f);
      if (r == FrameDecoder::Result::kNeedMore) break;
      if (r == FrameDecoder::Result::kError) {
        check(d.error() != nullptr, "an error without a reason");
        out.failed = true;
        break;
      }
      out.frames.push_back(std::move(f));
    }
  }
  out.buffered = out.failed ? 0 : d.buffered_bytes();
  return out;
}

}  // namespace
}  // namespace chorus::transport

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace chorus::transport;
  if (size == 0) return 0;
  std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  Outcome whole = decode_stream(stream, 0);
  Outcome chunked = decode_stream(stream, data[0]);
  check(whole.failed == chunked.failed, "chunking changed whether the stream fails");
  check(whole.buffered == chunked.buffered, "chunking changed the bytes left over");
  check(whole.frames.size() == chunked.frames.size(), "chunking changed the frame count");
  size_t at = 0;
  for (size_t i = 0; i < whole.frames.size(); ++i) {
    const Frame& f = whole.frames[i];
    check(f.type == chunked.frames[i].type && f.payload == chunked.frames[i].payload,
          "chunking changed a frame");
    std::string again;
    append_frame(&again, f.type, f.payload);
    check(stream.substr(at, again.size()) == again, "a frame does not re-encode to its bytes");
    at += again.size();
    check_payload(f);
  }
  // Checksums keep mutated frames from reaching the payload decoders, so the stream is also
  // decoded directly as a batch.
  check_messages(stream);
  return 0;
}
