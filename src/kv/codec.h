// Binary encoding of commands (the payload of a Raft log entry) and responses (cached in the
// session table). Decoding is bounds-checked and refuses anything malformed: a damaged entry
// yields an error, never a crash.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "kv/types.h"

namespace chorus::kv {

std::string encode_command(const Command& c);
std::optional<Command> decode_command(std::string_view bytes);

std::string encode_response(const Response& r);
std::optional<Response> decode_response(std::string_view bytes);

std::string encode_key_value(const KeyValue& kv);
bool decode_key_value(std::string_view bytes, KeyValue* out);

}  // namespace chorus::kv
