#include "server/client_identity.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <charconv>
#include <cstdlib>

namespace chorus::server {

namespace {
constexpr size_t kSecretBytes = 32;
}

ClientIdentities::ClientIdentities() : secret_(kSecretBytes, '\0') {
  if (RAND_bytes(reinterpret_cast<unsigned char*>(secret_.data()),
                 static_cast<int>(secret_.size())) != 1) {
    // Without randomness no secret can be trusted: nothing may claim a name this way.
    std::abort();
  }
}

void ClientIdentities::set(int fd, std::string common_name) {
  std::lock_guard<std::mutex> lk(mu_);
  if (common_name.empty()) {
    by_fd_.erase(fd);
  } else {
    by_fd_[fd] = std::move(common_name);
  }
}

std::string ClientIdentities::user_of_peer(std::string_view peer) const {
  constexpr std::string_view kPrefix = "fd:";
  if (!peer.starts_with(kPrefix)) return {};
  peer.remove_prefix(kPrefix.size());
  int fd = -1;
  auto [end, ec] = std::from_chars(peer.data(), peer.data() + peer.size(), fd);
  if (ec != std::errc() || end != peer.data() + peer.size()) return {};
  std::lock_guard<std::mutex> lk(mu_);
  auto it = by_fd_.find(fd);
  return it == by_fd_.end() ? std::string() : it->second;
}

std::string ClientIdentities::gateway_value(std::string_view common_name) const {
  return secret_ + std::string(common_name);
}

std::optional<std::string> ClientIdentities::gateway_user(std::string_view value) const {
  if (value.size() < secret_.size() ||
      CRYPTO_memcmp(value.data(), secret_.data(), secret_.size()) != 0) {
    return std::nullopt;
  }
  return std::string(value.substr(secret_.size()));
}

}  // namespace chorus::server
