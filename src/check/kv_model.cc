#include "check/kv_model.h"

#include <functional>
#include <utility>

namespace chorus::check {
namespace {

// Quotes a key or value so that empty strings and binary bytes stay visible in explanations.
std::string quote(const std::string& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : s) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte >= 0x7f) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

bool holds(const KvModel::State& s, const std::string& value) {
  return s.has_value() && *s == value;
}

}  // namespace

KvInput KvInput::read(std::string key) {
  return {Kind::kRead, std::move(key), {}, {}};
}

KvInput KvInput::write(std::string key, std::string value) {
  return {Kind::kWrite, std::move(key), std::move(value), {}};
}

KvInput KvInput::cas(std::string key, std::string expected, std::string value) {
  return {Kind::kCas, std::move(key), std::move(value), std::move(expected)};
}

KvOutput KvOutput::found(std::string value) {
  return {true, std::move(value)};
}
KvOutput KvOutput::not_found() {
  return {false, {}};
}
KvOutput KvOutput::write_ok() {
  return {true, {}};
}
KvOutput KvOutput::cas_ok() {
  return {true, {}};
}
KvOutput KvOutput::cas_failed() {
  return {false, {}};
}

bool KvModel::step(const State& s, const Input& in, const Output& out, State* next) {
  switch (in.kind) {
    case KvInput::Kind::kRead:
      *next = s;
      return out.ok ? holds(s, out.value) : !s.has_value();
    case KvInput::Kind::kWrite:
      *next = out.ok ? State(in.value) : s;
      return true;
    case KvInput::Kind::kCas:
      // The outcome is fully determined by the state: a cas may neither fail on a match nor
      // succeed on a mismatch.
      if (holds(s, in.expected) != out.ok) {
        return false;
      }
      *next = out.ok ? State(in.value) : s;
      return true;
  }
  return false;
}

bool KvModel::step_unknown(const State& s, const Input& in, State* next) {
  switch (in.kind) {
    case KvInput::Kind::kRead:
      // A read has no effect, so leaving it unlinearized is equivalent and prunes the search.
      return false;
    case KvInput::Kind::kWrite:
      *next = in.value;
      return true;
    case KvInput::Kind::kCas:
      // Likewise, a cas that would fail has no effect.
      if (!holds(s, in.expected)) {
        return false;
      }
      *next = in.value;
      return true;
  }
  return false;
}

size_t KvModel::hash(const State& s) {
  return std::hash<State>{}(s);
}

std::string KvModel::describe_input(const Input& in) {
  switch (in.kind) {
    case KvInput::Kind::kRead:
      return "read(" + quote(in.key) + ")";
    case KvInput::Kind::kWrite:
      return "write(" + quote(in.key) + ", " + quote(in.value) + ")";
    case KvInput::Kind::kCas:
      return "cas(" + quote(in.key) + ", " + quote(in.expected) + " -> " + quote(in.value) + ")";
  }
  return "invalid";
}

std::string KvModel::describe_output(const Input& in, const Output& out) {
  if (in.kind == KvInput::Kind::kRead) {
    return out.ok ? quote(out.value) : std::string("absent");
  }
  return out.ok ? "ok" : "failed";
}

std::string KvModel::describe_state(const State& s) {
  return s.has_value() ? quote(*s) : std::string("absent");
}

}  // namespace chorus::check
