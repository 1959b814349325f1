// CRC-32C (Castagnoli), the checksum of every log record and snapshot chunk. Uses the SSE4.2
// crc32 instruction when the CPU has it, a table otherwise; both give the same values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace chorus::storage {

// Extends `crc` (the value of a previous call, or 0 to start) over `data`.
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n);
inline uint32_t crc32c(std::string_view data) {
  return crc32c_extend(0, data.data(), data.size());
}
bool crc32c_hardware();
// The table version, always; tests compare it with the hardware path.
uint32_t crc32c_extend_portable(uint32_t crc, const void* data, size_t n);

}  // namespace chorus::storage
