// RESP, the Redis serialization protocol: requests in (multibulk arrays and inline commands,
// pipelined), replies out in RESP2 or RESP3 (`HELLO 3`). Pure: bytes in, bytes out.
//
// The parser is incremental: a connection appends what it reads to one buffer and asks for the
// next whole command; a command cut by the end of the buffer waits for more bytes (kNeedMore).
// Bad framing gets Redis's own "Protocol error: ..." text, after which Redis closes the
// connection, and so does Chorus: a request that cannot be framed cannot be answered in order.
// Limits keep a client from making a member hold what it cannot use: an inline command or a
// length line of at most 64 KiB, at most 1,048,576 arguments, a bulk string of at most the
// parser's max_bulk_bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "redis/reply.h"

namespace chorus::redis {

inline constexpr size_t kMaxInlineBytes = 64 * 1024;
inline constexpr int64_t kMaxMultibulkCount = 1024 * 1024;

class RequestParser {
 public:
  explicit RequestParser(size_t max_bulk_bytes = 512u << 20) : max_bulk_(max_bulk_bytes) {}

  enum class Result { kNeedMore, kCommand, kError };
  // Parses the next command from buf[*pos...]. kCommand: *argv holds it (an empty argv is an
  // empty inline line, which Redis ignores) and *pos moved past it. kNeedMore: *pos unchanged.
  // kError: *error holds the reply text ("Protocol error: ...").
  Result next(std::string_view buf, size_t* pos, std::vector<std::string>* argv,
              std::string* error);

 private:
  Result inline_command(std::string_view buf, size_t* pos, std::vector<std::string>* argv,
                        std::string* error);
  size_t max_bulk_;
};

// Splits an inline command line as Redis does (sdssplitargs): spaces separate arguments,
// "double quotes" take \n \r \t \b \a \\ \" and \xHH escapes, 'single quotes' take \'. False for
// unbalanced quotes, or a closing quote not followed by a space.
bool split_inline(std::string_view line, std::vector<std::string>* argv);

// Appends `reply` encoded for protocol 2 or 3.
void encode(const Reply& reply, int protocol, std::string* out);

}  // namespace chorus::redis
