#include "server/watch_hub.h"

#include <algorithm>

#include "base/thread_name.h"

namespace chorus::server {

WatchHub::WatchHub(const kv::MvccStore* store)
    : store_(store), published_revision_(store->revision()) {}

WatchHub::~WatchHub() {
  stop();
}

void WatchHub::start(std::chrono::milliseconds progress_interval) {
  thread_ = std::thread([this, progress_interval] {
    base::set_thread_name("chorus-watch");
    run(progress_interval);
  });
}

void WatchHub::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WatchHub::run(std::chrono::milliseconds progress_interval) {
  auto next_progress = std::chrono::steady_clock::now() + progress_interval;
  while (true) {
    Step step = sync_step();
    if (std::chrono::steady_clock::now() >= next_progress) {
      notify_progress();
      next_progress = std::chrono::steady_clock::now() + progress_interval;
    }
    std::unique_lock<std::mutex> lk(mu_);
    if (stopping_) return;
    if (step == Step::kWorked) continue;
    // Blocked: the streams drain as their clients read, which the hub is not told of, so it
    // looks again shortly. Idle: add() wakes it.
    auto until = step == Step::kBlocked ? std::min(next_progress, std::chrono::steady_clock::now() +
                                                                      std::chrono::milliseconds(5))
                                        : next_progress;
    cv_.wait_until(lk, until,
                   [&] { return stopping_ || (step == Step::kIdle && !unsynced_.empty()); });
    if (stopping_) return;
  }
}

bool WatchHub::matches(const WatchSpec& s, const kv::Event& e) {
  if (e.type == kv::Event::Type::kPut ? s.no_put : s.no_delete) return false;
  const std::string& k = e.kv.key;
  if (s.range_end.empty()) return k == s.key;
  if (s.range_end == std::string(1, '\0')) return k >= s.key;
  return k >= s.key && k < s.range_end;
}

void WatchHub::append_events(int64_t id, const WatchSpec& spec,
                             const std::vector<kv::Event>& events, int64_t revision,
                             std::vector<WatchUpdate>* out) const {
  WatchUpdate* current = nullptr;
  for (const kv::Event& e : events) {
    // A watcher created for a future revision sees nothing before it.
    if (!matches(spec, e) || e.kv.mod_revision < spec.start_revision) continue;
    // Responses are cut only between revisions: clients resume after the last revision they
    // saw, so half a revision in one response would lose the other half on a reconnect.
    bool full = current != nullptr && current->events.size() >= kMaxEventsPerUpdate &&
                current->events.back().kv.mod_revision != e.kv.mod_revision;
    if (current == nullptr || full) {
      out->push_back(WatchUpdate{});
      current = &out->back();
      current->watch_id = id;
      current->revision = revision;
    }
    current->events.push_back(e);
    if (!spec.prev_kv) current->events.back().prev_kv.reset();
    current->bytes += kv::event_bytes(current->events.back());
  }
}

WatchUpdate WatchHub::cancellation_locked(int64_t id, int64_t compact_revision,
                                          std::string reason) const {
  WatchUpdate u;
  u.watch_id = id;
  u.revision = published_revision_;
  u.canceled = true;
  u.compact_revision = compact_revision;
  u.cancel_reason = std::move(reason);
  return u;
}

void WatchHub::publish(const std::vector<kv::Event>& in, int64_t revision) {
  std::lock_guard<std::mutex> lk(mu_);
  published_revision_ = revision;
  if (in.empty()) return;
  // The store reads a put's previous version only when a request asks for it; for a synced
  // watcher that wants prev_kv it is read here, once per event, from the store as the batch
  // left it (the apply thread calls publish() before it applies anything more).
  const std::vector<kv::Event>* feed = &in;
  std::vector<kv::Event> filled;
  if (std::any_of(in.begin(), in.end(), [](const kv::Event& e) { return e.prev_unread; }) &&
      synced_prev_kv_watcher_locked()) {
    filled = in;
    for (kv::Event& e : filled) {
      if (!e.prev_unread) continue;
      e.prev_kv = store_->version_before(e.kv.key, e.kv.mod_revision);
      e.prev_unread = false;
    }
    feed = &filled;
  }
  const std::vector<kv::Event>& events = *feed;
  for (auto& [sink, state] : sinks_) {
    std::vector<WatchUpdate> updates;
    for (const auto& [id, w] : state.watchers) {
      // An unsynced watcher gets these events from the store when its catch-up reaches them.
      if (w.next_rev == 0) append_events(id, w.spec, events, revision, &updates);
    }
    if (!updates.empty()) sink->deliver(std::move(updates));
  }
}

bool WatchHub::synced_prev_kv_watcher_locked() const {
  for (const auto& [sink, state] : sinks_)
    for (const auto& [id, w] : state.watchers)
      if (w.spec.prev_kv && w.next_rev == 0) return true;
  return false;
}

bool WatchHub::add(WatchSink* sink, WatchSpec spec, std::string* error) {
  std::lock_guard<std::mutex> lk(mu_);
  SinkState& state = sinks_[sink];
  int64_t id = spec.id;
  if (spec.auto_id) {
    while (state.watchers.count(state.next_id) != 0)
      ++state.next_id;
    id = state.next_id++;
  } else if (state.watchers.count(id) != 0) {
    *error = "etcdserver: mvcc: watcher ID already exists";  // etcd 3.4's text
    return false;
  }
  spec.id = id;
  std::vector<WatchUpdate> updates;
  WatchUpdate created;
  created.watch_id = id;
  created.revision = published_revision_;
  created.created = true;
  updates.push_back(std::move(created));

  // As etcd: the compacted revision itself can still be watched from (its versions are kept).
  int64_t compacted = store_->compact_revision();
  if (spec.start_revision > 0 && spec.start_revision < compacted) {
    updates.push_back(cancellation_locked(id, compacted, kv::errors::kCompacted));
    sink->deliver(std::move(updates));
    return true;
  }
  Watcher w;
  w.spec = spec;
  w.serial = next_serial_++;
  if (spec.start_revision > 0 && spec.start_revision <= published_revision_) {
    w.next_rev = spec.start_revision;
    ++state.unsynced;
    unsynced_.push_back({sink, id, w.serial});
    cv_.notify_all();
  }
  state.watchers[id] = std::move(w);
  sink->deliver(std::move(updates));
  return true;
}

WatchHub::Watcher* WatchHub::find_unsynced_locked(const UnsyncedRef& ref, SinkState** state) {
  auto s = sinks_.find(ref.sink);
  if (s == sinks_.end()) return nullptr;
  auto w = s->second.watchers.find(ref.id);
  if (w == s->second.watchers.end() || w->second.serial != ref.serial || w->second.next_rev == 0)
    return nullptr;
  *state = &s->second;
  return &w->second;
}

void WatchHub::mark_synced_locked(WatchSink* sink, SinkState* state, Watcher* w) {
  if (w != nullptr) w->next_rev = 0;
  --state->unsynced;
  if (state->unsynced == 0 && state->progress_pending) {
    state->progress_pending = false;
    send_progress_locked(sink);
  }
}

void WatchHub::send_progress_locked(WatchSink* sink) const {
  WatchUpdate u;
  u.watch_id = -1;
  u.revision = published_revision_;
  std::vector<WatchUpdate> updates;
  updates.push_back(std::move(u));
  sink->deliver(std::move(updates));
}

WatchHub::Step WatchHub::sync_step() {
  UnsyncedRef ref{};
  int64_t from = 0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    bool found = false;
    for (size_t n = unsynced_.size(); n > 0 && !found; --n) {
      UnsyncedRef r = unsynced_.front();
      unsynced_.pop_front();
      SinkState* state = nullptr;
      Watcher* w = find_unsynced_locked(r, &state);
      if (w == nullptr) continue;  // cancelled, synced or reset: out of the rotation
      unsynced_.push_back(r);
      if (r.sink->backlog() > kMaxBacklogForHistory) continue;
      ref = r;
      from = w->next_rev;
      found = true;
    }
    if (!found) return unsynced_.empty() ? Step::kIdle : Step::kBlocked;
  }

