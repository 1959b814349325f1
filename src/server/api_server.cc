#include "server/api_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/server_interceptor.h>

#include <unistd.h>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "base/coding.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "server/api_internal.h"
#include "server/config.h"
#include "server/convert.h"
#include "server/log.h"
#include "server/node.h"
#include "server/snapshot_file.h"
#include "server/watch_hub.h"
#include "storage/file.h"
#include "storage/snapshot_stream.h"

namespace chorus::server {

grpc::Status mismatch() {
  return grpc::Status(grpc::StatusCode::INTERNAL,
                      "chorus: the response does not match the request");
}

grpc::Status to_grpc(const RpcError& e) {
  if (e.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(e.code), e.message);
}

std::string grpc_target(const std::string& url) {
  auto pos = url.find("://");
  return pos == std::string::npos ? url : url.substr(pos + 3);
}

std::string leader_client_url(const Node& node) {
  raft::NodeId leader = node.status().leader;
  if (leader == 0 || leader == node.id()) return "";
  for (const MemberInfo& m : node.members()) {
    if (m.id == leader && !m.client_urls.empty()) return m.client_urls.front();
  }
  return "";
}

std::shared_ptr<grpc::Channel> member_channel(const std::string& url, const ClientTls& tls,
                                              std::string* error) {
  auto credentials = member_channel_credentials(url, tls, error);
  if (!credentials) return nullptr;
  return grpc::CreateChannel(grpc_target(url), credentials);
}

namespace {

// gRPC accepts this much beyond --max-request-bytes, as etcd does, so that a request just over
// the limit gets etcd's "request is too large" rather than a transport error.
constexpr int kGrpcOverheadBytes = 512 * 1024;

// Every RPC, whatever its service or kind, passes here: counted at its start and at its status
// (grpc_server_started_total and grpc_server_handled_total, as go-grpc-prometheus counts them
// for etcd), and logged if a unary call took longer than --slow-request-ms. Streams are left
// out of the slow log: a watch lasts as long as its client wants.
class RpcObserver final : public grpc::experimental::Interceptor {
 public:
  RpcObserver(grpc::experimental::ServerRpcInfo* info, const ApiServerOptions* o)
      : method_(info->method()), type_(grpc_type_name(info->type())), o_(o), start_(Clock::now()) {
    if (o_->on_started) o_->on_started(method_, type_);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      done(static_cast<int>(methods->GetSendStatus().error_code()));
    }
    methods->Proceed();
  }

 private:
  static std::string_view grpc_type_name(grpc::experimental::ServerRpcInfo::Type t) {
    using T = grpc::experimental::ServerRpcInfo::Type;
    switch (t) {
      case T::UNARY:
        return "unary";
      case T::CLIENT_STREAMING:
        return "client_stream";
      case T::SERVER_STREAMING:
        return "server_stream";
      case T::BIDI_STREAMING:
        return "bidi_stream";
    }
    return "unary";
  }

  void done(int code) {
    auto took = Clock::now() - start_;
    if (o_->on_handled) {
      o_->on_handled(method_, type_, code, std::chrono::duration<double>(took).count());
    }
    if (o_->slow_request_ms <= 0 || type_ != "unary") return;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
    if (ms < o_->slow_request_ms) return;
    log(LogLevel::kWarn, "request took too long",
        {{"method", method_},
         {"took", std::to_string(ms) + "ms"},
         {"expected-duration", std::to_string(o_->slow_request_ms) + "ms"},
         {"code", std::to_string(code)}});
  }

  std::string method_;
  std::string_view type_;
  const ApiServerOptions* o_;
  Clock::time_point start_;
};

class RpcObserverFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcObserverFactory(const ApiServerOptions* o) : o_(o) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcObserver(info, o_);
  }

 private:
  const ApiServerOptions* o_;
};

}  // namespace

