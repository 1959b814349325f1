// Auth: etcd's Auth service (users, roles, permissions, logins with simple tokens) and the
// checks the other services make of each call. The users and roles are replicated state
// (kv/auth.h); the tokens are this member's (auth_tokens.h), registered on every member as the
// logins are applied. Passwords are hashed here, on the member that took the request, off
// gRPC's threads (AuthWorker): clear text never reaches the log or the log file.

#include "base/thread_name.h"
#include "server/api_internal.h"
#include "server/jwt.h"
#include "server/password.h"

namespace chorus::server {
namespace {

grpc::Status api_status(const kv::ApiError& e) {
  return to_grpc(from_api_error(e));
}

grpc::Status api_status(kv::Code code, const char* message) {
  return api_status(kv::ApiError{code, message});
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

kv::PermType to_perm_type(authpb::Permission::Type t) {
  switch (t) {
    case authpb::Permission::WRITE:
      return kv::PermType::kWrite;
    case authpb::Permission::READWRITE:
      return kv::PermType::kReadWrite;
    default:
      return kv::PermType::kRead;
  }
}

authpb::Permission::Type from_perm_type(kv::PermType t) {
  switch (t) {
    case kv::PermType::kWrite:
      return authpb::Permission::WRITE;
    case kv::PermType::kReadWrite:
      return authpb::Permission::READWRITE;
    case kv::PermType::kRead:
      break;
  }
  return authpb::Permission::READ;
}

}  // namespace

AuthWorker::AuthWorker() {
  thread_ = std::thread([this] {
    base::set_thread_name("chorus-auth");
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [this] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, and nothing left to answer
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  });
}

AuthWorker::~AuthWorker() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool AuthWorker::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_ || jobs_.size() >= kMaxQueued) return false;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

grpc::Status ApiServer::Impl::caller(const grpc::ServerContextBase* ctx, Caller* out) {
  kv::MvccStore::AuthSummary sum = node->store().auth_summary();
  out->enabled = sum.enabled;
  out->revision = sum.revision;
  if (!sum.enabled) return grpc::Status::OK;
  out->state = node->store().auth_state();
  out->enabled = out->state->enabled;
  out->revision = out->state->revision;
  if (!out->enabled) return grpc::Status::OK;
  const auto& md = ctx->client_metadata();
  auto it = md.find(kTokenMetadata);
  if (it == md.end()) it = md.find("authorization");
  if (it != md.end()) {
    std::string token(it->second.data(), it->second.size());
    if (options.jwt) {
      // A signed token carries the auth revision of its login: after any change since, the
      // checks answer "revision of auth store is old" and clients log in again. The checks run
      // against this member's state, so the command carries this member's revision, not the
      // token's (which may be newer than what this member has applied).
      uint64_t token_revision = 0;
      if (!options.jwt->verify(token, unix_now(), &out->user, &token_revision))
        return api_status(kv::Code::kUnauthenticated, kv::errors::kInvalidAuthToken);
      if (token_revision < out->revision)
        return api_status(kv::Code::kInvalidArgument, kv::errors::kAuthOldRevision);
      return grpc::Status::OK;
    }
    std::optional<std::string> user = tokens->user(token, AuthClock::now());
    if (!user) return api_status(kv::Code::kUnauthenticated, kv::errors::kInvalidAuthToken);
    out->user = std::move(*user);
    return grpc::Status::OK;
  }
  // With client-cert auth, the verified certificate's common name is the user (as in etcd):
  // the client port recorded it for the connection, or named it on a gateway call.
  if (options.tls.client_cert_auth) {
    auto g = md.find(ClientIdentities::kGatewayUserKey);
    if (g != md.end()) {
      std::optional<std::string> user =
          identities.gateway_user(std::string_view(g->second.data(), g->second.size()));
      if (user) out->user = std::move(*user);
    } else {
      out->user = identities.user_of_peer(ctx->peer());
    }
  }
  return grpc::Status::OK;
}

grpc::Status ApiServer::Impl::permit(const Caller& c, const std::string& key,
                                     const std::string& range_end, kv::PermType type) const {
  if (!c.enabled) return grpc::Status::OK;
  return api_status(kv::check_permission(*c.state, c.user, c.revision, key, range_end, type));
}

grpc::Status ApiServer::Impl::permit_lease(const Caller& c, int64_t lease) const {
  if (!c.enabled || lease == 0) return grpc::Status::OK;
  for (const std::string& key : node->store().lease_keys(lease)) {
    grpc::Status st = permit(c, key, "", kv::PermType::kWrite);
    if (!st.ok()) return st;
  }
  return grpc::Status::OK;
}

grpc::Status ApiServer::Impl::permit_put(const Caller& c, const pb::PutRequest& q) const {
  if (!c.enabled) return grpc::Status::OK;
  grpc::Status st = permit(c, q.key(), "", kv::PermType::kWrite);
  // A lease whose keys this user could not write cannot be attached to more: the user could
  // not revoke it (etcd).
  if (st.ok()) st = permit_lease(c, q.lease());
  if (st.ok() && q.prev_kv()) st = permit(c, q.key(), "", kv::PermType::kRead);
  return st;
}

grpc::Status ApiServer::Impl::permit_delete(const Caller& c,
                                            const pb::DeleteRangeRequest& q) const {
  if (!c.enabled) return grpc::Status::OK;
  grpc::Status st = permit(c, q.key(), q.range_end(), kv::PermType::kWrite);
  if (st.ok() && q.prev_kv()) st = permit(c, q.key(), q.range_end(), kv::PermType::kRead);
  return st;
}

grpc::Status ApiServer::Impl::permit_txn(const Caller& c, const pb::TxnRequest& q) const {
  if (!c.enabled) return grpc::Status::OK;
  for (const pb::Compare& cmp : q.compare()) {
    grpc::Status st = permit(c, cmp.key(), cmp.range_end(), kv::PermType::kRead);
    if (!st.ok()) return st;
  }
  // Both branches, whichever runs (etcd).
  for (const auto* ops : {&q.success(), &q.failure()}) {
    for (const pb::RequestOp& op : *ops) {
      grpc::Status st;
      if (op.has_request_range()) {
        st = permit(c, op.request_range().key(), op.request_range().range_end(),
                    kv::PermType::kRead);
      } else if (op.has_request_put()) {
        st = permit_put(c, op.request_put());
      } else if (op.has_request_delete_range()) {
        st = permit_delete(c, op.request_delete_range());
      } else if (op.has_request_txn()) {
        st = permit_txn(c, op.request_txn());
      }
      if (!st.ok()) return st;
    }
  }
  return grpc::Status::OK;
}

grpc::Status ApiServer::Impl::admin(const Caller& c) const {
  if (!c.enabled) return grpc::Status::OK;
  return api_status(kv::check_admin(*c.state, c.user));
}

grpc::Status ApiServer::Impl::admin_caller(const grpc::ServerContextBase* ctx, Caller* who) {
  Caller local;
  Caller* c = who != nullptr ? who : &local;
  grpc::Status st = caller(ctx, c);
  return st.ok() ? admin(*c) : st;
}

grpc::Status ApiServer::Impl::authenticated(const Caller& c) const {
  if (!c.enabled || !c.user.empty()) return grpc::Status::OK;
  return api_status(kv::Code::kInvalidArgument, kv::errors::kUserEmpty);
}

namespace {

class AuthService final : public pb::Auth::CallbackService {
 public:
  explicit AuthService(ApiServer::Impl* s) : s_(s) {}

