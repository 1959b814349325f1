#include "server/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "server/metrics.h"

namespace chorus::server {
namespace {

using Clock = std::chrono::steady_clock;

// A blocking client socket on 127.0.0.1 whose reads give up after `timeout_ms`.
class Client {
 public:
  explicit Client(uint16_t port, int timeout_ms = 5000) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_GE(fd_, 0);
    timeval tv{};
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    EXPECT_TRUE(connected_);
  }
  ~Client() {
    if (fd_ >= 0) close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // False if the server has already closed (a write to a reset connection fails).
  bool send_all(const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Everything until the server closes, or until a read times out.
  std::string read_all() {
    std::string out;
    char buffer[4096];
    for (;;) {
      ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
      if (n <= 0) {
        timed_out_ = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        break;
      }
      out.append(buffer, static_cast<size_t>(n));
    }
    return out;
  }
  bool timed_out() const { return timed_out_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool timed_out_ = false;
};

struct Response {
  int status = 0;
  std::string head;
  std::string body;
};

Response parse(const std::string& raw) {
  Response r;
  size_t end = raw.find("\r\n\r\n");
  if (raw.size() < 12 || end == std::string::npos) return r;
  r.status = std::stoi(raw.substr(9, 3));
  r.head = raw.substr(0, end + 2);
  r.body = raw.substr(end + 4);
  return r;
}

bool has_header(const Response& r, const std::string& line) {
  return r.head.find("\r\n" + line + "\r\n") != std::string::npos;
}

Response request(uint16_t port, const std::string& raw_request) {
  Client c(port);
  EXPECT_TRUE(c.send_all(raw_request));
  return parse(c.read_all());
}

Response get(uint16_t port, const std::string& target) {
  return request(port, "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
}

class HttpServerTest : public ::testing::Test {
 protected:
  void start(HttpServerOptions options = {}) {
    HttpHandlers handlers;
    handlers.health = [this](bool serializable) {
      last_serializable_ = serializable;
      ++health_calls_;
      return health_.load() ? HealthResult{true, ""} : HealthResult{false, "RAFT NO LEADER"};
    };
    handlers.metrics = [this] { return registry_.render(); };
    handlers.server_version = "3.5.0";
    handlers.cluster_version = "3.5.0";
    server_ = std::make_unique<HttpServer>(std::move(handlers), options);
    ASSERT_TRUE(server_->listen("127.0.0.1", 0, &port_).is_ok());
    server_->start();
  }

  MetricsRegistry registry_;
  std::atomic<bool> health_{true};
  std::atomic<bool> last_serializable_{false};
  std::atomic<int> health_calls_{0};
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
};

TEST_F(HttpServerTest, HealthyMemberAnswers200WithEtcdsJson) {
  start();
  Response r = get(port_, "/health");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"health\":\"true\",\"reason\":\"\"}");
  EXPECT_TRUE(has_header(r, "Content-Type: application/json"));
  EXPECT_TRUE(has_header(r, "Content-Length: " + std::to_string(r.body.size())));
  EXPECT_TRUE(has_header(r, "Connection: close"));
  EXPECT_FALSE(last_serializable_);
}

TEST_F(HttpServerTest, MemberWithoutLeaderAnswers503) {
  start();
  health_ = false;
  Response r = get(port_, "/health");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "{\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}");
}

TEST_F(HttpServerTest, SerializableQueryReachesTheHandler) {
  start();
  EXPECT_EQ(get(port_, "/health?serializable=true").status, 200);
  EXPECT_TRUE(last_serializable_);
  EXPECT_EQ(get(port_, "/health?exclude=NOSPACE&serializable=false").status, 200);
  EXPECT_FALSE(last_serializable_);
  EXPECT_EQ(health_calls_, 2);
}

TEST_F(HttpServerTest, MetricsServesTheRegistryInTextFormat) {
  registry_.counter("chorus_test_total", "A test counter.")->add(5);
  start();
  Response r = get(port_, "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(has_header(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
  EXPECT_EQ(r.body,
            "# HELP chorus_test_total A test counter.\n"
            "# TYPE chorus_test_total counter\n"
            "chorus_test_total 5\n");
}

TEST_F(HttpServerTest, VersionReportsTheEtcdVersions) {
  start();
  Response r = get(port_, "/version");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"etcdserver\":\"3.5.0\",\"etcdcluster\":\"3.5.0\"}");
}

TEST_F(HttpServerTest, UnknownPathIs404) {
  start();
  EXPECT_EQ(get(port_, "/").status, 404);
  EXPECT_EQ(get(port_, "/healthz").status, 404);
  EXPECT_EQ(get(port_, "/health/").status, 404);
  EXPECT_EQ(request(port_, "POST /v3/kv/range HTTP/1.1\r\n\r\n").status, 404);
}

TEST_F(HttpServerTest, OtherMethodsAre405) {
  start();
  for (const char* method : {"POST", "PUT", "DELETE", "HEAD"}) {
    Response r = request(port_, std::string(method) + " /health HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(r.status, 405) << method;
    EXPECT_TRUE(has_header(r, "Allow: GET")) << method;
  }
  EXPECT_EQ(health_calls_, 0);
}

TEST_F(HttpServerTest, MetricsWithoutAHandlerIs404) {
  HttpHandlers handlers;
  handlers.health = [](bool) { return HealthResult{true, ""}; };
  HttpServer server(std::move(handlers));
  uint16_t port = 0;
  ASSERT_TRUE(server.listen("127.0.0.1", 0, &port).is_ok());
  server.start();
  EXPECT_EQ(get(port, "/metrics").status, 404);
  EXPECT_EQ(get(port, "/health").status, 200);
}

TEST_F(HttpServerTest, AcceptsHttp10BareNewlinesAndTheAbsoluteForm) {
  start();
  EXPECT_EQ(request(port_, "GET /version HTTP/1.0\n\n").status, 200);
  EXPECT_EQ(request(port_, "\r\nGET /version HTTP/1.1\r\n\r\n").status, 200);
  EXPECT_EQ(request(port_, "GET http://127.0.0.1:2379/health HTTP/1.1\r\n\r\n").status, 200);
}

TEST_F(HttpServerTest, RequestArrivingByteByByteIsAnswered) {
  start();
  Client c(port_);
  std::string raw = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test\r\n\r\n";
  for (char ch : raw) {
    ASSERT_TRUE(c.send_all(std::string(1, ch)));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(parse(c.read_all()).status, 200);
}

TEST_F(HttpServerTest, OversizedHeadersAre431AndClose) {
  start();
  Client c(port_);
  std::string raw = "GET /health HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
  c.send_all(raw);  // the server may close before taking all of it
  std::string answer = c.read_all();
  EXPECT_FALSE(c.timed_out());
  EXPECT_EQ(parse(answer).status, 431);
  EXPECT_EQ(health_calls_, 0);
  // A head of exactly the limit is still served.
  std::string head = "GET /health HTTP/1.1\r\nX-Pad: ";
  head += std::string(kMaxRequestHeaderBytes - head.size() - 4, 'b') + "\r\n\r\n";
  ASSERT_EQ(head.size(), kMaxRequestHeaderBytes);
  EXPECT_EQ(request(port_, head).status, 200);
}

TEST_F(HttpServerTest, GarbageGets400AndTheServerCarriesOn) {
  start();
  EXPECT_EQ(request(port_, std::string("\x00\xff\x10garbage\r\n\r\n", 14)).status, 400);
  EXPECT_EQ(request(port_, "GET\r\n\r\n").status, 400);
  EXPECT_EQ(request(port_, "GET  /health HTTP/1.1\r\n\r\n").status, 400);
  EXPECT_EQ(request(port_, "GET health HTTP/1.1\r\n\r\n").status, 400);
  EXPECT_EQ(request(port_, "GET /health HTTP/1.1 extra\r\n\r\n").status, 400);
  EXPECT_EQ(request(port_, "GET /health FTP/1.1\r\n\r\n").status, 400);
  EXPECT_EQ(request(port_, "GET /health HTTP/2.0\r\n\r\n").status, 505);
  EXPECT_EQ(request(port_, "GET /health HTTP/1.1\r\nno colon here\r\n\r\n").status, 400);
  EXPECT_EQ(request(port_, "GET /health HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n").status, 400);
  EXPECT_EQ(request(port_, "G(T /health HTTP/1.1\r\n\r\n").status, 400);
  {
    // Binary noise without a line end, then a hang-up.
    Client c(port_);
    std::string noise;
    for (int i = 0; i < 3000; ++i)
      noise += static_cast<char>((i * 7919) % 256 == '\n' ? 1 : (i * 7919) % 256);
    c.send_all(noise);
  }
  EXPECT_EQ(health_calls_, 0);
  EXPECT_EQ(get(port_, "/health").status, 200);
}

TEST_F(HttpServerTest, SilentClientDoesNotHoldUpOthersAndIsClosedAfterTheTimeout) {
  HttpServerOptions options;
  options.read_timeout_ms = 1000;
  start(options);
  Client silent(port_);
  Client half(port_);
  ASSERT_TRUE(half.send_all("GET /health HT"));
  auto t0 = Clock::now();
  EXPECT_EQ(get(port_, "/health").status, 200);
  EXPECT_EQ(get(port_, "/version").status, 200);
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(800));
  // Both are closed, without an answer, once the timeout passes.
  EXPECT_EQ(silent.read_all(), "");
  EXPECT_FALSE(silent.timed_out());
  EXPECT_EQ(half.read_all(), "");
  EXPECT_FALSE(half.timed_out());
  EXPECT_EQ(get(port_, "/health").status, 200);
}

TEST_F(HttpServerTest, ConnectionsBeyondTheLimitAreClosed) {
  HttpServerOptions options;
  options.max_connections = 2;
  options.read_timeout_ms = 2000;
  start(options);
  auto a = std::make_unique<Client>(port_);
  auto b = std::make_unique<Client>(port_);
  // Let the server accept both before the third arrives.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  Client extra(port_, 1000);
  extra.send_all("GET /health HTTP/1.1\r\n\r\n");
  EXPECT_EQ(extra.read_all(), "");
  EXPECT_FALSE(extra.timed_out());
  a.reset();
  b.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(get(port_, "/health").status, 200);
}

TEST_F(HttpServerTest, StopWithAnIdleConnectionOpenReturnsAndClosesIt) {
  start();
  Client idle(port_);
  EXPECT_EQ(get(port_, "/health").status, 200);
  auto t0 = Clock::now();
  server_->stop();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(idle.read_all(), "");
  EXPECT_FALSE(idle.timed_out());
  server_->stop();  // idempotent
}

TEST_F(HttpServerTest, ServesEveryAddressItListensOn) {
  HttpHandlers handlers;
  handlers.health = [](bool) { return HealthResult{true, ""}; };
  HttpServer server(std::move(handlers));
  uint16_t first = 0;
  uint16_t second = 0;
  ASSERT_TRUE(server.listen("127.0.0.1", 0, &first).is_ok());
  ASSERT_TRUE(server.listen("127.0.0.1", 0, &second).is_ok());
  EXPECT_NE(first, second);
  ASSERT_TRUE(server.listen("localhost", 0, nullptr).is_ok());  // a name, resolved
  // A port already taken is an error, not a crash.
  storage::Status taken = server.listen("127.0.0.1", first, nullptr);
  EXPECT_FALSE(taken.is_ok());
  server.start();
  EXPECT_EQ(get(first, "/version").status, 200);
  EXPECT_EQ(get(second, "/version").status, 200);
  EXPECT_FALSE(server.listen("127.0.0.1", 0, nullptr).is_ok());  // after start()
}

TEST_F(HttpServerTest, HandlerThatThrowsAnswers500) {
  HttpHandlers handlers;
  handlers.health = [](bool) -> HealthResult { throw std::runtime_error("boom"); };
  HttpServer server(std::move(handlers));
  uint16_t port = 0;
  ASSERT_TRUE(server.listen("127.0.0.1", 0, &port).is_ok());
  server.start();
  EXPECT_EQ(get(port, "/health").status, 500);
  EXPECT_EQ(get(port, "/version").status, 200);
}

TEST_F(HttpServerTest, StopBeforeStartAndUnresolvableHost) {
  HttpHandlers handlers;
  handlers.health = [](bool) { return HealthResult{true, ""}; };
  HttpServer server(std::move(handlers));
  EXPECT_FALSE(server.listen("no-such-host.invalid", 0, nullptr).is_ok());
  ASSERT_TRUE(server.listen("127.0.0.1", 0, nullptr).is_ok());
  server.stop();
}

TEST(HealthJsonTest, EscapesTheReason) {
  EXPECT_EQ(health_json({false, "a \"quoted\"\n\\ reason"}),
            "{\"health\":\"false\",\"reason\":\"a \\\"quoted\\\"\\u000a\\\\ reason\"}");
}

}  // namespace
}  // namespace chorus::server
