// libFuzzer target: arbitrary bytes as what a Redis client sends. The parser must only ever
// answer with a command, a wish for more bytes or a protocol error, never crash; feeding the
// bytes in two pieces must give the same commands as feeding them whole; and every command that
// parses runs through the keyspace state machine over memory (with any arguments: a bad command
// gets an error reply), its reply encodes in both protocols, and its log form decodes back.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "redis/keyspace.h"
#include "redis/memory_records.h"
#include "redis/resp.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "redis_request_fuzz: %s\n", what);
    std::abort();
  }
}

using Result = chorus::redis::RequestParser::Result;

// Every command of `buf`, fed as buf[0, cut) first and then the whole.
std::vector<std::vector<std::string>> commands(std::string_view buf, size_t cut, bool* error) {
  chorus::redis::RequestParser p(1 << 16);
  std::vector<std::vector<std::string>> out;
  std::vector<std::string> argv;
  std::string why;
  size_t pos = 0;
  *error = false;
  for (std::string_view part : {buf.substr(0, cut), buf}) {
    while (true) {
      size_t before = pos;
      Result r = p.next(part, &pos, &argv, &why);
      if (r == Result::kNeedMore) {
        check(pos == before, "kNeedMore moved the position");
        break;
      }
      if (r == Result::kError) {
        check(why.rfind("Protocol error: ", 0) == 0, "an error is not a protocol error");
        *error = true;
        return out;
      }
      check(pos > before && pos <= part.size(), "a command did not move the position");
      out.push_back(argv);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view all(reinterpret_cast<const char*>(data), size);
  size_t cut = static_cast<uint8_t>(all[0]) % (size + 1);
  std::string_view buf = all.substr(1);
  bool whole_error = false;
  bool cut_error = false;
  auto whole = commands(buf, buf.size(), &whole_error);
  auto pieces = commands(buf, std::min(cut, buf.size()), &cut_error);
  // A cut may make a line look too long earlier, never different commands.
  size_t common = std::min(whole.size(), pieces.size());
  for (size_t i = 0; i < common; ++i)
    check(whole[i] == pieces[i], "the commands depend on how the bytes arrived");
  if (!whole_error && !cut_error) check(whole.size() == pieces.size(), "a command was lost");

  chorus::redis::MemoryRecords records;
  int64_t now = 1'700'000'000'000;
  for (const auto& argv : whole) {
    if (argv.empty()) continue;
    // SETRANGE may make a value of up to 512 MiB, as in Redis: real, but slow to fuzz.
    int64_t offset = 0;
    if (argv.size() == 4 && argv[0].size() == 8 && chorus::redis::parse_int64(argv[2], &offset) &&
        offset > (1 << 20))
      continue;
    chorus::redis::Reply r = chorus::redis::execute(records, argv, now);
    std::string out2, out3;
    chorus::redis::encode(r, 2, &out2);
    chorus::redis::encode(r, 3, &out3);
    check(!out2.empty() && !out3.empty(), "a reply encoded to nothing");
    int64_t at = 0;
    std::vector<std::string> back;
    check(chorus::redis::decode_command(chorus::redis::encode_command(now, argv), &at, &back) &&
              back == argv && at == now,
          "a command does not survive its log form");
    ++now;
  }
  return 0;
}