  // Read without the hub's lock, so the apply thread's publish() never waits on history.
  // Everything up to `store_revision` is in the store, and it is at least the revision
  // published when `from` was taken.
  int64_t store_revision = store_->revision();
  std::vector<kv::Event> history;
  bool stopped_early = false;
  kv::ApiError err =
      store_->events(from, kMaxEventsPerUpdate, &history, kMaxBytesPerStep, &stopped_early);

  std::lock_guard<std::mutex> lk(mu_);
  SinkState* state = nullptr;
  Watcher* w = find_unsynced_locked(ref, &state);
  if (w == nullptr || w->next_rev != from) return Step::kWorked;  // changed meanwhile
  if (!err.ok()) {
    // Compacted while it caught up: cancelled with the compacted revision, as etcd does. The
    // cancellation goes first: a progress response it releases must not come before it.
    std::vector<WatchUpdate> updates;
    updates.push_back(cancellation_locked(ref.id, store_->compact_revision(), err.message));
    ref.sink->deliver(std::move(updates));
    state->watchers.erase(ref.id);
    mark_synced_locked(ref.sink, state, nullptr);
    return Step::kWorked;
  }
  const int64_t limit = published_revision_;
  // A read stopped by its limits ends at a whole revision; any other reached the end of the
  // store, which was at least at store_revision (it may have read further, as applies went
  // on meanwhile).
  const int64_t covered = stopped_early ? history.back().kv.mod_revision : store_revision;
  // Delivered now: up to what the read is known to cover, and no further than what was
  // published (the rest reaches the watcher through publish() once it is synced). Whatever
  // is cut here is read again by the next step, so nothing goes out twice.
  const int64_t upto = std::min(covered, limit);
  while (!history.empty() && history.back().kv.mod_revision > upto)
    history.pop_back();
  std::vector<WatchUpdate> updates;
  append_events(ref.id, w->spec, history, limit, &updates);
  if (!updates.empty()) ref.sink->deliver(std::move(updates));
  const int64_t next = upto + 1;
  if (next > limit) {
    mark_synced_locked(ref.sink, state, w);
  } else {
    w->next_rev = next;
  }
  return Step::kWorked;
}

