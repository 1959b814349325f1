// Watch: one bidirectional stream per client, its watchers served by the WatchHub.
#include "server/api_internal.h"

namespace chorus::server {
namespace {

class WatchStream final : public grpc::ServerBidiReactor<pb::WatchRequest, pb::WatchResponse>,
                          public WatchSink {
 public:
  // Responses waiting beyond this many bytes of events (kv::event_bytes) mean the client does
  // not keep up; the stream is ended so it reconnects and resumes from its last revision,
  // instead of the server holding an unbounded backlog.
  static constexpr size_t kMaxQueuedBytes = 64 << 20;

  WatchStream(ApiServer::Impl* s, grpc::CallbackServerContext* ctx) : s_(s), ctx_(ctx) {
    StartRead(&req_);
  }

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
    // A watcher on keys the caller may not read is refused as etcd refuses it: created and
    // canceled at once, with the gRPC error's text as the reason.
    Caller who;
    grpc::Status allowed = s_->caller(ctx_, &who);
    if (allowed.ok()) allowed = s_->permit(who, spec.key, spec.range_end, kv::PermType::kRead);
    if (!allowed.ok()) {
      error =
          "rpc error: code = PermissionDenied desc = " + std::string(kv::errors::kPermissionDenied);
    }
    if (!error.empty() || !s_->hub->add(this, spec, &error)) {
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
  grpc::CallbackServerContext* ctx_;
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
      grpc::CallbackServerContext* ctx) override {
    return new WatchStream(s_, ctx);
  }

 private:
  ApiServer::Impl* s_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_watch_service(ApiServer::Impl* s) {
  return std::make_unique<WatchService>(s);
}

}  // namespace chorus::server
