#include "server/jwt.h"

#include "server/config.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

namespace chorus::server {

using storage::Status;

struct JwtTokens::Key {
  EVP_PKEY* pkey = nullptr;
  ~Key() { EVP_PKEY_free(pkey); }
};

namespace {

constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64url(std::string_view in) {
  std::string out;
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(in[k])); };
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    for (int s = 18; s >= 0; s -= 6)
      out += kB64Url[(v >> s) & 63];
  }
  if (in.size() - i == 1) {
    uint32_t v = byte(i) << 16;
    out += kB64Url[(v >> 18) & 63];
    out += kB64Url[(v >> 12) & 63];
  } else if (in.size() - i == 2) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8;
    out += kB64Url[(v >> 18) & 63];
    out += kB64Url[(v >> 12) & 63];
    out += kB64Url[(v >> 6) & 63];
  }
  return out;
}

bool unb64url(std::string_view in, std::string* out) {
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const char* p = std::strchr(kB64Url, c);
    if (c == '\0' || p == nullptr) return false;
    acc = acc << 6 | static_cast<uint32_t>(p - kB64Url);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return bits < 6 && (acc & ((1u << bits) - 1)) == 0;  // no leftover set bits
}

std::string read_file(const std::string& path, bool* ok) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  *ok = static_cast<bool>(f);
  return ss.str();
}

const EVP_MD* digest_for(const std::string& alg) {
  std::string bits = alg.substr(2);
  if (bits == "256") return EVP_sha256();
  if (bits == "384") return EVP_sha384();
  if (bits == "512") return EVP_sha512();
  return nullptr;
}

// Bytes of each of r and s in an ES signature.
int ec_half(const std::string& alg) {
  if (alg == "ES256") return 32;
  if (alg == "ES384") return 48;
  return 66;  // ES512: P-521
}

bool set_padding(EVP_PKEY_CTX* pctx, const std::string& alg) {
  if (alg.starts_with("PS")) {
    return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
  }
  return true;
}

Status check_key_type(EVP_PKEY* key, const std::string& alg, const std::string& what) {
  int id = EVP_PKEY_get_base_id(key);
  if (alg.starts_with("ES")) {
    if (id != EVP_PKEY_EC || (EVP_PKEY_get_bits(key) + 7) / 8 != ec_half(alg))
      return Status::invalid_argument(what + " is not an EC key of the curve " + alg + " uses");
  } else if (id != EVP_PKEY_RSA && id != EVP_PKEY_RSA_PSS) {
    return Status::invalid_argument(what + " is not an RSA key, which " + alg + " needs");
  }
  return Status::ok();
}

}  // namespace

JwtTokens::~JwtTokens() = default;

Status JwtTokens::create(const std::string& spec, std::unique_ptr<JwtTokens>* out) {
  std::unique_ptr<JwtTokens> t(new JwtTokens);
  std::string pub_path, priv_path;
  std::stringstream ss(spec);
  std::string item;
  bool first = true;
  while (std::getline(ss, item, ',')) {
    if (first) {
      first = false;
      if (item != "jwt") return Status::invalid_argument("not a jwt token spec: " + spec);
      continue;
    }
    size_t eq = item.find('=');
    if (eq == std::string::npos)
      return Status::invalid_argument("--auth-token: '" + item + "' is not key=value");
    std::string k = item.substr(0, eq), v = item.substr(eq + 1);
    if (k == "pub-key") {
      pub_path = v;
    } else if (k == "priv-key") {
      priv_path = v;
    } else if (k == "sign-method") {
      t->alg_ = v;
    } else if (k == "ttl") {
      int64_t ms = 0;
      if (!parse_go_duration(v, &ms) || ms < 1000)
        return Status::invalid_argument("--auth-token: ttl '" + v +
                                        "' is not a duration such as 5m or 300s");
      t->ttl_s_ = ms / 1000;
    } else {
      return Status::invalid_argument("--auth-token: unknown option '" + k + "'");
    }
  }
  static const char* const kMethods[] = {"RS256", "RS384", "RS512", "PS256", "PS384",
                                         "PS512", "ES256", "ES384", "ES512"};
  if (std::find(std::begin(kMethods), std::end(kMethods), t->alg_) == std::end(kMethods)) {
    return Status::invalid_argument(
        "--auth-token: sign-method '" + t->alg_ +
        "' is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512");
  }
  if (pub_path.empty()) return Status::invalid_argument("--auth-token: jwt needs pub-key=<file>");
  bool ok = false;
  std::string pem = read_file(pub_path, &ok);
  if (!ok) return Status::io_error("--auth-token: cannot read pub-key '" + pub_path + "'");
  {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
    if (key == nullptr) {
      // A certificate holding the public key does as well.
      (void)BIO_reset(bio);
      if (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
        key = X509_get_pubkey(cert);
        X509_free(cert);
      }
    }
    BIO_free(bio);
    if (key == nullptr)
      return Status::invalid_argument("--auth-token: pub-key '" + pub_path +
                                      "' holds no PEM public key");
    t->pub_ = std::make_unique<Key>();
    t->pub_->pkey = key;
    CHORUS_RETURN_IF_ERROR(check_key_type(key, t->alg_, "pub-key '" + pub_path + "'"));
  }
  if (!priv_path.empty()) {
    pem = read_file(priv_path, &ok);
    if (!ok) return Status::io_error("--auth-token: cannot read priv-key '" + priv_path + "'");
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (key == nullptr)
      return Status::invalid_argument("--auth-token: priv-key '" + priv_path +
                                      "' holds no PEM private key");
    t->priv_ = std::make_unique<Key>();
    t->priv_->pkey = key;
    CHORUS_RETURN_IF_ERROR(check_key_type(key, t->alg_, "priv-key '" + priv_path + "'"));
    if (EVP_PKEY_eq(key, t->pub_->pkey) != 1)
      return Status::invalid_argument("--auth-token: priv-key '" + priv_path +
                                      "' does not belong to pub-key '" + pub_path + "'");
  }
  *out = std::move(t);
  return Status::ok();
}

