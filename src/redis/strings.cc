// String commands beyond GET and SET's family: bit operations and LCS.
#include "redis/records.h"

namespace chorus::redis::internal {

const std::vector<Entry>& string_entries() {
  static const std::vector<Entry> table = {};
  return table;
}

}  // namespace chorus::redis::internal
