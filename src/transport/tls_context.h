// TLS contexts (OpenSSL through Asio) as Chorus's listeners and dialers build them: the peer
// port's connections (transport.cc) and the client port's https connections
// (server/gateway.cc). A context is built from the files as they are when a connection starts,
// so replaced certificates, keys, CAs and revocation lists take effect without a restart.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace asio::ssl {
class context;
}
struct x509_st;

namespace chorus::transport {

// One side's TLS: its certificate and key, the CA that signs the other side's certificates
// (empty: the other side is not verified), revocation lists of that CA, TLS 1.2 cipher suites
// (OpenSSL's names, ':'-separated; empty: OpenSSL's defaults) and the versions allowed.
struct TlsSettings {
  std::string cert_file;
  std::string key_file;
  std::string trusted_ca_file;
  std::string crl_file;
  std::string cipher_list;
  int min_version = 12;  // TLS 1.2 or 1.3
  int max_version = 13;
};

// A context from the files as they are now. With a CA, the other side's certificate must be
// signed by it (and not revoked); a server then also refuses a client without a certificate,
// as etcd does. Null, with *error naming the file (`side` says whose: "peer", "client"), when
// one cannot be used.
std::shared_ptr<asio::ssl::context> make_tls_context(const TlsSettings& t, bool server,
                                                     std::string_view side, std::string* error);

// Whether a certificate is valid for `host`: a DNS or IP subject alternative name.
bool names_host(x509_st* cert, const std::string& host);

// The certificate's subject common name; empty without one.
std::string common_name(x509_st* cert);

}  // namespace chorus::transport
