#include "server/gateway.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/server_posix.h>
#include <grpcpp/version_info.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>

// GCC's flow analysis, after inlining Asio's reactor at -O1 and above, flags a dereference in
// scheduler::compensating_work_started() that Asio guarantees only runs on a scheduler thread.
// The warning is reported inside Asio's own headers, so it is silenced for them alone.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <asio.hpp>

#include "transport/tls_stream.h"
#pragma GCC diagnostic pop

#include <openssl/ssl.h>
#include <sys/stat.h>

#include "base/thread_name.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "server/client_identity.h"
#include "server/gateway_json.h"

namespace chorus::server {

// ClientIdentities finds a TLS connection's certificate name by the descriptor handed to gRPC,
// which gRPC 1.51 keeps open until the last call on the connection has ended. A later gRPC must
// be checked for the same before this bound is raised.
static_assert(GRPC_CPP_VERSION_MAJOR == 1 && GRPC_CPP_VERSION_MINOR <= 51,
              "check that gRPC keeps a handed-over descriptor open while its calls run");

namespace pb = etcdserverpb;
using asio::ip::tcp;
using std::chrono::milliseconds;
using transport::Stream;
using Context = std::shared_ptr<asio::ssl::context>;

int http_status_for(int grpc_code) {
  switch (grpc_code) {
    case 0:
      return 200;
    case 1:  // CANCELLED
      return 408;
    case 3:   // INVALID_ARGUMENT
    case 9:   // FAILED_PRECONDITION: grpc-gateway deliberately not 412
    case 11:  // OUT_OF_RANGE
      return 400;
    case 4:  // DEADLINE_EXCEEDED
      return 504;
    case 5:  // NOT_FOUND
      return 404;
    case 6:   // ALREADY_EXISTS
    case 10:  // ABORTED
      return 409;
    case 7:  // PERMISSION_DENIED
      return 403;
    case 8:  // RESOURCE_EXHAUSTED
      return 429;
    case 12:  // UNIMPLEMENTED
      return 501;
    case 14:  // UNAVAILABLE
      return 503;
    case 16:  // UNAUTHENTICATED
      return 401;
    default:
      return 500;
  }
}

namespace {}  // namespace

std::string gateway_error_json(int grpc_code, const std::string& message) {
  return "{\"error\":" + json_quote(message) + ",\"code\":" + std::to_string(grpc_code) +
         ",\"message\":" + json_quote(message) + "}";
}

namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kReadChunkBytes = 16 << 10;
// How long a new connection may take to say which protocol it speaks.
constexpr int kSniffTimeoutMs = 10'000;
constexpr int kAcceptRetryMs = 100;
constexpr auto kCallDeadline = std::chrono::seconds(60);

// A gateway stream's call, as its connection sees it.
struct Cancellable {
  virtual ~Cancellable() = default;
  virtual void cancel() = 0;
};

// Output a slow stream reader may leave unsent before its connection is closed.
constexpr size_t kMaxStreamBacklogBytes = 64 << 20;

// One answer: a status and a JSON body, or (for streams) the start of a chunked body.
struct Answer {
  int status = 200;
  std::string body;
};

Answer grpc_answer(const grpc::Status& st) {
  int code = static_cast<int>(st.error_code());
  return Answer{http_status_for(code), gateway_error_json(code, st.error_message())};
}

struct Conn;

// What a gateway call carries of its caller: the Authorization header's token, and the
// common name of a verified client certificate (ClientIdentities).
using Metadata = std::vector<std::pair<std::string, std::string>>;

void add_metadata(grpc::ClientContext* ctx, const Metadata& md) {
  for (const auto& [key, value] : md)
    ctx->AddMetadata(key, value);
}

// A route: takes the request body and the caller's metadata, answers through `reply` (from any
// thread), or, for a stream, through the connection's chunk writer.
using Reply = std::function<void(Answer)>;
struct Route {
  std::function<void(const std::string& body, const Metadata& md, Reply reply)> unary;
  std::function<void(const std::shared_ptr<Conn>& conn, const std::string& body,
                     const Metadata& md)>
      stream;
};

struct Pump;

// A connection that has not said yet which protocol it speaks: a TLS handshake, then its first
// bytes (https), or its first bytes peeked at (plain text).
struct Pending {
  Context ctx;  // the TLS context the stream was made with (plain text: an idle one)
  std::unique_ptr<Stream> stream;
  asio::steady_timer timer;
  std::string first;        // decrypted bytes read so far (https)
  std::string common_name;  // of a verified client certificate (https)
  bool tls = false;
};

Context plain_context() {
  static Context ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls);
  return ctx;
}

