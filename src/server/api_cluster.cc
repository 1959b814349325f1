// Cluster: member list, add, remove, update and promote.
#include "server/api_internal.h"
#include "server/config.h"

namespace chorus::server {
namespace {

uint64_t wall_clock_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// Membership changes take the root role while auth is on (etcd); listing does not.
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
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
    std::vector<Url> urls;
    std::vector<std::string> texts;
    for (const std::string& text : req->peerurls()) {
      Url u;
      std::string error;
      if (parse_peer_url(text, &u, &error) && u.scheme != s_->options.peer_scheme) {
        error = "this cluster's peer URLs are " + s_->options.peer_scheme;
      }
      if (!error.empty()) {
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
    if (!req->islearner()) {
      if (grpc::Status st = may_add_voter(); !st.ok()) return s_->refuse(ctx, st);
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
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
    if (!is_member(req->id())) return not_found(ctx);
    if (grpc::Status st = may_remove(req->id()); !st.ok()) return s_->refuse(ctx, st);
    raft::ConfChange cc;
    cc.changes.push_back({raft::ConfChangeType::kRemoveNode, req->id()});
    return change(ctx, cc, false, resp->mutable_members(), resp->mutable_header());
  }

  // etcd's --strict-reconfig-check, as etcd judges it: a member has started once it published
  // its name; this member counts itself reachable and asks the transport about the others.
  bool reachable(uint64_t id) const {
    return id == s_->node->id() || (s_->options.peer_connected && s_->options.peer_connected(id));
  }

  // Adding a voter: a quorum of the grown cluster has started (a second member may join one
  // alone), and every voter is reachable, or the newcomer's catching up could stall commits.
  grpc::Status may_add_voter() const {
    if (!s_->options.strict_reconfig_check) return grpc::Status::OK;
    size_t voters = 1, started = 0;  // the newcomer has not started
    bool all_reachable = true;
    for (const MemberInfo& m : s_->node->members()) {
      if (m.is_learner) continue;
      ++voters;
      if (!m.name.empty()) ++started;
      if (!reachable(m.id)) all_reachable = false;
    }
    if (!(started == 1 && voters == 2) && started < voters / 2 + 1) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, rpc_errors::kNotEnoughStarted);
    }
    if (!all_reachable) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, rpc_errors::kUnhealthy);
    }
    return grpc::Status::OK;
  }

  // Promoting a learner: counted as a voter already, a quorum has started (etcd's
  // IsReadyToPromoteMember).
  grpc::Status may_promote(uint64_t id) const {
    if (!s_->options.strict_reconfig_check) return grpc::Status::OK;
    size_t voters = 0, started = 0;
    for (const MemberInfo& m : s_->node->members()) {
      if (m.is_learner && m.id != id) continue;
      ++voters;
      if (!m.name.empty()) ++started;
    }
    if (!(started == 1 && voters == 2) && started < voters / 2 + 1) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, rpc_errors::kNotEnoughStarted);
    }
    return grpc::Status::OK;
  }

  // Removing a voter: the rest keep a started quorum, and, unless the member is unreachable
  // anyway, enough reachable members remain for one.
  grpc::Status may_remove(uint64_t id) const {
    if (!s_->options.strict_reconfig_check) return grpc::Status::OK;
    std::vector<MemberInfo> members = s_->node->members();
    size_t voters = 0, rest = 0, rest_started = 0, active = 0;
    for (const MemberInfo& m : members) {
      if (m.id == id && m.is_learner) return grpc::Status::OK;
      if (m.is_learner) continue;
      ++voters;
      if (reachable(m.id)) ++active;
      if (m.id == id) continue;
      ++rest;
      if (!m.name.empty()) ++rest_started;
    }
    if (rest_started < rest / 2 + 1) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, rpc_errors::kNotEnoughStarted);
    }
    if (!reachable(id)) return grpc::Status::OK;
    if (active - 1 < 1 + (voters - 1) / 2) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, rpc_errors::kUnhealthy);
    }
    return grpc::Status::OK;
  }

  grpc::ServerUnaryReactor* MemberPromote(grpc::CallbackServerContext* ctx,
                                          const pb::MemberPromoteRequest* req,
                                          pb::MemberPromoteResponse* resp) override {
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
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
    if (grpc::Status st = may_promote(req->id()); !st.ok()) return s_->refuse(ctx, st);
    if (!s_->node->is_leader()) {
      // Only the leader knows whether the learner has caught up.
      grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
      s_->forward_to_leader(ctx, reactor, *req, resp,
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
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
    if (!is_member(req->id())) return not_found(ctx);
    MemberPeerUrls u;
    u.id = req->id();
    for (const std::string& text : req->peerurls()) {
      Url url;
      std::string error;
      if (parse_peer_url(text, &url, &error) && url.scheme != s_->options.peer_scheme) {
        error = "this cluster's peer URLs are " + s_->options.peer_scheme;
      }
      if (!error.empty()) {
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

}  // namespace

std::unique_ptr<grpc::Service> make_cluster_service(ApiServer::Impl* s) {
  return std::make_unique<ClusterService>(s);
}

}  // namespace chorus::server
