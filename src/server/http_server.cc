#include "server/http_server.h"

#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

// GCC's flow analysis, after inlining Asio's reactor at -O1 and above, flags a dereference in
// scheduler::compensating_work_started() that Asio guarantees only runs on a scheduler thread.
// The warning is reported inside Asio's own headers, so it is silenced for them alone.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <asio.hpp>
#pragma GCC diagnostic pop

#include "server/asio_server.h"

#include "base/thread_name.h"

namespace chorus::server {
namespace {

using asio::ip::tcp;
using std::chrono::milliseconds;

constexpr size_t kReadChunkBytes = 4096;
// After answering, what the client still sends is read and thrown away (so that closing does
// not reset the connection under an answer it has not read yet), up to this much.
constexpr size_t kMaxDrainBytes = 64 << 10;
// After accept() fails (out of descriptors, say), wait this long instead of spinning.
constexpr int kAcceptRetryMs = 100;

constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kJsonContentType = "application/json";
constexpr std::string_view kTextContentType = "text/plain; charset=utf-8";

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "http server: %s\n", what);
  std::abort();
}

std::string make_response(int status, std::string_view content_type, std::string_view body,
                          std::string_view extra_headers = {}) {
  std::string out =
      "HTTP/1.1 " + std::to_string(status) + " " + http_reason_phrase(status) + "\r\n";
  out += "Content-Type: ";
  out += content_type;
  out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  out += extra_headers;
  out += "Connection: close\r\n\r\n";
  out += body;
  return out;
}

std::string error_response(int status) {
  return make_response(status, kTextContentType, std::string(http_reason_phrase(status)) + "\n");
}

// RFC 9110's tchar: what a method or a header name may contain.
bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_token_char(c)) return false;
  return true;
}

using Request = HttpRequestHead;

}  // namespace

std::variant<HttpRequestHead, int> parse_request_head(std::string_view head) {
  std::vector<std::string_view> lines;
  while (!head.empty()) {
    size_t nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    head.remove_prefix(nl + 1);
  }
  if (lines.empty()) return 400;
  for (std::string_view line : lines)
    for (char c : line)
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return 400;

  // Request line: method SP target SP version, single spaces.
  std::string_view line = lines[0];
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return 400;
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return 400;
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method) || target.empty()) return 400;
  if (version.size() != 8 || !version.starts_with("HTTP/") || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
    return 400;
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return 505;

  // Header lines: a token, a colon, a value. Obsolete line folding (a line starting with white
  // space) is refused, as RFC 9112 allows.
  std::vector<std::pair<std::string, std::string>> headers;
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;  // the blank line that ends the head
    size_t colon = lines[i].find(':');
    if (colon == std::string_view::npos || !is_token(lines[i].substr(0, colon))) return 400;
    std::string name(lines[i].substr(0, colon));
    for (char& ch : name)
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string_view value = lines[i].substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
      value.remove_suffix(1);
    headers.emplace_back(std::move(name), std::string(value));
  }

  // The absolute form (a proxy's "http://host/path") names the same resource.
  if (target.starts_with("http://") || target.starts_with("https://")) {
    size_t authority = target.find("//") + 2;
    size_t slash = target.find('/', authority);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  if (target.front() != '/') return 400;
  Request r;
  r.headers = std::move(headers);
  r.http10 = version == "HTTP/1.0";
  r.method = std::string(method);
  size_t question = target.find('?');
  r.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) r.query = std::string(target.substr(question + 1));
  return r;
}

const std::string* HttpRequestHead::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (n == name) return &v;
  return nullptr;
}

namespace {

// The value of `key` in a query string ("a=1&b=2"), or nullopt. No percent-decoding: the keys
// and values served here never need it.
std::optional<std::string_view> query_value(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key)
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

// Where the request head ends (the index just past its blank line), searching from `from`.
std::optional<size_t> head_end(const std::string& buffer, size_t from) {
  for (size_t i = from; i < buffer.size(); ++i) {
    if (buffer[i] != '\n') continue;
    if (i >= 1 && buffer[i - 1] == '\n') return i + 1;
    if (i >= 2 && buffer[i - 1] == '\r' && buffer[i - 2] == '\n') return i + 1;
  }
  return std::nullopt;
}

struct Conn {
  explicit Conn(tcp::socket s) : socket(std::move(s)), deadline(socket.get_executor()) {}

