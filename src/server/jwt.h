// etcd's JWT auth tokens (--auth-token jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...):
// signed tokens any member holding the public key verifies on its own, carrying the user, the
// auth revision at login and an expiry ("username", "revision", "exp", as etcd writes them).
// A member with only the public key verifies tokens but cannot make them. OpenSSL does the
// signing; nothing of the cryptography is written here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "storage/status.h"

namespace chorus::server {

class JwtTokens {
 public:
  // `spec` is the --auth-token value ("jwt,pub-key=/p/pub.pem,priv-key=/p/priv.pem,
  // sign-method=RS256,ttl=5m"). Methods: RS256/384/512, PS256/384/512, ES256/384/512. The key
  // files are read here; an error names what is wrong.
  static storage::Status create(const std::string& spec, std::unique_ptr<JwtTokens>* out);
  ~JwtTokens();
  JwtTokens(const JwtTokens&) = delete;
  JwtTokens& operator=(const JwtTokens&) = delete;

  bool can_sign() const { return priv_ != nullptr; }
  int64_t ttl_seconds() const { return ttl_s_; }
  // A token for `user` at auth revision `revision`, expiring ttl after `now_unix`; empty when
  // this member has no private key or signing failed.
  std::string sign(const std::string& user, uint64_t revision, int64_t now_unix) const;
  // Checks the signature, the algorithm and the expiry; fills the claims.
  bool verify(const std::string& token, int64_t now_unix, std::string* user,
              uint64_t* revision) const;

 private:
  JwtTokens() = default;
  struct Key;
  std::string alg_;
  int64_t ttl_s_ = 300;
  std::unique_ptr<Key> pub_;
  std::unique_ptr<Key> priv_;
};

// Whether an --auth-token value asks for JWT tokens.
inline bool is_jwt_spec(const std::string& spec) {
  return spec == "jwt" || spec.rfind("jwt,", 0) == 0;
}

}  // namespace chorus::server
