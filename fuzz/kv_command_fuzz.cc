// libFuzzer target: arbitrary bytes as a state machine command (the payload of a log entry), a
// cached response and a snapshot descriptor. Decoding must only ever refuse, never crash, and
// whatever decodes must encode back to the same bytes (commands of an older version: to the
// same command).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "kv/codec.h"
#include "kv/snapshots.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "kv_command_fuzz: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (auto c = chorus::kv::decode_command(bytes)) {
    std::string again = chorus::kv::encode_command(*c);
    auto back = chorus::kv::decode_command(again);
    check(back && *back == *c, "a command does not survive encoding");
    // A command of the current version re-encodes byte for byte; an older one (version 1,
    // before auth revisions) is re-encoded in the current version.
    if (bytes[0] == again[0]) check(again == bytes, "a command does not re-encode to its bytes");
  }
  if (auto r = chorus::kv::decode_response(bytes)) {
    check(chorus::kv::encode_response(*r) == bytes, "a response does not re-encode to its bytes");
  }
  chorus::kv::SnapshotDescriptor d;
  if (chorus::kv::decode_snapshot_descriptor(bytes, &d)) {
    check(chorus::kv::encode_snapshot_descriptor(d) == bytes, "a descriptor does not re-encode");
  }
  return 0;
}
