// The HTTP side of chorusd: /health, /metrics and /version, with etcd's paths, bodies and status
// codes, for load balancers, orchestrators and Prometheus. Not a general web server: GET only,
// one request per connection (every answer carries `Connection: close`), no request bodies.
//
// One I/O thread owns every socket and timer; the handlers run on it, so a slow handler delays
// other requests but never blocks the caller of start() or stop().
//
// Limits. A request's line and headers must fit in kMaxRequestHeaderBytes (else 431) and arrive
// within read_timeout_ms of the connection opening (else the connection closes without an
// answer); at most max_connections are open at once (more are closed at once). Anything that is
// not a well-formed request gets a 400, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "storage/status.h"

namespace chorus::server {

// What /health reports. `reason` is etcd's: empty when healthy, otherwise e.g. "RAFT NO LEADER".
struct HealthResult {
  bool healthy = false;
  std::string reason;
};

struct HttpHandlers {
  // Called for each GET /health. `serializable` is true for `?serializable=true`, which in etcd
  // skips the linearizable read a healthy answer otherwise requires. Required.
  std::function<HealthResult(bool serializable)> health;
  // The body of GET /metrics (MetricsRegistry::render). Without it /metrics is a 404.
  std::function<std::string()> metrics;
  // The two fields of GET /version.
  std::string server_version = "3.5.0";
  std::string cluster_version = "3.5.0";
};

struct HttpServerOptions {
  // A connection that has not sent a whole request head by then is closed.
  int read_timeout_ms = 10000;
  // Time given to write the answer and to drain what the client still sends before closing.
  int write_timeout_ms = 10000;
  size_t max_connections = 256;
};

// A request's line plus headers; the read buffer never grows beyond it.
inline constexpr size_t kMaxRequestHeaderBytes = 8192;

class HttpServer {
 public:
  explicit HttpServer(HttpHandlers handlers, HttpServerOptions options = {});
  // Stops and joins.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (port 0 picks a free one; *bound_port, if given, reports it). May be called
  // several times for several addresses, all before start(). `host` may be a name, an IPv4 or
  // IPv6 literal (brackets allowed), or empty for every IPv4 address.
  storage::Status listen(const std::string& host, uint16_t port, uint16_t* bound_port);
  // Starts the I/O thread and accepting on every address. Once only.
  void start();
  // Closes every listener and connection and joins the thread; no handler runs after it
  // returns. Idempotent; must not be called from a handler. A stopped server does not start
  // again.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The body of /health, as etcd writes it: {"health":"true","reason":""}.
std::string health_json(const HealthResult& result);
// The body of /version: {"etcdserver":"3.5.0","etcdcluster":"3.5.0"}.
std::string version_json(const HttpHandlers& handlers);
// `s` as a JSON string, quotes included.
std::string json_quote(std::string_view s);

// The reason phrase of an HTTP status code ("Not Found").
const char* http_reason_phrase(int status);

// A request's line and headers, parsed (the HTTP/JSON gateway reads bodies after it).
struct HttpRequestHead {
  std::string method;
  std::string path;
  std::string query;
  bool http10 = false;
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  // The first header named `name` (lower case), or null.
  const std::string* header(std::string_view name) const;
};

// Parses a request head: the request line, the header lines and the blank line that ends it.
// Returns the request, or the status code of the error to answer (400, or 505 for a version
// other than HTTP/1.0 and 1.1). Never more than it was given: the caller bounds the head.
std::variant<HttpRequestHead, int> parse_request_head(std::string_view head);

}  // namespace chorus::server
