#include "server/api_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/server_interceptor.h>
#include <openssl/evp.h>

#include <unistd.h>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

#include "base/coding.h"
#include "base/thread_name.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "server/config.h"
#include "server/convert.h"
#include "server/log.h"
#include "server/node.h"
#include "server/snapshot_file.h"
#include "server/watch_hub.h"
#include "storage/file.h"
#include "storage/snapshot_stream.h"

namespace chorus::server {

namespace {

using Clock = std::chrono::steady_clock;
// gRPC accepts this much beyond --max-request-bytes, as etcd does, so that a request just over
// the limit gets etcd's "request is too large" rather than a transport error.
constexpr int kGrpcOverheadBytes = 512 * 1024;

// The state machine answered a request with a response of another kind: a bug, reported to
// the client rather than crashing the member.
grpc::Status mismatch() {
  return grpc::Status(grpc::StatusCode::INTERNAL,
                      "chorus: the response does not match the request");
}

grpc::Status to_grpc(const RpcError& e) {
  if (e.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(e.code), e.message);
}

// Logs a unary call slower than the threshold and reports it to the metrics hooks.
// gRPC's target for a client URL: "http://host:port" -> "host:port".
std::string grpc_target(const std::string& url) {
  auto pos = url.find("://");
  return pos == std::string::npos ? url : url.substr(pos + 3);
}

// The target of the leader's first client URL, or empty when no other member leads.
std::string leader_client_target(const Node& node) {
  raft::NodeId leader = node.status().leader;
  if (leader == 0 || leader == node.id()) return "";
  for (const MemberInfo& m : node.members()) {
    if (m.id == leader && !m.client_urls.empty()) return grpc_target(m.client_urls.front());
  }
  return "";
}

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
    if (o_->on_handled) o_->on_handled(method_, type_, code);
    if (o_->slow_request_ms <= 0 || type_ != "unary") return;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_).count();
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

uint64_t wall_clock_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

struct ApiServerServices;

namespace {
class LeaseForwarder;
}  // namespace

struct ApiServer::Impl {
  Node* node;
  std::unique_ptr<WatchHub> hub;
  std::unique_ptr<LeaseForwarder> forwarder;
  std::unique_ptr<ApiServerServices> services;
  ApiServerOptions options;
  std::unique_ptr<grpc::Server> server;
  std::vector<int> ports;

  void header(pb::ResponseHeader* h, int64_t revision = 0) const {
    h->set_cluster_id(node->cluster_id());
    h->set_member_id(node->id());
    h->set_revision(revision != 0 ? revision : node->store().revision());
    h->set_raft_term(node->status().term);
  }

  std::string leader_target() const { return leader_client_target(*node); }

  // Passes a unary call on to the leader (etcd forwards what only the leader can answer) and
  // finishes `reactor` with its answer. `call` starts the client call on a stub.
  template <typename Request, typename Response, typename Start>
  void forward_to_leader(grpc::ServerUnaryReactor* reactor, const Request& req, Response* resp,
                         Start start) {
    std::string target = leader_target();
    if (target.empty()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, rpc_errors::kNoLeader));
      return;
    }
    struct Call {
      std::shared_ptr<grpc::Channel> channel;
      grpc::ClientContext ctx;
      Request req;
      Response resp;
    };
    auto* call = new Call;
    call->channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    call->req = req;
    start(call->channel, &call->ctx, &call->req, &call->resp,
          [call, reactor, resp](grpc::Status st) {
            if (st.ok()) *resp = std::move(call->resp);
            reactor->Finish(st);
            delete call;
          });
  }

  grpc::ServerUnaryReactor* refuse(grpc::CallbackServerContext* ctx, const grpc::Status& st) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(st);
    return reactor;
  }

  // Proposes `cmd`; `fill` turns the state machine's response into the reply.
  template <typename Fill>
  grpc::ServerUnaryReactor* propose(grpc::CallbackServerContext* ctx, kv::Command cmd, Fill fill) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    node->propose(std::move(cmd), [reactor, fill](const RpcError& e, kv::Response&& r) mutable {
      if (!e.ok()) return reactor->Finish(to_grpc(e));
      if (!r.error.ok()) return reactor->Finish(to_grpc(from_api_error(r.error)));
      reactor->Finish(fill(r));
    });
    return reactor;
  }
};

namespace {

// Keep-alives reaching a follower go to the leader, whose clock alone decides expiry (as etcd
// forwards them). One thread keeps one stream to the current leader's client URL and passes
// requests over it one at a time; answers come back in order.
class LeaseForwarder {
 public:
  using Done = std::function<void(bool ok, int64_t ttl)>;

  explicit LeaseForwarder(Node* node)
      : node_(node), thread_([this] {
          base::set_thread_name("chorus-leases");
          run();
        }) {}
  ~LeaseForwarder() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