  grpc::ServerUnaryReactor* AuthEnable(grpc::CallbackServerContext* ctx,
                                       const pb::AuthEnableRequest*,
                                       pb::AuthEnableResponse* resp) override {
    return change(ctx, op(kv::AuthRequest::Kind::kEnable), resp->mutable_header());
  }

  grpc::ServerUnaryReactor* AuthDisable(grpc::CallbackServerContext* ctx,
                                        const pb::AuthDisableRequest*,
                                        pb::AuthDisableResponse* resp) override {
    return change(ctx, op(kv::AuthRequest::Kind::kDisable), resp->mutable_header());
  }

  // etcd 3.5's call: anyone may ask, answered at a linearizable point.
  grpc::ServerUnaryReactor* AuthStatus(grpc::CallbackServerContext* ctx,
                                       const pb::AuthStatusRequest*,
                                       pb::AuthStatusResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    s_->node->read_barrier([this, reactor, resp](const RpcError& e) {
      if (!e.ok()) return reactor->Finish(to_grpc(e));
      kv::MvccStore::AuthSummary sum = s_->node->store().auth_summary();
      resp->set_enabled(sum.enabled);
      resp->set_authrevision(sum.revision);
      s_->header(resp->mutable_header());
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* Authenticate(grpc::CallbackServerContext* ctx,
                                         const pb::AuthenticateRequest* req,
                                         pb::AuthenticateResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!s_->node->store().auth_summary().enabled) {
      reactor->Finish(api_status(kv::Code::kFailedPrecondition, kv::errors::kAuthNotEnabled));
      return reactor;
    }
    const std::string name = req->name();
    if (!s_->throttle.allowed(name, AuthClock::now())) {
      login(reactor, "throttled", api_status(kv::Code::kInvalidArgument, kv::errors::kAuthFailed));
      return reactor;
    }
    if (s_->options.jwt) {
      // Signed here, without the log: checked against this member's state once it has applied
      // everything committed before the call, and stamped with that state's revision.
      if (!s_->options.jwt->can_sign()) {
        reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                     "chorus: this member has no priv-key to sign tokens with"));
        return reactor;
      }
      s_->node->read_barrier(
          [this, reactor, name, password = req->password(), resp](const RpcError& e) {
            if (!e.ok()) return reactor->Finish(to_grpc(e));
            bool queued = s_->auth_worker->post([this, reactor, name, password, resp] {
              std::shared_ptr<const kv::AuthState> state = s_->node->store().auth_state();
              if (!password_ok(reactor, *state, name, password)) return;  // answered
              std::string token = s_->options.jwt->sign(name, state->revision, unix_now());
              if (token.empty()) {
                return reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL,
                                                    "chorus: the token could not be signed"));
              }
              resp->set_token(token);
              s_->header(resp->mutable_header());
              login(reactor, "ok", grpc::Status::OK);
            });
            if (!queued) reactor->Finish(too_busy());
          });
      return reactor;
    }
    bool queued = s_->auth_worker->post([this, reactor, name, password = req->password(), resp] {
      std::shared_ptr<const kv::AuthState> state = s_->node->store().auth_state();
      if (!password_ok(reactor, *state, name, password)) return;  // answered
      kv::AuthRequest q = op(kv::AuthRequest::Kind::kAuthenticate, name);
      q.token = make_simple_token();
      q.checked_revision = state->revision;
      kv::Command cmd;
      cmd.op = q;
      s_->node->propose(std::move(cmd), [this, reactor, resp, token = q.token](const RpcError& e,
                                                                               kv::Response&& r) {
        if (!e.ok()) return reactor->Finish(to_grpc(e));
        if (!r.error.ok()) return login(reactor, "refused", api_status(r.error));
        resp->set_token(token);
        s_->header(resp->mutable_header());
        login(reactor, "ok", grpc::Status::OK);
      });
    });
    if (!queued) reactor->Finish(too_busy());
    return reactor;
  }

