// Maintenance: status, alarms, hashes, defragment, snapshot, leadership moves.
#include "server/api_internal.h"
#include "server/snapshot_file.h"

#include <openssl/evp.h>

namespace chorus::server {
namespace {

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
    // Raising or clearing an alarm stops or restarts the cluster's writes: the root role.
    if (req->action() != pb::AlarmRequest_AlarmAction_GET) {
      if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
    }
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
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
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
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
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
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
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
    if (grpc::Status st = s_->admin_caller(ctx); !st.ok()) return s_->refuse(ctx, st);
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

  grpc::ServerWriteReactor<pb::SnapshotResponse>* Snapshot(grpc::CallbackServerContext* ctx,
                                                           const pb::SnapshotRequest*) override {
    // The whole store, users' password hashes included: the root role only, or a member that
    // shows the ticket this member's snapshot message gave it (over the peer connection).
    grpc::Status st = s_->admin_caller(ctx);
    if (!st.ok()) {
      auto ticket = ctx->client_metadata().find(kFetchTicketMetadata);
      if (ticket != ctx->client_metadata().end() &&
          s_->node->fetch_ticket_valid(std::string(ticket->second.data(), ticket->second.size())))
        st = grpc::Status::OK;
    }
    if (!st.ok()) return new Refused(st);
    return new SnapshotStream(s_);
  }

 private:
  class Refused final : public grpc::ServerWriteReactor<pb::SnapshotResponse> {
   public:
    explicit Refused(const grpc::Status& st) { Finish(st); }
    void OnDone() override { delete this; }
  };

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

std::unique_ptr<grpc::Service> make_maintenance_service(ApiServer::Impl* s) {
  return std::make_unique<MaintenanceService>(s);
}

}  // namespace chorus::server