// ALPN on https client URLs: http/1.1 when the client offers it (curl, browsers: the gateway),
// else h2 (gRPC's clients, which offer nothing else); no protocol when it offers neither.
int select_protocol(SSL* /*ssl*/, const unsigned char** out, unsigned char* out_len,
                    const unsigned char* in, unsigned int in_len, void* /*arg*/) {
  static constexpr std::string_view kHttp11 = "http/1.1";
  static constexpr std::string_view kH2 = "h2";
  const unsigned char* found = nullptr;
  for (unsigned int i = 0; i < in_len;) {
    unsigned int n = in[i];
    if (i + 1 + n > in_len) break;
    std::string_view name(reinterpret_cast<const char*>(in + i + 1), n);
    if (name == kHttp11) {
      *out = in + i + 1;
      *out_len = static_cast<unsigned char>(n);
      return SSL_TLSEXT_ERR_OK;
    }
    if (name == kH2) found = in + i + 1;
    i += 1 + n;
  }
  if (found == nullptr) return SSL_TLSEXT_ERR_NOACK;
  *out = found;
  *out_len = static_cast<unsigned char>(kH2.size());
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

struct ClientPort::Impl {
  explicit Impl(GatewayOptions o) : options(std::move(o)) {}

  GatewayOptions options;
  asio::io_context io;
  struct Listener {
    std::unique_ptr<tcp::acceptor> acceptor;
    bool tls = false;
  };
  std::vector<Listener> listeners;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  grpc::Server* server = nullptr;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Lease::Stub> lease;
  std::unique_ptr<pb::Watch::Stub> watch;
  std::unique_ptr<pb::Cluster::Stub> cluster;
  std::unique_ptr<pb::Maintenance::Stub> maintenance;
  std::unique_ptr<pb::Auth::Stub> auth;
  std::map<std::string, Route, std::less<>> routes;
  std::unordered_set<std::shared_ptr<Conn>> conns;  // I/O thread only
  std::atomic<size_t> streams{0};
  // Calls on the in-process channel not yet answered: their callbacks post here, so the
  // io_context outlives them (~Impl waits).
  std::atomic<int64_t> in_flight{0};
  // Connections still saying which protocol they speak, and https connections handed to gRPC
  // (I/O thread only).
  std::unordered_set<std::shared_ptr<Pending>> sniffing;
  std::unordered_set<std::shared_ptr<Pump>> pumps;
  bool stopping = false;  // I/O thread only

  ~Impl() {
    for (int i = 0; i < 10'000 && in_flight.load() > 0; ++i)
      std::this_thread::sleep_for(milliseconds(1));
  }

  void build_routes();
  // The https listeners' TLS context, built again when one of its files changes (looked at for
  // each accepted connection: rotation needs no restart, and sessions resume in between). Null
  // while the files cannot be used (the TLS file watch reports why). I/O thread only.
  Context tls_context();
  Context tls_ctx;
  std::string tls_files_seen;

  void accept(Listener* l);
  void sniff(std::shared_ptr<Pending> p);
  void handshake(std::shared_ptr<Pending> p);
  void read_first(std::shared_ptr<Pending> p);
  void drop(const std::shared_ptr<Pending>& p);
  void to_grpc(std::shared_ptr<Pending> p);
  void to_gateway(std::shared_ptr<Pending> p);
  void close_all();
};

namespace {

// An HTTP/1.1 connection of the gateway. Requests are read and answered one at a time; a
// stream's answer holds the connection until it ends.
struct Conn : std::enable_shared_from_this<Conn> {
  Conn(ClientPort::Impl* impl, Pending&& p)
      : d(impl),
        ctx(std::move(p.ctx)),
        stream_(std::move(p.stream)),
        tls(p.tls),
        common_name(std::move(p.common_name)),
        timer(stream_->get_executor()),
        buffer(std::move(p.first)) {}

  ClientPort::Impl* d;
  Context ctx;  // outlives the stream made with it
  std::unique_ptr<Stream> stream_;
  bool tls;
  std::string common_name;
  asio::steady_timer timer;
  std::string buffer;
  std::array<char, kReadChunkBytes> chunk{};
  bool closed = false;
  bool keep_alive = true;
  std::string extra_headers;  // CORS headers for the request at hand
  // Output: whole answers, or the chunks of a stream.
  std::string out;
  bool writing = false;
  bool streaming = false;
  bool stream_done = false;
  // The stream's call, to cancel when the client goes away.
  std::weak_ptr<Cancellable> stream;

  void start() { process(); }  // bytes read while sniffing may hold a whole request

  void arm_timer() {
    timer.expires_after(milliseconds(d->options.idle_timeout_ms));
    timer.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      if (!ec && !self->streaming) self->close();
    });
  }

  void read_more() {
    if (closed) return;
    arm_timer();
    transport::read_some(*stream_, tls, asio::buffer(chunk),
                         [self = shared_from_this()](const asio::error_code& ec, size_t n) {
                           if (self->closed) return;
                           if (ec) {
                             self->close();
                             return;
                           }
                           // Talk over a stream is dropped; reading on notices a close.
                           if (self->streaming) return self->read_more();
                           self->buffer.append(self->chunk.data(), n);
                           self->process();
                         });
  }

  // Handles the buffered request, if complete; else reads on.
  void process() {
    size_t end = buffer.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (buffer.size() > kMaxRequestHeaderBytes) return fail(431, "request head too large");
      return read_more();
    }
    if (end + 4 > kMaxRequestHeaderBytes) return fail(431, "request head too large");
    std::variant<HttpRequestHead, int> parsed = parse_request_head(buffer.substr(0, end + 2));
    if (std::holds_alternative<int>(parsed)) {
      return fail(std::get<int>(parsed), "malformed request");
    }
    HttpRequestHead head = std::move(std::get<HttpRequestHead>(parsed));
    const std::string* conn_header = head.header("connection");
    keep_alive = !head.http10 && !(conn_header != nullptr && *conn_header == "close");
    if (head.header("transfer-encoding") != nullptr)
      return fail(411, "chunked request bodies are not accepted: send Content-Length");
    uint64_t length = 0;
    if (const std::string* cl = head.header("content-length")) {
      if (cl->empty() || cl->size() > 19 ||
          cl->find_first_not_of("0123456789") != std::string::npos)
        return fail(400, "bad Content-Length");
      length = std::stoull(*cl);
    }
    if (length > d->options.max_body_bytes) {
      return fail(413, "etcdserver: request is too large");
    }
    size_t total = end + 4 + length;
    if (buffer.size() < total) return read_more();
    std::string body = buffer.substr(end + 4, length);
    buffer.erase(0, total);
    timer.cancel();
    dispatch(head, std::move(body));
  }

  void dispatch(const HttpRequestHead& head, std::string body) {
    const HttpHandlers& http = d->options.http;
    extra_headers.clear();
    if (!host_allowed(head)) return fail(421, "not allowed");
    if (const std::string* origin = head.header("origin")) {
      const auto& allowed = d->options.cors;
      bool ok = allowed == std::vector<std::string>{"*"} ||
                std::find(allowed.begin(), allowed.end(), lower_ascii(*origin)) != allowed.end();
      if (ok && valid_metadata_value(*origin)) {
        extra_headers =
            "\r\nAccess-Control-Allow-Methods: POST, GET, OPTIONS, PUT, DELETE"
            "\r\nAccess-Control-Allow-Origin: " +
            *origin + "\r\nAccess-Control-Allow-Headers: accept, content-type, authorization";
      }
    }
    if (head.method == "OPTIONS") return answer(Answer{200, ""});
    if (head.path == "/health" || head.path == "/version" || head.path == "/metrics") {
      if (head.method != "GET" && head.method != "HEAD") return fail(405, "use GET");
      if (head.path == "/version") {
        return answer(Answer{200, version_json(http)});
      }
      if (head.path == "/metrics") {
        if (!http.metrics) return fail(404, "no metrics here");
        return answer(Answer{200, http.metrics()}, "text/plain; version=0.0.4; charset=utf-8");
      }
      bool serializable = head.query.find("serializable=true") != std::string::npos;
      HealthResult h = http.health ? http.health(serializable) : HealthResult{};
      return answer(Answer{h.healthy ? 200 : 503, health_json(h)});
    }
    // /v3/..., and the older /v3beta/ and /v3alpha/ prefixes etcd 3.4 still serves.
    std::string path = head.path;
    for (std::string_view old : {"/v3beta/", "/v3alpha/"}) {
      if (path.starts_with(old)) path = "/v3/" + path.substr(old.size());
    }
    auto route = d->routes.find(path);
    if (route == d->routes.end()) return fail(404, "Not Found");
    if (head.method != "POST") return fail(405, "use POST");
    Metadata md;
    if (const std::string* a = head.header("authorization")) {
      // gRPC takes only visible ASCII in metadata (and aborts on anything else): such a token
      // cannot be one this member made.
      if (!valid_metadata_value(*a)) {
        keep_alive = false;
        return answer(Answer{401, gateway_error_json(16, "etcdserver: invalid auth token")});
      }
      if (!a->empty()) md.emplace_back("authorization", *a);
    }
    if (!common_name.empty() && d->options.identities != nullptr) {
      md.emplace_back(ClientIdentities::kGatewayUserKey,
                      d->options.identities->gateway_value(common_name));
    }
    auto self = shared_from_this();
    if (route->second.stream) {
      if (d->streams.fetch_add(1) >= d->options.max_streams) {
        d->streams.fetch_sub(1);
        return answer(Answer{429, gateway_error_json(8, "etcdserver: too many requests")});
      }
      streaming = true;
      keep_alive = false;
      out += "HTTP/1.1 200 OK" + extra_headers +
             "\r\nContent-Type: application/json\r\nTransfer-Encoding: "
             "chunked\r\nConnection: close\r\n\r\n";
      write_next();
      route->second.stream(self, body, md);
      read_more();  // notices the client going away
      return;
    }
    route->second.unary(body, md, [self](Answer a) {
      asio::post(self->stream_->get_executor(),
                 [self, a = std::move(a)]() mutable { self->answer(std::move(a)); });
    });
  }

  // etcd's --host-whitelist, on the Host header without its port.
  bool host_allowed(const HttpRequestHead& head) const {
    const auto& allowed = d->options.host_whitelist;
    if (allowed == std::vector<std::string>{"*"}) return true;
    const std::string* h = head.header("host");
    if (h == nullptr) return false;
    std::string host = lower_ascii(*h);
    if (host.starts_with('[')) {
      host = host.substr(1, host.find(']') == std::string::npos ? 0 : host.find(']') - 1);
    } else if (size_t colon = host.rfind(':');
               colon != std::string::npos && host.find(':') == colon) {
      host.resize(colon);
    }
    return std::find(allowed.begin(), allowed.end(), host) != allowed.end();
  }

  static std::string lower_ascii(std::string text) {
    for (char& ch : text) {
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    }
    return text;
  }

  void answer(Answer a, std::string_view type = "application/json") {
    if (closed) return;
    out += "HTTP/1.1 " + std::to_string(a.status) + " " + http_reason_phrase(a.status) +
           extra_headers + "\r\nContent-Type: " + std::string(type) +
           "\r\nContent-Length: " + std::to_string(a.body.size()) +
           (keep_alive ? "\r\n\r\n" : "\r\nConnection: close\r\n\r\n") + a.body;
    write_next();
  }

  void fail(int status, const std::string& why) {
    keep_alive = false;
    int code = status == 413 ? 3 : status == 404 ? 5 : status == 405 ? 12 : 3;
    answer(Answer{status, gateway_error_json(code, why)});
  }

  // From the stream's call (any thread): one message, or the end.
  void post_chunk(std::string data) {
    asio::post(stream_->get_executor(), [self = shared_from_this(), data = std::move(data)] {
      if (self->closed) return;
      char size[24];
      std::snprintf(size, sizeof size, "%zx\r\n", data.size());
      self->out += size + data + "\r\n";
      if (self->out.size() > kMaxStreamBacklogBytes) return self->close();  // not reading
      self->write_next();
    });
  }

  void post_end() {
    asio::post(stream_->get_executor(), [self = shared_from_this()] {
      self->d->streams.fetch_sub(1);
      if (self->closed) return;
      self->out += "0\r\n\r\n";
      self->stream_done = true;
      self->write_next();
    });
  }

  void write_next() {
    if (closed || writing || out.empty()) return;
    writing = true;
    auto data = std::make_shared<std::string>();
    data->swap(out);
    transport::write_all(*stream_, tls, asio::buffer(*data),
                         [self = shared_from_this(), data](const asio::error_code& ec, size_t) {
                           self->writing = false;
                           if (self->closed) return;
                           if (ec) return self->close();
                           if (!self->out.empty()) return self->write_next();
                           if (self->streaming) {
                             if (self->stream_done) return self->close();
                             return;
                           }
                           if (!self->keep_alive) return self->close();
                           self->process();  // a pipelined request may be waiting
                         });
  }

  void close() {
    if (closed) return;
    closed = true;
    asio::error_code ignored;
    stream_->next_layer().close(ignored);
    timer.cancel();
    if (auto call = stream.lock()) call->cancel();
    d->conns.erase(shared_from_this());
  }
};