  void renew(int64_t id, Done done) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (queue_.size() >= kMaxQueued) {
        done(false, 0);
        return;
      }
      queue_.emplace_back(id, std::move(done));
    }
    cv_.notify_one();
  }

 private:
  static constexpr size_t kMaxQueued = 10000;
  // Streams are replaced after this long, so a leader that vanished without closing its
  // connection costs at most one deadline.
  static constexpr auto kStreamLifetime = std::chrono::seconds(5);

  void run() {
    while (true) {
      std::pair<int64_t, Done> item;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
        if (stop_) break;
        item = std::move(queue_.front());
        queue_.pop_front();
      }
      int64_t ttl = 0;
      bool ok = forward(item.first, &ttl);
      item.second(ok, ttl);
    }
    std::deque<std::pair<int64_t, Done>> left;
    {
      std::lock_guard<std::mutex> lk(mu_);
      left.swap(queue_);
    }
    for (auto& [id, done] : left)
      done(false, 0);
    close();
  }

  bool forward(int64_t id, int64_t* ttl) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!open()) return false;
      pb::LeaseKeepAliveRequest req;
      req.set_id(id);
      pb::LeaseKeepAliveResponse resp;
      if (stream_->Write(req) && stream_->Read(&resp)) {
        *ttl = resp.ttl();
        return true;
      }
      close();
    }
    return false;
  }

  bool open() {
    raft::NodeId leader = node_->status().leader;
    if (leader == 0 || leader == node_->id()) {
      close();
      return false;
    }
    if (stream_ && leader == leader_ && Clock::now() - opened_ < kStreamLifetime) return true;
    close();
    std::string target = leader_client_target(*node_);
    if (target.empty()) return false;
    auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
    stub_ = pb::Lease::NewStub(channel);
    ctx_ = std::make_unique<grpc::ClientContext>();
    ctx_->set_deadline(std::chrono::system_clock::now() + kStreamLifetime +
                       std::chrono::seconds(2));
    stream_ = stub_->LeaseKeepAlive(ctx_.get());
    leader_ = leader;
    opened_ = Clock::now();
    return stream_ != nullptr;
  }

  void close() {
    if (stream_) {
      ctx_->TryCancel();
      (void)stream_->Finish();
    }
    stream_.reset();
    ctx_.reset();
    stub_.reset();
    leader_ = 0;
  }

  Node* node_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<int64_t, Done>> queue_;
  bool stop_ = false;
  std::unique_ptr<pb::Lease::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>>
      stream_;
  raft::NodeId leader_ = 0;
  Clock::time_point opened_;
  std::thread thread_;
};

