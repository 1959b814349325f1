// Client TLS: the files etcd's --cert-file, --key-file, --trusted-ca-file and --client-crl-file
// name, checked before the member serves and every second after (TlsFileWatch), the client
// port's TLS settings (it ends TLS itself with them, gateway.h), and gRPC credentials for this
// member's calls to other members' https client URLs. OpenSSL through Asio's and gRPC's own
// TLS; nothing hand-rolled here.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/periodic.h"
#include "storage/status.h"
#include "transport/tls_context.h"

namespace grpc {
class ChannelCredentials;
}  // namespace grpc

namespace chorus::server {

// The client port's TLS (etcd's --cert-file, --key-file, --trusted-ca-file, --client-crl-file,
// --cipher-suites, --tls-min-version, --tls-max-version). Chorus ends TLS itself on https
// client URLs (gateway.h), so every one of these applies to gRPC and the JSON gateway alike.
struct ClientTls : transport::TlsSettings {
  bool client_cert_auth = false;
  // --client-cert-allowed-hostname: a client certificate must also be valid for this name.
  std::string allowed_hostname;
  bool has_identity() const { return !cert_file.empty(); }
};

// How often the certificate files are read again.
inline constexpr unsigned kTlsRefreshSeconds = 1;

// Reads the files and checks them: each parses as PEM, the key belongs to the certificate, the
// CA file holds at least one certificate. An error names the file and what is wrong with it.
// `*expiry_warning` is set (and the check passes) when the certificate is expired or not yet
// valid: handshakes will fail until it is replaced, which the member picks up on its own.
storage::Status check_tls_files(const ClientTls& tls, std::string* expiry_warning);

// Checks the files every kTlsRefreshSeconds on its own thread (chorus-tls), as the server's
// credentials read them: `on_change` hears of each new problem (and of its end, with an empty
// text), and problem() says what is wrong now (for /health); empty while the files are fine.
class TlsFileWatch {
 public:
  TlsFileWatch(ClientTls tls, std::function<void(const std::string& problem)> on_change);
  ~TlsFileWatch();
  TlsFileWatch(const TlsFileWatch&) = delete;
  TlsFileWatch& operator=(const TlsFileWatch&) = delete;

  std::string problem() const;

 private:
  void check();

  const ClientTls tls_;
  std::function<void(const std::string&)> on_change_;
  mutable std::mutex mu_;  // guards problem_
  std::string problem_;
  base::PeriodicThread thread_;  // last (chorus-tls)
};

// --auto-tls: a self-signed certificate (EC P-256, valid a year) for `hosts` (IP addresses or
// names) in `dir`, made once and kept: fills tls->cert_file and key_file. The key file is
// readable by its owner only.
storage::Status make_self_signed(const std::string& dir, const std::vector<std::string>& hosts,
                                 ClientTls* tls);

// For calls to another member's client URL: TLS for https (trusting --trusted-ca-file, else
// the system's CAs, and presenting this member's certificate), plain text for http. Null, with
// *error, when a file that is set cannot be read: never a wider trust or plain text instead.
std::shared_ptr<grpc::ChannelCredentials> member_channel_credentials(const std::string& url,
                                                                     const ClientTls& tls,
                                                                     std::string* error);

}  // namespace chorus::server