// A gateway stream: the body is the first request of a bidirectional call; each response goes
// out as a {"result":...} chunk. The connection bounds what waits unsent (a reader that stops
// reading is cut off). `single` ends after the first response (a lease keep-alive). It owns
// itself until gRPC is done with it; the connection holds it weakly, to cancel it.
template <typename Req, typename Resp>
class StreamBridge : public grpc::ClientBidiReactor<Req, Resp>, public Cancellable {
 public:
  template <typename Start>
  static void begin(const std::shared_ptr<Conn>& conn, Req first, const Metadata& md, bool single,
                    Start start) {
    std::shared_ptr<StreamBridge> b(new StreamBridge(conn, std::move(first), single));
    add_metadata(&b->ctx_, md);
    b->self_ = b;
    conn->stream = b;
    conn->d->in_flight.fetch_add(1);
    start(&b->ctx_, b.get());
    b->StartWrite(&b->req_);
    b->StartRead(&b->resp_);
    b->StartCall();
  }

  void cancel() override { ctx_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    conn_->post_chunk("{\"result\":" + gateway_json(resp_) + "}\n");
    if (single_) {
      ctx_.TryCancel();
      return;
    }
    this->StartRead(&resp_);
  }

  void OnDone(const grpc::Status& st) override {
    if (!st.ok() && !(single_ && st.error_code() == grpc::StatusCode::CANCELLED)) {
      int code = static_cast<int>(st.error_code());
      int http = http_status_for(code);
      conn_->post_chunk("{\"error\":{\"grpc_code\":" + std::to_string(code) + ",\"http_code\":" +
                        std::to_string(http) + ",\"message\":" + json_quote(st.error_message()) +
                        ",\"http_status\":" + json_quote(http_reason_phrase(http)) + "}}\n");
    }
    conn_->post_end();
    ClientPort::Impl* d = conn_->d;
    {
      auto last = std::move(self_);  // deletes this, unless a cancel holds it a moment longer
    }
    d->in_flight.fetch_sub(1);
  }