  grpc::ServerUnaryReactor* UserAdd(grpc::CallbackServerContext* ctx,
                                    const pb::AuthUserAddRequest* req,
                                    pb::AuthUserAddResponse* resp) override {
    if (req->name().empty())
      return s_->refuse(ctx, api_status(kv::Code::kInvalidArgument, kv::errors::kUserEmpty));
    kv::AuthRequest q = op(kv::AuthRequest::Kind::kUserAdd, req->name());
    q.no_password = req->options().no_password();
    if (q.no_password) return change(ctx, std::move(q), resp->mutable_header());
    return change_with_password(ctx, std::move(q), req->password(), resp->mutable_header());
  }

  grpc::ServerUnaryReactor* UserChangePassword(grpc::CallbackServerContext* ctx,
                                               const pb::AuthUserChangePasswordRequest* req,
                                               pb::AuthUserChangePasswordResponse* resp) override {
    return change_with_password(ctx, op(kv::AuthRequest::Kind::kUserChangePassword, req->name()),
                                req->password(), resp->mutable_header());
  }

  grpc::ServerUnaryReactor* UserDelete(grpc::CallbackServerContext* ctx,
                                       const pb::AuthUserDeleteRequest* req,
                                       pb::AuthUserDeleteResponse* resp) override {
    return change(ctx, op(kv::AuthRequest::Kind::kUserDelete, req->name()), resp->mutable_header());
  }

  grpc::ServerUnaryReactor* UserGrantRole(grpc::CallbackServerContext* ctx,
                                          const pb::AuthUserGrantRoleRequest* req,
                                          pb::AuthUserGrantRoleResponse* resp) override {
    return change(ctx, op(kv::AuthRequest::Kind::kUserGrantRole, req->user(), req->role()),
                  resp->mutable_header());
  }

