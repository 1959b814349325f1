// Watches: the event feed of the state machine fanned out to the watchers of every stream.
//
// A watcher is synced when it has seen every revision published so far; the apply thread's
// publish() hands each applied batch's events to the synced watchers only. A watcher created
// from a past revision starts unsynced: the hub's own thread reads its history from the store
// a bounded chunk at a time, without the hub's lock held, then takes the lock, delivers what
// lies at or below the last published revision and moves the watcher on. Once it reaches the
// published revision it joins the synced ones, with nothing missed or repeated. So a watch
// from far back never stalls the apply thread, and a stream whose client reads slowly is not
// handed more history while its queue is full. A watcher whose history was compacted away is
// cancelled with compact_revision set, as etcd does.
//
// Progress (a response with no events saying "you have seen everything up to revision R") is
// only ever sent for synced watchers: a stream's progress request waits until its unsynced
// watchers have caught up.
//
// Sinks (one per client stream) receive updates under the hub's lock: they must only queue.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
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
  size_t bytes = 0;  // kv::event_bytes of the events, counted once as they are added
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
  // Bytes of events (kv::event_bytes) queued and not yet written to the client. Called with
  // the hub's lock held.
  virtual size_t backlog() const = 0;
};

class WatchHub {
 public:
  // Events of one response are capped, at a revision boundary, so a large catch-up is split;
  // this, or kMaxBytesPerStep of keys and values, is also how much history one catch-up step
  // reads.
  static constexpr size_t kMaxEventsPerUpdate = 1000;
  static constexpr size_t kMaxBytesPerStep = 4 << 20;
  // A stream with more than this queued (kv::event_bytes) gets no more history until it drains.
  static constexpr size_t kMaxBacklogForHistory = 16 << 20;

  explicit WatchHub(const kv::MvccStore* store);
  ~WatchHub();

  // Starts the hub's thread: it catches unsynced watchers up and, every `progress_interval`,
  // sends progress notifications. Without it (tests) sync_step() does the catching up.
  void start(std::chrono::milliseconds progress_interval);
  void stop();

  // The apply thread, after each batch: `revision` is the store's revision after it.
  void publish(const std::vector<kv::Event>& events, int64_t revision);

  // Creates a watcher; its created response, then its history (if it starts in the past) or
  // its cancellation (if that past was compacted) go to `sink`. Returns false with *error if
  // the requested id is in use on this sink.
  bool add(WatchSink* sink, WatchSpec spec, std::string* error);
  // Cancels a watcher of `sink`; its cancellation response goes to the sink. False if unknown.
  bool cancel(WatchSink* sink, int64_t id);
  // The store was replaced by a snapshot at `revision`: every stream is reset and forgotten.
  void reset(int64_t revision);
  // Forgets every watcher of a closed stream.
  void remove_sink(WatchSink* sink);
  // A client's progress request: one response with watch id -1 and the published revision,
  // sent once every watcher of the stream is synced.
  void request_progress(WatchSink* sink);
  // Progress notifications for every synced watcher that asked for them (etcd sends them
  // every ten minutes by default).
  void notify_progress();

  // One catch-up step: reads the next chunk of history for one unsynced watcher whose stream
  // has room. kIdle: no watcher is unsynced; kBlocked: every unsynced watcher's stream is full.
  enum class Step { kWorked, kBlocked, kIdle };
  Step sync_step();

  int64_t revision() const;
  size_t watcher_count() const;
  size_t unsynced_count() const;

 private:
  struct Watcher {
    WatchSpec spec;
    uint64_t serial = 0;   // unique for the hub's lifetime: tells a watcher from its successor
    int64_t next_rev = 0;  // the next revision it needs from history; 0 once synced
  };
  struct SinkState {
    std::map<int64_t, Watcher> watchers;
    int64_t next_id = 0;
    size_t unsynced = 0;
    bool progress_pending = false;
  };
  struct UnsyncedRef {
    WatchSink* sink;
    int64_t id;
    uint64_t serial;
  };
  static bool matches(const WatchSpec& s, const kv::Event& e);
  void append_events(int64_t id, const WatchSpec& spec, const std::vector<kv::Event>& events,
                     int64_t revision, std::vector<WatchUpdate>* out) const;
  // The watcher `ref` names, if it still exists and is unsynced.
  Watcher* find_unsynced_locked(const UnsyncedRef& ref, SinkState** state);
  void mark_synced_locked(WatchSink* sink, SinkState* state, Watcher* w);
  // A progress response for the whole stream: watch id -1, the published revision.
  void send_progress_locked(WatchSink* sink) const;
  WatchUpdate cancellation_locked(int64_t id, int64_t compact_revision, std::string reason) const;
  // Whether a synced watcher wants prev_kv (then publish() reads the ones apply() left unread).
  bool synced_prev_kv_watcher_locked() const;
  void run(std::chrono::milliseconds progress_interval);

  const kv::MvccStore* store_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<WatchSink*, SinkState> sinks_;
  std::deque<UnsyncedRef> unsynced_;  // round-robin; entries of gone watchers are dropped lazily
  int64_t published_revision_ = 0;
  uint64_t next_serial_ = 1;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace chorus::server