class KvService final : public pb::KV::CallbackService {
 public:
  explicit KvService(ApiServer::Impl* s) : s_(s) {}

  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx, const pb::RangeRequest* req,
                                  pb::RangeResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    auto run = [this, reactor, req, resp](const RpcError& e) {
      if (!e.ok()) return reactor->Finish(to_grpc(e));
      kv::RangeResponse r;
      kv::ApiError err = s_->node->store().range(to_kv(*req), &r);
      if (!err.ok()) return reactor->Finish(to_grpc(from_api_error(err)));
      to_pb(r, resp);
      s_->header(resp->mutable_header(), r.revision);
      reactor->Finish(grpc::Status::OK);
    };
    if (req->serializable()) {
      run(RpcError{});
    } else {
      s_->node->read_barrier(std::move(run));
    }
    return reactor;
  }

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const pb::PutRequest* req,
                                pb::PutResponse* resp) override {
    if (s_->node->has_alarm(AlarmType::kNoSpace)) return s_->refuse(ctx, no_space());
    kv::Command cmd;
    cmd.op = to_kv(*req);
    return s_->propose(ctx, std::move(cmd), [this, resp](kv::Response& r) {
      const auto* p_ptr = std::get_if<kv::PutResponse>(&r.op);
      if (p_ptr == nullptr) return mismatch();
      const auto& p = *p_ptr;
      to_pb(p, resp);
      s_->header(resp->mutable_header(), p.revision);
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* ctx,
                                        const pb::DeleteRangeRequest* req,
                                        pb::DeleteRangeResponse* resp) override {
    kv::Command cmd;
    cmd.op = to_kv(*req);
    return s_->propose(ctx, std::move(cmd), [this, resp](kv::Response& r) {
      const auto* d_ptr = std::get_if<kv::DeleteRangeResponse>(&r.op);
      if (d_ptr == nullptr) return mismatch();
      const auto& d = *d_ptr;
      to_pb(d, resp);
      s_->header(resp->mutable_header(), d.revision);
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* ctx, const pb::TxnRequest* req,
                                pb::TxnResponse* resp) override {
    if (has_put(*req) && s_->node->has_alarm(AlarmType::kNoSpace)) {
      return s_->refuse(ctx, no_space());
    }
    kv::Command cmd;
    cmd.op = to_kv(*req);
    return s_->propose(ctx, std::move(cmd), [this, resp](kv::Response& r) {
      const auto* t_ptr = std::get_if<kv::TxnResponse>(&r.op);
      if (t_ptr == nullptr) return mismatch();
      const auto& t = *t_ptr;
      to_pb(t, resp);
      s_->header(resp->mutable_header(), t.revision);
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext* ctx,
                                    const pb::CompactionRequest* req,
                                    pb::CompactionResponse* resp) override {
    kv::Command cmd;
    cmd.op = kv::CompactionRequest{req->revision()};
    return s_->propose(ctx, std::move(cmd), [this, resp](kv::Response& r) {
      const auto* c_ptr = std::get_if<kv::CompactionResponse>(&r.op);
      if (c_ptr == nullptr) return mismatch();
      const auto& c = *c_ptr;
      s_->header(resp->mutable_header(), c.revision);
      return grpc::Status::OK;
    });
  }

 private:
  static grpc::Status no_space() {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, rpc_errors::kNoSpace);
  }
  // etcd refuses a txn that may write while the space alarm is raised.
  static bool has_put(const pb::TxnRequest& t) {
    for (const auto* ops : {&t.success(), &t.failure()}) {
      for (const pb::RequestOp& op : *ops) {
        if (op.has_request_put()) return true;
        if (op.has_request_txn() && has_put(op.request_txn())) return true;
      }
    }
    return false;
  }

  ApiServer::Impl* s_;
};

class LeaseService final : public pb::Lease::CallbackService {
 public:
  explicit LeaseService(ApiServer::Impl* s) : s_(s) {}

  grpc::ServerUnaryReactor* LeaseGrant(grpc::CallbackServerContext* ctx,
                                       const pb::LeaseGrantRequest* req,
                                       pb::LeaseGrantResponse* resp) override {
    int64_t id = req->id();
    if (id == 0) {
      // The proposer picks the id, as etcd does, so every replica agrees on it.
      thread_local std::mt19937_64 rng(std::random_device{}());
      do {
        id = static_cast<int64_t>(rng() >> 1);
      } while (id == 0);
    }
    if (s_->node->has_alarm(AlarmType::kNoSpace)) {
      return s_->refuse(ctx,
                        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, rpc_errors::kNoSpace));
    }
    kv::Command cmd;
    cmd.op = kv::LeaseGrantRequest{id, req->ttl()};
    return s_->propose(ctx, std::move(cmd), [this, resp](kv::Response& r) {
      const auto* g_ptr = std::get_if<kv::LeaseGrantResponse>(&r.op);
      if (g_ptr == nullptr) return mismatch();
      const auto& g = *g_ptr;
      resp->set_id(g.id);
      resp->set_ttl(g.ttl);
      s_->header(resp->mutable_header(), g.revision);
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* LeaseRevoke(grpc::CallbackServerContext* ctx,
                                        const pb::LeaseRevokeRequest* req,
                                        pb::LeaseRevokeResponse* resp) override {
    kv::Command cmd;
    cmd.op = kv::LeaseRevokeRequest{req->id()};
    return s_->propose(ctx, std::move(cmd), [this, resp](kv::Response& r) {
      const auto* v_ptr = std::get_if<kv::LeaseRevokeResponse>(&r.op);
      if (v_ptr == nullptr) return mismatch();
      const auto& v = *v_ptr;
      s_->header(resp->mutable_header(), v.revision);
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* LeaseTimeToLive(grpc::CallbackServerContext* ctx,
                                            const pb::LeaseTimeToLiveRequest* req,
                                            pb::LeaseTimeToLiveResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!s_->node->is_leader() && s_->node->store().lease_exists(req->id()) &&
        !s_->leader_target().empty()) {
      // The time left is the leader's to tell: only its clock runs the lease.
      s_->forward_to_leader(
          reactor, *req, resp,
          [](std::shared_ptr<grpc::Channel> channel, grpc::ClientContext* c,
             const pb::LeaseTimeToLiveRequest* r, pb::LeaseTimeToLiveResponse* out,
             std::function<void(grpc::Status)> done) {
            pb::Lease::NewStub(channel)->async()->LeaseTimeToLive(c, r, out, std::move(done));
          });
      return reactor;
    }
    resp->set_id(req->id());
    bool found = false;
    for (const kv::LeaseInfo& l : s_->node->store().leases()) {
      if (l.id != req->id()) continue;
      found = true;
      resp->set_grantedttl(l.ttl);
      int64_t remaining = s_->node->lease_remaining(l.id);
      resp->set_ttl(remaining < 0 ? l.ttl : remaining);
      if (req->keys()) {
        for (const auto& k : l.keys)
          resp->add_keys(k);
      }
    }
    // etcd answers an unknown lease with TTL -1 rather than an error.
    if (!found) resp->set_ttl(-1);
    s_->header(resp->mutable_header());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* LeaseLeases(grpc::CallbackServerContext* ctx,
                                        const pb::LeaseLeasesRequest*,
                                        pb::LeaseLeasesResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    for (const kv::LeaseInfo& l : s_->node->store().leases())
      resp->add_leases()->set_id(l.id);
    s_->header(resp->mutable_header());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerBidiReactor<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>* LeaseKeepAlive(
      grpc::CallbackServerContext*) override {
    return new KeepAlive(s_);
  }

 private:
  // One request, one answer, in order: a keep-alive stream is a slow trickle.
  class KeepAlive final
      : public grpc::ServerBidiReactor<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse> {
   public:
    explicit KeepAlive(ApiServer::Impl* s) : s_(s) { StartRead(&req_); }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::OK);
        return;
      }
      resp_.Clear();
      resp_.set_id(req_.id());
      int64_t ttl = s_->node->lease_renew(req_.id());
      if (ttl < 0 && s_->node->store().lease_exists(req_.id()) && !s_->node->is_leader()) {
        s_->forwarder->renew(req_.id(), [this](bool forwarded, int64_t leader_ttl) {
          if (!forwarded) {
            Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, rpc_errors::kNoLeader));
            return;
          }
          reply(leader_ttl);
        });
        return;
      }
      reply(ttl < 0 ? 0 : ttl);  // 0: etcd's answer for a lease that does not exist
    }
    void reply(int64_t ttl) {
      resp_.set_ttl(ttl);
      s_->header(resp_.mutable_header());
      StartWrite(&resp_);
    }
    void OnWriteDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::OK);
        return;
      }
      StartRead(&req_);
    }
    void OnDone() override { delete this; }

   private:
    ApiServer::Impl* s_;
    pb::LeaseKeepAliveRequest req_;
    pb::LeaseKeepAliveResponse resp_;
  };

  ApiServer::Impl* s_;
};

// One client's Watch stream: requests in, responses out, one write in flight at a time.
class WatchStream final : public grpc::ServerBidiReactor<pb::WatchRequest, pb::WatchResponse>,
                          public WatchSink {
 public:
  // Responses waiting beyond this many bytes of events (kv::event_bytes) mean the client does
  // not keep up; the stream is ended so it reconnects and resumes from its last revision,
  // instead of the server holding an unbounded backlog.
  static constexpr size_t kMaxQueuedBytes = 64 << 20;

  explicit WatchStream(ApiServer::Impl* s) : s_(s) { StartRead(&req_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      end(grpc::Status::OK);
      return;
    }
    switch (req_.request_union_case()) {
      case pb::WatchRequest::kCreateRequest:
        create(req_.create_request());
        break;
      case pb::WatchRequest::kCancelRequest:
        s_->hub->cancel(this, req_.cancel_request().watch_id());
        break;
      case pb::WatchRequest::kProgressRequest:
        s_->hub->request_progress(this);
        break;
      default:
        break;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (ending_) return;
    }
    StartRead(&req_);
  }

  void deliver(std::vector<WatchUpdate>&& updates) override {
    std::lock_guard<std::mutex> lk(mu_);
    if (ending_) return;
    for (auto& u : updates) {
      queued_bytes_ += u.bytes;
      queue_.push_back(std::move(u));
    }
    if (queued_bytes_ > kMaxQueuedBytes) {
      queue_.clear();
      // UNAVAILABLE: etcd's clients reconnect and resume their watchers on it.
      end_locked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "chorus: watch stream too slow; reconnect and resume"));
      return;
    }
    write_next_locked();
  }

  size_t backlog() const override {
    std::lock_guard<std::mutex> lk(mu_);
    return queued_bytes_;
  }

  void reset() override {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.clear();
    end_locked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "chorus: the member's store was replaced; reconnect and resume"));
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lk(mu_);
    writing_ = false;
    if (!ok) {
      queue_.clear();
      end_locked(grpc::Status::OK);
      return;
    }
    if (finish_pending_) {
      Finish(finish_status_);
      return;
    }
    write_next_locked();
  }

  void OnDone() override {
    // After this no update reaches the stream.
    s_->hub->remove_sink(this);
    delete this;
  }

 private:
  void create(const pb::WatchCreateRequest& r) {
    WatchSpec spec;
    spec.key = r.key();
    spec.range_end = r.range_end();
    spec.start_revision = r.start_revision();
    spec.prev_kv = r.prev_kv();
    spec.progress_notify = r.progress_notify();
    for (int f : r.filters()) {
      if (f == pb::WatchCreateRequest_FilterType_NOPUT) spec.no_put = true;
      if (f == pb::WatchCreateRequest_FilterType_NODELETE) spec.no_delete = true;
    }
    spec.auto_id = r.watch_id() == 0;
    spec.id = r.watch_id();
    std::string error;
    if (!s_->hub->add(this, spec, &error)) {
      WatchUpdate u;
      u.watch_id = r.watch_id();
      u.created = true;
      u.canceled = true;
      u.cancel_reason = error;
      std::vector<WatchUpdate> updates;
      updates.push_back(std::move(u));
      deliver(std::move(updates));
    }
  }

  void write_next_locked() {
    if (writing_ || queue_.empty()) return;
    WatchUpdate u = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= u.bytes;
    resp_.Clear();
    s_->header(resp_.mutable_header(), u.revision);
    resp_.set_watch_id(u.watch_id);
    resp_.set_created(u.created);
    resp_.set_canceled(u.canceled);
    resp_.set_compact_revision(u.compact_revision);
    if (!u.cancel_reason.empty()) resp_.set_cancel_reason(u.cancel_reason);
    resp_.mutable_events()->Reserve(static_cast<int>(u.events.size()));
    for (const kv::Event& e : u.events)
      to_pb(e, resp_.add_events());
    writing_ = true;
    StartWrite(&resp_);
  }

  void end(const grpc::Status& st) {
    std::lock_guard<std::mutex> lk(mu_);
    end_locked(st);
  }
  void end_locked(const grpc::Status& st) {
    if (ending_) return;
    ending_ = true;
    if (writing_) {
      finish_pending_ = true;
      finish_status_ = st;
    } else {
      Finish(st);
    }
  }

  ApiServer::Impl* s_;
  pb::WatchRequest req_;
  pb::WatchResponse resp_;
  mutable std::mutex mu_;
  std::deque<WatchUpdate> queue_;
  size_t queued_bytes_ = 0;  // kv::event_bytes of the events queued
  bool writing_ = false;
  bool ending_ = false;
  bool finish_pending_ = false;
  grpc::Status finish_status_;
};

