#include "transport/tls_context.h"

#include <array>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <asio/ssl.hpp>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "transport/tls_stream.h"
#pragma GCC diagnostic pop

namespace chorus::transport {

std::shared_ptr<asio::ssl::context> make_tls_context(const TlsSettings& t, bool server,
                                                     std::string_view side, std::string* error) {
  auto ctx = std::make_shared<asio::ssl::context>(server ? asio::ssl::context::tls_server
                                                         : asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1);
  SSL_CTX* native = ctx->native_handle();
  // No renegotiation: it would cost a handshake's CPU on demand, and could change the
  // certificate after its names were checked.
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_min_proto_version(native, t.min_version >= 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(native, t.max_version <= 12 ? TLS1_2_VERSION : TLS1_3_VERSION);
  if (!t.cipher_list.empty() && SSL_CTX_set_cipher_list(native, t.cipher_list.c_str()) != 1) {
    ERR_clear_error();
    *error = "no cipher suite of --cipher-suites is available: " + t.cipher_list;
    return nullptr;
  }
  const std::string who(side);
  asio::error_code ec;
  ctx->use_certificate_chain_file(t.cert_file, ec);
  if (ec) {
    *error = who + " certificate '" + t.cert_file + "': " + ec.message();
    return nullptr;
  }
  ctx->use_private_key_file(t.key_file, asio::ssl::context::pem, ec);
  if (ec) {
    *error = who + " key '" + t.key_file + "': " + ec.message();
    return nullptr;
  }
  if (t.trusted_ca_file.empty()) {
    ctx->set_verify_mode(asio::ssl::verify_none);
    return ctx;
  }
  ctx->load_verify_file(t.trusted_ca_file, ec);
  if (ec) {
    *error = who + " CA '" + t.trusted_ca_file + "': " + ec.message();
    return nullptr;
  }
  if (!t.crl_file.empty()) {
    X509_STORE* store = SSL_CTX_get_cert_store(native);
    int loaded = 0;
    if (BIO* bio = BIO_new_file(t.crl_file.c_str(), "r")) {
      while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio, nullptr, nullptr, nullptr)) {
        loaded += X509_STORE_add_crl(store, crl) == 1 ? 1 : 0;
        X509_CRL_free(crl);
      }
      BIO_free(bio);
    }
    ERR_clear_error();
    if (loaded == 0) {
      *error = who + " CRL '" + t.crl_file + "': holds no PEM certificate revocation list";
      return nullptr;
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  }
  ctx->set_verify_mode(asio::ssl::verify_peer |
                       (server ? asio::ssl::verify_fail_if_no_peer_cert : 0));
  return ctx;
}

bool names_host(X509* cert, const std::string& host) {
  return X509_check_host(cert, host.data(), host.size(), X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
                         nullptr) == 1 ||
         X509_check_ip_asc(cert, host.c_str(), 0) == 1;
}

std::string common_name(X509* cert) {
  std::array<char, 256> cn{};
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn.data(),
                                    static_cast<int>(cn.size()));
  return n < 0 ? std::string() : std::string(cn.data(), static_cast<size_t>(n));
}

std::string tls_error(const std::error_code& ec) {
  std::string why = ec.message();
  if (ec.category() == asio::error::get_ssl_category()) {
    char buf[256];
    ERR_error_string_n(static_cast<unsigned long>(ec.value()), buf, sizeof buf);
    why = buf;
  }
  return why;
}

}  // namespace chorus::transport
