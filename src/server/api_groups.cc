// Groups: Chorus's own API for data groups (chorus/groups.proto): Put, Get, Delete, List.
#include "chorus/groups.grpc.pb.h"
#include "server/api_internal.h"

namespace chorus::server {
namespace {

namespace gpb = chorus::groups::v1;

grpc::Status bad_group(uint64_t group) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      "chorus: group " + std::to_string(group) +
                          " is not a data group (data groups are numbered from 2)");
}

// Data groups are Chorus's own API, beyond etcd's permissions: while auth is on, every call
// takes the root role.
class GroupsService final : public gpb::Groups::CallbackService {
 public:
  explicit GroupsService(ApiServer::Impl* s) : s_(s) {}

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const gpb::PutRequest* req,
                                gpb::PutResponse*) override {
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
    return write(ctx, req->group(), kv::GroupOp{kv::GroupOp::Kind::kPut, req->key(), req->value()});
  }

  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* ctx, const gpb::DeleteRequest* req,
                                   gpb::DeleteResponse*) override {
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
    return write(ctx, req->group(), kv::GroupOp{kv::GroupOp::Kind::kDelete, req->key(), ""});
  }

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx, const gpb::GetRequest* req,
                                gpb::GetResponse* resp) override {
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
    if (req->group() < 2) return s_->refuse(ctx, bad_group(req->group()));
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Node* node = s_->node;
    uint64_t group = req->group();
    auto run = [node, group, reactor, req, resp](const RpcError& e) {
      if (!e.ok()) return reactor->Finish(to_grpc(e));
      std::string value;
      storage::Status st = node->group_get(group, req->key(), &value);
      if (st.code() == storage::Status::Code::kNotFound) {
        resp->set_found(false);
      } else if (!st.is_ok()) {
        return reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, st.to_string()));
      } else {
        resp->set_found(true);
        resp->set_value(std::move(value));
      }
      reactor->Finish(grpc::Status::OK);
    };
    if (!node->hosts_group(group)) {
      run(rpc_error(RpcCode::kNotFound, Node::not_hosted(group)));
    } else if (req->serializable()) {
      run(RpcError{});
    } else {
      node->group_read_barrier(group, std::move(run));
    }
    return reactor;
  }

  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* ctx, const gpb::ListRequest*,
                                 gpb::ListResponse* resp) override {
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    resp->set_member(s_->node->id());
    s_->node->group_infos([reactor, resp](const RpcError& e, std::vector<GroupInfo>&& infos) {
      if (!e.ok()) return reactor->Finish(to_grpc(e));
      for (const GroupInfo& g : infos) {
        gpb::GroupStatus* out = resp->add_groups();
        out->set_id(g.id);
        out->set_leader(g.leader);
        out->set_term(g.term);
        out->set_commit(g.commit);
        out->set_applied(g.applied);
        out->set_quiesced(g.quiesced);
        for (raft::NodeId v : g.voters)
          out->add_voters(v);
      }
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* CreateGroup(grpc::CallbackServerContext* ctx,
                                        const gpb::CreateGroupRequest* req,
                                        gpb::CreateGroupResponse* resp) override {
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    std::vector<raft::NodeId> replicas(req->replicas().begin(), req->replicas().end());
    s_->node->create_group(req->group(), std::move(replicas), answer(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* DeleteGroup(grpc::CallbackServerContext* ctx,
                                        const gpb::DeleteGroupRequest* req,
                                        gpb::DeleteGroupResponse* resp) override {
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    s_->node->delete_group(req->group(), answer(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* AddReplica(grpc::CallbackServerContext* ctx,
                                       const gpb::ReplicaRequest* req,
                                       gpb::ReplicaResponse* resp) override {
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    s_->node->add_group_replica(req->group(), req->member(), answer(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* RemoveReplica(grpc::CallbackServerContext* ctx,
                                          const gpb::ReplicaRequest* req,
                                          gpb::ReplicaResponse* resp) override {
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    s_->node->remove_group_replica(req->group(), req->member(), answer(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* Directory(grpc::CallbackServerContext* ctx,
                                      const gpb::DirectoryRequest*,
                                      gpb::DirectoryResponse* resp) override {
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
    for (const GroupDescriptor& g : s_->node->group_directory())
      fill(g, resp->add_groups());
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  // The answer to a directory change, with the group as it now stands.
  template <typename Response>
  static Node::GroupChangeDone answer(grpc::ServerUnaryReactor* reactor, Response* resp) {
    return [reactor, resp](const RpcError& e, const GroupDescriptor& g) {
      if (e.ok()) fill(g, resp->mutable_group());
      reactor->Finish(to_grpc(e));
    };
  }

  static void fill(const GroupDescriptor& g, gpb::GroupDescriptor* out) {
    out->set_id(g.id);
    for (uint64_t r : g.replicas)
      out->add_replicas(r);
  }

  grpc::ServerUnaryReactor* write(grpc::CallbackServerContext* ctx, uint64_t group,
                                  const kv::GroupOp& op) {
    if (group < 2) return s_->refuse(ctx, bad_group(group));
    if (op.key.empty()) {
      return s_->refuse(
          ctx, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "chorus: key is not provided"));
    }
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    s_->node->group_propose(group, op,
                            [reactor](const RpcError& e) { reactor->Finish(to_grpc(e)); });
    return reactor;
  }

  ApiServer::Impl* s_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_groups_service(ApiServer::Impl* s) {
  return std::make_unique<GroupsService>(s);
}

}  // namespace chorus::server