 private:
  StreamBridge(std::shared_ptr<Conn> conn, Req first, bool single)
      : conn_(std::move(conn)), req_(std::move(first)), single_(single) {}

  std::shared_ptr<Conn> conn_;
  std::shared_ptr<StreamBridge> self_;
  grpc::ClientContext ctx_;
  Req req_;
  Resp resp_;
  bool single_;
};

// A unary route: JSON in, the call on the in-process channel, JSON out.
template <typename Req, typename Resp, typename Invoke>
Route unary(ClientPort::Impl* d, Invoke invoke) {
  Route r;
  r.unary = [invoke, d](const std::string& body, const Metadata& md, Reply reply) {
    auto req = std::make_shared<Req>();
    std::string error;
    if (!parse_gateway_body(body, req.get(), &error)) {
      return reply(Answer{400, gateway_error_json(3, "the request body is not a valid " +
                                                         req->GetTypeName() + ": " + error)});
    }
    struct Call {
      grpc::ClientContext ctx;
      Resp resp;
    };
    auto call = std::make_shared<Call>();
    add_metadata(&call->ctx, md);
    call->ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    d->in_flight.fetch_add(1);
    invoke(&call->ctx, req.get(), &call->resp, [call, req, reply, d](grpc::Status st) mutable {
      Reply answer = std::move(reply);
      answer(st.ok() ? Answer{200, gateway_json(call->resp)} : grpc_answer(st));
      answer = nullptr;  // the connection goes before the count that keeps the port alive
      d->in_flight.fetch_sub(1);
    });
  };
  return r;
}

