#include "server/password.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <atomic>
#include <memory>
#include <mutex>

namespace chorus::server {
namespace {

// The hash an unknown user's login is checked against (made once per cost).
const std::string& dummy_hash(int cost) {
  static std::mutex mu;
  static std::string hashes[kMaxBcryptCost + 1];
  std::lock_guard<std::mutex> lk(mu);
  std::string& h = hashes[cost];
  if (h.empty()) h = hash_password("chorus: no such user", cost);
  return h;
}

}  // namespace

std::string hash_password(const std::string& password, int cost) {
  if (cost < kMinBcryptCost || cost > kMaxBcryptCost) return "";
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", static_cast<unsigned long>(cost), nullptr, 0, salt, sizeof salt) ==
      nullptr)
    return "";
  auto data = std::make_unique<crypt_data>();
  const char* out = crypt_rn(password.c_str(), salt, data.get(), sizeof(crypt_data));
  if (out == nullptr || out[0] == '*') return "";
  return out;
}

bool check_password(const std::string& password, const std::string& hash, int cost) {
  if (cost < kMinBcryptCost || cost > kMaxBcryptCost) cost = kDefaultBcryptCost;
  bool usable = hash.starts_with("$2");
  const std::string& setting = usable ? hash : dummy_hash(cost);
  auto data = std::make_unique<crypt_data>();
  const char* out = crypt_rn(password.c_str(), setting.c_str(), data.get(), sizeof(crypt_data));
  if (out == nullptr || out[0] == '*') return false;
  std::string got(out);
  return usable && got.size() == hash.size() &&
         CRYPTO_memcmp(got.data(), hash.data(), hash.size()) == 0;
}

std::string make_simple_token() {
  static std::atomic<uint64_t> counter{1};
  unsigned char bytes[22];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return "";
  std::string token;
  for (unsigned char b : bytes)
    token += static_cast<char>((b % 52) < 26 ? 'a' + b % 52 : 'A' + b % 52 - 26);
  return token + "." + std::to_string(counter.fetch_add(1));
}

}  // namespace chorus::server