  tcp::socket socket;
  asio::steady_timer deadline;
  uint64_t deadline_generation = 0;
  std::string buffer;  // the request head as read so far
  std::array<char, kReadChunkBytes> chunk{};
  std::string response;
  size_t drained_bytes = 0;
  bool closed = false;
};

struct Listener {
  explicit Listener(asio::io_context& io) : acceptor(io), retry(io) {}
  tcp::acceptor acceptor;
  asio::steady_timer retry;
};

}  // namespace

std::string health_json(const HealthResult& result) {
  return std::string("{\"health\":\"") + (result.healthy ? "true" : "false") +
         "\",\"reason\":" + json_quote(result.reason) + "}";
}

struct HttpServer::Impl {
  Impl(HttpHandlers h, HttpServerOptions o) : handlers(std::move(h)), options(o) {}

  // Declared first so that it is destroyed last, after everything that uses it.
  IoThread loop;
  asio::io_context& io = loop.io;
  HttpHandlers handlers;
  HttpServerOptions options;
  std::vector<std::unique_ptr<Listener>> listeners;
  std::unordered_set<std::shared_ptr<Conn>> connections;  // I/O thread only
  bool stopping = false;                                  // I/O thread only

  // ---- accepting ----

  void accept(Listener* l) {
    l->acceptor.async_accept([this, l](const asio::error_code& ec, tcp::socket socket) {
      if (stopping) return;
      if (ec) {
        if (ec == asio::error::operation_aborted) return;
        l->retry.expires_after(milliseconds(kAcceptRetryMs));
        l->retry.async_wait([this, l](const asio::error_code& error) {
          if (!error && !stopping) accept(l);
        });
        return;
      }
      if (connections.size() >= options.max_connections) {
        asio::error_code ignored;
        socket.close(ignored);
      } else {
        auto c = std::make_shared<Conn>(std::move(socket));
        connections.insert(c);
        arm_deadline(c, options.read_timeout_ms);
        read(c);
      }
      accept(l);
    });
  }

  // Closes the connection once `ms` have passed, unless the deadline is armed again first.
  void arm_deadline(const std::shared_ptr<Conn>& c, int ms) {
    uint64_t generation = ++c->deadline_generation;
    c->deadline.expires_after(milliseconds(ms));
    c->deadline.async_wait([this, c, generation](const asio::error_code& ec) {
      // A deadline that fired just as it was moved still has its handler queued: the
      // generation tells it apart from the current one.
      if (ec || c->closed || generation != c->deadline_generation) return;
      close(c);
    });
  }

  // ---- one request ----

  void read(const std::shared_ptr<Conn>& c) {
    c->socket.async_read_some(asio::buffer(c->chunk),
                              [this, c](const asio::error_code& ec, size_t n) {
                                if (c->closed) return;
                                if (ec) {
                                  close(c);
                                  return;
                                }
                                on_read(c, n);
                              });
  }

  void on_read(const std::shared_ptr<Conn>& c, size_t n) {
    size_t searched = c->buffer.size() >= 2 ? c->buffer.size() - 2 : 0;
    c->buffer.append(c->chunk.data(), n);
    // Empty lines before a request line are skipped (RFC 9112, section 2.2).
    size_t leading = c->buffer.find_first_not_of("\r\n");
    if (leading == std::string::npos) leading = c->buffer.size();
    if (leading > 0) {
      c->buffer.erase(0, leading);
      searched = 0;
    }
    std::optional<size_t> end = head_end(c->buffer, searched);
    if (end && *end <= kMaxRequestHeaderBytes) {
      answer(c, route(std::string_view(c->buffer).substr(0, *end)));
      return;
    }
    if (c->buffer.size() >= kMaxRequestHeaderBytes) {
      answer(c, error_response(431));
      return;
    }
    read(c);
  }