template <typename Req, typename Resp, typename Start>
Route stream(bool single, Start start) {
  Route r;
  r.stream = [single, start](const std::shared_ptr<Conn>& conn, const std::string& body,
                             const Metadata& md) {
    Req req;
    std::string error;
    if (!parse_gateway_body(body, &req, &error)) {
      conn->post_chunk(
          "{\"error\":{\"grpc_code\":3,\"http_code\":400,\"message\":" +
          json_quote("the request body is not a valid " + req.GetTypeName() + ": " + error) +
          ",\"http_status\":\"Bad Request\"}}\n");
      conn->post_end();
      return;
    }
    StreamBridge<Req, Resp>::begin(conn, std::move(req), md, single, start);
  };
  return r;
}

}  // namespace

void ClientPort::Impl::build_routes() {
  // Each route names the service method etcd's gateway maps the path to.
#define CHORUS_UNARY(path, stub, Method, Req, Resp)                 \
  routes[path] = unary<pb::Req, pb::Resp>(                          \
      this,                                                         \
      [this](grpc::ClientContext* c, const pb::Req* q, pb::Resp* p, \
             std::function<void(grpc::Status)> done) { stub->async()->Method(c, q, p, done); })
  CHORUS_UNARY("/v3/kv/range", kv, Range, RangeRequest, RangeResponse);
  CHORUS_UNARY("/v3/kv/put", kv, Put, PutRequest, PutResponse);
  CHORUS_UNARY("/v3/kv/deleterange", kv, DeleteRange, DeleteRangeRequest, DeleteRangeResponse);
  CHORUS_UNARY("/v3/kv/txn", kv, Txn, TxnRequest, TxnResponse);
  CHORUS_UNARY("/v3/kv/compaction", kv, Compact, CompactionRequest, CompactionResponse);
  CHORUS_UNARY("/v3/lease/grant", lease, LeaseGrant, LeaseGrantRequest, LeaseGrantResponse);
  CHORUS_UNARY("/v3/lease/revoke", lease, LeaseRevoke, LeaseRevokeRequest, LeaseRevokeResponse);
  CHORUS_UNARY("/v3/kv/lease/revoke", lease, LeaseRevoke, LeaseRevokeRequest, LeaseRevokeResponse);
  CHORUS_UNARY("/v3/lease/timetolive", lease, LeaseTimeToLive, LeaseTimeToLiveRequest,
               LeaseTimeToLiveResponse);
  CHORUS_UNARY("/v3/kv/lease/timetolive", lease, LeaseTimeToLive, LeaseTimeToLiveRequest,
               LeaseTimeToLiveResponse);
  CHORUS_UNARY("/v3/lease/leases", lease, LeaseLeases, LeaseLeasesRequest, LeaseLeasesResponse);
  CHORUS_UNARY("/v3/kv/lease/leases", lease, LeaseLeases, LeaseLeasesRequest, LeaseLeasesResponse);
  CHORUS_UNARY("/v3/cluster/member/add", cluster, MemberAdd, MemberAddRequest, MemberAddResponse);
  CHORUS_UNARY("/v3/cluster/member/remove", cluster, MemberRemove, MemberRemoveRequest,
               MemberRemoveResponse);
  CHORUS_UNARY("/v3/cluster/member/update", cluster, MemberUpdate, MemberUpdateRequest,
               MemberUpdateResponse);
  CHORUS_UNARY("/v3/cluster/member/list", cluster, MemberList, MemberListRequest,
               MemberListResponse);
  CHORUS_UNARY("/v3/cluster/member/promote", cluster, MemberPromote, MemberPromoteRequest,
               MemberPromoteResponse);
  CHORUS_UNARY("/v3/maintenance/alarm", maintenance, Alarm, AlarmRequest, AlarmResponse);
  CHORUS_UNARY("/v3/maintenance/status", maintenance, Status, StatusRequest, StatusResponse);
  CHORUS_UNARY("/v3/maintenance/defragment", maintenance, Defragment, DefragmentRequest,
               DefragmentResponse);
  CHORUS_UNARY("/v3/maintenance/hash", maintenance, HashKV, HashKVRequest, HashKVResponse);
  CHORUS_UNARY("/v3/maintenance/transfer-leadership", maintenance, MoveLeader, MoveLeaderRequest,
               MoveLeaderResponse);
  CHORUS_UNARY("/v3/auth/enable", auth, AuthEnable, AuthEnableRequest, AuthEnableResponse);
  CHORUS_UNARY("/v3/auth/disable", auth, AuthDisable, AuthDisableRequest, AuthDisableResponse);
  CHORUS_UNARY("/v3/auth/status", auth, AuthStatus, AuthStatusRequest, AuthStatusResponse);
  CHORUS_UNARY("/v3/auth/authenticate", auth, Authenticate, AuthenticateRequest,
               AuthenticateResponse);
  CHORUS_UNARY("/v3/auth/user/add", auth, UserAdd, AuthUserAddRequest, AuthUserAddResponse);
  CHORUS_UNARY("/v3/auth/user/get", auth, UserGet, AuthUserGetRequest, AuthUserGetResponse);
  CHORUS_UNARY("/v3/auth/user/list", auth, UserList, AuthUserListRequest, AuthUserListResponse);
  CHORUS_UNARY("/v3/auth/user/delete", auth, UserDelete, AuthUserDeleteRequest,
               AuthUserDeleteResponse);
  CHORUS_UNARY("/v3/auth/user/changepw", auth, UserChangePassword, AuthUserChangePasswordRequest,
               AuthUserChangePasswordResponse);
  CHORUS_UNARY("/v3/auth/user/grant", auth, UserGrantRole, AuthUserGrantRoleRequest,
               AuthUserGrantRoleResponse);
  CHORUS_UNARY("/v3/auth/user/revoke", auth, UserRevokeRole, AuthUserRevokeRoleRequest,
               AuthUserRevokeRoleResponse);
  CHORUS_UNARY("/v3/auth/role/add", auth, RoleAdd, AuthRoleAddRequest, AuthRoleAddResponse);
  CHORUS_UNARY("/v3/auth/role/get", auth, RoleGet, AuthRoleGetRequest, AuthRoleGetResponse);
  CHORUS_UNARY("/v3/auth/role/list", auth, RoleList, AuthRoleListRequest, AuthRoleListResponse);
  CHORUS_UNARY("/v3/auth/role/delete", auth, RoleDelete, AuthRoleDeleteRequest,
               AuthRoleDeleteResponse);
  CHORUS_UNARY("/v3/auth/role/grant", auth, RoleGrantPermission, AuthRoleGrantPermissionRequest,
               AuthRoleGrantPermissionResponse);
  CHORUS_UNARY("/v3/auth/role/revoke", auth, RoleRevokePermission, AuthRoleRevokePermissionRequest,
               AuthRoleRevokePermissionResponse);
#undef CHORUS_UNARY
  routes["/v3/watch"] = stream<pb::WatchRequest, pb::WatchResponse>(
      false, [this](grpc::ClientContext* c,
                    grpc::ClientBidiReactor<pb::WatchRequest, pb::WatchResponse>* r) {
        watch->async()->Watch(c, r);
      });
  routes["/v3/lease/keepalive"] = stream<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>(
      true,
      [this](grpc::ClientContext* c,
             grpc::ClientBidiReactor<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>* r) {
        lease->async()->LeaseKeepAlive(c, r);
      });
}