storage::Status fetch_snapshot(const std::vector<std::string>& client_urls, uint64_t min_index,
                               const std::string& ticket, storage::SnapshotReceiver* receiver,
                               const std::atomic<bool>& stop, const ClientTls& tls) {
  if (client_urls.empty()) return storage::Status::invalid_argument("no client URL to fetch from");
  std::string target = grpc_target(client_urls.front());
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(INT32_MAX);
  // A sender that vanishes without closing the connection is noticed within seconds.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  std::string tls_error;
  auto credentials = member_channel_credentials(client_urls.front(), tls, &tls_error);
  if (!credentials) return storage::Status::io_error("fetching a snapshot: " + tls_error);
  auto channel = grpc::CreateCustomChannel(target, credentials, args);
  auto stub = pb::Maintenance::NewStub(channel);
  const storage::Status stopped = storage::Status::io_error("the member is stopping");

  // The member sending may have committed the snapshot's index without applying it yet.
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (true) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    pb::StatusRequest req;
    pb::StatusResponse resp;
    grpc::Status st = stub->Status(&ctx, req, &resp);
    if (st.ok() && resp.raftappliedindex() >= min_index) break;
    if (stop) return stopped;
    if (Clock::now() > deadline) {
      return storage::Status::io_error("the member at " + target + " has not applied index " +
                                       std::to_string(min_index) +
                                       (st.ok() ? "" : " (" + st.error_message() + ")"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(30));
  ctx.AddMetadata(kFetchTicketMetadata, ticket);
  // The sender checkpoints its store before its first message, which may take a while: a
  // watcher cancels the stream as soon as the member stops, rather than after the next read.
  std::mutex watch_mu;
  std::condition_variable watch_cv;
  bool watch_done = false;
  std::thread watcher([&] {
    std::unique_lock<std::mutex> lk(watch_mu);
    while (!watch_done && !stop)
      watch_cv.wait_for(lk, std::chrono::milliseconds(50));
    if (!watch_done) ctx.TryCancel();
  });
  struct StopWatcher {
    std::mutex& mu;
    std::condition_variable& cv;
    bool& done;
    std::thread& t;
    ~StopWatcher() {
      {
        std::lock_guard<std::mutex> lk(mu);
        done = true;
      }
      cv.notify_all();
      t.join();
    }
  } stop_watcher{watch_mu, watch_cv, watch_done, watcher};
  auto reader = stub->Snapshot(&ctx, pb::SnapshotRequest{});
  pb::SnapshotResponse resp;
  std::string buffer;
  bool ended = false;
  while (!ended && reader->Read(&resp)) {
    if (stop) {
      ctx.TryCancel();
      (void)reader->Finish();
      return stopped;
    }
    buffer.append(resp.blob());
    size_t at = 0;
    while (buffer.size() - at >= 4) {
      uint32_t n = base::load_u32(buffer.data() + at);
      if (n == 0) {
        ended = true;
        break;
      }
      if (n > kMaxBackupChunkBytes) {
        ctx.TryCancel();
        (void)reader->Finish();
        return storage::Status::corruption("a chunk of " + std::to_string(n) + " bytes from " +
                                           target + " is beyond any real chunk");
      }
      if (buffer.size() - at - 4 < n) break;
      storage::Status st = receiver->add(std::string_view(buffer).substr(at + 4, n));
      if (!st.is_ok()) {
        ctx.TryCancel();
        (void)reader->Finish();
        return st;
      }
      at += 4 + n;
    }
    buffer.erase(0, at);
  }
  if (ended) ctx.TryCancel();  // the trailer that follows is for etcd's clients
  grpc::Status st = reader->Finish();
  if (!receiver->complete()) {
    return storage::Status::io_error("snapshot stream from " + target + " ended early" +
                                     (st.ok() ? "" : ": " + st.error_message()));
  }
  return storage::Status::ok();
}

ApiServer::ApiServer(Node* node, ApiServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->node = node;
  impl_->options = std::move(options);
  // Registered before the node starts applying, so no applied batch escapes the watchers.
  impl_->hub = std::make_unique<WatchHub>(&node->store());
  WatchHub* hub = impl_->hub.get();
  node->set_store_replaced_listener([hub](int64_t revision) { hub->reset(revision); });
  node->set_events_listener([hub](const std::vector<kv::Event>& events, int64_t revision) {
    hub->publish(events, revision);
  });
  impl_->tokens = std::make_unique<TokenTable>(
      std::chrono::seconds(std::max<int64_t>(1, impl_->options.auth_token_ttl_s)));
  impl_->auth_worker = std::make_unique<AuthWorker>();
  TokenTable* tokens = impl_->tokens.get();
  node->set_auth_listener([tokens](const kv::AuthResponse& change) {
    switch (change.tokens) {
      case kv::TokenAction::kAdd:
        tokens->add(change.token, change.user, AuthClock::now());
        break;
      case kv::TokenAction::kDropUser:
        tokens->drop_user(change.user);
        break;
      case kv::TokenAction::kDropAll:
        tokens->clear();
        break;
      case kv::TokenAction::kNone:
        break;
    }
  });
}

ApiServer::~ApiServer() {
  stop();
}

storage::Status ApiServer::start() {
  impl_->services.push_back(make_kv_service(impl_.get()));
  impl_->services.push_back(make_watch_service(impl_.get()));
  impl_->services.push_back(make_lease_service(impl_.get()));
  impl_->services.push_back(make_cluster_service(impl_.get()));
  impl_->services.push_back(make_maintenance_service(impl_.get()));
  impl_->services.push_back(make_groups_service(impl_.get()));
  impl_->services.push_back(make_auth_service(impl_.get()));
  impl_->forwarder = std::make_unique<LeaseForwarder>(impl_->node, &impl_->options.tls);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  if (impl_->options.listen_tls.size() != impl_->options.listen_addresses.size()) {
    return storage::Status::invalid_argument(
        "listen_tls must say, for every listen address, "
        "whether it is https");
  }
  impl_->ports.assign(impl_->options.listen_addresses.size(), 0);
  GatewayOptions go;
  // JSON carries bytes as base64: a third more than the request itself.
  go.max_body_bytes = impl_->options.max_request_bytes / 3 * 4 + (64 << 10);
  go.http = impl_->options.http;
  go.cors = impl_->options.cors;
  go.host_whitelist = impl_->options.host_whitelist;
  go.tls = impl_->options.tls;
  go.identities = &impl_->identities;
  impl_->client_port = std::make_unique<ClientPort>(go);
  // Every client URL is the client port's: it ends TLS on the https ones itself and hands gRPC
  // its connections (gateway.h), so the gRPC server has no listening port of its own.
  for (size_t i = 0; i < impl_->options.listen_addresses.size(); ++i) {
    bool https = impl_->options.listen_tls[i];
    if (https && !impl_->options.tls.has_identity()) {
      return storage::Status::invalid_argument("an https listener needs a certificate and key");
    }
    const std::string& address = impl_->options.listen_addresses[i];
    size_t colon = address.rfind(':');
    if (colon == std::string::npos)
      return storage::Status::invalid_argument("no port in " + address);
    uint16_t bound = 0;
    int port = std::atoi(address.c_str() + colon + 1);
    CHORUS_RETURN_IF_ERROR(impl_->client_port->listen(address.substr(0, colon),
                                                      static_cast<uint16_t>(port), &bound, https));
    impl_->ports[i] = bound;
  }
  int max_recv = static_cast<int>(
      std::min<uint64_t>(impl_->options.max_request_bytes + kGrpcOverheadBytes, INT32_MAX));
  builder.SetMaxReceiveMessageSize(max_recv);
  builder.SetMaxSendMessageSize(INT32_MAX);
  // etcd's keepalive enforcement and stream limit; "0: never" is as good as the longest wait.
  auto ms_arg = [](int64_t ms) {
    return ms <= 0 ? INT_MAX : static_cast<int>(std::min<int64_t>(ms, INT_MAX));
  };
  const ApiServerOptions& o = impl_->options;
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ms_arg(o.keepalive_interval_ms));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ms_arg(o.keepalive_timeout_ms));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             ms_arg(o.keepalive_min_time_ms));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder.AddChannelArgument(
      GRPC_ARG_MAX_CONCURRENT_STREAMS,
      static_cast<int>(std::min<uint32_t>(o.max_concurrent_streams, INT_MAX)));
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> observers;
  observers.push_back(std::make_unique<RpcObserverFactory>(&impl_->options));
  builder.experimental().SetInterceptorCreators(std::move(observers));
  for (auto& service : impl_->services)
    builder.RegisterService(service.get());
  impl_->server = builder.BuildAndStart();
  if (!impl_->server) return storage::Status::io_error("gRPC server failed to start");
  if (auto* health = impl_->server->GetHealthCheckService()) {
    health->SetServingStatus(true);
  }
  impl_->client_port->start(impl_->server.get());
  impl_->hub->start(std::chrono::milliseconds(impl_->options.progress_notify_ms));
  return storage::Status::ok();
}

void ApiServer::stop() {
  impl_->hub->stop();
  // The gateway first: its streams are calls on the server, cancelled as its connections close.
  if (impl_->client_port) impl_->client_port->stop();
  if (impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    impl_->server->Wait();
    impl_->server.reset();
  }
  impl_->client_port.reset();
  impl_->auth_worker.reset();  // after the last handler that could queue work on it
  impl_->forwarder.reset();
}

std::vector<int> ApiServer::bound_ports() const {
  return impl_->ports;
}

}  // namespace chorus::server
