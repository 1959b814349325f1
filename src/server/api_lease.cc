// Lease: grant, revoke, keep-alive (forwarded to the leader from a follower), time to live,
// list.
#include <random>

#include "base/thread_name.h"
#include "server/api_internal.h"

namespace chorus::server {
namespace {

class LeaseService final : public pb::Lease::CallbackService {
 public:
  explicit LeaseService(ApiServer::Impl* s) : s_(s) {}

  grpc::ServerUnaryReactor* LeaseGrant(grpc::CallbackServerContext* ctx,
                                       const pb::LeaseGrantRequest* req,
                                       pb::LeaseGrantResponse* resp) override {
    if (s_->corrupt()) return s_->refuse(ctx, s_->corrupt_error());
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
    Caller who;
    grpc::Status allowed = s_->caller(ctx, &who);
    if (allowed.ok()) allowed = s_->authenticated(who);
    if (!allowed.ok()) return s_->refuse(ctx, allowed);
    kv::Command cmd;
    cmd.op = kv::LeaseGrantRequest{id, req->ttl()};
    return s_->propose(ctx, who, std::move(cmd), [this, resp](kv::Response& r) {
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
    if (s_->corrupt()) return s_->refuse(ctx, s_->corrupt_error());
    // Revoking deletes the lease's keys: the caller must be able to write each (etcd).
    Caller who;
    grpc::Status allowed = s_->caller(ctx, &who);
    if (allowed.ok()) allowed = s_->authenticated(who);
    if (allowed.ok()) allowed = s_->permit_lease(who, req->id());
    if (!allowed.ok()) return s_->refuse(ctx, allowed);
    kv::Command cmd;
    cmd.op = kv::LeaseRevokeRequest{req->id()};
    return s_->propose(ctx, who, std::move(cmd), [this, resp](kv::Response& r) {
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
    // The attached keys are shown only to a caller who may read each of them.
    Caller who;
    grpc::Status allowed = s_->caller(ctx, &who);
    if (allowed.ok()) allowed = s_->authenticated(who);
    if (allowed.ok() && req->keys() && who.enabled) {
      for (const std::string& key : s_->node->store().lease_keys(req->id())) {
        allowed = s_->permit(who, key, "", kv::PermType::kRead);
        if (!allowed.ok()) break;
      }
    }
    if (!allowed.ok()) return s_->refuse(ctx, allowed);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!s_->node->is_leader() && s_->node->store().lease_exists(req->id()) &&
        !s_->leader_url().empty()) {
      // The time left is the leader's to tell: only its clock runs the lease.
      s_->forward_to_leader(
          ctx, reactor, *req, resp,
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
    Caller who;
    grpc::Status allowed = s_->caller(ctx, &who);
    if (allowed.ok()) allowed = s_->authenticated(who);
    if (!allowed.ok()) return s_->refuse(ctx, allowed);
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
      bool clear_checkpoint = false;
      int64_t ttl = s_->node->lease_renew(req_.id(), &clear_checkpoint);
      if (clear_checkpoint) {
        // As etcd: the lease's checkpoint goes before the answer, so a leader elected after
        // it cannot end the renewed lease by the time left before this keep-alive.
        s_->node->lease_clear_checkpoint(req_.id(), [this, ttl](const RpcError& e) {
          if (!e.ok()) return Finish(to_grpc(e));
          reply(ttl);
        });
        return;
      }
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

}  // namespace

LeaseForwarder::LeaseForwarder(Node* node, const ClientTls* tls)
    : node_(node), tls_(tls), thread_([this] {
        base::set_thread_name("chorus-leases");
        run();
      }) {}

LeaseForwarder::~LeaseForwarder() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void LeaseForwarder::renew(int64_t id, Done done) {
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

void LeaseForwarder::run() {
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

bool LeaseForwarder::forward(int64_t id, int64_t* ttl) {
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

bool LeaseForwarder::open() {
  raft::NodeId leader = node_->status().leader;
  if (leader == 0 || leader == node_->id()) {
    close();
    return false;
  }
  if (stream_ && leader == leader_ && Clock::now() - opened_ < kStreamLifetime) return true;
  close();
  std::string url = leader_client_url(*node_);
  if (url.empty()) return false;
  std::string error;
  auto channel = member_channel(url, *tls_, &error);
  if (!channel) return false;
  stub_ = pb::Lease::NewStub(channel);
  ctx_ = std::make_unique<grpc::ClientContext>();
  ctx_->set_deadline(std::chrono::system_clock::now() + kStreamLifetime + std::chrono::seconds(2));
  stream_ = stub_->LeaseKeepAlive(ctx_.get());
  leader_ = leader;
  opened_ = Clock::now();
  return stream_ != nullptr;
}

void LeaseForwarder::close() {
  if (stream_) {
    ctx_->TryCancel();
    (void)stream_->Finish();
  }
  stream_.reset();
  ctx_.reset();
  stub_.reset();
  leader_ = 0;
}

std::unique_ptr<grpc::Service> make_lease_service(ApiServer::Impl* s) {
  return std::make_unique<LeaseService>(s);
}

}  // namespace chorus::server
