#include "check/linearizability.h"

namespace chorus::check {

const char* to_string(CheckResult result) {
  switch (result) {
    case CheckResult::kOk:
      return "ok";
    case CheckResult::kIllegal:
      return "illegal";
    case CheckResult::kUnknown:
      return "unknown";
  }
  return "invalid";
}

namespace internal {

std::string describe_header(size_t index, uint64_t client_id, uint64_t call_time,
                            uint64_t return_time) {
  std::string out = "#" + std::to_string(index) + " client " + std::to_string(client_id) + " [" +
                    std::to_string(call_time) + ", ";
  out += return_time == kNever ? std::string("inf) ") : std::to_string(return_time) + "] ";
  return out;
}

}  // namespace internal

}  // namespace chorus::check
