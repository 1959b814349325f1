// The plain-text client port's two faces, as etcd serves them on one port: gRPC (HTTP/2) for
// etcd's clients, and etcd's HTTP/JSON gateway (HTTP/1.1) for curl and HTTP-only clients, with
// /health, /version and /metrics beside it.
//
// A connection's first bytes decide: HTTP/2's client preface hands the socket to the gRPC server
// as it is (AddInsecureChannelFromFd: gRPC then owns it; nothing is copied in between);
// anything else is read as HTTP/1.1. Gateway requests become calls on an in-process channel to
// the same gRPC services, so they pass the same checks (auth, size limits, metrics) as any
// client's: JSON is converted with protobuf's own JSON mapping, as etcd's grpc-gateway does
// (bytes as base64, 64-bit integers as strings, field names as in the .proto files), and an
// `Authorization` header carries the token. Watches and lease keep-alives stream their answers
// as chunks of {"result":...} lines.
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
#include "storage/status.h"

namespace grpc {
class Server;
}

namespace chorus::server {

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
};

class ClientPort {
 public:
  explicit ClientPort(GatewayOptions options);
  ~ClientPort();
  ClientPort(const ClientPort&) = delete;
  ClientPort& operator=(const ClientPort&) = delete;

  // Binds host:port (port 0 picks one; *bound_port reports it). Before start().
  storage::Status listen(const std::string& host, uint16_t port, uint16_t* bound_port);
  // Starts accepting: gRPC connections go to `server` (built and started, without these
  // addresses as its own ports), gateway calls to it through an in-process channel.
  void start(grpc::Server* server);
  // Closes the listeners and every gateway connection (not those handed to gRPC) and joins.
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