  grpc::ServerUnaryReactor* UserRevokeRole(grpc::CallbackServerContext* ctx,
                                           const pb::AuthUserRevokeRoleRequest* req,
                                           pb::AuthUserRevokeRoleResponse* resp) override {
    return change(ctx, op(kv::AuthRequest::Kind::kUserRevokeRole, req->name(), req->role()),
                  resp->mutable_header());
  }

  grpc::ServerUnaryReactor* RoleAdd(grpc::CallbackServerContext* ctx,
                                    const pb::AuthRoleAddRequest* req,
                                    pb::AuthRoleAddResponse* resp) override {
    return change(ctx, op(kv::AuthRequest::Kind::kRoleAdd, req->name()), resp->mutable_header());
  }

  grpc::ServerUnaryReactor* RoleDelete(grpc::CallbackServerContext* ctx,
                                       const pb::AuthRoleDeleteRequest* req,
                                       pb::AuthRoleDeleteResponse* resp) override {
    return change(ctx, op(kv::AuthRequest::Kind::kRoleDelete, req->role()), resp->mutable_header());
  }

  grpc::ServerUnaryReactor* RoleGrantPermission(
      grpc::CallbackServerContext* ctx, const pb::AuthRoleGrantPermissionRequest* req,
      pb::AuthRoleGrantPermissionResponse* resp) override {
    if (!req->has_perm()) {
      return s_->refuse(ctx, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                          "etcdserver: permission not given"));
    }
    kv::AuthRequest q = op(kv::AuthRequest::Kind::kRoleGrantPermission, req->name());
    q.perm = kv::Permission{to_perm_type(req->perm().permtype()), req->perm().key(),
                            req->perm().range_end()};
    return change(ctx, std::move(q), resp->mutable_header());
  }

  grpc::ServerUnaryReactor* RoleRevokePermission(
      grpc::CallbackServerContext* ctx, const pb::AuthRoleRevokePermissionRequest* req,
      pb::AuthRoleRevokePermissionResponse* resp) override {
    kv::AuthRequest q = op(kv::AuthRequest::Kind::kRoleRevokePermission, req->role());
    q.perm.key = req->key();
    q.perm.range_end = req->range_end();
    return change(ctx, std::move(q), resp->mutable_header());
  }

  grpc::ServerUnaryReactor* UserGet(grpc::CallbackServerContext* ctx,
                                    const pb::AuthUserGetRequest* req,
                                    pb::AuthUserGetResponse* resp) override {
    return read(ctx, [this, name = req->name(), resp](const kv::AuthState& st) {
      auto u = st.users.find(name);
      if (u == st.users.end())
        return api_status(kv::Code::kFailedPrecondition, kv::errors::kUserNotFound);
      for (const std::string& r : u->second.roles)
        resp->add_roles(r);
      s_->header(resp->mutable_header());
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* UserList(grpc::CallbackServerContext* ctx,
                                     const pb::AuthUserListRequest*,
                                     pb::AuthUserListResponse* resp) override {
    return read(ctx, [this, resp](const kv::AuthState& st) {
      for (const auto& [name, u] : st.users)
        resp->add_users(name);
      s_->header(resp->mutable_header());
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* RoleGet(grpc::CallbackServerContext* ctx,
                                    const pb::AuthRoleGetRequest* req,
                                    pb::AuthRoleGetResponse* resp) override {
    return read(ctx, [this, name = req->role(), resp](const kv::AuthState& st) {
      auto r = st.roles.find(name);
      if (r == st.roles.end())
        return api_status(kv::Code::kFailedPrecondition, kv::errors::kRoleNotFound);
      if (name == kv::kRootName) {
        // The root role may do anything: etcd shows it as read-write on every key.
        authpb::Permission* p = resp->add_perm();
        p->set_permtype(authpb::Permission::READWRITE);
        p->set_range_end(std::string(1, '\0'));
      } else {
        for (const kv::Permission& perm : r->second.perms) {
          authpb::Permission* p = resp->add_perm();
          p->set_permtype(from_perm_type(perm.type));
          p->set_key(perm.key);
          p->set_range_end(perm.range_end);
        }
      }
      s_->header(resp->mutable_header());
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* RoleList(grpc::CallbackServerContext* ctx,
                                     const pb::AuthRoleListRequest*,
                                     pb::AuthRoleListResponse* resp) override {
    return read(ctx, [this, resp](const kv::AuthState& st) {
      for (const auto& [name, r] : st.roles)
        resp->add_roles(name);
      s_->header(resp->mutable_header());
      return grpc::Status::OK;
    });
  }

 private:
  static kv::AuthRequest op(kv::AuthRequest::Kind kind, std::string name = "",
                            std::string role = "") {
    kv::AuthRequest q;
    q.kind = kind;
    q.name = std::move(name);
    q.role = std::move(role);
    return q;
  }

  static grpc::Status too_busy() {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, rpc_errors::kTooManyRequests);
  }

  // Checks a login's password (on the auth thread). A failure is answered and counted here.
  bool password_ok(grpc::ServerUnaryReactor* reactor, const kv::AuthState& state,
                   const std::string& name, const std::string& password) {
    auto user = state.users.find(name);
    bool known = user != state.users.end() && !user->second.no_password;
    // An unknown user is checked against a stand-in hash: the same time as a wrong password.
    bool ok = check_password(password, known ? user->second.password_hash : "",
                             s_->options.bcrypt_cost) &&
              known;
    if (!ok) {
      s_->throttle.failed(name, AuthClock::now());
      login(reactor, "refused", api_status(kv::Code::kInvalidArgument, kv::errors::kAuthFailed));
      return false;
    }
    s_->throttle.succeeded(name);
    return true;
  }

  void login(grpc::ServerUnaryReactor* reactor, std::string_view outcome, const grpc::Status& st) {
    if (s_->options.on_login) s_->options.on_login(outcome);
    reactor->Finish(st);
  }

  // Every change but a login: the root role, unless auth is off (etcd's AuthEnable needs
  // nothing more while auth is off).
  grpc::ServerUnaryReactor* change(grpc::CallbackServerContext* ctx, kv::AuthRequest q,
                                   pb::ResponseHeader* header) {
    Caller who;
    if (grpc::Status st = s_->admin_caller(ctx, &who); !st.ok()) return s_->refuse(ctx, st);
    kv::Command cmd;
    cmd.op = std::move(q);
    return s_->propose(ctx, who, std::move(cmd), [this, header](kv::Response& r) {
      if (!std::holds_alternative<kv::AuthResponse>(r.op)) return mismatch();
      s_->header(header);
      return grpc::Status::OK;
    });
  }

  // A change that carries a password: hashed on the auth thread, then proposed.
  grpc::ServerUnaryReactor* change_with_password(grpc::CallbackServerContext* ctx,
                                                 kv::AuthRequest q, std::string password,
                                                 pb::ResponseHeader* header) {
    Caller who;
    if (grpc::Status st = s_->admin_caller(ctx, &who); !st.ok()) return s_->refuse(ctx, st);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    bool queued = s_->auth_worker->post(
        [this, reactor, q = std::move(q), password = std::move(password), who, header]() mutable {
          q.password_hash = hash_password(password, s_->options.bcrypt_cost);
          if (q.password_hash.empty()) {
            reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL,
                                         "chorus: the password could not be hashed"));
            return;
          }
          kv::Command cmd;
          cmd.auth_revision = who.revision;
          cmd.op = std::move(q);
          s_->node->propose(std::move(cmd),
                            [this, reactor, header](const RpcError& e, kv::Response&& r) {
                              if (!e.ok()) return reactor->Finish(to_grpc(e));
                              if (!r.error.ok()) return reactor->Finish(api_status(r.error));
                              s_->header(header);
                              reactor->Finish(grpc::Status::OK);
                            });
        });
    if (!queued) reactor->Finish(too_busy());
    return reactor;
  }

  // Reads of users and roles: the root role, at a linearizable point (etcd sends them through
  // its log).
  template <typename Fill>
  grpc::ServerUnaryReactor* read(grpc::CallbackServerContext* ctx, Fill fill) {
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    s_->node->read_barrier([this, reactor, fill](const RpcError& e) mutable {
      if (!e.ok()) return reactor->Finish(to_grpc(e));
      reactor->Finish(fill(*s_->node->store().auth_state()));
    });
    return reactor;
  }

  ApiServer::Impl* s_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_auth_service(ApiServer::Impl* s) {
  return std::make_unique<AuthService>(s);
}

}  // namespace chorus::server