namespace {

// An https connection that speaks HTTP/2, handed to gRPC: gRPC owns one end of a socket pair,
// and the pump copies between the other end and the TLS stream, both ways, one read and one
// write at a time each way (what one side does not take, the other is not asked for). Either
// side closing closes both.
struct Pump : std::enable_shared_from_this<Pump> {
  Pump(ClientPort::Impl* impl, Pending&& p, asio::local::stream_protocol::socket grpc_end)
      : d(impl), ctx(std::move(p.ctx)), stream(std::move(p.stream)), local(std::move(grpc_end)) {}

  ClientPort::Impl* d;
  Context ctx;  // outlives the stream made with it
  std::unique_ptr<Stream> stream;
  asio::local::stream_protocol::socket local;
  std::array<char, kReadChunkBytes> up{};
  std::array<char, kReadChunkBytes> down{};
  bool closed = false;

  // `first`: what was read of the client while deciding (the preface, and perhaps more).
  void start(std::string first) {
    auto data = std::make_shared<std::string>(std::move(first));
    asio::async_write(local, asio::buffer(*data),
                      [self = shared_from_this(), data](const asio::error_code& ec, size_t) {
                        if (ec || self->closed) return self->close();
                        self->client_to_grpc();
                      });
    grpc_to_client();
  }

  void client_to_grpc() {
    stream->async_read_some(asio::buffer(up),
                            [self = shared_from_this()](const asio::error_code& ec, size_t n) {
                              if (ec || self->closed) return self->close();
                              asio::async_write(self->local, asio::buffer(self->up.data(), n),
                                                [self](const asio::error_code& wec, size_t) {
                                                  if (wec || self->closed) return self->close();
                                                  self->client_to_grpc();
                                                });
                            });
  }

  void grpc_to_client() {
    local.async_read_some(asio::buffer(down),
                          [self = shared_from_this()](const asio::error_code& ec, size_t n) {
                            if (ec || self->closed) return self->close();
                            asio::async_write(*self->stream, asio::buffer(self->down.data(), n),
                                              [self](const asio::error_code& wec, size_t) {
                                                if (wec || self->closed) return self->close();
                                                self->grpc_to_client();
                                              });
                          });
  }

  void close() {
    if (closed) return;
    closed = true;
    asio::error_code ignored;
    stream->next_layer().close(ignored);
    local.close(ignored);
    d->pumps.erase(shared_from_this());
  }
};

}  // namespace

