#include "storage/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace chorus::storage {
namespace {

// Check values from RFC 3720 (iSCSI), appendix B.4.
TEST(Crc32c, KnownValues) {
  EXPECT_EQ(crc32c("123456789"), 0xe3069283u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8a9136aau);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62a8ab43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i)
    ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(ascending), 0x46dd794eu);
}

TEST(Crc32c, HardwareAndTableAgreeAtEveryLengthAndAlignment) {
  std::mt19937_64 rng(7);
  std::string data(300, '\0');
  for (char& c : data)
    c = static_cast<char>(rng());
  for (size_t start = 0; start < 9; ++start) {
    for (size_t n = 0; start + n <= data.size(); n += 7) {
      EXPECT_EQ(crc32c_extend(0, data.data() + start, n),
                crc32c_extend_portable(0, data.data() + start, n));
    }
  }
}

TEST(Crc32c, ExtendingInPiecesEqualsOneCall) {
  std::string a = "hello, ", b = "chorus";
  EXPECT_EQ(crc32c_extend(crc32c(a), b.data(), b.size()), crc32c(a + b));
}

}  // namespace
}  // namespace chorus::storage