  std::string route(std::string_view head) {
    std::variant<Request, int> parsed = parse_request_head(head);
    if (const int* status = std::get_if<int>(&parsed)) return error_response(*status);
    const Request& r = std::get<Request>(parsed);
    bool known =
        r.path == "/health" || r.path == "/version" || (r.path == "/metrics" && handlers.metrics);
    if (!known) return make_response(404, kTextContentType, "404 page not found\n");
    if (r.method != "GET") {
      return make_response(405, kTextContentType, "Method Not Allowed\n", "Allow: GET\r\n");
    }
    // A handler that throws answers 500 instead of taking the I/O thread down.
    try {
      if (r.path == "/health") {
        bool serializable = query_value(r.query, "serializable") == std::string_view("true");
        HealthResult result = handlers.health(serializable);
        return make_response(result.healthy ? 200 : 503, kJsonContentType, health_json(result));
      }
      if (r.path == "/metrics") {
        return make_response(200, kMetricsContentType, handlers.metrics());
      }
      return make_response(200, kJsonContentType, version_json(handlers));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "http server: handler for %s failed: %s\n", r.path.c_str(), e.what());
      return error_response(500);
    }
  }

  void answer(const std::shared_ptr<Conn>& c, std::string response) {
    c->response = std::move(response);
    c->buffer.clear();
    c->buffer.shrink_to_fit();
    arm_deadline(c, options.write_timeout_ms);
    asio::async_write(c->socket, asio::buffer(c->response),
                      [this, c](const asio::error_code& ec, size_t) {
                        if (c->closed) return;
                        if (ec) {
                          close(c);
                          return;
                        }
                        c->response.clear();
                        c->response.shrink_to_fit();
                        // Half-close, then drain: closing with unread input would make the
                        // kernel reset the connection, which can destroy the answer before
                        // the client has read it.
                        asio::error_code ignored;
                        c->socket.shutdown(tcp::socket::shutdown_send, ignored);
                        drain(c);
                      });
  }

  void drain(const std::shared_ptr<Conn>& c) {
    c->socket.async_read_some(asio::buffer(c->chunk),
                              [this, c](const asio::error_code& ec, size_t n) {
                                if (c->closed) return;
                                c->drained_bytes += n;
                                if (ec || c->drained_bytes > kMaxDrainBytes) {
                                  close(c);
                                  return;
                                }
                                drain(c);
                              });
  }

  // Takes the connection by value: callers may hold a reference into `connections`.
  void close(std::shared_ptr<Conn> c) {
    if (c->closed) return;
    c->closed = true;
    asio::error_code ignored;
    c->socket.close(ignored);
    c->deadline.cancel();
    connections.erase(c);
  }

  // ---- stopping ----

  void shutdown() {
    stopping = true;
    asio::error_code ignored;
    for (const auto& l : listeners) {
      l->acceptor.close(ignored);
      l->retry.cancel();
    }
    std::vector<std::shared_ptr<Conn>> all(connections.begin(), connections.end());
    for (const auto& c : all)
      close(c);
    // Every handler still queued sees a closed connection or `stopping` and starts nothing, so
    // run() returns once they have drained (IoThread::stop).
  }
};

HttpServer::HttpServer(HttpHandlers handlers, HttpServerOptions options) {
  if (!handlers.health) die("HttpHandlers::health is required");
  if (options.read_timeout_ms <= 0 || options.write_timeout_ms <= 0)
    die("timeouts must be positive");
  if (options.max_connections == 0) die("max_connections must be positive");
  impl_ = std::make_unique<Impl>(std::move(handlers), options);
}

HttpServer::~HttpServer() {
  stop();
}

storage::Status HttpServer::listen(const std::string& host, uint16_t port, uint16_t* bound_port) {
  Impl& d = *impl_;
  if (!d.loop.idle()) return storage::Status::invalid_argument("listen() after start()");
  auto l = std::make_unique<Listener>(d.io);
  CHORUS_RETURN_IF_ERROR(bind_acceptor(l->acceptor, host, port, bound_port));
  d.listeners.push_back(std::move(l));
  return storage::Status::ok();
}

void HttpServer::start() {
  Impl& d = *impl_;
  bool started = d.loop.start("chorus-http", [&d] {
    for (const auto& l : d.listeners)
      d.accept(l.get());
  });
  if (!started) die("start() called twice or after stop()");
}

void HttpServer::stop() {
  Impl& d = *impl_;
  if (d.loop.stop([&d] { d.shutdown(); }) == IoThread::State::kIdle) {
    asio::error_code ignored;
    for (const auto& l : d.listeners)
      l->acceptor.close(ignored);
  }
}

const char* http_reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 421:
      return "Misdirected Request";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Internal Server Error";
  }
}

std::string version_json(const HttpHandlers& handlers) {
  return "{\"etcdserver\":" + json_quote(handlers.server_version) +
         ",\"etcdcluster\":" + json_quote(handlers.cluster_version) + "}";
}

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof(buffer), "\\u%04x", c);
      out += buffer;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

}  // namespace chorus::server