void ClientPort::Impl::accept(Listener* l) {
  l->acceptor->async_accept([this, l](const asio::error_code& ec, tcp::socket socket) {
    if (stopping) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      auto retry = std::make_shared<asio::steady_timer>(io, milliseconds(kAcceptRetryMs));
      retry->async_wait([this, l, retry](const asio::error_code&) {
        if (!stopping) accept(l);
      });
      return;
    }
    accept(l);
    asio::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    if (sniffing.size() + conns.size() >= options.max_connections) {
      socket.close(ignored);
      return;
    }
    // Each https connection gets a context read from the files as they are now: rotated
    // certificates and revocation lists take effect without a restart.
    Context ctx = l->tls ? tls_context() : plain_context();
    if (!ctx) {  // a file went bad: the TLS file watch reports it; refused until it is fixed
      socket.close(ignored);
      return;
    }
    auto stream = std::make_unique<Stream>(std::move(socket), *ctx);
    auto p = std::shared_ptr<Pending>(
        new Pending{std::move(ctx), std::move(stream), asio::steady_timer(io), {}, {}, l->tls});
    sniffing.insert(p);
    p->timer.expires_after(milliseconds(kSniffTimeoutMs));
    p->timer.async_wait([this, p](const asio::error_code& error) {
      if (!error) drop(p);
    });
    if (l->tls) {
      handshake(p);
    } else {
      sniff(p);
    }
  });
}

Context ClientPort::Impl::tls_context() {
  std::string seen;
  const ClientTls& t = options.tls;
  for (const std::string* path : {&t.cert_file, &t.key_file, &t.trusted_ca_file, &t.crl_file}) {
    struct stat st {};
    if (path->empty() || ::stat(path->c_str(), &st) != 0) {
      seen += "-;";
      continue;
    }
    seen += std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
            std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ";";
  }
  if (tls_ctx && seen == tls_files_seen) return tls_ctx;
  std::string error;
  Context ctx = transport::make_tls_context(t, /*server=*/true, "client", &error);
  if (ctx) SSL_CTX_set_alpn_select_cb(ctx->native_handle(), select_protocol, nullptr);
  tls_ctx = ctx;
  tls_files_seen = std::move(seen);
  return ctx;
}

void ClientPort::Impl::drop(const std::shared_ptr<Pending>& p) {
  // Decided already (a timer that expired just as it was cancelled): the stream has moved on.
  if (sniffing.erase(p) == 0) return;
  asio::error_code ignored;
  p->timer.cancel();
  p->stream->next_layer().close(ignored);  // its pending wait ends with it
}

// Plain text: peeks at the first bytes (never consuming them) until they are, or cannot be,
// HTTP/2's preface.
void ClientPort::Impl::sniff(std::shared_ptr<Pending> p) {
  tcp::socket& s = p->stream->next_layer();
  s.async_wait(tcp::socket::wait_read, [this, p](const asio::error_code& ec) {
    tcp::socket& sock = p->stream->next_layer();
    if (ec || stopping || !sock.is_open()) return drop(p);
    std::array<char, kPreface.size()> peek{};
    asio::error_code error;
    size_t n = sock.receive(asio::buffer(peek), tcp::socket::message_peek, error);
    if (error || n == 0) return drop(p);
    std::string_view got(peek.data(), n);
    bool h2 = kPreface.starts_with(got);
    if (h2 && n < kPreface.size()) {
      // A prefix of the preface so far: wait for the rest.
      auto retry = std::make_shared<asio::steady_timer>(io, milliseconds(20));
      retry->async_wait([this, p, retry](const asio::error_code&) { sniff(p); });
      return;
    }
    if (h2) return to_grpc(std::move(p));
    to_gateway(std::move(p));
  });
}

// https: the handshake, then etcd's --client-cert-allowed-hostname check, and the common name
// of a verified client certificate.
void ClientPort::Impl::handshake(std::shared_ptr<Pending> p) {
  p->stream->async_handshake(asio::ssl::stream_base::server, [this, p](const asio::error_code& ec) {
    if (ec || stopping) return drop(p);
    SSL* ssl = p->stream->native_handle();
    X509* cert = SSL_get0_peer_certificate(ssl);
    bool verified = cert != nullptr && SSL_get_verify_result(ssl) == X509_V_OK &&
                    !options.tls.trusted_ca_file.empty();
    if (!options.tls.allowed_hostname.empty() &&
        !(verified && transport::names_host(cert, options.tls.allowed_hostname))) {
      return drop(p);
    }
    if (verified && options.tls.client_cert_auth) p->common_name = transport::common_name(cert);
    read_first(std::move(p));
  });
}

// https: reads decrypted bytes until they are, or cannot be, HTTP/2's preface.
void ClientPort::Impl::read_first(std::shared_ptr<Pending> p) {
  auto chunk = std::make_shared<std::array<char, kReadChunkBytes>>();
  p->stream->async_read_some(
      asio::buffer(*chunk), [this, p, chunk](const asio::error_code& ec, size_t n) {
        if (ec || stopping) return drop(p);
        p->first.append(chunk->data(), n);
        size_t common = std::min(p->first.size(), kPreface.size());
        bool h2 = std::string_view(p->first).substr(0, common) == kPreface.substr(0, common);
        if (h2 && p->first.size() < kPreface.size()) return read_first(p);
        if (h2) return to_grpc(std::move(p));
        to_gateway(std::move(p));
      });
}

