// The etcd v3 gRPC API inside: what the services share (the server's state, forwarding to the
// leader, proposing and answering) and one factory per service. Only the chorus_api sources
// include this; gRPC and the generated code stay out of every other header.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "server/api_server.h"
#include "server/auth_tokens.h"
#include "server/client_identity.h"
#include "server/convert.h"
#include "server/gateway.h"
#include "server/node.h"
#include "server/watch_hub.h"

namespace chorus::server {

using Clock = std::chrono::steady_clock;

// The call metadata etcd's clients put their auth token in.
inline constexpr const char* kTokenMetadata = "token";
// A member fetching a snapshot shows the ticket the sender's snapshot message carried.
inline constexpr const char* kFetchTicketMetadata = "chorus-fetch-ticket";

// The state machine answered a request with a response of another kind: a bug, reported to
// the client rather than crashing the member.
grpc::Status mismatch();
grpc::Status to_grpc(const RpcError& e);
// gRPC's target for a client URL: "http://host:port" -> "host:port".
std::string grpc_target(const std::string& url);
// The leader's first client URL, or empty when no other member leads.
std::string leader_client_url(const Node& node);
// A channel to another member's client URL: TLS for https, plain text for http; null, with
// *error, when the TLS files cannot be read.
std::shared_ptr<grpc::Channel> member_channel(const std::string& url, const ClientTls& tls,
                                              std::string* error);

// Keep-alives reaching a follower go to the leader, whose clock alone decides expiry (as etcd
// forwards them). One thread keeps one stream to the current leader's client URL and passes
// requests over it one at a time; answers come back in order (api_lease.cc).
class LeaseForwarder {
 public:
  using Done = std::function<void(bool ok, int64_t ttl)>;

  LeaseForwarder(Node* node, const ClientTls* tls);
  ~LeaseForwarder();
  LeaseForwarder(const LeaseForwarder&) = delete;
  LeaseForwarder& operator=(const LeaseForwarder&) = delete;

  void renew(int64_t id, Done done);

 private:
  static constexpr size_t kMaxQueued = 10000;
  // Streams are replaced after this long, so a leader that vanished without closing its
  // connection costs at most one deadline.
  static constexpr auto kStreamLifetime = std::chrono::seconds(5);

  void run();
  bool forward(int64_t id, int64_t* ttl);
  bool open();
  void close();

  Node* node_;
  const ClientTls* tls_;
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

// Who makes a call, as auth sees it (api_auth.cc). With auth off, nobody need be named.
struct Caller {
  bool enabled = false;
  uint64_t revision = 1;  // the auth revision the call's checks ran at
  std::string user;       // from the call's token, or its client certificate; may be empty
  std::shared_ptr<const kv::AuthState> state;  // set when enabled
};

// One thread for the bcrypt work of logins and password changes (tens of milliseconds each),
// so gRPC's threads never wait on it. Bounded: a full queue refuses the call.
class AuthWorker {
 public:
  AuthWorker();
  ~AuthWorker();
  AuthWorker(const AuthWorker&) = delete;
  AuthWorker& operator=(const AuthWorker&) = delete;
  bool post(std::function<void()> job);

 private:
  static constexpr size_t kMaxQueued = 1024;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::thread thread_;
};

struct ApiServer::Impl {
  Node* node;
  std::unique_ptr<WatchHub> hub;
  std::unique_ptr<LeaseForwarder> forwarder;
  std::vector<std::unique_ptr<grpc::Service>> services;
  ApiServerOptions options;
  std::unique_ptr<grpc::Server> server;
  // The plain-text client URLs: gRPC handed over, the JSON gateway served.
  // Who https clients are by their certificates (client_identity.h): filled by client_port.
  ClientIdentities identities;
  std::unique_ptr<ClientPort> client_port;
  std::vector<int> ports;
  std::unique_ptr<TokenTable> tokens;
  LoginThrottle throttle;
  std::unique_ptr<AuthWorker> auth_worker;

  // Auth (api_auth.cc). caller() names who makes the call: an unknown or expired token is
  // etcd's "invalid auth token". The checks answer OK with auth off.
  grpc::Status caller(const grpc::ServerContextBase* ctx, Caller* out);
  grpc::Status permit(const Caller& c, const std::string& key, const std::string& range_end,
                      kv::PermType type) const;
  grpc::Status permit_put(const Caller& c, const pb::PutRequest& q) const;
  grpc::Status permit_delete(const Caller& c, const pb::DeleteRangeRequest& q) const;
  grpc::Status permit_txn(const Caller& c, const pb::TxnRequest& q) const;
  // Writes to every key attached to `lease` (a revoke, or a put attaching more).
  grpc::Status permit_lease(const Caller& c, int64_t lease) const;
  grpc::Status admin(const Caller& c) const;
  // caller() then admin(): for the calls only the root role makes. *who, if given, is filled.
  grpc::Status admin_caller(const grpc::ServerContextBase* ctx, Caller* who = nullptr);
  // Any named user (or auth off).
  grpc::Status authenticated(const Caller& c) const;

