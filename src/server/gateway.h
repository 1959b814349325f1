// The client port's two faces, as etcd serves them on one port: gRPC (HTTP/2) for etcd's
// clients, and etcd's HTTP/JSON gateway (HTTP/1.1) for curl and HTTP-only clients, with
// /health, /version and /metrics beside it. Plain-text and https client URLs alike.
//
// A connection's first bytes decide: HTTP/2's client preface hands the connection to the gRPC
// server, anything else is read as HTTP/1.1. On a plain-text URL gRPC gets the socket as it is
// (AddInsecureChannelFromFd: gRPC then owns it; nothing is copied in between).
//
// On an https URL Chorus ends TLS itself (OpenSSL through Asio, the context the peer port
// uses), because gRPC 1.51 can neither take a TLS connection it did not accept nor serve
// HTTP/1.1: so one port serves both faces over TLS, and --cipher-suites, --tls-min-version,
// --tls-max-version, --client-crl-file and --client-cert-allowed-hostname apply to both. ALPN
// picks the face: a client offering http/1.1 (curl, browsers) gets it; one offering only h2
// (gRPC's clients) gets h2. After the handshake the decrypted bytes decide as above; gRPC's
// connections get one end of a socket pair, and a pump on this port's thread copies between
// it and the TLS stream. The certificate's common name goes to ClientIdentities, where the
// API's auth checks find it (--client-cert-auth: the common name is the user, as in etcd).
//
// Gateway requests become calls on an in-process channel to the same gRPC services, so they
// pass the same checks (auth, size limits, metrics) as any client's: JSON is converted with
// protobuf's own JSON mapping, as etcd's grpc-gateway does (bytes as base64, 64-bit integers
// as strings, field names as in the .proto files), and an `Authorization` header carries the
// token. Watches and lease keep-alives stream their answers as chunks of {"result":...} lines.
//
// One I/O thread owns every socket. Requests: a head of at most kMaxRequestHeaderBytes, a body
// of at most the given limit (--max-request-bytes, with room for base64), keep-alive between
// requests; bad input gets etcd's error body and a 4xx, never harm.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "server/http_server.h"
#include "server/tls.h"
#include "storage/status.h"

namespace grpc {
class Server;
}

namespace chorus::server {

class ClientIdentities;

struct GatewayOptions {
  uint64_t max_body_bytes = 4u << 20;
  // A connection that sends nothing for this long is closed.
  int idle_timeout_ms = 60'000;
  size_t max_connections = 4096;
  // Streams (watches, keep-alives) open at once through the gateway.
  size_t max_streams = 256;
  HttpHandlers http;  // /health, /version, /metrics
  // etcd's --cors: origins whose pages may call the gateway ({"*"}: any), answered with CORS
  // headers (and an empty 200 to a preflight OPTIONS).
  std::vector<std::string> cors = {"*"};
  // etcd's --host-whitelist: the Host headers accepted ({"*"}: any); others get 421.
  std::vector<std::string> host_whitelist = {"*"};
  // For https listeners: the member's certificate and key, and how clients are verified.
  ClientTls tls;
  // Where the common names of verified client certificates go; may be null (then none do).
  ClientIdentities* identities = nullptr;
};

class ClientPort {
 public:
  explicit ClientPort(GatewayOptions options);
  ~ClientPort();
  ClientPort(const ClientPort&) = delete;
  ClientPort& operator=(const ClientPort&) = delete;

  // Binds host:port (port 0 picks one; *bound_port reports it), speaking TLS if `tls`. Before
  // start().
  storage::Status listen(const std::string& host, uint16_t port, uint16_t* bound_port,
                         bool tls = false);
  // Starts accepting: gRPC connections go to `server` (built and started, without these
  // addresses as its own ports), gateway calls to it through an in-process channel.
  void start(grpc::Server* server);
  // Closes the listeners, every gateway connection and every TLS connection handed to gRPC
  // (plain-text ones are gRPC's), and joins.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Whether gRPC takes `value` as a metadata value (visible ASCII and spaces only; it aborts the
// process on anything else, so values from outside are checked first).
inline bool valid_metadata_value(std::string_view value) {
  for (char c : value)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

// What the gateway answers a gRPC error with: grpc-gateway's HTTP status for the code and its
// body, {"error":...,"code":...,"message":...}.
int http_status_for(int grpc_code);
std::string gateway_error_json(int grpc_code, const std::string& message);

}  // namespace chorus::server