void ClientPort::Impl::to_grpc(std::shared_ptr<Pending> p) {
  p->timer.cancel();
  sniffing.erase(p);
  asio::error_code error;
  if (!p->tls) {
    // gRPC takes the socket as it is; the preface is still unread in it.
    int fd = p->stream->next_layer().release(error);
    if (error) return;
    if (options.identities != nullptr) options.identities->set(fd, "");
    grpc::AddInsecureChannelFromFd(server, fd);
    return;
  }
  asio::local::stream_protocol::socket ours(io), theirs(io);
  asio::local::connect_pair(ours, theirs, error);
  // gRPC reads and writes its end without waiting, as its own accepted sockets.
  if (!error) theirs.non_blocking(true, error);
  int fd = error ? -1 : theirs.release(error);
  if (error || fd < 0) {
    asio::error_code ignored;
    p->stream->next_layer().close(ignored);
    return;
  }
  if (options.identities != nullptr) options.identities->set(fd, p->common_name);
  std::string first = std::move(p->first);
  auto pump = std::make_shared<Pump>(this, std::move(*p), std::move(ours));
  pumps.insert(pump);
  grpc::AddInsecureChannelFromFd(server, fd);
  pump->start(std::move(first));
}

void ClientPort::Impl::to_gateway(std::shared_ptr<Pending> p) {
  p->timer.cancel();
  sniffing.erase(p);
  if (conns.size() >= options.max_connections) {
    asio::error_code ignored;
    p->stream->next_layer().close(ignored);
    return;
  }
  auto c = std::make_shared<Conn>(this, std::move(*p));
  conns.insert(c);
  c->start();
}

void ClientPort::Impl::close_all() {
  stopping = true;
  for (auto& l : listeners) {
    asio::error_code ignored;
    l.acceptor->close(ignored);
  }
  std::vector<std::shared_ptr<Conn>> all(conns.begin(), conns.end());
  for (auto& c : all)
    c->close();
  std::vector<std::shared_ptr<Pump>> handed(pumps.begin(), pumps.end());
  for (auto& pump : handed)
    pump->close();
  std::vector<std::shared_ptr<Pending>> pending(sniffing.begin(), sniffing.end());
  for (auto& p : pending)
    drop(p);
  work.reset();
}

ClientPort::ClientPort(GatewayOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

ClientPort::~ClientPort() {
  stop();
}

storage::Status ClientPort::listen(const std::string& host, uint16_t port, uint16_t* bound_port,
                                   bool tls) {
  Impl& d = *impl_;
  std::string h = host;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  std::string where = host + ":" + std::to_string(port);
  // Every address the host names (localhost: 127.0.0.1 and ::1), as gRPC binds them; enough
  // that one binds. A port chosen by the first (port 0) is the one the others take.
  std::vector<tcp::endpoint> endpoints;
  asio::error_code ec;
  if (h.empty()) {
    endpoints.emplace_back(asio::ip::address_v4::any(), port);
  } else if (asio::ip::address a = asio::ip::make_address(h, ec); !ec) {
    endpoints.emplace_back(a, port);
  } else {
    tcp::resolver resolver(d.io);
    auto results = resolver.resolve(h, std::to_string(port), ec);
    if (ec || results.empty())
      return storage::Status::invalid_argument("cannot resolve " + host + ": " + ec.message());
    for (const auto& r : results) {
      if (std::find(endpoints.begin(), endpoints.end(), r.endpoint()) == endpoints.end())
        endpoints.push_back(r.endpoint());
    }
  }
  std::string last_error;
  uint16_t chosen = port;
  size_t bound = 0;
  for (tcp::endpoint e : endpoints) {
    e.port(chosen);
    auto a = std::make_unique<tcp::acceptor>(d.io);
    a->open(e.protocol(), ec);
    if (!ec && e.address().is_v6()) a->set_option(asio::ip::v6_only(true), ec);
    if (!ec) a->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) a->bind(e, ec);
    if (!ec) a->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      last_error = ec.message();
      continue;
    }
    chosen = a->local_endpoint().port();
    d.listeners.push_back({std::move(a), tls});
    ++bound;
  }
  if (bound == 0) return storage::Status::io_error("cannot listen on " + where + ": " + last_error);
  if (bound_port != nullptr) *bound_port = chosen;
  return storage::Status::ok();
}

void ClientPort::start(grpc::Server* server) {
  Impl& d = *impl_;
  d.server = server;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(INT32_MAX);
  args.SetMaxSendMessageSize(INT32_MAX);
  d.channel = server->InProcessChannel(args);
  d.kv = pb::KV::NewStub(d.channel);
  d.lease = pb::Lease::NewStub(d.channel);
  d.watch = pb::Watch::NewStub(d.channel);
  d.cluster = pb::Cluster::NewStub(d.channel);
  d.maintenance = pb::Maintenance::NewStub(d.channel);
  d.auth = pb::Auth::NewStub(d.channel);
  d.build_routes();
  d.work.emplace(asio::make_work_guard(d.io));
  for (auto& l : d.listeners)
    asio::post(d.io, [&d, l = &l] { d.accept(l); });
  d.thread = std::thread([&d] {
    base::set_thread_name("chorus-gateway");
    d.io.run();
  });
}

void ClientPort::stop() {
  Impl& d = *impl_;
  if (!d.thread.joinable()) return;
  asio::post(d.io, [&d] { d.close_all(); });
  d.thread.join();
}

}  // namespace chorus::server
