#include "transport/codec.h"

#include <gtest/gtest.h>

#include <random>

#include "base/coding.h"

namespace chorus::transport {
namespace {

using raft::MessageType;

raft::Message full_message() {
  raft::Message m;
  m.group = 7;
  m.type = MessageType::kSnap;
  m.from = 1;
  m.to = 2;
  m.term = 9;
  m.log_term = 8;
  m.index = 100;
  m.entries = {{8, 101, raft::EntryType::kNormal, "put a"},
               {9, 102, raft::EntryType::kConfChange, std::string("\0\1\2", 3)},
               {9, 103, raft::EntryType::kNormal, ""}};
  m.commit = 99;
  m.reject = true;
  m.reject_hint = 42;
  m.context = 0xdeadbeefcafef00dULL;
  auto snap = std::make_shared<raft::Snapshot>();
  snap->metadata.index = 100;
  snap->metadata.term = 8;
  snap->metadata.conf_state = {{1, 2, 3}, {1, 2, 4}, {5}, {4}, true};
  snap->data = "descriptor";
  m.snapshot = snap;
  return m;
}

// A message with no entries and no snapshot; in a one-message payload its fields sit at:
constexpr size_t kTypeAt = 4 + 8;
constexpr size_t kEntryCountAt = 4 + 49;
constexpr size_t kRejectAt = 4 + 61;
constexpr size_t kSnapshotFlagAt = 4 + 78;

raft::Message small_message() {
  raft::Message m;
  m.group = 1;
  m.type = MessageType::kHeartbeat;
  m.from = 3;
  m.to = 4;
  m.term = 5;
  m.commit = 6;
  return m;
}

void put_u32_at(std::string* s, size_t at, uint32_t v) {
  std::string b;
  base::put_u32(&b, v);
  s->replace(at, 4, b);
}

std::string refusal(std::string_view payload, const CodecLimits& limits = {}) {
  std::vector<raft::Message> out;
  const char* why = nullptr;
  if (decode_messages(payload, &out, limits, &why)) return "accepted";
  return why == nullptr ? "no reason" : why;
}

TEST(CodecTest, MessageRoundTripKeepsEveryField) {
  std::vector<raft::Message> batch = {full_message(), small_message()};
  batch[1].entries = {{5, 1, raft::EntryType::kNormal, std::string(1000, 'x')}};
  std::string payload = encode_messages(batch);
  std::vector<raft::Message> out;
  ASSERT_TRUE(decode_messages(payload, &out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(same_message(out[0], batch[0]));
  EXPECT_TRUE(same_message(out[1], batch[1]));
  ASSERT_NE(out[0].snapshot, nullptr);
  EXPECT_EQ(out[0].snapshot->metadata.conf_state.learners_next, std::vector<raft::NodeId>{4});
  EXPECT_TRUE(out[0].snapshot->metadata.conf_state.auto_leave);
  EXPECT_EQ(out[1].snapshot, nullptr);
  EXPECT_EQ(encode_messages(out), payload);
}

TEST(CodecTest, EverySendableTypeRoundTripsAndLocalTypesAreRefused) {
  for (int t = 0; t <= static_cast<int>(MessageType::kReadIndexResp); ++t) {
    raft::Message m = small_message();
    m.type = static_cast<MessageType>(t);
    std::string payload = encode_messages({m});
    std::vector<raft::Message> out;
    const char* why = nullptr;
    bool ok = decode_messages(payload, &out, {}, &why);
    EXPECT_EQ(ok, is_sendable(m.type)) << raft::to_string(m.type);
    if (ok) {
      EXPECT_TRUE(same_message(out.at(0), m));
    } else {
      EXPECT_STREQ(why, "local message type on the wire");
    }
  }
  EXPECT_FALSE(is_sendable(MessageType::kHup));
  EXPECT_TRUE(is_sendable(MessageType::kPropose));  // forwarded to the leader
}

TEST(CodecTest, EmptyBatchAndEmptySnapshotRoundTrip) {
  std::vector<raft::Message> out;
  ASSERT_TRUE(decode_messages(encode_messages({}), &out));
  EXPECT_TRUE(out.empty());
  raft::Message m = small_message();
  m.snapshot = std::make_shared<raft::Snapshot>();
  ASSERT_TRUE(decode_messages(encode_messages({m}), &out));
  ASSERT_NE(out.at(0).snapshot, nullptr);
  EXPECT_TRUE(same_message(out[0], m));
}

TEST(CodecTest, EveryTruncationIsRefused) {
  std::string payload = encode_messages({full_message(), small_message()});
  for (size_t n = 0; n < payload.size(); ++n)
    EXPECT_NE(refusal(payload.substr(0, n)), "accepted") << "prefix of " << n << " bytes";
}

TEST(CodecTest, TrailingBytesAreRefused) {
  EXPECT_EQ(refusal(encode_messages({small_message()}) + "x"), "bytes after the last message");
}

TEST(CodecTest, UnknownEnumsAndBadBooleansAreRefused) {
  std::string payload = encode_messages({small_message()});
  std::string bad = payload;
  bad[kTypeAt] = static_cast<char>(static_cast<int>(MessageType::kReadIndexResp) + 1);
  EXPECT_EQ(refusal(bad), "unknown message type");
  bad = payload;
  bad[kRejectAt] = 2;
  EXPECT_EQ(refusal(bad), "bad reject flag");
  bad = payload;
  bad[kSnapshotFlagAt] = 7;
  EXPECT_EQ(refusal(bad), "bad snapshot flag");

  raft::Message with_entry = small_message();
  with_entry.entries = {{1, 1, raft::EntryType::kNormal, "e"}};
  bad = encode_messages({with_entry});
  bad[kEntryCountAt + 4 + 16] = 2;  // the entry's type
  EXPECT_EQ(refusal(bad), "unknown entry type");

  raft::Message with_snapshot = small_message();
  auto snap = std::make_shared<raft::Snapshot>();
  snap->data = "d";
  with_snapshot.snapshot = snap;
  bad = encode_messages({with_snapshot});
  // auto_leave sits after index, term and four empty node lists.
  bad[kSnapshotFlagAt + 1 + 16 + 16] = 3;
  EXPECT_EQ(refusal(bad), "bad auto_leave");
}

TEST(CodecTest, CountsBeyondTheRemainingBytesAreRefusedBeforeAllocating) {
  std::string payload = encode_messages({small_message()});
  std::string bad = payload;
  put_u32_at(&bad, 0, 2);
  EXPECT_EQ(refusal(bad), "message count beyond the bytes");
  put_u32_at(&bad, 0, UINT32_MAX);
  EXPECT_EQ(refusal(bad, {.max_messages_per_frame = UINT32_MAX}), "message count beyond the bytes");
  bad = payload;
  // 26 bytes follow the entry count: room for one entry's 21, not for two.
  put_u32_at(&bad, kEntryCountAt, 2);
  EXPECT_EQ(refusal(bad), "entry count beyond the bytes");
  put_u32_at(&bad, kEntryCountAt, UINT32_MAX);
  EXPECT_EQ(refusal(bad, {.max_entries_per_message = UINT32_MAX}), "entry count beyond the bytes");

  raft::Message with_snapshot = small_message();
  with_snapshot.snapshot = std::make_shared<raft::Snapshot>();
  bad = encode_messages({with_snapshot});
  put_u32_at(&bad, kSnapshotFlagAt + 1 + 16, 1000);  // voters
  EXPECT_EQ(refusal(bad), "node count beyond the bytes");

  raft::Message with_entry = small_message();
  with_entry.entries = {{1, 1, raft::EntryType::kNormal, "e"}};
  bad = encode_messages({with_entry});
  put_u32_at(&bad, kEntryCountAt + 4 + 17, UINT32_MAX);  // the entry's data length
  EXPECT_EQ(refusal(bad), "truncated entry data");
}

TEST(CodecTest, CountsOverTheLimitsAreRefused) {
  raft::Message m = small_message();
  m.entries = {{1, 1, raft::EntryType::kNormal, "a"}, {1, 2, raft::EntryType::kNormal, "b"}};
  auto snap = std::make_shared<raft::Snapshot>();
  snap->metadata.conf_state.voters = {1, 2, 3};
  m.snapshot = snap;
  std::string payload = encode_messages({m, m});
  EXPECT_EQ(refusal(payload), "accepted");
  EXPECT_EQ(refusal(payload, {.max_messages_per_frame = 1}), "message count over the limit");
  EXPECT_EQ(refusal(payload, {.max_entries_per_message = 1}), "entry count over the limit");
  EXPECT_EQ(refusal(payload, {.max_nodes_per_conf_list = 2}), "node list over the limit");
}

std::string three_frames() {
  std::string stream;
  append_frame(&stream, FrameType::kHello, encode_hello({.cluster_id = 5, .from = 1, .to = 2}));
  append_frame(&stream, FrameType::kMessages, encode_messages({full_message(), small_message()}));
  append_frame(&stream, FrameType::kPing, encode_ping(77));
  return stream;
}

std::vector<Frame> drain(FrameDecoder* d) {
  std::vector<Frame> frames;
  Frame f;
  while (d->next(&f) == FrameDecoder::Result::kFrame)
    frames.push_back(f);
  return frames;
}

void expect_three_frames(const std::vector<Frame>& frames) {
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].type, FrameType::kHello);
  Hello h;
  ASSERT_TRUE(decode_hello(frames[0].payload, &h));
  EXPECT_EQ(h, (Hello{.cluster_id = 5, .from = 1, .to = 2}));
  EXPECT_EQ(frames[1].type, FrameType::kMessages);
  std::vector<raft::Message> messages;
  ASSERT_TRUE(decode_messages(frames[1].payload, &messages));
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_TRUE(same_message(messages[0], full_message()));
  EXPECT_EQ(frames[2].type, FrameType::kPing);
  uint64_t token = 0;
  ASSERT_TRUE(decode_ping(frames[2].payload, &token));
  EXPECT_EQ(token, 77u);
}

TEST(FrameDecoderTest, DecodesFramesFedAtOnce) {
  FrameDecoder d;
  d.feed(three_frames());
  expect_three_frames(drain(&d));
  EXPECT_EQ(d.buffered_bytes(), 0u);
  EXPECT_EQ(d.error(), nullptr);
}

TEST(FrameDecoderTest, DecodesFramesFedByteByByte) {
  std::string stream = three_frames();
  FrameDecoder d;
  std::vector<Frame> frames;
  for (char byte : stream) {
    d.feed(std::string_view(&byte, 1));
    for (Frame& f : drain(&d))
      frames.push_back(std::move(f));
  }
  expect_three_frames(frames);
  EXPECT_EQ(d.buffered_bytes(), 0u);
}

TEST(FrameDecoderTest, DecodesFramesSplitAnywhere) {
  std::string stream = three_frames();
  std::mt19937 rng(12345);
  for (int round = 0; round < 200; ++round) {
    FrameDecoder d;
    std::vector<Frame> frames;
    size_t at = 0;
    while (at < stream.size()) {
      size_t n = std::uniform_int_distribution<size_t>(0, 64)(rng);
      n = std::min(n, stream.size() - at);
      d.feed(std::string_view(stream).substr(at, n));
      at += n;
      for (Frame& f : drain(&d))
        frames.push_back(std::move(f));
    }
    expect_three_frames(frames);
  }
}

TEST(FrameDecoderTest, AnEmptyPayloadIsAFrame) {
  std::string stream;
  append_frame(&stream, FrameType::kPong, "");
  EXPECT_EQ(stream.size(), kFrameHeaderBytes);
  FrameDecoder d;
  d.feed(stream);
  Frame f;
  ASSERT_EQ(d.next(&f), FrameDecoder::Result::kFrame);
  EXPECT_EQ(f.type, FrameType::kPong);
  EXPECT_TRUE(f.payload.empty());
}

TEST(FrameDecoderTest, HeaderWritesMatchWholeFrames) {
  std::string payload = encode_messages({small_message()});
  std::string whole;
  append_frame(&whole, FrameType::kMessages, payload);
  std::string header;
  append_frame_header(&header, FrameType::kMessages, payload);
  EXPECT_EQ(header + payload, whole);
}

TEST(FrameDecoderTest, ATruncatedFrameWaitsAndShowsAsBuffered) {
  std::string stream = three_frames();
  FrameDecoder d;
  d.feed(std::string_view(stream).substr(0, stream.size() - 1));
  EXPECT_EQ(drain(&d).size(), 2u);
  Frame f;
  EXPECT_EQ(d.next(&f), FrameDecoder::Result::kNeedMore);
  EXPECT_EQ(d.buffered_bytes(), kFrameHeaderBytes + 8 - 1);
  // A header cut short is buffered too.
  FrameDecoder h;
  h.feed(std::string_view(stream).substr(0, 5));
  EXPECT_EQ(h.next(&f), FrameDecoder::Result::kNeedMore);
  EXPECT_EQ(h.buffered_bytes(), 5u);
}

TEST(FrameDecoderTest, AnOversizedLengthIsRefusedFromTheHeaderAlone) {
  std::string payload(2000, 'p');
  std::string stream;
  append_frame(&stream, FrameType::kMessages, payload);
  FrameDecoder d(1999);
  d.feed(std::string_view(stream).substr(0, kFrameHeaderBytes));
  Frame f;
  EXPECT_EQ(d.next(&f), FrameDecoder::Result::kError);
  EXPECT_STREQ(d.error(), "frame longer than max_frame_bytes");
  EXPECT_EQ(d.buffered_bytes(), 0u);
  // Exactly the limit is fine.
  FrameDecoder ok(2000);
  ok.feed(stream);
  EXPECT_EQ(ok.next(&f), FrameDecoder::Result::kFrame);
}

TEST(FrameDecoderTest, UnknownFrameTypesAreRefused) {
  for (uint8_t type : {uint8_t{0}, uint8_t{kMaxFrameType + 1}, uint8_t{255}}) {
    std::string stream;
    append_frame(&stream, FrameType::kPing, encode_ping(1));
    stream[4] = static_cast<char>(type);
    FrameDecoder d;
    d.feed(stream);
    Frame f;
    EXPECT_EQ(d.next(&f), FrameDecoder::Result::kError);
    EXPECT_STREQ(d.error(), "unknown frame type");
  }
}

TEST(FrameDecoderTest, ABadChecksumIsRefusedWhateverByteFlipped) {
  std::string stream;
  append_frame(&stream, FrameType::kMessages, encode_messages({small_message()}));
  for (size_t at = 0; at < stream.size(); ++at) {
    if (at < 5) continue;  // length and type bytes fail their own checks first
    std::string bad = stream;
    bad[at] = static_cast<char>(bad[at] ^ 0x10);
    FrameDecoder d;
    d.feed(bad);
    Frame f;
    EXPECT_EQ(d.next(&f), FrameDecoder::Result::kError) << "byte " << at;
    EXPECT_STREQ(d.error(), "frame checksum");
  }
  // A type changed to another valid type is caught by the checksum.
  std::string retyped = stream;
  retyped[4] = static_cast<char>(FrameType::kPing);
  FrameDecoder d;
  d.feed(retyped);
  Frame f;
  EXPECT_EQ(d.next(&f), FrameDecoder::Result::kError);
  EXPECT_STREQ(d.error(), "frame checksum");
}

TEST(FrameDecoderTest, ErrorsAreSticky) {
  FrameDecoder d;
  d.feed(std::string(kFrameHeaderBytes, '\0'));  // type 0
  Frame f;
  ASSERT_EQ(d.next(&f), FrameDecoder::Result::kError);
  d.feed(three_frames());
  EXPECT_EQ(d.next(&f), FrameDecoder::Result::kError);
  EXPECT_EQ(d.buffered_bytes(), 0u);
}

// `value` survives encoding, and every cut of its bytes, or a byte more, is refused.
template <typename T, typename Encode, typename Decode>
void expect_round_trip_refusing_cuts(const T& value, Encode encode, Decode decode) {
  std::string bytes = encode(value);
  T out;
  ASSERT_TRUE(decode(bytes, &out));
  EXPECT_EQ(out, value);
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(decode(bytes.substr(0, n), &out)) << "truncated to " << n;
  EXPECT_FALSE(decode(bytes + "x", &out));
}

TEST(PayloadTest, HelloRejectJoinHashAndPingRoundTripAndRefuseBadSizes) {
  Hello h{.cluster_id = 1, .from = 2, .to = 3};
  Hello out;
  ASSERT_TRUE(decode_hello(encode_hello(h), &out));
  EXPECT_EQ(out, h);
  EXPECT_EQ(out.magic, kHelloMagic);
  EXPECT_EQ(out.version, kProtocolVersion);
  EXPECT_FALSE(decode_hello(encode_hello(h) + "x", &out));
  EXPECT_FALSE(decode_hello(encode_hello(h).substr(1), &out));

  std::string reason;
  ASSERT_TRUE(decode_reject(encode_reject("wrong cluster"), &reason));
  EXPECT_EQ(reason, "wrong cluster");
  ASSERT_TRUE(decode_reject(encode_reject(std::string(5000, 'r')), &reason));
  EXPECT_EQ(reason.size(), kMaxRejectReasonBytes);
  std::string long_reason;
  base::put_bytes(&long_reason, std::string(kMaxRejectReasonBytes + 1, 'r'));
  EXPECT_FALSE(decode_reject(long_reason, &reason));
  EXPECT_FALSE(decode_reject(encode_reject("x") + "y", &reason));

  JoinRequest jout;
  expect_round_trip_refusing_cuts(
      JoinRequest{.peer_urls = {"http://10.0.0.4:2380", "http://[::1]:2380"}}, encode_join,
      decode_join);
  JoinRequest too_many;
  too_many.peer_urls.assign(kMaxJoinUrls + 1, "http://a:1");
  EXPECT_FALSE(decode_join(encode_join(too_many), &jout));
  JoinRequest too_long{.peer_urls = {std::string(kMaxJoinUrlBytes + 1, 'u')}};
  EXPECT_FALSE(decode_join(encode_join(too_long), &jout));
  expect_round_trip_refusing_cuts(
      JoinAck{.cluster_id = 7,
              .member_id = 9,
              .applied_index = 120,
              .members = {{9, {"http://a:1"}}, {3, {"http://b:1", "http://b:2"}}}},
      encode_join_ack, decode_join_ack);
  JoinAck ack_out;
  JoinAck crowd;
  crowd.members.assign(kMaxJoinMembers + 1, {1, {}});
  EXPECT_FALSE(decode_join_ack(encode_join_ack(crowd), &ack_out));

  expect_round_trip_refusing_cuts(HashKvRequest{.cluster_id = 7, .revision = 1234}, encode_hash_kv,
                                  decode_hash_kv);
  HashKvRequest hash_out;
  EXPECT_FALSE(decode_hash_kv(encode_hash_kv(HashKvRequest{.revision = -1}), &hash_out));
  expect_round_trip_refusing_cuts(
      HashKvAck{.hash = 0xdeadbeef, .revision = 90, .compact_revision = 12}, encode_hash_kv_ack,
      decode_hash_kv_ack);
  HashKvAck hash_ack_out;
  EXPECT_FALSE(decode_hash_kv_ack(
      encode_hash_kv_ack(HashKvAck{.revision = 5, .compact_revision = -2}), &hash_ack_out));

  uint64_t token = 0;
  ASSERT_TRUE(decode_ping(encode_ping(99), &token));
  EXPECT_EQ(token, 99u);
  EXPECT_FALSE(decode_ping("1234567", &token));
  EXPECT_FALSE(decode_ping("123456789", &token));
}

}  // namespace
}  // namespace chorus::transport
