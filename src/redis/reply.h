// A Redis reply, independent of the protocol version it goes out in: the state machine makes
// these, and a connection encodes them in RESP2 or RESP3 (resp.h).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace chorus::redis {

struct Reply {
  enum class Kind : uint8_t {
    kStatus,     // +OK
    kError,      // -ERR ... (str holds the whole text, prefix included)
    kInteger,    // :1
    kBulk,       // $3 foo
    kNull,       // RESP2 $-1, RESP3 _
    kNullArray,  // RESP2 *-1, RESP3 _
    kArray,      // *2 ...
    kDouble,     // RESP2 a bulk string, RESP3 ,1.5 (str holds the text)
    kMap,        // RESP2 a flat array, RESP3 %n (elements hold keys and values in turn)
    kSet,        // RESP2 an array, RESP3 ~n
    kPush,       // RESP2 an array, RESP3 >n (pub/sub messages)
    kPairs,      // elements a b c d: RESP2 a flat array, RESP3 [[a b] [c d]] (WITHSCORES)
  };
  Kind kind = Kind::kNull;
  std::string str;
  int64_t integer = 0;
  std::vector<Reply> elements;

  static Reply status(std::string s) { return {Kind::kStatus, std::move(s), 0, {}}; }
  static Reply ok() { return status("OK"); }
  static Reply error(std::string s) { return {Kind::kError, std::move(s), 0, {}}; }
  static Reply integer_of(int64_t v) { return {Kind::kInteger, {}, v, {}}; }
  static Reply bulk(std::string s) { return {Kind::kBulk, std::move(s), 0, {}}; }
  static Reply null() { return {}; }
  static Reply null_array() { return {Kind::kNullArray, {}, 0, {}}; }
  static Reply array(std::vector<Reply> e = {}) { return {Kind::kArray, {}, 0, std::move(e)}; }
  static Reply map(std::vector<Reply> e = {}) { return {Kind::kMap, {}, 0, std::move(e)}; }
  static Reply set_of(std::vector<Reply> e) { return {Kind::kSet, {}, 0, std::move(e)}; }
  static Reply push(std::vector<Reply> e) { return {Kind::kPush, {}, 0, std::move(e)}; }
  static Reply pairs(std::vector<Reply> e) { return {Kind::kPairs, {}, 0, std::move(e)}; }
  static Reply double_of(std::string text) { return {Kind::kDouble, std::move(text), 0, {}}; }

  bool is_error() const { return kind == Kind::kError; }
  bool operator==(const Reply&) const = default;
};

// Redis's own error texts, which clients and tests match.
namespace errors {
inline constexpr const char* kWrongType =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
inline constexpr const char* kSyntax = "ERR syntax error";
inline constexpr const char* kNotInteger = "ERR value is not an integer or out of range";
inline constexpr const char* kNotFloat = "ERR value is not a valid float";
inline constexpr const char* kOverflow = "ERR increment or decrement would overflow";
inline constexpr const char* kNanOrInfinity = "ERR increment would produce NaN or Infinity";
inline constexpr const char* kOffsetRange = "ERR offset is out of range";
inline constexpr const char* kStringTooLong =
    "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
inline constexpr const char* kNoSuchKey = "ERR no such key";
}  // namespace errors

}  // namespace chorus::redis
