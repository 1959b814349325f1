// Who a client is by its certificate, on https client URLs. Chorus ends TLS on the client port
// itself (gateway.h), so gRPC sees plain connections: an accepted connection reaches it as a
// descriptor of a socket pair (its calls' peer reads "fd:N"), and a JSON gateway request as a
// call on the in-process channel. With --client-cert-auth the verified certificate's common
// name is the user (as in etcd); it reaches the API's auth checks through this table.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace chorus::server {

class ClientIdentities {
 public:
  // Binary metadata (gRPC base64-encodes "-bin" values, so any common name passes) that the
  // gateway adds to its in-process calls: this process's secret, then the common name. A
  // client on a real connection does not know the secret, so it cannot claim a name.
  static constexpr const char* kGatewayUserKey = "chorus-cert-user-bin";

  ClientIdentities();

  // Before descriptor `fd` is handed to gRPC: the common name of its client's verified
  // certificate, or empty. Every hand-off records one (a plain-text connection an empty name),
  // so a descriptor number used again never inherits an earlier connection's name. gRPC keeps
  // a descriptor open until the last call on it ends, so a call never outlives its entry.
  void set(int fd, std::string common_name);
  // The common name recorded for the connection a call came on (its peer, "fd:N"); empty if
  // none.
  std::string user_of_peer(std::string_view peer) const;

  // The metadata value naming `common_name` on a gateway call.
  std::string gateway_value(std::string_view common_name) const;
  // The common name a gateway call's metadata value names, if it carries this process's secret.
  std::optional<std::string> gateway_user(std::string_view value) const;

 private:
  std::string secret_;
  mutable std::mutex mu_;
  std::unordered_map<int, std::string> by_fd_;
};

}  // namespace chorus::server