  void header(pb::ResponseHeader* h, int64_t revision = 0) const {
    h->set_cluster_id(node->cluster_id());
    h->set_member_id(node->id());
    h->set_revision(revision != 0 ? revision : node->store().revision());
    h->set_raft_term(node->status().term);
  }

  std::string leader_url() const { return leader_client_url(*node); }

  // Passes a unary call on to the leader (etcd forwards what only the leader can answer) and
  // finishes `reactor` with its answer. `call` starts the client call on a stub.
  // The caller's token goes along: the leader knows every token (logins are in the log).
  template <typename Request, typename Response, typename Start>
  void forward_to_leader(const grpc::ServerContextBase* from, grpc::ServerUnaryReactor* reactor,
                         const Request& req, Response* resp, Start start) {
    std::string url = leader_url();
    if (url.empty()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, rpc_errors::kNoLeader));
      return;
    }
    struct Call {
      std::shared_ptr<grpc::Channel> channel;
      grpc::ClientContext ctx;
      Request req;
      Response resp;
    };
    std::string error;
    std::shared_ptr<grpc::Channel> channel = member_channel(url, options.tls, &error);
    if (!channel) {
      reactor->Finish(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "chorus: cannot reach the leader: " + error));
      return;
    }
    auto* call = new Call;
    call->channel = std::move(channel);
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    for (const char* key : {kTokenMetadata, "authorization"}) {
      auto token = from->client_metadata().find(key);
      if (token == from->client_metadata().end()) continue;
      std::string value(token->second.data(), token->second.size());
      if (valid_metadata_value(value)) call->ctx.AddMetadata(key, value);
    }
    call->req = req;
    start(call->channel, &call->ctx, &call->req, &call->resp,
          [call, reactor, resp](grpc::Status st) {
            if (st.ok()) *resp = std::move(call->resp);
            reactor->Finish(st);
            delete call;
          });
  }

  // etcd's CORRUPT alarm: reads, writes, compactions and lease grants and revokes are refused
  // on every member while it is raised.
  bool corrupt() const { return node->has_alarm(AlarmType::kCorrupt); }
  static grpc::Status corrupt_error() {
    return grpc::Status(grpc::StatusCode::DATA_LOSS, rpc_errors::kCorrupt);
  }

  grpc::ServerUnaryReactor* refuse(grpc::CallbackServerContext* ctx, const grpc::Status& st) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(st);
    return reactor;
  }

  // Proposes `cmd`, checked for `who` (refused when applied if the auth state changed since);
  // `fill` turns the state machine's response into the reply.
  template <typename Fill>
  grpc::ServerUnaryReactor* propose(grpc::CallbackServerContext* ctx, const Caller& who,
                                    kv::Command cmd, Fill fill) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    cmd.auth_revision = who.revision;
    node->propose(std::move(cmd), [reactor, fill](const RpcError& e, kv::Response&& r) mutable {
      if (!e.ok()) return reactor->Finish(to_grpc(e));
      if (!r.error.ok()) return reactor->Finish(to_grpc(from_api_error(r.error)));
      reactor->Finish(fill(r));
    });
    return reactor;
  }
};

// One per service, each in its own file.
std::unique_ptr<grpc::Service> make_kv_service(ApiServer::Impl* s);           // api_kv.cc
std::unique_ptr<grpc::Service> make_lease_service(ApiServer::Impl* s);        // api_lease.cc
std::unique_ptr<grpc::Service> make_watch_service(ApiServer::Impl* s);        // api_watch.cc
std::unique_ptr<grpc::Service> make_cluster_service(ApiServer::Impl* s);      // api_cluster.cc
std::unique_ptr<grpc::Service> make_maintenance_service(ApiServer::Impl* s);  // api_maintenance.cc
std::unique_ptr<grpc::Service> make_groups_service(ApiServer::Impl* s);       // api_groups.cc
std::unique_ptr<grpc::Service> make_auth_service(ApiServer::Impl* s);         // api_auth.cc

}  // namespace chorus::server
