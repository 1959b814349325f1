// Sequential specification of a string key-value store with read, write and compare-and-swap.
#ifndef CHORUS_CHECK_KV_MODEL_H_
#define CHORUS_CHECK_KV_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "check/types.h"

namespace chorus::check {

struct KvInput {
  enum class Kind : uint8_t { kRead, kWrite, kCas };

  Kind kind = Kind::kRead;
  std::string key;
  std::string value;     // kWrite: the value written. kCas: the value swapped in.
  std::string expected;  // kCas: the value that must be present for the swap to happen.

  static KvInput read(std::string key);
  static KvInput write(std::string key, std::string value);
  static KvInput cas(std::string key, std::string expected, std::string value);
};

struct KvOutput {
  // kRead: the key was present. kWrite: the write was applied; a write reported as failed is
  // taken to have had no effect. kCas: the swap happened; a failed cas means the key was absent
  // or held a value other than `expected`.
  bool ok = false;
  std::string value;  // kRead with ok: the value seen.

  static KvOutput found(std::string value);
  static KvOutput not_found();
  static KvOutput write_ok();
  static KvOutput cas_ok();
  static KvOutput cas_failed();
};

// Partitioned by key, so a state is a single register: the key's value, or nullopt if absent.
struct KvModel {
  using State = std::optional<std::string>;
  using Input = KvInput;
  using Output = KvOutput;

  static State init() { return std::nullopt; }
  static bool step(const State& s, const Input& in, const Output& out, State* next);
  static bool step_unknown(const State& s, const Input& in, State* next);
  static std::string partition_key(const Input& in) { return in.key; }
  static size_t hash(const State& s);
  static std::string describe_input(const Input& in);
  static std::string describe_output(const Input& in, const Output& out);
  static std::string describe_state(const State& s);
};

using KvOperation = Operation<KvInput, KvOutput>;

}  // namespace chorus::check

#endif  // CHORUS_CHECK_KV_MODEL_H_