std::string JwtTokens::sign(const std::string& user, uint64_t revision, int64_t now_unix) const {
  if (!priv_) return "";
  nlohmann::json header = {{"alg", alg_}, {"typ", "JWT"}};
  nlohmann::json claims = {{"username", user}, {"revision", revision}, {"exp", now_unix + ttl_s_}};
  std::string input = b64url(header.dump()) + "." + b64url(claims.dump());
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  std::string sig;
  size_t len = 0;
  bool ok = EVP_DigestSignInit(md, &pctx, digest_for(alg_), nullptr, priv_->pkey) == 1 &&
            set_padding(pctx, alg_) &&
            EVP_DigestSign(md, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                           input.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &len,
                        reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    sig.resize(len);
  }
  EVP_MD_CTX_free(md);
  if (!ok) return "";
  if (alg_.starts_with("ES")) {
    // JWS wants r and s side by side, each padded to the curve's size, not DER.
    const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    if (es == nullptr) return "";
    int half = ec_half(alg_);
    std::string raw(static_cast<size_t>(2 * half), '\0');
    auto* r = reinterpret_cast<unsigned char*>(raw.data());
    ok = BN_bn2binpad(ECDSA_SIG_get0_r(es), r, half) == half &&
         BN_bn2binpad(ECDSA_SIG_get0_s(es), r + half, half) == half;
    ECDSA_SIG_free(es);
    if (!ok) return "";
    sig = std::move(raw);
  }
  return input + "." + b64url(sig);
}

bool JwtTokens::verify(const std::string& token, int64_t now_unix, std::string* user,
                       uint64_t* revision) const {
  size_t a = token.find('.');
  size_t b = a == std::string::npos ? a : token.find('.', a + 1);
  if (b == std::string::npos || token.find('.', b + 1) != std::string::npos) return false;
  std::string header_text, claims_text, sig;
  if (!unb64url(std::string_view(token).substr(0, a), &header_text) ||
      !unb64url(std::string_view(token).substr(a + 1, b - a - 1), &claims_text) ||
      !unb64url(std::string_view(token).substr(b + 1), &sig))
    return false;
  nlohmann::json header = nlohmann::json::parse(header_text, nullptr, false);
  if (!header.is_object() || !header.contains("alg") || header["alg"] != alg_) return false;
  if (alg_.starts_with("ES")) {
    int half = ec_half(alg_);
    if (sig.size() != static_cast<size_t>(2 * half)) return false;
    const auto* r = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = ECDSA_SIG_new();
    BIGNUM* br = BN_bin2bn(r, half, nullptr);
    BIGNUM* bs = BN_bin2bn(r + half, half, nullptr);
    if (es == nullptr || br == nullptr || bs == nullptr || ECDSA_SIG_set0(es, br, bs) != 1) {
      BN_free(br);
      BN_free(bs);
      ECDSA_SIG_free(es);
      return false;
    }
    unsigned char* der = nullptr;
    int n = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    if (n <= 0) return false;
    sig.assign(reinterpret_cast<char*>(der), static_cast<size_t>(n));
    OPENSSL_free(der);
  }
  std::string_view input = std::string_view(token).substr(0, b);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  bool ok =
      EVP_DigestVerifyInit(md, &pctx, digest_for(alg_), nullptr, pub_->pkey) == 1 &&
      set_padding(pctx, alg_) &&
      EVP_DigestVerify(md, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(md);
  if (!ok) return false;
  nlohmann::json claims = nlohmann::json::parse(claims_text, nullptr, false);
  if (!claims.is_object() || !claims.contains("username") || !claims["username"].is_string() ||
      !claims.contains("revision") || !claims["revision"].is_number_unsigned() ||
      !claims.contains("exp") || !claims["exp"].is_number_integer())
    return false;
  if (claims["exp"].get<int64_t>() <= now_unix) return false;
  *user = claims["username"].get<std::string>();
  *revision = claims["revision"].get<uint64_t>();
  return true;
}

}  // namespace chorus::server
