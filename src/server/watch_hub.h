// Watches: the event feed of the state machine fanned out to the watchers of every stream.
//
// The apply thread publishes each applied batch's events; a new watcher whose start revision
// is behind first gets the history from the store, then live events, with nothing missed or
// repeated: both happen under one lock, and the history is read only up to the last revision
// published, which the store has already applied. A watcher starting below the compacted
// revision is created and then cancelled with compact_revision set, as etcd does.
//
// Sinks (one per client stream) receive updates under the hub's lock: they must only queue.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "kv/mvcc.h"

namespace chorus::server {

struct WatchSpec {
  int64_t id = 0;  // 0 (and auto_id) asks the hub to choose
  bool auto_id = true;
  std::string key;
  std::string range_end;       // etcd's rules: empty = one key, "\0" = every key >= key
  int64_t start_revision = 0;  // 0: from the next revision
  bool prev_kv = false;
  bool no_put = false;
  bool no_delete = false;
  bool progress_notify = false;
};

// One response for a client: a watcher's events, or its creation or cancellation.
struct WatchUpdate {
  int64_t watch_id = 0;
  int64_t revision = 0;  // the header's revision
  std::vector<kv::Event> events;
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0;
  std::string cancel_reason;
};

class WatchSink {
 public:
  virtual ~WatchSink() = default;
  // Called with the hub's lock held: queue and return.
  virtual void deliver(std::vector<WatchUpdate>&& updates) = 0;
  // The store was replaced (a snapshot from the leader): the stream must end so its client
  // reconnects and resumes its watchers from the new store. Called with the hub's lock held.
  virtual void reset() = 0;
};

class WatchHub {
 public:
  // Events of one response are capped, at a revision boundary, so a large catch-up is split.
  static constexpr size_t kMaxEventsPerUpdate = 1000;

  explicit WatchHub(const kv::MvccStore* store);

  // The apply thread, after each batch: `revision` is the store's revision after it.
  void publish(const std::vector<kv::Event>& events, int64_t revision);

  // Creates a watcher; its created response, any history and (if compacted) its cancellation
  // go to `sink`. Returns false with *error if the requested id is in use on this sink.
  bool add(WatchSink* sink, WatchSpec spec, std::string* error);
  // Cancels a watcher of `sink`; its cancellation response goes to the sink. False if unknown.
  bool cancel(WatchSink* sink, int64_t id);
  // The store was replaced by a snapshot at `revision`: every stream is reset and forgotten.
  void reset(int64_t revision);
  // Forgets every watcher of a closed stream.
  void remove_sink(WatchSink* sink);
  // Sends each of `sink`'s watchers that asked for progress notifications, or (for a progress
  // request, `all`) one response with watch id -1, the current revision and no events.
  void progress(WatchSink* sink, bool all);
  // Progress notifications for every watcher that asked for them (etcd sends them every ten
  // minutes by default).
  void notify_progress();

  int64_t revision() const;
  size_t watcher_count() const;

 private:
  struct Watcher {
    WatchSpec spec;
  };
  struct SinkState {
    std::map<int64_t, Watcher> watchers;
    int64_t next_id = 0;
  };
  static bool matches(const WatchSpec& s, const kv::Event& e);
  void append_events(int64_t id, const WatchSpec& spec, const std::vector<kv::Event>& events,
                     int64_t revision, std::vector<WatchUpdate>* out) const;

  const kv::MvccStore* store_;
  mutable std::mutex mu_;
  std::map<WatchSink*, SinkState> sinks_;
  int64_t published_revision_ = 0;
};

}  // namespace chorus::server
