// Streams: XADD, XRANGE, XREAD, consumer groups.
#include "redis/records.h"

namespace chorus::redis::internal {

const std::vector<Entry>& stream_entries() {
  static const std::vector<Entry> table = {};
  return table;
}

}  // namespace chorus::redis::internal
