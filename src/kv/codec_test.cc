#include "kv/codec.h"

#include <gtest/gtest.h>

namespace chorus::kv {
namespace {

Command sample_txn() {
  auto inner = std::make_shared<TxnRequest>();
  inner->compare.push_back({Compare::Result::kLess, Compare::Target::kMod, "x", "", 7, ""});
  inner->success.push_back({DeleteRangeRequest{"p", "q", true}});
  TxnRequest t;
  t.compare.push_back({Compare::Result::kEqual, Compare::Target::kValue, "k", "", 0, "v"});
  t.success.push_back({PutRequest{"k", "v2", 5, true, false, false}});
  t.success.push_back({RangeRequest{"a", "b", 10, 3, SortOrder::kDescend, SortTarget::kMod}});
  t.failure.push_back({inner});
  Command c;
  c.client_id = 9;
  c.sequence = 4;
  c.log_time_ms = 123456;
  c.op = t;
  return c;
}

TEST(KvCodec, CommandsRoundTrip) {
  std::vector<Command> commands(6);
  commands[0].op = PutRequest{"key", std::string("v\0x", 3), 0, true, false, true};
  commands[1].op = DeleteRangeRequest{"a", std::string(1, '\0'), true};
  commands[2] = sample_txn();
  commands[3].op = CompactionRequest{42};
  commands[4].op = LeaseGrantRequest{77, 30};
  commands[5].op = LeaseRevokeRequest{77};
  for (const Command& c : commands) {
    auto got = decode_command(encode_command(c));
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, c);
  }
}

TEST(KvCodec, ResponsesRoundTrip) {
  auto inner = std::make_shared<TxnResponse>();
  inner->succeeded = true;
  inner->responses.push_back({DeleteRangeResponse{9, 1, {{"p", 2, 3, 1, "x", 0}}}});
  TxnResponse t{9, false, {}};
  t.responses.push_back({RangeResponse{9, {{"a", 2, 4, 2, "va", 5}}, true, 12}});
  t.responses.push_back({PutResponse{9, KeyValue{"k", 1, 1, 1, "old", 0}}});
  t.responses.push_back({inner});
  std::vector<Response> responses(4);
  responses[0].op = t;
  responses[1].error = {Code::kNotFound, errors::kLeaseNotFound};
  responses[2].op = LeaseGrantResponse{3, 77, 30};
  responses[3].op = PutResponse{5, std::nullopt};
  for (const Response& r : responses) {
    auto got = decode_response(encode_response(r));
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, r);
  }
}

TEST(KvCodec, EveryTruncationAndTrailingByteIsRejected) {
  std::string bytes = encode_command(sample_txn());
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(decode_command(bytes.substr(0, n)).has_value()) << n;
  EXPECT_FALSE(decode_command(bytes + "x").has_value());
}

TEST(KvCodec, DeeplyNestedTxnsAreRejected) {
  auto t = std::make_shared<TxnRequest>();
  for (int i = 0; i < kMaxTxnDepth + 2; ++i) {
    auto outer = std::make_shared<TxnRequest>();
    outer->success.push_back({t});
    t = outer;
  }
  Command c;
  c.op = *t;
  EXPECT_FALSE(decode_command(encode_command(c)).has_value());
}

}  // namespace
}  // namespace chorus::kv
