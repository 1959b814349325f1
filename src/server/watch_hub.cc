#include "server/watch_hub.h"

namespace chorus::server {

WatchHub::WatchHub(const kv::MvccStore* store)
    : store_(store), published_revision_(store->revision()) {}

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
  }
}

void WatchHub::publish(const std::vector<kv::Event>& events, int64_t revision) {
  std::lock_guard<std::mutex> lk(mu_);
  published_revision_ = revision;
  if (events.empty()) return;
  for (auto& [sink, state] : sinks_) {
    std::vector<WatchUpdate> updates;
    for (const auto& [id, w] : state.watchers)
      append_events(id, w.spec, events, revision, &updates);
    if (!updates.empty()) sink->deliver(std::move(updates));
  }
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

  int64_t compacted = store_->compact_revision();
  if (spec.start_revision > 0 && spec.start_revision <= compacted) {
    WatchUpdate cancel;
    cancel.watch_id = id;
    cancel.revision = published_revision_;
    cancel.canceled = true;
    cancel.compact_revision = compacted;
    cancel.cancel_reason = kv::errors::kCompacted;
    updates.push_back(std::move(cancel));
    sink->deliver(std::move(updates));
    return true;
  }
  if (spec.start_revision > 0 && spec.start_revision <= published_revision_) {
    std::vector<kv::Event> history;
    kv::ApiError err = store_->events(spec.start_revision, 0, &history);
    if (!err.ok()) {
      WatchUpdate cancel;
      cancel.watch_id = id;
      cancel.revision = published_revision_;
      cancel.canceled = true;
      cancel.compact_revision = store_->compact_revision();
      cancel.cancel_reason = err.message;
      updates.push_back(std::move(cancel));
      sink->deliver(std::move(updates));
      return true;
    }
    // The store may be ahead of what was published; later events come through publish().
    while (!history.empty() && history.back().kv.mod_revision > published_revision_)
      history.pop_back();
    append_events(id, spec, history, published_revision_, &updates);
  }
  state.watchers[id] = Watcher{spec};
  sink->deliver(std::move(updates));
  return true;
}

bool WatchHub::cancel(WatchSink* sink, int64_t id) {
  std::lock_guard<std::mutex> lk(mu_);
  auto s = sinks_.find(sink);
  if (s == sinks_.end() || s->second.watchers.erase(id) == 0) return false;
  WatchUpdate u;
  u.watch_id = id;
  u.revision = published_revision_;
  u.canceled = true;
  std::vector<WatchUpdate> updates;
  updates.push_back(std::move(u));
  sink->deliver(std::move(updates));
  return true;
}

void WatchHub::reset(int64_t revision) {
  std::lock_guard<std::mutex> lk(mu_);
  published_revision_ = revision;
  for (auto& [sink, state] : sinks_)
    sink->reset();
  sinks_.clear();
}

void WatchHub::remove_sink(WatchSink* sink) {
  std::lock_guard<std::mutex> lk(mu_);
  sinks_.erase(sink);
}

void WatchHub::progress(WatchSink* sink, bool all) {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<WatchUpdate> updates;
  if (all) {
    WatchUpdate u;
    u.watch_id = -1;
    u.revision = published_revision_;
    updates.push_back(std::move(u));
  } else {
    auto s = sinks_.find(sink);
    if (s == sinks_.end()) return;
    for (const auto& [id, w] : s->second.watchers) {
      if (!w.spec.progress_notify) continue;
      WatchUpdate u;
      u.watch_id = id;
      u.revision = published_revision_;
      updates.push_back(std::move(u));
    }
  }
  if (!updates.empty()) sink->deliver(std::move(updates));
}

void WatchHub::notify_progress() {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& [sink, state] : sinks_) {
    std::vector<WatchUpdate> updates;
    for (const auto& [id, w] : state.watchers) {
      if (!w.spec.progress_notify) continue;
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

}  // namespace chorus::server