class WatchService final : public pb::Watch::CallbackService {
 public:
  explicit WatchService(ApiServer::Impl* s) : s_(s) {}
  grpc::ServerBidiReactor<pb::WatchRequest, pb::WatchResponse>* Watch(
      grpc::CallbackServerContext*) override {
    return new WatchStream(s_);
  }

 private:
  ApiServer::Impl* s_;
};

class ClusterService final : public pb::Cluster::CallbackService {
 public:
  explicit ClusterService(ApiServer::Impl* s) : s_(s) {}

  grpc::ServerUnaryReactor* MemberList(grpc::CallbackServerContext* ctx,
                                       const pb::MemberListRequest*,
                                       pb::MemberListResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    list(resp->mutable_members());
    s_->header(resp->mutable_header());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* MemberAdd(grpc::CallbackServerContext* ctx,
                                      const pb::MemberAddRequest* req,
                                      pb::MemberAddResponse* resp) override {
    std::vector<Url> urls;
    std::vector<std::string> texts;
    for (const std::string& text : req->peerurls()) {
      Url u;
      std::string error;
      if (!parse_url(text, &u, &error)) {
        return s_->refuse(ctx, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                            "etcdserver: invalid peer URL " + text + ": " + error));
      }
      urls.push_back(u);
      texts.push_back(u.to_string());
    }
    if (urls.empty()) {
      return s_->refuse(
          ctx, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: no peer URLs given"));
    }
    for (const MemberInfo& m : s_->node->members()) {
      for (const std::string& u : m.peer_urls) {
        if (std::find(texts.begin(), texts.end(), u) != texts.end()) {
          return s_->refuse(
              ctx, grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, rpc_errors::kPeerURLExist));
        }
      }
    }
    // A fresh id, as etcd's (the URLs, the token and the time): a member removed and added
    // back at the same address is a new member, and ids are never reused. The new member asks
    // its peers for it when it starts (transport::ask_to_join).
    raft::NodeId id = raft::kNoNode;
    for (uint64_t salt = wall_clock_ns(); id == raft::kNoNode; ++salt) {
      id = compute_added_member_id(urls, s_->node->cluster_token(), salt);
      if (s_->node->member_removed(id) || is_member(id)) id = raft::kNoNode;
    }
    raft::ConfChange cc;
    cc.changes.push_back(
        {req->islearner() ? raft::ConfChangeType::kAddLearner : raft::ConfChangeType::kAddNode,
         id});
    cc.context = encode_member_context(MemberContext{"", texts});
    bool learner = req->islearner();
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    s_->node->change_membership(cc, false,
                                [this, reactor, resp, id, texts, learner](const RpcError& e) {
                                  if (!e.ok()) return reactor->Finish(to_grpc(e));
                                  pb::Member* m = resp->mutable_member();
                                  m->set_id(id);
                                  for (const auto& u : texts)
                                    m->add_peerurls(u);
                                  m->set_islearner(learner);
                                  list(resp->mutable_members());
                                  s_->header(resp->mutable_header());
                                  reactor->Finish(grpc::Status::OK);
                                });
    return reactor;
  }