bool WatchHub::cancel(WatchSink* sink, int64_t id) {
  std::lock_guard<std::mutex> lk(mu_);
  auto s = sinks_.find(sink);
  if (s == sinks_.end()) return false;
  auto w = s->second.watchers.find(id);
  if (w == s->second.watchers.end()) return false;
  std::vector<WatchUpdate> updates;
  updates.push_back(cancellation_locked(id, 0, ""));
  sink->deliver(std::move(updates));
  bool was_unsynced = w->second.next_rev != 0;
  s->second.watchers.erase(w);
  if (was_unsynced) mark_synced_locked(sink, &s->second, nullptr);
  return true;
}

void WatchHub::reset(int64_t revision) {
  std::lock_guard<std::mutex> lk(mu_);
  published_revision_ = revision;
  for (auto& [sink, state] : sinks_)
    sink->reset();
  sinks_.clear();
  unsynced_.clear();
}

void WatchHub::remove_sink(WatchSink* sink) {
  std::lock_guard<std::mutex> lk(mu_);
  sinks_.erase(sink);
}

void WatchHub::request_progress(WatchSink* sink) {
  std::lock_guard<std::mutex> lk(mu_);
  auto s = sinks_.find(sink);
  if (s != sinks_.end() && s->second.unsynced > 0) {
    // Sent when the last unsynced watcher catches up: before that it would claim events the
    // client has not been sent yet.
    s->second.progress_pending = true;
    return;
  }
  send_progress_locked(sink);
}

void WatchHub::notify_progress() {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& [sink, state] : sinks_) {
    std::vector<WatchUpdate> updates;
    for (const auto& [id, w] : state.watchers) {
      if (!w.spec.progress_notify || w.next_rev != 0) continue;
      WatchUpdate u;
      u.watch_id = id;
      u.revision = published_revision_;
      updates.push_back(std::move(u));
    }
    if (!updates.empty()) sink->deliver(std::move(updates));
  }
}

int64_t WatchHub::revision() const {
  std::lock_guard<std::mutex> lk(mu_);
  return published_revision_;
}

size_t WatchHub::watcher_count() const {
  std::lock_guard<std::mutex> lk(mu_);
  size_t n = 0;
  for (const auto& [sink, state] : sinks_)
    n += state.watchers.size();
  return n;
}

size_t WatchHub::unsynced_count() const {
  std::lock_guard<std::mutex> lk(mu_);
  size_t n = 0;
  for (const auto& [sink, state] : sinks_)
    n += state.unsynced;
  return n;
}

}  // namespace chorus::server
