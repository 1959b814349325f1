// The Redis face (docs/ARCHITECTURE.md, "The Redis face"): RESP on the addresses of
// --listen-redis-urls, served from the member's data groups.
//
// Keys hash to Redis Cluster's 16,384 slots (redis/slot.h); the slots are spread in equal
// ranges over the cluster's initial data groups (--initial-groups N: groups 2..N+1), so a key
// always lands in the same Raft group. A write is proposed to its group as one log entry that
// carries the command and this member's clock (redis/keyspace.h: every replica applies the same
// thing), and its reply is the one the state machine gave when it applied the entry here. A
// read waits for the group's read barrier (ReadIndex, or the lease) and then runs against the
// state applied here, so every read is linearizable; after READONLY a connection reads what is
// applied here without the barrier, as Redis Cluster's replicas do. A multi-key command whose
// keys fall in different groups gets Redis Cluster's CROSSSLOT error.
//
// One I/O thread owns every connection. Commands may be pipelined: each gets its place in the
// connection's reply queue when it is read, and replies leave in that order whatever order the
// groups answer in. A connection stops reading while 1,024 replies wait, and bad framing gets
// Redis's "Protocol error" text and the connection closed, as Redis does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "storage/status.h"

namespace chorus::server {

class Node;

struct RedisOptions {
  // The largest bulk string a request may carry (--max-request-bytes): what one log entry may
  // hold.
  size_t max_bulk_bytes = 1536 * 1024;
  size_t max_connections = 10'000;
  // A connection that sends nothing for this long is closed (0: never), as Redis's `timeout`.
  int idle_timeout_ms = 0;
  // With the etcd face's auth enabled, a connection must AUTH as one of its users first; the
  // passwords' bcrypt cost (--bcrypt-cost).
  int bcrypt_cost = 10;
};

class RedisPort {
 public:
  RedisPort(Node* node, RedisOptions options);
  ~RedisPort();
  RedisPort(const RedisPort&) = delete;
  RedisPort& operator=(const RedisPort&) = delete;

  // Binds host:port (port 0 picks one; *bound_port reports it). Before start().
  storage::Status listen(const std::string& host, uint16_t port, uint16_t* bound_port);
  void start();
  // Closes the listeners and every connection; commands in flight are answered into the void.
  void stop();

 private:
  struct Impl;
  // Shared with the callbacks of commands in flight, which hold it weakly.
  std::shared_ptr<Impl> impl_;
};

}  // namespace chorus::server
