// Redis Cluster's key slots: CRC16 (XMODEM) of the key, or of its {hash tag}, modulo 16,384.
// Keys with the same tag ({user1}.name, {user1}.mail) share a slot, so a multi-key command over
// them stays in one Raft group.
#pragma once

#include <cstdint>
#include <string_view>

namespace chorus::redis {

inline constexpr uint32_t kSlots = 16384;

uint16_t crc16(std::string_view data);
// The part of the key that is hashed: what lies between the first '{' and the first '}' after
// it, when that is not empty; otherwise the whole key.
std::string_view hash_tag(std::string_view key);
uint32_t key_slot(std::string_view key);

}  // namespace chorus::redis
