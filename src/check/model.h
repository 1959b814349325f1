// What the linearizability checker needs from a sequential specification.
#ifndef CHORUS_CHECK_MODEL_H_
#define CHORUS_CHECK_MODEL_H_

#include <concepts>
#include <cstddef>
#include <string>

#include "check/types.h"

namespace chorus::check {

// A sequential specification of the object under test, as a type with only static members:
//
//   using State, Input, Output;
//   static State init();
//   // Whether `in` may return `out` when applied to `s`; if so, stores the resulting state.
//   static bool step(const State& s, const Input& in, const Output& out, State* next);
//   // Same, for an operation whose output was never seen. Returning false is allowed when
//   // applying the operation cannot change the state: leaving it out is then equivalent.
//   static bool step_unknown(const State& s, const Input& in, State* next);
//   // Operations with different keys must be independent; each key is checked on its own
//   // starting from init(). Return a constant to check the history as a whole.
//   static std::string partition_key(const Input& in);
//   static size_t hash(const State& s);
//   static std::string describe_input(const Input& in);
//   static std::string describe_output(const Input& in, const Output& out);
//   static std::string describe_state(const State& s);
//
// State must be copyable, default-constructible and equality-comparable.
template <typename M>
concept LinearizabilityModel = std::copyable<typename M::State> &&
    std::default_initializable<typename M::State> && std::equality_comparable<typename M::State> &&
    requires(const typename M::State& s, const typename M::Input& in, const typename M::Output& out,
             typename M::State* next) {
  { M::init() } -> std::convertible_to<typename M::State>;
  { M::step(s, in, out, next) } -> std::same_as<bool>;
  { M::step_unknown(s, in, next) } -> std::same_as<bool>;
  { M::partition_key(in) } -> std::convertible_to<std::string>;
  { M::hash(s) } -> std::convertible_to<size_t>;
  { M::describe_input(in) } -> std::convertible_to<std::string>;
  { M::describe_output(in, out) } -> std::convertible_to<std::string>;
  { M::describe_state(s) } -> std::convertible_to<std::string>;
};

template <typename Model>
using ModelOperation = Operation<typename Model::Input, typename Model::Output>;

// Applies `op` to `s` with the step function matching what was observed of it.
template <LinearizabilityModel Model>
bool apply_operation(const ModelOperation<Model>& op, const typename Model::State& s,
                     typename Model::State* next) {
  if (op.return_time == kNever) {
    return Model::step_unknown(s, op.input, next);
  }
  return Model::step(s, op.input, op.output, next);
}

}  // namespace chorus::check

#endif  // CHORUS_CHECK_MODEL_H_
