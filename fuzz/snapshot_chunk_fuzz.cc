// libFuzzer target: snapshot chunks. The first byte picks a mode:
//   even: the rest is a sequence of [u16 length, little-endian][bytes] decoded as chunks (the
//         wire as it is);
//   odd:  the rest drives a chunk builder that frames valid chunks with fuzzed fields, so the
//         receiver's ordering and file checks are reached past the chunk checksum.
// Decoding must accept only canonical chunks (decode then encode gives the same bytes), and a
// SnapshotReceiver on a FaultFileSystem must only return errors, never crash, and install
// exactly the files it was sent.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "storage/crc32c.h"
#include "storage/fault_fs.h"
#include "storage/snapshot_stream.h"

namespace chorus::storage {
namespace {

constexpr int kMaxChunks = 64;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "snapshot_chunk_fuzz: %s\n", what);
    std::abort();
  }
}

struct Run {
  FaultFileSystem fs;
  std::unique_ptr<SnapshotReceiver> receiver;
  // What the accepted chunks said each file holds.
  std::map<std::string, std::string> files;

  Run() {
    check(fs.create_dir("node").is_ok(), "create_dir");
    receiver = std::make_unique<SnapshotReceiver>(&fs, "node", "snap");
  }

  void feed(std::string_view encoded) {
    SnapshotChunk c;
    if (!decode_snapshot_chunk(encoded, &c).is_ok()) {
      check(!receiver->add(encoded).is_ok(), "a chunk that does not decode was accepted");
      return;
    }
    check(encode_snapshot_chunk(c) == encoded, "decode accepted a non-canonical chunk");
    if (receiver->add(c).is_ok() && !c.file_name.empty()) files[c.file_name] += c.data;
  }

  void end(bool crash_first) {
    if (crash_first) fs.crash(1, true);
    if (!crash_first && receiver->complete() && receiver->finish().is_ok()) {
      for (const auto& [name, data] : files) {
        std::string got;
        check(fs.read_file("node/snap/" + name, &got).is_ok(), "an installed file is missing");
        check(got == data, "an installed file differs from what was sent");
      }
      std::vector<std::string> names;
      check(fs.list_dir("node/snap", &names).is_ok() && names.size() == files.size(),
            "the installed directory has other files");
    } else {
      (void)receiver->abort();
    }
    check(SnapshotReceiver::recover(&fs, "node", "snap").is_ok(), "recover failed");
    check(!fs.exists("node/snap.tmp"), "recover left the temporary directory");
  }
};

void raw(std::string_view in, bool crash_first) {
  Run run;
  for (int i = 0; i < kMaxChunks && in.size() >= 2; ++i) {
    size_t n = static_cast<uint8_t>(in[0]) | (size_t{static_cast<uint8_t>(in[1])} << 8);
    in.remove_prefix(2);
    n = std::min(n, in.size());
    run.feed(in.substr(0, n));
    in.remove_prefix(n);
  }
  run.end(crash_first);
}

void built(FuzzedDataProvider* in, bool crash_first) {
  static const char* const kNames[] = {"a", "b", "CURRENT", "MANIFEST-1", "", "..", "x/y"};
  Run run;
  std::map<std::string, std::string> sent;  // what the builder put in each file so far
  for (int i = 0; i < kMaxChunks && in->remaining_bytes() > 0; ++i) {
    SnapshotChunk c;
    c.snapshot_id = in->ConsumeIntegralInRange<uint64_t>(1, 2);
    c.file_index = in->ConsumeIntegralInRange<uint32_t>(0, 4);
    c.file_name = kNames[in->ConsumeIntegralInRange<size_t>(0, std::size(kNames) - 1)];
    std::string& so_far = sent[c.file_name];
    c.offset = in->ConsumeBool() ? so_far.size() : in->ConsumeIntegralInRange<uint64_t>(0, 64);
    c.data = in->ConsumeRandomLengthString(64);
    c.last_in_file = in->ConsumeBool();
    c.last_in_snapshot = in->ConsumeBool();
    if (c.offset == so_far.size()) so_far += c.data;
    if (c.last_in_file) {
      bool honest = in->ConsumeBool();
      c.file_size = honest ? c.offset + c.data.size() : in->ConsumeIntegral<uint8_t>();
      c.file_crc = honest ? crc32c(so_far) : in->ConsumeIntegral<uint32_t>();
    }
    if (c.last_in_snapshot) c.file_count = in->ConsumeIntegralInRange<uint32_t>(0, 5);
    run.feed(encode_snapshot_chunk(c));
  }
  run.end(crash_first);
}

}  // namespace
}  // namespace chorus::storage

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t mode = data[0];
  bool crash_first = (mode & 2) != 0;
  if (mode % 2 == 0) {
    chorus::storage::raw(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1),
                         crash_first);
  } else {
    FuzzedDataProvider in(data + 1, size - 1);
    chorus::storage::built(&in, crash_first);
  }
  return 0;
}
