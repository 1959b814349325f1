#include "server/jwt.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace chorus::server {
namespace {

// Writes a fresh key pair as PEM files into a temporary directory.
struct KeyFiles {
  std::filesystem::path dir;
  std::string pub, priv;

  KeyFiles(const char* type, const char* param, const std::string& tag) {
    dir = std::filesystem::temp_directory_path() /
          ("chorus-jwt-" + tag + "-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    EVP_PKEY* key = std::string(type) == "RSA"
                        ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048))
                        : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", param);
    pub = (dir / "pub.pem").string();
    priv = (dir / "priv.pem").string();
    FILE* f = std::fopen(pub.c_str(), "w");
    PEM_write_PUBKEY(f, key);
    std::fclose(f);
    f = std::fopen(priv.c_str(), "w");
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    EVP_PKEY_free(key);
  }
  ~KeyFiles() { std::filesystem::remove_all(dir); }
};

std::unique_ptr<JwtTokens> make(const std::string& spec) {
  std::unique_ptr<JwtTokens> t;
  storage::Status st = JwtTokens::create(spec, &t);
  EXPECT_TRUE(st.is_ok()) << spec << ": " << st.to_string();
  return t;
}

TEST(Jwt, SignedTokensVerifyForEveryMethodAndCarryTheirClaims) {
  KeyFiles rsa("RSA", nullptr, "rsa");
  KeyFiles p256("EC", "P-256", "p256");
  KeyFiles p384("EC", "P-384", "p384");
  struct Case {
    const char* method;
    const KeyFiles* keys;
  };
  for (const Case& c : {Case{"RS256", &rsa}, Case{"RS512", &rsa}, Case{"PS256", &rsa},
                        Case{"ES256", &p256}, Case{"ES384", &p384}}) {
    SCOPED_TRACE(c.method);
    auto t = make("jwt,pub-key=" + c.keys->pub + ",priv-key=" + c.keys->priv +
                  ",sign-method=" + c.method + ",ttl=5m");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->ttl_seconds(), 300);
    std::string token = t->sign("alice", 42, 1000);
    ASSERT_FALSE(token.empty());
    std::string user;
    uint64_t rev = 0;
    ASSERT_TRUE(t->verify(token, 1299, &user, &rev));
    EXPECT_EQ(user, "alice");
    EXPECT_EQ(rev, 42u);
    EXPECT_FALSE(t->verify(token, 1300, &user, &rev)) << "expired";
    // Any byte changed in any part breaks it.
    for (size_t i : {size_t{3}, token.find('.') + 3, token.size() - 3}) {
      std::string bad = token;
      bad[i] = bad[i] == 'A' ? 'B' : 'A';
      EXPECT_FALSE(t->verify(bad, 1000, &user, &rev)) << i;
    }
    // A member holding only the public key verifies but cannot sign.
    auto verifier = make("jwt,pub-key=" + c.keys->pub + ",sign-method=" + c.method);
    ASSERT_NE(verifier, nullptr);
    EXPECT_FALSE(verifier->can_sign());
    EXPECT_TRUE(verifier->sign("alice", 1, 0).empty());
    EXPECT_TRUE(verifier->verify(token, 1000, &user, &rev));
  }
}

TEST(Jwt, ForgedAndForeignTokensAreRefused) {
  KeyFiles a("EC", "P-256", "a");
  KeyFiles b("EC", "P-256", "b");
  auto ta = make("jwt,pub-key=" + a.pub + ",priv-key=" + a.priv + ",sign-method=ES256");
  auto tb = make("jwt,pub-key=" + b.pub + ",priv-key=" + b.priv + ",sign-method=ES256");
  std::string user;
  uint64_t rev = 0;
  EXPECT_FALSE(ta->verify(tb->sign("root", 1, 0), 0, &user, &rev)) << "another key's token";
  // "alg": "none" with no signature, and garbage.
  std::string none =
      "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJ1c2VybmFtZSI6InJvb3QiLCJyZXZpc2lv"
      "biI6MSwiZXhwIjo5OTk5OTk5OTk5fQ.";
  EXPECT_FALSE(ta->verify(none, 0, &user, &rev));
  for (const char* junk : {"", ".", "..", "a.b.c", "x.y", "a.b.c.d", "!!!.###.$$$"})
    EXPECT_FALSE(ta->verify(junk, 0, &user, &rev)) << junk;
}

TEST(Jwt, BadSpecsAreRefusedWithTheReason) {
  KeyFiles rsa("RSA", nullptr, "spec-rsa");
  KeyFiles ec("EC", "P-256", "spec-ec");
  KeyFiles other("EC", "P-256", "spec-other");
  struct Case {
    std::string spec;
    const char* reason;
  };
  const Case cases[] = {
      {"jwt,pub-key=" + ec.pub + ",sign-method=HS256", "sign-method"},
      {"jwt,sign-method=ES256", "pub-key"},
      {"jwt,pub-key=/nonexistent,sign-method=ES256", "cannot read"},
      {"jwt,pub-key=" + rsa.pub + ",sign-method=ES256", "EC key"},
      {"jwt,pub-key=" + ec.pub + ",sign-method=RS256", "RSA key"},
      {"jwt,pub-key=" + ec.pub + ",priv-key=" + other.priv + ",sign-method=ES256",
       "does not belong"},
      {"jwt,pub-key=" + ec.pub + ",sign-method=ES256,ttl=5 minutes", "ttl"},
      {"jwt,pub-key=" + ec.pub + ",sign-method=ES256,color=blue", "unknown option"},
      {"jwt,pub-key=" + ec.priv + ",sign-method=ES256", "no PEM public key"},
  };
  for (const Case& c : cases) {
    std::unique_ptr<JwtTokens> t;
    storage::Status st = JwtTokens::create(c.spec, &t);
    EXPECT_FALSE(st.is_ok()) << c.spec;
    EXPECT_NE(st.to_string().find(c.reason), std::string::npos) << st.to_string();
  }
}

}  // namespace
}  // namespace chorus::server
