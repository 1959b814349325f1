// KV: Range, Put, DeleteRange, Txn and Compact.
#include "server/api_internal.h"

namespace chorus::server {
namespace {

class KvService final : public pb::KV::CallbackService {
 public:
  explicit KvService(ApiServer::Impl* s) : s_(s) {}

  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx, const pb::RangeRequest* req,
                                  pb::RangeResponse* resp) override {
    if (s_->corrupt()) return s_->refuse(ctx, s_->corrupt_error());
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    // Permissions are checked after the read barrier, against auth state at least as new as
    // any change acknowledged before the read.
    auto run = [this, ctx, reactor, req, resp](const RpcError& e) {
      if (!e.ok()) return reactor->Finish(to_grpc(e));
      Caller who;
      grpc::Status allowed = s_->caller(ctx, &who);
      if (allowed.ok())
        allowed = s_->permit(who, req->key(), req->range_end(), kv::PermType::kRead);
      if (!allowed.ok()) return reactor->Finish(allowed);
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
    if (s_->corrupt()) return s_->refuse(ctx, s_->corrupt_error());
    if (s_->node->has_alarm(AlarmType::kNoSpace)) return s_->refuse(ctx, no_space());
    Caller who;
    grpc::Status allowed = s_->caller(ctx, &who);
    if (allowed.ok()) allowed = s_->permit_put(who, *req);
    if (!allowed.ok()) return s_->refuse(ctx, allowed);
    kv::Command cmd;
    cmd.op = to_kv(*req);
    return s_->propose(ctx, who, std::move(cmd), [this, resp](kv::Response& r) {
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
    if (s_->corrupt()) return s_->refuse(ctx, s_->corrupt_error());
    Caller who;
    grpc::Status allowed = s_->caller(ctx, &who);
    if (allowed.ok()) allowed = s_->permit_delete(who, *req);
    if (!allowed.ok()) return s_->refuse(ctx, allowed);
    kv::Command cmd;
    cmd.op = to_kv(*req);
    return s_->propose(ctx, who, std::move(cmd), [this, resp](kv::Response& r) {
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
    if (s_->corrupt()) return s_->refuse(ctx, s_->corrupt_error());
    if (has_put(*req) && s_->node->has_alarm(AlarmType::kNoSpace)) {
      return s_->refuse(ctx, no_space());
    }
    Caller who;
    grpc::Status allowed = s_->caller(ctx, &who);
    if (allowed.ok()) allowed = s_->permit_txn(who, *req);
    if (!allowed.ok()) return s_->refuse(ctx, allowed);
    kv::Command cmd;
    cmd.op = to_kv(*req);
    return s_->propose(ctx, who, std::move(cmd), [this, resp](kv::Response& r) {
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
    if (s_->corrupt()) return s_->refuse(ctx, s_->corrupt_error());
    // etcd lets any caller compact; here it takes a named user while auth is on.
    Caller who;
    grpc::Status allowed = s_->caller(ctx, &who);
    if (allowed.ok()) allowed = s_->authenticated(who);
    if (!allowed.ok()) return s_->refuse(ctx, allowed);
    kv::Command cmd;
    cmd.op = kv::CompactionRequest{req->revision()};
    return s_->propose(ctx, who, std::move(cmd), [this, resp](kv::Response& r) {
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

}  // namespace

std::unique_ptr<grpc::Service> make_kv_service(ApiServer::Impl* s) {
  return std::make_unique<KvService>(s);
}

}  // namespace chorus::server