  grpc::ServerUnaryReactor* MemberRemove(grpc::CallbackServerContext* ctx,
                                         const pb::MemberRemoveRequest* req,
                                         pb::MemberRemoveResponse* resp) override {
    if (!is_member(req->id())) return not_found(ctx);
    raft::ConfChange cc;
    cc.changes.push_back({raft::ConfChangeType::kRemoveNode, req->id()});
    return change(ctx, cc, false, resp->mutable_members(), resp->mutable_header());
  }

  grpc::ServerUnaryReactor* MemberPromote(grpc::CallbackServerContext* ctx,
                                          const pb::MemberPromoteRequest* req,
                                          pb::MemberPromoteResponse* resp) override {
    bool found = false, learner = false;
    for (const MemberInfo& m : s_->node->members()) {
      if (m.id == req->id()) {
        found = true;
        learner = m.is_learner;
      }
    }
    if (!found) return not_found(ctx);
    if (!learner) {
      return s_->refuse(
          ctx, grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, rpc_errors::kMemberNotLearner));
    }
    if (!s_->node->is_leader()) {
      // Only the leader knows whether the learner has caught up.
      grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
      s_->forward_to_leader(reactor, *req, resp,
                            [](std::shared_ptr<grpc::Channel> channel, grpc::ClientContext* c,
                               const pb::MemberPromoteRequest* r, pb::MemberPromoteResponse* out,
                               std::function<void(grpc::Status)> done) {
                              pb::Cluster::NewStub(channel)->async()->MemberPromote(
                                  c, r, out, std::move(done));
                            });
      return reactor;
    }
    raft::ConfChange cc;
    cc.changes.push_back({raft::ConfChangeType::kAddNode, req->id()});
    return change(ctx, cc, true, resp->mutable_members(), resp->mutable_header());
  }

  grpc::ServerUnaryReactor* MemberUpdate(grpc::CallbackServerContext* ctx,
                                         const pb::MemberUpdateRequest* req,
                                         pb::MemberUpdateResponse* resp) override {
    if (!is_member(req->id())) return not_found(ctx);
    MemberPeerUrls u;
    u.id = req->id();
    for (const std::string& text : req->peerurls()) {
      Url url;
      std::string error;
      if (!parse_url(text, &url, &error)) {
        return s_->refuse(ctx, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                            "etcdserver: invalid peer URL " + text + ": " + error));
      }
      u.peer_urls.push_back(url.to_string());
    }
    if (u.peer_urls.empty()) {
      return s_->refuse(
          ctx, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: no peer URLs given"));
    }
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    s_->node->update_peer_urls(u, [this, reactor, resp](const RpcError& e) {
      if (!e.ok()) return reactor->Finish(to_grpc(e));
      list(resp->mutable_members());
      s_->header(resp->mutable_header());
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

 private:
  bool is_member(uint64_t id) const {
    for (const MemberInfo& m : s_->node->members()) {
      if (m.id == id) return true;
    }
    return false;
  }
  grpc::ServerUnaryReactor* not_found(grpc::CallbackServerContext* ctx) {
    return s_->refuse(ctx, grpc::Status(grpc::StatusCode::NOT_FOUND, rpc_errors::kMemberNotFound));
  }
  grpc::ServerUnaryReactor* change(grpc::CallbackServerContext* ctx, const raft::ConfChange& cc,
                                   bool promote,
                                   google::protobuf::RepeatedPtrField<pb::Member>* members,
                                   pb::ResponseHeader* header) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    s_->node->change_membership(cc, promote, [this, reactor, members, header](const RpcError& e) {
      if (!e.ok()) return reactor->Finish(to_grpc(e));
      list(members);
      s_->header(header);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }
  void list(google::protobuf::RepeatedPtrField<pb::Member>* out) const {
    for (const MemberInfo& m : s_->node->members()) {
      pb::Member* pm = out->Add();
      pm->set_id(m.id);
      pm->set_name(m.name);
      for (const auto& u : m.peer_urls)
        pm->add_peerurls(u);
      for (const auto& u : m.client_urls)
        pm->add_clienturls(u);
      pm->set_islearner(m.is_learner);
    }
  }

  ApiServer::Impl* s_;
};

class MaintenanceService final : public pb::Maintenance::CallbackService {
 public:
  explicit MaintenanceService(ApiServer::Impl* s) : s_(s) {}

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx, const pb::StatusRequest*,
                                   pb::StatusResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    NodeStatus st = s_->node->status();
    resp->set_version(s_->options.version);
    int64_t size = static_cast<int64_t>(s_->node->store().size_bytes());
    resp->set_dbsize(size);
    resp->set_dbsizeinuse(size);
    resp->set_leader(st.leader);
    resp->set_raftindex(st.commit);
    resp->set_raftterm(st.term);
    resp->set_raftappliedindex(st.applied);
    resp->set_islearner(st.is_learner);
    if (st.leader == 0) resp->add_errors(rpc_errors::kNoLeader);
    for (const Node::Alarm& a : s_->node->alarms()) {
      resp->add_errors(std::string("memberID:") + std::to_string(a.member) +
                       " alarm:" + (a.type == AlarmType::kNoSpace ? "NOSPACE" : "CORRUPT"));
    }
    s_->header(resp->mutable_header());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* Alarm(grpc::CallbackServerContext* ctx, const pb::AlarmRequest* req,
                                  pb::AlarmResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    auto list = [this, resp](uint64_t member, int type) {
      for (const Node::Alarm& a : s_->node->alarms()) {
        if (member != 0 && a.member != member) continue;
        if (type != pb::NONE && static_cast<int>(a.type) != type) continue;
        pb::AlarmMember* m = resp->add_alarms();
        m->set_memberid(a.member);
        m->set_alarm(static_cast<pb::AlarmType>(a.type));
      }
      s_->header(resp->mutable_header());
    };
    if (req->action() == pb::AlarmRequest_AlarmAction_GET) {
      list(req->memberid(), req->alarm());
      reactor->Finish(grpc::Status::OK);
      return reactor;
    }
    if (req->alarm() != pb::NOSPACE && req->alarm() != pb::CORRUPT) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "etcdserver: alarm type must be NOSPACE or CORRUPT"));
      return reactor;
    }
    bool activate = req->action() == pb::AlarmRequest_AlarmAction_ACTIVATE;
    uint64_t member = req->memberid();
    auto type = static_cast<AlarmType>(req->alarm());
    s_->node->change_alarm(AlarmChange{activate, member, type},
                           [this, reactor, resp, member, type](const RpcError& e) {
                             if (!e.ok()) {
                               reactor->Finish(to_grpc(e));
                               return;
                             }
                             // etcd answers with the alarm that changed.
                             pb::AlarmMember* m = resp->add_alarms();
                             m->set_memberid(member);
                             m->set_alarm(static_cast<pb::AlarmType>(type));
                             s_->header(resp->mutable_header());
                             reactor->Finish(grpc::Status::OK);
                           });
    return reactor;
  }

  grpc::ServerUnaryReactor* Hash(grpc::CallbackServerContext* ctx, const pb::HashRequest*,
                                 pb::HashResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    uint32_t hash = 0;
    int64_t rev = 0;
    kv::ApiError err = s_->node->store().hash_kv(0, &hash, &rev);
    if (!err.ok()) {
      reactor->Finish(to_grpc(from_api_error(err)));
      return reactor;
    }
    resp->set_hash(hash);
    s_->header(resp->mutable_header(), rev);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* HashKV(grpc::CallbackServerContext* ctx, const pb::HashKVRequest* req,
                                   pb::HashKVResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    uint32_t hash = 0;
    int64_t rev = 0;
    kv::ApiError err = s_->node->store().hash_kv(req->revision(), &hash, &rev);
    if (!err.ok()) {
      reactor->Finish(to_grpc(from_api_error(err)));
      return reactor;
    }
    resp->set_hash(hash);
    resp->set_compact_revision(s_->node->store().compact_revision());
    s_->header(resp->mutable_header());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* Defragment(grpc::CallbackServerContext* ctx,
                                       const pb::DefragmentRequest*,
                                       pb::DefragmentResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    storage::Status st = s_->node->defragment();
    if (!st.is_ok()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, st.to_string()));
      return reactor;
    }
    s_->header(resp->mutable_header());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* MoveLeader(grpc::CallbackServerContext* ctx,
                                       const pb::MoveLeaderRequest* req,
                                       pb::MoveLeaderResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    s_->node->transfer_leadership(req->targetid(), [this, reactor, resp](const RpcError& e) {
      if (!e.ok()) {
        reactor->Finish(to_grpc(e));
        return;
      }
      s_->header(resp->mutable_header());
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerWriteReactor<pb::SnapshotResponse>* Snapshot(grpc::CallbackServerContext*,
                                                           const pb::SnapshotRequest*) override {
    return new SnapshotStream(s_);
  }

 private:
  // Streams a checkpoint of the store as a sequence of checksummed chunks, each preceded by its
  // length (the format storage::SnapshotReceiver installs).
  class SnapshotStream final : public grpc::ServerWriteReactor<pb::SnapshotResponse> {
   public:
    static constexpr size_t kChunkBytes = 1 << 20;

    explicit SnapshotStream(ApiServer::Impl* s) : s_(s), fs_(storage::make_posix_file_system()) {
      static std::atomic<uint64_t> counter{0};
      uint64_t n = counter.fetch_add(1);
      dir_ = storage::join_path(
          storage::join_path(s_->node->data_dir(), "member"),
          "snapshot-stream-" + std::to_string(::getpid()) + "-" + std::to_string(n));
      (void)fs_->remove_dir(dir_);
      storage::Status st = s_->node->checkpoint(dir_);
      if (!st.is_ok()) {
        Finish(grpc::Status(grpc::StatusCode::INTERNAL, "snapshot: " + st.to_string()));
        return;
      }
      std::vector<std::string> names;
      if (fs_->list_dir(dir_, &names).is_ok()) {
        for (const auto& n2 : names) {
          std::unique_ptr<storage::ReadableFile> f;
          uint64_t size = 0;
          if (fs_->open_readable(storage::join_path(dir_, n2), &f).is_ok() &&
              f->size(&size).is_ok()) {
            total_ += size;
          }
        }
      }
      sender_ = std::make_unique<storage::SnapshotSender>(fs_.get(), dir_, n + 1, kChunkBytes);
      EVP_DigestInit_ex(sha_.get(), EVP_sha256(), nullptr);
      next();
    }
    void OnWriteDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::OK);
        return;
      }
      next();
    }
    void OnDone() override {
      (void)fs_->remove_dir(dir_);
      delete this;
    }

   private:
    void next() {
      if (finished_) {
        Finish(grpc::Status::OK);
        return;
      }
      if (sender_->done()) {
        // The trailer etcd's clients check for: a zero length ends the chunks, zeros pad the
        // file to a multiple of 512 bytes, and the SHA-256 of everything before follows.
        resp_.Clear();
        std::string* blob = resp_.mutable_blob();
        append_backup_end(blob, written_);
        hash(*blob);
        unsigned char digest[32];
        unsigned int len = 0;
        EVP_DigestFinal_ex(sha_.get(), digest, &len);
        blob->append(reinterpret_cast<const char*>(digest), len);
        resp_.set_remaining_bytes(0);
        s_->header(resp_.mutable_header());
        finished_ = true;
        StartWrite(&resp_);
        return;
      }
      storage::SnapshotChunk chunk;
      storage::Status st = sender_->next(&chunk);
      if (!st.is_ok()) {
        Finish(grpc::Status(grpc::StatusCode::INTERNAL, "snapshot: " + st.to_string()));
        return;
      }
      sent_ += chunk.data.size();
      resp_.Clear();
      append_backup_chunk(resp_.mutable_blob(), storage::encode_snapshot_chunk(chunk));
      resp_.set_remaining_bytes(sender_->done() || sent_ >= total_ ? 0 : total_ - sent_);
      hash(resp_.blob());
      s_->header(resp_.mutable_header());
      StartWrite(&resp_);
    }

    void hash(const std::string& bytes) {
      EVP_DigestUpdate(sha_.get(), bytes.data(), bytes.size());
      written_ += bytes.size();
    }

    ApiServer::Impl* s_;
    std::unique_ptr<storage::FileSystem> fs_;
    std::string dir_;
    std::unique_ptr<storage::SnapshotSender> sender_;
    uint64_t total_ = 0;
    uint64_t sent_ = 0;
    uint64_t written_ = 0;
    bool finished_ = false;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> sha_{EVP_MD_CTX_new(),
                                                                 &EVP_MD_CTX_free};
    pb::SnapshotResponse resp_;
  };

  ApiServer::Impl* s_;
};

}  // namespace

