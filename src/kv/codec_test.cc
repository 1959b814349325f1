#include "kv/codec.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define CHORUS_HAS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHORUS_HAS_ASAN 1
#endif
#endif

#ifdef CHORUS_HAS_ASAN
// From <sanitizer/allocator_interface.h>, which not every compiler ships.
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*,
                                                                             size_t),
                                                         void (*free_hook)(const volatile void*));
#endif

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
  std::vector<Command> commands(8);
  commands[0].op = PutRequest{"key", std::string("v\0x", 3), 0, true, false, true};
  commands[1].op = DeleteRangeRequest{"a", std::string(1, '\0'), true};
  commands[2] = sample_txn();
  commands[3].op = CompactionRequest{42};
  commands[4].op = LeaseGrantRequest{77, 30};
  commands[5].op = LeaseRevokeRequest{77};
  commands[6].op = LeaseCheckpointRequest{{{77, 12'345}, {78, 0}}};
  commands[7].op = LeaseCheckpointRequest{};
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

#ifdef CHORUS_HAS_ASAN
std::atomic<bool> g_watch_allocations{false};
std::atomic<size_t> g_largest_allocation{0};
void on_malloc(const volatile void*, size_t size) {
  if (!g_watch_allocations.load(std::memory_order_relaxed)) return;
  size_t seen = g_largest_allocation.load(std::memory_order_relaxed);
  while (size > seen && !g_largest_allocation.compare_exchange_weak(seen, size)) {
  }
}
void on_free(const volatile void*) {}
#endif

// A count is a claim about bytes still to come: a few bytes that claim 65536 operations (or
// compares, or responses) at every nesting level must be refused without allocating for them.
TEST(KvCodec, CountsLargerThanTheInputAllocateNothing) {
#ifndef CHORUS_HAS_ASAN
  GTEST_SKIP() << "needs AddressSanitizer's allocation hooks";
#else
  static bool installed = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free) != 0;
  ASSERT_TRUE(installed);
  auto u32 = [](std::string* o, uint32_t v) {
    for (int i = 0; i < 4; ++i)
      o->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  // A command: version, client, sequence, log time, kind txn; then at each level 65536
  // compares claimed but none given.
  std::string command(1, '\1');
  command.append(24, '\0');
  command.push_back('\2');
  u32(&command, 65536);
  // A response: code, empty message, kind txn, revision, succeeded, 65536 responses of which
  // the first is a nested txn, and so on down.
  std::string response(1, '\0');
  u32(&response, 0);
  response.push_back('\3');
  for (int level = 0; level < kMaxTxnDepth; ++level) {
    response.append(8, '\0');
    response.push_back('\0');
    u32(&response, 65536);
    response.push_back('\3');
  }
  std::string ops(1, '\1');  // a command whose txn claims 65536 ops per level, nested
  ops.append(24, '\0');
  ops.push_back('\2');
  for (int level = 0; level < kMaxTxnDepth; ++level) {
    u32(&ops, 0);
    u32(&ops, 65536);
    ops.push_back('\3');
  }
  g_largest_allocation = 0;
  g_watch_allocations = true;
  bool decoded = decode_command(command).has_value() || decode_response(response).has_value() ||
                 decode_command(ops).has_value();
  g_watch_allocations = false;
  EXPECT_FALSE(decoded);
  EXPECT_LT(g_largest_allocation.load(), 64u * 1024) << "allocated for elements never sent";
#endif
}

}  // namespace
}  // namespace chorus::kv