struct ApiServerServices {
  explicit ApiServerServices(ApiServer::Impl* s)
      : kv(s), watch(s), lease(s), cluster(s), maintenance(s) {}
  KvService kv;
  WatchService watch;
  LeaseService lease;
  ClusterService cluster;
  MaintenanceService maintenance;
};

storage::Status fetch_snapshot(const std::vector<std::string>& client_urls, uint64_t min_index,
                               storage::SnapshotReceiver* receiver, const std::atomic<bool>& stop) {
  if (client_urls.empty()) return storage::Status::invalid_argument("no client URL to fetch from");
  std::string target = grpc_target(client_urls.front());
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(INT32_MAX);
  // A sender that vanishes without closing the connection is noticed within seconds.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
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
}

ApiServer::~ApiServer() {
  stop();
}

storage::Status ApiServer::start() {
  impl_->services = std::make_unique<ApiServerServices>(impl_.get());
  impl_->forwarder = std::make_unique<LeaseForwarder>(impl_->node);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  impl_->ports.assign(impl_->options.listen_addresses.size(), 0);
  for (size_t i = 0; i < impl_->options.listen_addresses.size(); ++i) {
    builder.AddListeningPort(impl_->options.listen_addresses[i], grpc::InsecureServerCredentials(),
                             &impl_->ports[i]);
  }
  int max_recv = static_cast<int>(
      std::min<uint64_t>(impl_->options.max_request_bytes + kGrpcOverheadBytes, INT32_MAX));
  builder.SetMaxReceiveMessageSize(max_recv);
  builder.SetMaxSendMessageSize(INT32_MAX);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> observers;
  observers.push_back(std::make_unique<RpcObserverFactory>(&impl_->options));
  builder.experimental().SetInterceptorCreators(std::move(observers));
  builder.RegisterService(&impl_->services->kv);
  builder.RegisterService(&impl_->services->watch);
  builder.RegisterService(&impl_->services->lease);
  builder.RegisterService(&impl_->services->cluster);
  builder.RegisterService(&impl_->services->maintenance);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server) return storage::Status::io_error("gRPC server failed to start");
  for (size_t i = 0; i < impl_->ports.size(); ++i) {
    if (impl_->ports[i] == 0) {
      return storage::Status::io_error("cannot listen on " + impl_->options.listen_addresses[i]);
    }
  }
  if (auto* health = impl_->server->GetHealthCheckService()) {
    health->SetServingStatus(true);
  }
  impl_->hub->start(std::chrono::milliseconds(impl_->options.progress_notify_ms));
  return storage::Status::ok();
}

void ApiServer::stop() {
  impl_->hub->stop();
  if (impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    impl_->server->Wait();
    impl_->server.reset();
  }
  impl_->forwarder.reset();
}

std::vector<int> ApiServer::bound_ports() const {
  return impl_->ports;
}

}  // namespace chorus::server
