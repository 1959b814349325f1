#include "server/redis_port.h"

#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>

// Asio's scheduler trips GCC 12's -Wnull-dereference at -O2 (a false positive in its headers).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <asio.hpp>
#pragma GCC diagnostic pop

#include "server/asio_server.h"

#include "redis/config.h"
#include "redis/keyspace.h"
#include "redis/resp.h"
#include "redis/slot.h"
#include "server/node.h"
#include "server/password.h"

namespace chorus::server {

using asio::ip::tcp;
using redis::Reply;

namespace {

constexpr size_t kReadChunkBytes = 16 * 1024;
// Replies a connection may owe before it stops reading (pipelining depth).
constexpr size_t kMaxPendingReplies = 1024;
constexpr int kAcceptRetryMs = 100;
constexpr const char* kVersion = "7.0.15";

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Reply wrong_args(std::string_view name) {
  return Reply::error("ERR wrong number of arguments for '" + std::string(name) + "' command");
}

Reply unknown_command(const std::vector<std::string>& argv) {
  std::string args;
  for (size_t i = 1; i < argv.size() && args.size() < 128; ++i)
    args += "'" + argv[i].substr(0, 128) + "' ";
  return Reply::error("ERR unknown command '" + argv[0].substr(0, 128) +
                      "', with args beginning with: " + args);
}

Reply unknown_subcommand(std::string_view sub, std::string_view command) {
  std::string upper(command);
  for (char& c : upper)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return Reply::error("ERR unknown subcommand '" + std::string(sub.substr(0, 128)) + "'. Try " +
                      upper + " HELP.");
}

// A failed proposal or read barrier, as a Redis client reads it.
Reply from_rpc_error(const RpcError& e) {
  if (e.code == RpcCode::kNotFound) return Reply::error("CLUSTERDOWN Hash slot not served");
  if (e.message == rpc_errors::kNoLeader)
    return Reply::error("CLUSTERDOWN the group of this key has no leader at the moment");
  std::string m = e.message;
  if (m.rfind("etcdserver: ", 0) == 0) m = m.substr(12);
  return Reply::error("ERR " + m);
}

struct Pending {
  int protocol = 2;  // as the connection spoke when the command came (HELLO may change it)
  bool ready = false;
  bool close_after = false;  // QUIT, or a protocol error: close once this reply is out
  std::string bytes;
};

struct Conn {
  explicit Conn(tcp::socket s, uint64_t id_)
      : socket(std::move(s)), idle(socket.get_executor()), id(id_) {}
  tcp::socket socket;
  asio::steady_timer idle;
  uint64_t id;
  std::string peer;
  std::string name;
  std::string user;  // AUTH's user, once its password was checked
  int protocol = 2;
  bool local_reads = false;  // READONLY
  std::array<char, kReadChunkBytes> chunk{};
  std::string in;
  size_t parsed = 0;
  redis::RequestParser parser;
  std::deque<Pending> pending;
  uint64_t first_seq = 0;  // the sequence number of pending.front()
  std::string out;         // replies gathered while a write is in flight
  std::string writing_buf;
  bool writing = false;
  bool reading = false;
  bool stop_reading = false;  // a reply closes the connection: read nothing more
  bool parsing = false;
  // Commands on data in flight, all reads or all writes (kind): a command of the other kind
  // waits (held) until they are answered, so that a pipeline's reads see exactly the writes
  // before them, as Redis runs a connection's commands one after the other.
  size_t inflight = 0;
  uint32_t inflight_kind = 0;
  std::optional<std::vector<std::string>> held;
  // MULTI: the commands queued for EXEC, and whether one was refused (EXEC then aborts).
  bool in_multi = false;
  bool multi_failed = false;
  // WATCH: keys and their versions when watched (redis::kKeyVersions); EXEC runs only if
  // none has changed.
  std::vector<std::pair<std::string, uint64_t>> watched;
  // Bumped by whatever drops the watched keys (UNWATCH, EXEC, DISCARD, RESET): a WATCH still
  // reading its versions then adds nothing.
  uint64_t watch_generation = 0;
  std::vector<std::vector<std::string>> queued;
  // Pub/sub: the channels and patterns subscribed to.
  std::set<std::string> channels;
  std::set<std::string> patterns;
  bool subscribed() const { return !channels.empty() || !patterns.empty(); }
  // A blocking command waiting for data (BLPOP, ...): its place among the blocked, 0 if none.
  uint64_t blocked_order = 0;
  bool closed = false;
  uint64_t commands = 0;
  int64_t created_ms = 0;
  int64_t last_ms = 0;
  std::string last_command;
};

struct Listener {
  explicit Listener(asio::io_context& io) : acceptor(io), retry(io) {}
  tcp::acceptor acceptor;
  asio::steady_timer retry;
};

}  // namespace

struct RedisPort::Impl : std::enable_shared_from_this<RedisPort::Impl> {
  Impl(Node* n, RedisOptions o) : node(n), options(o), server_config(o.max_bulk_bytes) {}

  IoThread loop;
  asio::io_context& io = loop.io;
  Node* node;
  RedisOptions options;
  redis::ServerConfig server_config;
  std::vector<std::unique_ptr<Listener>> listeners;
  std::unordered_map<uint64_t, std::shared_ptr<Conn>> connections;  // I/O thread only
  // Active expiry (I/O thread): once a second, the groups this member leads are swept from
  // where the last sweep stopped.
  asio::steady_timer sweep_timer{io};
  std::unordered_map<raft::GroupId, std::string> sweep_from;
  std::atomic<uint64_t> expired_keys{0};  // records the sweeps proposed here removed
  uint64_t next_id = 1;
  bool stopping = false;                        // I/O thread only
  std::mt19937_64 rng{std::random_device{}()};  // RANDOMKEY's picks; I/O thread only
  uint8_t random_byte() { return static_cast<uint8_t>(rng() >> 56); }
  uint64_t commands_processed = 0;
  uint64_t connections_received = 0;

  // ---- accepting and reading ----

  void accept(Listener* l) {
    l->acceptor.async_accept([this, l](const asio::error_code& ec, tcp::socket socket) {
      if (stopping) return;
      if (ec) {
        if (ec == asio::error::operation_aborted) return;
        l->retry.expires_after(std::chrono::milliseconds(kAcceptRetryMs));
        l->retry.async_wait([this, l](const asio::error_code& error) {
          if (!error && !stopping) accept(l);
        });
        return;
      }
      ++connections_received;
      if (connections.size() >= options.max_connections) {
        static const char kFull[] = "-ERR max number of clients reached\r\n";
        asio::error_code ignored;
        socket.write_some(asio::buffer(kFull, sizeof kFull - 1), ignored);
        socket.close(ignored);
      } else {
        asio::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        auto c = std::make_shared<Conn>(std::move(socket), next_id++);
        c->parser = redis::RequestParser(options.max_bulk_bytes);
        tcp::endpoint remote = c->socket.remote_endpoint(ignored);
        c->peer = remote.address().to_string() + ":" + std::to_string(remote.port());
        c->created_ms = c->last_ms = wall_ms();
        connections.emplace(c->id, c);
        arm_idle(c);
        read(c);
      }
      accept(l);
    });
  }

  void arm_idle(const std::shared_ptr<Conn>& c) {
    if (options.idle_timeout_ms <= 0) return;
    c->idle.expires_after(std::chrono::milliseconds(options.idle_timeout_ms));
    c->idle.async_wait([this, c](const asio::error_code& ec) {
      if (!ec && !c->closed) close(c);
    });
  }

  void read(const std::shared_ptr<Conn>& c) {
    if (c->closed || c->reading || c->stop_reading || c->held) return;
    if (c->pending.size() >= kMaxPendingReplies) return;  // resumed as replies go out
    c->reading = true;
    c->socket.async_read_some(
        asio::buffer(c->chunk), [this, c](const asio::error_code& ec, size_t n) {
          c->reading = false;
          if (c->closed) return;
          if (ec) {
            close(c);
            return;
          }
          c->in.append(c->chunk.data(), n);
          // One command may not be larger than a log entry takes
          // (what is parsed leaves the buffer): past that, as Redis's
          // query buffer limit, the connection goes.
          if (c->in.size() > 2 * options.max_bulk_bytes + (1u << 20)) {
            uint64_t seq = push(c);
            finish(c, seq, Reply::error("ERR Protocol error: too big request"),
                   /*close_after=*/true);
            return;
          }
          arm_idle(c);
          parse(c);
          read(c);
        });
  }

  void parse(const std::shared_ptr<Conn>& c) {
    if (c->parsing) return;
    c->parsing = true;
    std::vector<std::string> argv;
    std::string error;
    while (!c->closed && !c->stop_reading && !c->held && c->pending.size() < kMaxPendingReplies) {
      redis::RequestParser::Result r = c->parser.next(c->in, &c->parsed, &argv, &error);
      if (r == redis::RequestParser::Result::kNeedMore) break;
      if (r == redis::RequestParser::Result::kError) {
        uint64_t seq = push(c);
        finish(c, seq, Reply::error("ERR " + error), /*close_after=*/true);
        break;
      }
      if (argv.empty()) continue;
      if (!admit(*c, argv)) {
        c->held = std::move(argv);
        break;
      }
      dispatch(c, std::move(argv));
    }
    // Keep only what is not parsed yet.
    if (c->parsed > 0) {
      c->in.erase(0, c->parsed);
      c->parsed = 0;
    }
    c->parsing = false;
  }

  // ---- replies, in order ----

  uint64_t push(const std::shared_ptr<Conn>& c) {
    c->pending.emplace_back();
    c->pending.back().protocol = c->protocol;
    return c->first_seq + c->pending.size() - 1;
  }

  void finish(const std::shared_ptr<Conn>& c, uint64_t seq, const Reply& reply,
              bool close_after = false) {
    if (c->closed || seq < c->first_seq) return;
    Pending& p = c->pending[seq - c->first_seq];
    p.ready = true;
    p.close_after = close_after;
    // Nothing after QUIT or bad framing is read or run.
    if (close_after) c->stop_reading = true;
    redis::encode(reply, p.protocol, &p.bytes);
    flush(c);
  }

  // Several replies for one command (SUBSCRIBE a b: one per channel), in one place of the queue.
  void finish_many(const std::shared_ptr<Conn>& c, uint64_t seq,
                   const std::vector<Reply>& replies) {
    if (c->closed || seq < c->first_seq) return;
    Pending& p = c->pending[seq - c->first_seq];
    p.ready = true;
    for (const Reply& r : replies)
      redis::encode(r, p.protocol, &p.bytes);
    flush(c);
  }

  // The reply of a command on data: the next held command may go once none is in flight.
  void complete(const std::shared_ptr<Conn>& c, uint64_t seq, const Reply& reply) {
    if (c->closed) return;
    --c->inflight;
    finish(c, seq, reply);
    if (c->inflight == 0 && c->held && !c->closed) {
      std::vector<std::string> next = std::move(*c->held);
      c->held.reset();
      dispatch(c, std::move(next));
      parse(c);
      read(c);
    }
  }

  // From any thread: the reply of command `seq` of connection `id`.
  void complete_from_anywhere(uint64_t id, uint64_t seq, Reply reply) {
    asio::post(io, [weak = weak_from_this(), id, seq, reply = std::move(reply)]() mutable {
      std::shared_ptr<Impl> self = weak.lock();
      if (!self) return;
      auto it = self->connections.find(id);
      if (it != self->connections.end()) self->complete(it->second, seq, reply);
    });
  }

  // Whether a command may be dispatched now (see Conn::held).
  static uint32_t data_kind(const std::vector<std::string>& argv) {
    const std::string name = lower(argv[0]);
    if (name == "exec") return redis::kWrite;      // the queued commands, as one write
    if (name == "watch") return redis::kReadOnly;  // reads the keys' versions
    if (name == "auth" || name == "hello") return redis::kReadOnly;  // may check a password
    const redis::CommandSpec* spec = redis::find_command(argv[0]);
    if (spec == nullptr || !redis::arity_ok(*spec, argv.size())) return 0;
    return spec->flags & (redis::kWrite | redis::kReadOnly);
  }
  static bool admit(const Conn& c, const std::vector<std::string>& argv) {
    // After a blocking command nothing runs until it is answered, as Redis does.
    if (c.inflight > 0 && (c.inflight_kind & redis::kBlocking) != 0) return false;
    uint32_t kind = data_kind(argv);
    return kind == 0 || c.inflight == 0 || kind == c.inflight_kind;
  }

  void flush(const std::shared_ptr<Conn>& c) {
    bool was_full = c->pending.size() >= kMaxPendingReplies;
    while (!c->pending.empty() && c->pending.front().ready) {
      Pending& p = c->pending.front();
      c->out.append(p.bytes);
      bool last = p.close_after;
      c->pending.pop_front();
      ++c->first_seq;
      if (last) {
        c->pending.clear();
        break;
      }
    }
    write(c);
    if (was_full && c->pending.size() < kMaxPendingReplies && !c->stop_reading && !c->parsing) {
      parse(c);  // commands read before the queue filled
      read(c);
    }
  }

  void write(const std::shared_ptr<Conn>& c) {
    if (c->closed || c->writing) return;
    if (c->out.empty()) {
      if (c->stop_reading && c->pending.empty()) close(c);
      return;
    }
    c->writing = true;
    c->writing_buf.swap(c->out);
    c->out.clear();
    asio::async_write(c->socket, asio::buffer(c->writing_buf),
                      [this, c](const asio::error_code& ec, size_t) {
                        c->writing = false;
                        c->writing_buf.clear();
                        if (ec) {
                          close(c);
                          return;
                        }
                        if (c->stop_reading && c->out.empty() && c->pending.empty()) {
                          close(c);
                          return;
                        }
                        write(c);
                      });
  }

  void close(const std::shared_ptr<Conn>& c) {
    if (c->closed) return;
    c->closed = true;
    asio::error_code ignored;
    c->idle.cancel();
    unsubscribe_all(*c);
    if (auto b = blocked.find(c->blocked_order); b != blocked.end()) {
      if (b->second.waiting) --blocked_clients;
      blocked.erase(b);
      blocked_entries = blocked.size();
    }
    c->socket.shutdown(tcp::socket::shutdown_both, ignored);
    c->socket.close(ignored);
    connections.erase(c->id);
  }

  // ---- commands ----

  void dispatch(const std::shared_ptr<Conn>& c, std::vector<std::string>&& argv) {
    ++commands_processed;
    ++c->commands;
    c->last_ms = wall_ms();
    uint64_t seq = push(c);
    std::string name = lower(argv[0]);
    const redis::CommandSpec* spec = redis::find_command(name);
    const bool control = name == "exec" || name == "discard" || name == "multi" ||
                         name == "watch" || name == "quit" || name == "reset";
    if (spec == nullptr || !redis::arity_ok(*spec, argv.size())) {
      c->multi_failed = c->in_multi;
      finish(c, seq, spec == nullptr ? unknown_command(argv) : wrong_args(spec->name));
      return;
    }
    argv[0] = spec->name;
    if (name == "auth" ||
        (name == "hello" && std::any_of(argv.begin(), argv.end(),
                                        [](const std::string& a) { return lower(a) == "auth"; }))) {
      auth(c, seq, std::move(argv));
      return;
    }
    if (name != "quit" && name != "reset" && !authenticated(*c)) {
      c->multi_failed = c->in_multi;
      finish(c, seq, Reply::error("NOAUTH Authentication required."));
      return;
    }
    if (c->in_multi && !control) {
      if ((spec->flags & redis::kAllGroups) != 0) {
        c->multi_failed = true;
        finish(c, seq, Reply::error("ERR Chorus does not run commands on every key inside MULTI"));
        return;
      }
      if ((spec->flags & redis::kKeyless) == 0) {
        // As Redis Cluster: a command whose keys span groups is refused when queued.
        raft::GroupId g = 0;
        if (Reply error; !route(*spec, argv, &g, &error)) {
          c->multi_failed = true;
          finish(c, seq, error);
          return;
        }
      }
      if (c->queued.size() >= redis::kMaxTransactionCommands) {
        c->multi_failed = true;
        finish(c, seq,
               Reply::error("ERR a transaction holds at most " +
                            std::to_string(redis::kMaxTransactionCommands) + " commands"));
        return;
      }
      c->queued.push_back(std::move(argv));
      finish(c, seq, Reply::status("QUEUED"));
      return;
    }
    if (name == "exec") {
      exec(c, seq);
      return;
    }
    if (name == "watch" && !c->in_multi) {
      watch(c, seq, std::move(argv));
      return;
    }
    if (c->subscribed() && c->protocol == 2 && name != "subscribe" && name != "unsubscribe" &&
        name != "psubscribe" && name != "punsubscribe" && name != "ping" && name != "quit" &&
        name != "reset") {
      finish(c, seq,
             Reply::error("ERR Can't execute '" + name +
                          "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
                          "allowed in this context"));
      return;
    }
    if (name == "subscribe" || name == "unsubscribe" || name == "psubscribe" ||
        name == "punsubscribe") {
      finish_many(c, seq, subscription(c, argv));
      return;
    }
    if ((spec->flags & redis::kKeyless) != 0) {
      bool close_after = false;
      Reply r = local_command(c, argv, &close_after);
      // HELLO answers in the protocol it switched to.
      c->pending[seq - c->first_seq].protocol = c->protocol;
      finish(c, seq, r, close_after);
      return;
    }
    if ((spec->flags & redis::kAllGroups) != 0) {
      all_groups(c, seq, std::move(argv));
      return;
    }
    raft::GroupId group = 0;
    if (Reply error; !route(*spec, argv, &group, &error)) {
      finish(c, seq, error);
      return;
    }
    if ((spec->flags & redis::kBlocking) != 0) {
      block_start(c, seq, group, std::move(argv));
      return;
    }
    if ((name == "xread" || name == "xreadgroup") && stream_block_ms(argv) >= 0) {
      block_stream_read(c, seq, group, std::move(argv));
      return;
    }
    std::weak_ptr<Impl> weak = weak_from_this();
    const uint64_t id = c->id;
    ++c->inflight;
    c->inflight_kind = spec->flags & (redis::kWrite | redis::kReadOnly);
    if (name == "publish") {
      // Answered once applied here (and so delivered here): how many here received it.
      node->group_command(group, redis::encode_command(wall_ms(), argv),
                          [weak, id, seq, channel = argv[1]](const RpcError& e, Reply&&) {
                            std::shared_ptr<Impl> self = weak.lock();
                            if (!self) return;
                            asio::post(self->io, [weak, id, seq, channel, e] {
                              std::shared_ptr<Impl> port = weak.lock();
                              if (!port) return;
                              auto it = port->connections.find(id);
                              if (it == port->connections.end()) return;
                              port->complete(it->second, seq,
                                             e.ok() ? Reply::integer_of(port->receivers(channel))
                                                    : from_rpc_error(e));
                            });
                          });
      return;
    }
    if ((spec->flags & redis::kWrite) != 0) {
      node->group_command(group, redis::encode_command(wall_ms(), argv),
                          [weak, id, seq](const RpcError& e, Reply&& reply) {
                            std::shared_ptr<Impl> self = weak.lock();
                            if (!self) return;
                            self->complete_from_anywhere(
                                id, seq, e.ok() ? std::move(reply) : from_rpc_error(e));
                          });
      return;
    }
    if (c->local_reads) {
      complete(c, seq, node->group_read_command(group, argv, wall_ms()));
      return;
    }
    node->group_read_barrier(
        group, [weak, id, seq, group, argv = std::move(argv)](const RpcError& e) mutable {
          std::shared_ptr<Impl> self = weak.lock();
          if (!self) return;
          if (!e.ok()) {
            self->complete_from_anywhere(id, seq, from_rpc_error(e));
            return;
          }
          // The read itself on the port's thread, not the groups' apply thread that runs this.
          asio::post(self->io, [weak, id, seq, group, argv = std::move(argv)] {
            std::shared_ptr<Impl> port = weak.lock();
            if (!port) return;
            auto it = port->connections.find(id);
            if (it == port->connections.end()) return;
            port->complete(it->second, seq, port->node->group_read_command(group, argv, wall_ms()));
          });
        });
  }

  // EXEC: the queued commands as one log entry of their group, applied at once.
  void exec(const std::shared_ptr<Conn>& c, uint64_t seq) {
    if (!c->in_multi) {
      finish(c, seq, Reply::error("ERR EXEC without MULTI"));
      return;
    }
    std::vector<std::vector<std::string>> cmds = std::move(c->queued);
    std::vector<std::pair<std::string, uint64_t>> watched = std::move(c->watched);
    const bool failed = c->multi_failed;
    c->in_multi = false;
    c->queued.clear();
    c->watched.clear();
    ++c->watch_generation;
    if (failed) {
      finish(c, seq, Reply::error("EXECABORT Transaction discarded because of previous errors."));
      return;
    }
    if (cmds.empty()) {
      finish(c, seq, Reply::array());
      return;
    }
    // Every command's keys in one group: those go as one log entry. The connection's own
    // commands (PING, ECHO, CLIENT SETNAME, ...) run here when the entry's replies are in.
    std::vector<std::string> all_keys = {"exec"};
    for (const auto& [key, version] : watched)
      all_keys.push_back(key);
    std::vector<std::vector<std::string>> keyed;
    for (const auto& cmd : cmds) {
      const redis::CommandSpec* spec = redis::find_command(cmd[0]);
      if ((spec->flags & redis::kKeyless) != 0) continue;
      for (std::string_view k : redis::command_keys(*spec, cmd))
        all_keys.emplace_back(k);
      keyed.push_back(cmd);
    }
    if (keyed.empty() && watched.empty()) {
      finish(c, seq, exec_replies(c, cmds, {}));
      return;
    }
    static const redis::CommandSpec kExecKeys = {"exec", -1, redis::kWrite, 1, -1, 1};
    raft::GroupId group = 0;
    if (Reply error; !route(kExecKeys, all_keys, &group, &error)) {
      finish(c, seq, error);
      return;
    }
    ++c->inflight;
    c->inflight_kind = redis::kWrite;
    std::weak_ptr<Impl> weak = weak_from_this();
    const uint64_t id = c->id;
    const bool mixed = keyed.size() != cmds.size();
    auto done = [weak, id, seq, mixed, cmds = std::move(cmds)](const RpcError& e,
                                                               Reply&& reply) mutable {
      std::shared_ptr<Impl> self = weak.lock();
      if (!self) return;
      // An error, a transaction aborted by WATCH (a null array), or nothing to add.
      if (!e.ok() || !mixed || reply.kind != Reply::Kind::kArray) {
        self->complete_from_anywhere(id, seq, e.ok() ? std::move(reply) : from_rpc_error(e));
        return;
      }
      asio::post(self->io,
                 [weak, id, seq, cmds = std::move(cmds), reply = std::move(reply)]() mutable {
                   std::shared_ptr<Impl> port = weak.lock();
                   if (!port) return;
                   auto it = port->connections.find(id);
                   if (it == port->connections.end()) return;
                   port->complete(it->second, seq,
                                  port->exec_replies(it->second, cmds, std::move(reply.elements)));
                 });
    };
    node->group_command(
        group, redis::encode_command(wall_ms(), redis::transaction_command(keyed, watched)),
        std::move(done));
  }

  // WATCH key [key ...]: the keys' versions, read linearizably from their group, kept on the
  // connection for EXEC. Keys of one group only (as Redis Cluster wants one slot).
  void watch(const std::shared_ptr<Conn>& c, uint64_t seq, std::vector<std::string> argv) {
    static const redis::CommandSpec kWatchKeys = {"watch", -2, redis::kReadOnly, 1, -1, 1};
    raft::GroupId group = 0;
    if (Reply error; !route(kWatchKeys, argv, &group, &error)) {
      finish(c, seq, error);
      return;
    }
    ++c->inflight;
    c->inflight_kind = redis::kReadOnly;
    argv[0] = std::string(redis::kKeyVersions);
    std::weak_ptr<Impl> weak = weak_from_this();
    const uint64_t id = c->id;
    const uint64_t generation = c->watch_generation;
    node->group_read_barrier(group, [weak, id, seq, group, generation,
                                     argv = std::move(argv)](const RpcError& e) mutable {
      std::shared_ptr<Impl> self = weak.lock();
      if (!self) return;
      if (!e.ok()) {
        self->complete_from_anywhere(id, seq, from_rpc_error(e));
        return;
      }
      asio::post(self->io, [weak, id, seq, group, generation, argv = std::move(argv)] {
        std::shared_ptr<Impl> port = weak.lock();
        if (!port) return;
        auto it = port->connections.find(id);
        if (it == port->connections.end()) return;
        Conn& conn = *it->second;
        if (conn.watch_generation != generation) {
          port->complete(it->second, seq, Reply::ok());  // unwatched meanwhile
          return;
        }
        Reply versions = port->node->group_read_command(group, argv, wall_ms());
        if (versions.kind != Reply::Kind::kArray) {
          port->complete(it->second, seq, versions);
          return;
        }
        for (size_t i = 1; i < argv.size() && i - 1 < versions.elements.size(); ++i) {
          // The first WATCH of a key counts, as in Redis.
          bool known = std::any_of(conn.watched.begin(), conn.watched.end(),
                                   [&](const auto& w) { return w.first == argv[i]; });
          if (!known)
            conn.watched.emplace_back(argv[i],
                                      static_cast<uint64_t>(versions.elements[i - 1].integer));
        }
        port->complete(it->second, seq, Reply::ok());
      });
    });
  }

  // EXEC's answer: the replies of the commands on keys in turn, and the connection's own
  // commands run now in their places.
  Reply exec_replies(const std::shared_ptr<Conn>& c,
                     const std::vector<std::vector<std::string>>& cmds, std::vector<Reply> keyed) {
    std::vector<Reply> out;
    size_t next = 0;
    for (const auto& cmd : cmds) {
      const redis::CommandSpec* spec = redis::find_command(cmd[0]);
      if ((spec->flags & redis::kKeyless) != 0) {
        bool close_after = false;
        out.push_back(local_command(c, cmd, &close_after));
      } else {
        out.push_back(next < keyed.size() ? std::move(keyed[next++])
                                          : Reply::error("ERR the transaction lost a reply"));
      }
    }
    return Reply::array(std::move(out));
  }

  // ---- commands about every key: FLUSHALL, DBSIZE, KEYS, SCAN ----

  // What the groups of one such command have answered so far.
  struct Join {
    size_t left = 0;
    std::optional<Reply> error;
    int64_t count = 0;
    std::vector<Reply> keys;
  };

  // A SCAN cursor: the group's index in the high 16 bits, then a token naming the key to go
  // on from (0: the group's first key). Tokens live here, the newest kMaxScanTokens of them;
  // a cursor whose token is gone starts its group again (SCAN may return a key twice).
  static constexpr int kCursorGroupShift = 48;
  static constexpr uint64_t kTokenMask = (uint64_t{1} << kCursorGroupShift) - 1;
  static constexpr size_t kMaxScanTokens = 10'000;
  std::unordered_map<uint64_t, std::string> scan_resume;  // I/O thread only
  std::deque<uint64_t> scan_tokens;                       // oldest first
  uint64_t next_scan_token = 0;

  uint64_t remember_scan(std::string from) {
    next_scan_token = (next_scan_token + 1) & kTokenMask;
    if (next_scan_token == 0) next_scan_token = 1;
    scan_resume[next_scan_token] = std::move(from);
    scan_tokens.push_back(next_scan_token);
    while (scan_tokens.size() > kMaxScanTokens) {
      scan_resume.erase(scan_tokens.front());
      scan_tokens.pop_front();
    }
    return next_scan_token;
  }

  // A command on data answered before it went to any group.
  void answer_now(const std::shared_ptr<Conn>& c, uint64_t seq, Reply error) {
    ++c->inflight;
    complete(c, seq, error);
  }

  void all_groups(const std::shared_ptr<Conn>& c, uint64_t seq, std::vector<std::string> argv) {
    const uint32_t groups = node->initial_group_count();
    if (groups == 0) {
      finish(c, seq, Reply::error("CLUSTERDOWN the Redis face needs data groups"));
      return;
    }
    const std::string name = argv[0];
    // Each path below counts the command in flight once, and complete() counts it out.
    c->inflight_kind = name.rfind("flush", 0) == 0 ? redis::kWrite : redis::kReadOnly;
    if (name == "scan") {
      scan(c, seq, argv, groups);
      return;
    }
    if (name == "flushall" || name == "flushdb") {
      if (argv.size() > 2 ||
          (argv.size() == 2 && lower(argv[1]) != "async" && lower(argv[1]) != "sync")) {
        answer_now(c, seq, Reply::error(redis::errors::kSyntax));
        return;
      }
    }
    auto join = std::make_shared<Join>();
    join->left = groups;
    ++c->inflight;
    const uint64_t id = c->id;
    std::weak_ptr<Impl> weak = weak_from_this();
    // Runs on the port's thread once group g's part is in: the last one answers.
    auto part_done = [weak, id, seq, join, name](std::optional<Reply> error) {
      std::shared_ptr<Impl> self = weak.lock();
      if (!self) return;
      if (error && !join->error) join->error = std::move(error);
      if (--join->left > 0) return;
      auto it = self->connections.find(id);
      if (it == self->connections.end()) return;
      Reply r = join->error        ? *join->error
                : name == "dbsize" ? Reply::integer_of(join->count)
                : name == "keys"   ? Reply::array(std::move(join->keys))
                : name == "randomkey"
                    ? (join->keys.empty() ? Reply::null()
                                          : std::move(join->keys[self->rng() % join->keys.size()]))
                    : Reply::ok();
      self->complete(it->second, seq, r);
    };
    const std::string pattern = name == "keys" ? argv[1] : "";
    const bool random = name == "randomkey";
    for (raft::GroupId g = 2; g < 2 + raft::GroupId{groups}; ++g) {
      if (name == "flushall" || name == "flushdb") {
        node->group_command(g, redis::encode_command(wall_ms(), {name}),
                            [weak, part_done](const RpcError& e, Reply&& reply) {
                              std::shared_ptr<Impl> self = weak.lock();
                              if (!self) return;
                              std::optional<Reply> error;
                              if (!e.ok()) {
                                error = from_rpc_error(e);
                              } else if (reply.is_error()) {
                                error = std::move(reply);
                              }
                              asio::post(self->io, [part_done, error] { part_done(error); });
                            });
        continue;
      }
      node->group_read_barrier(g, [weak, g, join, pattern, random, part_done](const RpcError& e) {
        std::shared_ptr<Impl> self = weak.lock();
        if (!self) return;
        if (!e.ok()) {
          asio::post(self->io, [part_done, error = from_rpc_error(e)] { part_done(error); });
          return;
        }
        asio::post(self->io, [weak, g, join, pattern, random, part_done] {
          std::shared_ptr<Impl> port = weak.lock();
          if (!port) return;
          std::vector<kv::GroupStore::RedisKey> keys;
          bool more = false;
          storage::Status st;
          if (random) {
            // A key at or after random bytes (or the first): one candidate per group.
            std::string from(4, '\0');
            for (char& ch : from)
              ch = static_cast<char>(port->random_byte());
            st = port->node->group_redis_keys(g, from, 1, 0, wall_ms(), &keys, &more);
            if (st.is_ok() && keys.empty())
              st = port->node->group_redis_keys(g, "", 1, 0, wall_ms(), &keys, &more);
            if (st.is_ok() && !keys.empty()) join->keys.push_back(Reply::bulk(keys[0].key));
            part_done(st.is_ok() ? std::nullopt
                                 : std::optional<Reply>(Reply::error("ERR " + st.to_string())));
            return;
          }
          st = port->node->group_redis_keys(g, "", std::numeric_limits<size_t>::max(), 0, wall_ms(),
                                            &keys, &more);
          if (!st.is_ok()) {
            part_done(Reply::error("ERR " + st.to_string()));
            return;
          }
          join->count += static_cast<int64_t>(keys.size());
          if (!pattern.empty()) {
            for (auto& k : keys) {
              if (redis::glob_match(pattern, k.key)) join->keys.push_back(Reply::bulk(k.key));
            }
          }
          part_done(std::nullopt);
        });
      });
    }
  }

  // SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]: the cursor names a group (its
  // index among the keyspace's groups) and the first bytes of the keys still to come there.
  void scan(const std::shared_ptr<Conn>& c, uint64_t seq, const std::vector<std::string>& a,
            uint32_t groups) {
    uint64_t cursor = 0;
    auto [end, ec] = std::from_chars(a[1].data(), a[1].data() + a[1].size(), cursor);
    if (ec != std::errc() || end != a[1].data() + a[1].size()) {
      answer_now(c, seq, Reply::error("ERR invalid cursor"));
      return;
    }
    std::string pattern, type;
    int64_t count = 10;
    for (size_t i = 2; i < a.size(); i += 2) {
      if (i + 1 >= a.size()) {
        answer_now(c, seq, Reply::error(redis::errors::kSyntax));
        return;
      }
      std::string opt = lower(a[i]);
      if (opt == "match") {
        pattern = a[i + 1];
      } else if (opt == "type") {
        type = lower(a[i + 1]);
      } else if (opt == "count") {
        if (!redis::parse_int64(a[i + 1], &count)) {
          answer_now(c, seq, Reply::error(redis::errors::kNotInteger));
          return;
        }
        if (count < 1) {
          answer_now(c, seq, Reply::error(redis::errors::kSyntax));
          return;
        }
      } else {
        answer_now(c, seq, Reply::error(redis::errors::kSyntax));
        return;
      }
    }
    const uint64_t index = cursor >> kCursorGroupShift;
    if (index >= groups) {
      answer_now(c, seq, Reply::array({Reply::bulk("0"), Reply::array()}));
      return;
    }
    std::string from;
    if (auto it = scan_resume.find(cursor & kTokenMask); it != scan_resume.end()) from = it->second;
    const raft::GroupId group = 2 + index;
    ++c->inflight;
    const uint64_t id = c->id;
    std::weak_ptr<Impl> weak = weak_from_this();
    node->group_read_barrier(group, [weak, id, seq, group, index, groups, from, pattern, type,
                                     count](const RpcError& e) {
      std::shared_ptr<Impl> self = weak.lock();
      if (!self) return;
      if (!e.ok()) {
        self->complete_from_anywhere(id, seq, from_rpc_error(e));
        return;
      }
      asio::post(self->io, [weak, id, seq, group, index, groups, from, pattern, type, count] {
        std::shared_ptr<Impl> port = weak.lock();
        if (!port) return;
        auto it = port->connections.find(id);
        if (it == port->connections.end()) return;
        std::vector<kv::GroupStore::RedisKey> keys;
        bool more = false;
        storage::Status st = port->node->group_redis_keys(group, from, static_cast<size_t>(count),
                                                          0, wall_ms(), &keys, &more);
        if (!st.is_ok()) {
          port->complete(it->second, seq, Reply::error("ERR " + st.to_string()));
          return;
        }
        uint64_t next = index + 1 < groups ? (index + 1) << kCursorGroupShift : 0;
        if (more) {
          // On from the key right after the last one.
          next = (index << kCursorGroupShift) | port->remember_scan(keys.back().key + '\0');
        }
        std::vector<Reply> out;
        for (auto& k : keys) {
          if ((pattern.empty() || redis::glob_match(pattern, k.key)) &&
              (type.empty() || type == k.type))
            out.push_back(Reply::bulk(std::move(k.key)));
        }
        port->complete(
            it->second, seq,
            Reply::array({Reply::bulk(std::to_string(next)), Reply::array(std::move(out))}));
      });
    });
  }

  // The data group of the command's keys; false (with the reply) if they span groups or no
  // group serves them.
  bool route(const redis::CommandSpec& spec, const std::vector<std::string>& argv,
             raft::GroupId* group, Reply* error) {
    const uint32_t groups = node->initial_group_count();
    if (groups == 0) {
      *error = Reply::error(
          "CLUSTERDOWN the Redis face needs data groups: start a new cluster with "
          "--initial-groups");
      return false;
    }
    std::optional<raft::GroupId> chosen;
    for (std::string_view key : redis::command_keys(spec, argv)) {
      uint32_t slot = redis::key_slot(key);
      raft::GroupId g = 2 + raft::GroupId{slot} * groups / redis::kSlots;
      if (chosen && *chosen != g) {
        *error = Reply::error("CROSSSLOT Keys in request don't hash to the same slot");
        return false;
      }
      chosen = g;
    }
    if (!chosen && redis::names_keys_by_count(spec)) {
      chosen = 2;  // a bad count of keys: the command answers why, in any group
    } else if (!chosen) {
      *error = Reply::error("ERR the command names no key");
      return false;
    }
    if ((spec.name == std::string_view("sort") || spec.name == std::string_view("sort_ro")) &&
        groups > 1) {
      // BY and GET patterns read other keys: only those of the sorted key's group are here
      // (as Redis Cluster wants them in the key's slot, named by a hash tag).
      for (size_t i = 2; i + 1 < argv.size(); ++i) {
        std::string opt = lower(argv[i]);
        if (opt != "by" && opt != "get") continue;
        const std::string& pattern = argv[++i];
        if (pattern == "#" || pattern.find('*') == std::string::npos) continue;
        size_t open = pattern.find('{');
        size_t close_at = open == std::string::npos ? open : pattern.find('}', open + 1);
        std::string_view tag = close_at == std::string::npos ? std::string_view()
                                                             : std::string_view(pattern).substr(
                                                                   open + 1, close_at - open - 1);
        bool same = !tag.empty() && tag.find('*') == std::string_view::npos &&
                    2 + raft::GroupId{redis::key_slot(tag)} * groups / redis::kSlots == *chosen;
        if (!same) {
          std::string upper = opt == "by" ? "BY" : "GET";
          *error = Reply::error("ERR " + upper +
                                " option of SORT denied in Cluster mode when keys in different "
                                "slots");
          return false;
        }
      }
    }
    *group = *chosen;
    return true;
  }

  Reply local_command(const std::shared_ptr<Conn>& c, const std::vector<std::string>& a,
                      bool* close_after) {
    const std::string& name = a[0];
    if (name == "ping") {
      if (a.size() > 2) return wrong_args("ping");
      if (c->subscribed() && c->protocol == 2)
        return Reply::array({Reply::bulk("pong"), Reply::bulk(a.size() == 2 ? a[1] : "")});
      return a.size() == 2 ? Reply::bulk(a[1]) : Reply::status("PONG");
    }
    if (name == "pubsub") return pubsub(a);
    if (name == "echo") return Reply::bulk(a[1]);
    if (name == "quit") {
      *close_after = true;
      return Reply::ok();
    }
    if (name == "multi") {
      if (c->in_multi) return Reply::error("ERR MULTI calls can not be nested");
      c->in_multi = true;
      c->multi_failed = false;
      c->queued.clear();
      return Reply::ok();
    }
    if (name == "discard") {
      if (!c->in_multi) return Reply::error("ERR DISCARD without MULTI");
      c->in_multi = false;
      c->queued.clear();
      c->watched.clear();
      ++c->watch_generation;
      return Reply::ok();
    }
    if (name == "watch") return Reply::error("ERR WATCH inside MULTI is not allowed");
    if (name == "unwatch") {
      c->watched.clear();
      ++c->watch_generation;
      return Reply::ok();
    }
    if (name == "reset") {
      c->in_multi = false;
      c->queued.clear();
      c->watched.clear();
      ++c->watch_generation;
      c->user.clear();
      c->protocol = 2;
      c->name.clear();
      c->local_reads = false;
      unsubscribe_all(*c);
      return Reply::status("RESET");
    }
    if (name == "select") {
      int64_t db = 0;
      if (!redis::parse_int64(a[1], &db)) return Reply::error(redis::errors::kNotInteger);
      return db == 0 ? Reply::ok() : Reply::error("ERR DB index is out of range");
    }
    if (name == "readonly") {
      c->local_reads = true;
      return Reply::ok();
    }
    if (name == "readwrite") {
      c->local_reads = false;
      return Reply::ok();
    }
    if (name == "time") {
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
      return Reply::array({Reply::bulk(std::to_string(us / 1'000'000)),
                           Reply::bulk(std::to_string(us % 1'000'000))});
    }
    if (name == "hello") return hello(c, a);
    if (name == "client") return client(c, a);
    if (name == "command") return command(a);
    if (name == "info") return info(a);
    if (name == "config") return config(a);
    if (name == "function") return function(a);
    return unknown_command(a);
  }

  Reply hello(const std::shared_ptr<Conn>& c, const std::vector<std::string>& a) {
    int protocol = c->protocol;
    size_t i = 1;
    if (a.size() > 1) {
      int64_t v = 0;
      if (!redis::parse_int64(a[1], &v))
        return Reply::error("ERR Protocol version is not an integer or out of range");
      if (v < 2 || v > 3) return Reply::error("NOPROTO unsupported protocol version");
      protocol = static_cast<int>(v);
      i = 2;
    }
    std::optional<std::string> setname;
    for (; i < a.size(); ++i) {
      std::string opt = lower(a[i]);
      if (opt == "auth" && i + 2 < a.size()) {
        i += 2;  // checked before (auth), when auth is on
      } else if (opt == "setname" && i + 1 < a.size()) {
        setname = a[++i];
      } else {
        return Reply::error("ERR Syntax error in HELLO option '" + a[i] + "'");
      }
    }
    c->protocol = protocol;
    if (setname) c->name = *setname;
    return Reply::map({Reply::bulk("server"), Reply::bulk("redis"), Reply::bulk("version"),
                       Reply::bulk(kVersion), Reply::bulk("proto"), Reply::integer_of(protocol),
                       Reply::bulk("id"), Reply::integer_of(static_cast<int64_t>(c->id)),
                       Reply::bulk("mode"), Reply::bulk("standalone"), Reply::bulk("role"),
                       Reply::bulk("master"), Reply::bulk("modules"), Reply::array()});
  }

  std::string client_line(const Conn& c) const {
    int64_t now = wall_ms();
    return "id=" + std::to_string(c.id) + " addr=" + c.peer + " name=" + c.name +
           " age=" + std::to_string((now - c.created_ms) / 1000) +
           " idle=" + std::to_string((now - c.last_ms) / 1000) +
           " db=0 resp=" + std::to_string(c.protocol) + "\n";
  }

  Reply client(const std::shared_ptr<Conn>& c, const std::vector<std::string>& a) {
    std::string sub = lower(a[1]);
    if (sub == "setname" && a.size() == 3) {
      for (char ch : a[2]) {
        if (ch < '!' || ch > '~')
          return Reply::error(
              "ERR Client names cannot contain spaces, newlines or special characters.");
      }
      c->name = a[2];
      return Reply::ok();
    }
    if (sub == "getname" && a.size() == 2)
      return c->name.empty() ? Reply::null() : Reply::bulk(c->name);
    if (sub == "id" && a.size() == 2) return Reply::integer_of(static_cast<int64_t>(c->id));
    if (sub == "info" && a.size() == 2) return Reply::bulk(client_line(*c));
    if (sub == "list") {
      std::string out;
      for (const auto& [id, conn] : connections)
        out += client_line(*conn);
      return Reply::bulk(std::move(out));
    }
    if (sub == "setinfo" && a.size() == 4) return Reply::ok();
    if (sub == "unblock" && (a.size() == 3 || a.size() == 4)) {
      int64_t id = 0;
      if (!redis::parse_int64(a[2], &id)) return Reply::error(redis::errors::kNotInteger);
      bool as_error = false;
      if (a.size() == 4) {
        std::string how = lower(a[3]);
        if (how != "timeout" && how != "error")
          return Reply::error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
        as_error = how == "error";
      }
      auto it = connections.find(static_cast<uint64_t>(id));
      if (it == connections.end()) return Reply::integer_of(0);
      auto b = blocked.find(it->second->blocked_order);
      // One in the log now is answered by what the log says.
      if (b == blocked.end() || b->second.trying) return Reply::integer_of(0);
      unblock(b, as_error ? Reply::error("UNBLOCKED client unblocked via CLIENT UNBLOCK")
                          : Reply::null_array());
      return Reply::integer_of(1);
    }
    if (sub == "setname" || sub == "getname" || sub == "id" || sub == "info" || sub == "setinfo")
      return Reply::error("ERR wrong number of arguments for 'client|" + sub + "' command");
    return unknown_subcommand(a[1], "client");
  }

  static Reply command_info(const redis::CommandSpec& s) {
    std::vector<Reply> flags;
    if ((s.flags & redis::kWrite) != 0) flags.push_back(Reply::status("write"));
    if ((s.flags & redis::kReadOnly) != 0) flags.push_back(Reply::status("readonly"));
    if ((s.flags & redis::kKeyless) != 0) flags.push_back(Reply::status("fast"));
    return Reply::array({Reply::bulk(s.name), Reply::integer_of(s.arity),
                         Reply::array(std::move(flags)), Reply::integer_of(s.first_key),
                         Reply::integer_of(s.last_key), Reply::integer_of(s.key_step),
                         Reply::array(), Reply::array(), Reply::array(), Reply::array()});
  }

  Reply command(const std::vector<std::string>& a) {
    const auto& table = redis::command_table();
    if (a.size() == 1) {
      std::vector<Reply> all;
      for (const redis::CommandSpec& s : table) {
        if (s.name[0] != '\x01') all.push_back(command_info(s));
      }
      return Reply::array(std::move(all));
    }
    std::string sub = lower(a[1]);
    if (sub == "count") {
      return Reply::integer_of(static_cast<int64_t>(
          std::count_if(table.begin(), table.end(),
                        [](const redis::CommandSpec& s) { return s.name[0] != '\x01'; })));
    }
    if (sub == "info") {
      std::vector<Reply> out;
      for (size_t i = 2; i < a.size(); ++i) {
        const redis::CommandSpec* s = redis::find_command(a[i]);
        out.push_back(s ? command_info(*s) : Reply::null_array());
      }
      return Reply::array(std::move(out));
    }
    if (sub == "docs") return Reply::map();
    return unknown_subcommand(a[1], "command");
  }

  Reply info(const std::vector<std::string>& a) {
    std::string section = a.size() > 1 ? lower(a[1]) : "default";
    bool all = section == "default" || section == "all" || section == "everything";
    std::string out;
    if (all || section == "server") {
      out += "# Server\r\nredis_version:" + std::string(kVersion) +
             "\r\nredis_mode:standalone\r\nchorus:1\r\n\r\n";
    }
    if (all || section == "clients") {
      out += "# Clients\r\nconnected_clients:" + std::to_string(connections.size()) +
             "\r\nblocked_clients:" + std::to_string(blocked_clients.load()) + "\r\n\r\n";
    }
    if (all || section == "persistence") {
      out += "# Persistence\r\nloading:0\r\naof_enabled:1\r\n\r\n";
    }
    if (all || section == "stats") {
      out += "# Stats\r\ntotal_connections_received:" + std::to_string(connections_received) +
             "\r\ntotal_commands_processed:" + std::to_string(commands_processed) +
             "\r\nexpired_keys:" + std::to_string(expired_keys.load()) + "\r\n\r\n";
    }
    if (all || section == "replication") out += "# Replication\r\nrole:master\r\n\r\n";
    if (all || section == "keyspace") out += "# Keyspace\r\n\r\n";
    return Reply::bulk(std::move(out));
  }

  Reply config(const std::vector<std::string>& a) {
    std::string sub = lower(a[1]);
    if (sub == "get") {
      if (a.size() < 3) return wrong_args("config|get");
      std::vector<Reply> out;
      for (auto& [name, value] : server_config.get({a.begin() + 2, a.end()})) {
        out.push_back(Reply::bulk(std::move(name)));
        out.push_back(Reply::bulk(std::move(value)));
      }
      return Reply::map(std::move(out));
    }
    if (sub == "resetstat") return Reply::ok();
    if (sub == "set") {
      if (a.size() < 4 || a.size() % 2 != 0) return wrong_args("config|set");
      return server_config.set({a.begin() + 2, a.end()});
    }
    return unknown_subcommand(a[1], "config");
  }

  // Chorus runs no scripts: there are never functions to list, and flushing none succeeds.
  static Reply function(const std::vector<std::string>& a) {
    std::string sub = lower(a[1]);
    if (sub == "flush") {
      if (a.size() > 3 || (a.size() == 3 && lower(a[2]) != "sync" && lower(a[2]) != "async"))
        return Reply::error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
      return Reply::ok();
    }
    if (sub == "list") return Reply::array();
    return unknown_subcommand(a[1], "function");
  }

  // ---- AUTH: the etcd face's users ----
  //
  // With the etcd face's auth enabled (etcdctl auth enable), a connection must first AUTH (or
  // HELLO ... AUTH) as one of its users with a password; every command checks that the user
  // still exists and auth is still on. Roles' key permissions are the etcd keyspace's and do
  // not reach Redis keys: any user may use the Redis face. Passwords are checked (bcrypt) on
  // a thread of their own, so a login never stalls the connections.

  IoThread auth_loop;  // started and stopped with the port

  bool authenticated(const Conn& c) const {
    if (!node->store().auth_summary().enabled) return true;
    if (c.user.empty()) return false;
    std::shared_ptr<const kv::AuthState> state = node->store().auth_state();
    return state->users.count(c.user) > 0;
  }

  // AUTH [user] password, or HELLO protover AUTH user password [SETNAME name].
  void auth(const std::shared_ptr<Conn>& c, uint64_t seq, std::vector<std::string> argv) {
    std::string user, password;
    const bool hello_auth = argv[0] == "hello";
    if (hello_auth) {
      for (size_t i = 2; i + 2 < argv.size(); ++i) {
        if (lower(argv[i]) == "auth") {
          user = argv[i + 1];
          password = argv[i + 2];
          break;
        }
      }
    } else if (argv.size() == 2) {
      user = "default";
      password = argv[1];
    } else if (argv.size() == 3) {
      user = argv[1];
      password = argv[2];
    } else {
      finish(c, seq, Reply::error(redis::errors::kSyntax));
      return;
    }
    if (!node->store().auth_summary().enabled) {
      if (hello_auth) {
        answer_hello(c, seq, argv);  // as Redis's default user without a password
      } else {
        finish(c, seq,
               Reply::error(argv.size() == 2
                                ? "ERR AUTH <password> called without any password configured "
                                  "for the default user. Are you sure your configuration is "
                                  "correct?"
                                : "WRONGPASS invalid username-password pair or user is "
                                  "disabled."));
      }
      return;
    }
    std::shared_ptr<const kv::AuthState> state = node->store().auth_state();
    ++c->inflight;
    c->inflight_kind = redis::kReadOnly | redis::kBlocking;  // nothing after it runs before it
    std::weak_ptr<Impl> weak = weak_from_this();
    const uint64_t id = c->id;
    const int cost = options.bcrypt_cost;
    asio::post(auth_loop.io, [weak, id, seq, state, user, password, cost,
                              argv = std::move(argv)]() mutable {
      auto it = state->users.find(user);
      bool known = it != state->users.end() && !it->second.no_password;
      // An unknown user is checked against no hash: the same work as a wrong password.
      bool ok = check_password(password, known ? it->second.password_hash : "", cost) && known;
      std::shared_ptr<Impl> self = weak.lock();
      if (!self) return;
      asio::post(self->io, [weak, id, seq, ok, user, argv = std::move(argv)] {
        std::shared_ptr<Impl> port = weak.lock();
        if (!port) return;
        auto conn = port->connections.find(id);
        if (conn == port->connections.end()) return;
        if (!ok) {
          port->complete(conn->second, seq,
                         Reply::error("WRONGPASS invalid username-password pair or user is "
                                      "disabled."));
          return;
        }
        conn->second->user = user;
        if (argv[0] != "hello") {
          port->complete(conn->second, seq, Reply::ok());
          return;
        }
        Reply r = port->hello(conn->second, argv);
        conn->second->pending[seq - conn->second->first_seq].protocol = conn->second->protocol;
        port->complete(conn->second, seq, r);
      });
    });
  }

  void answer_hello(const std::shared_ptr<Conn>& c, uint64_t seq,
                    const std::vector<std::string>& argv) {
    Reply r = hello(c, argv);
    c->pending[seq - c->first_seq].protocol = c->protocol;
    finish(c, seq, r);
  }

  // ---- pub/sub ----
  //
  // PUBLISH goes through the log of its channel's group (as a key would), so every member
  // applies it, in the group's order, and delivers it to its own subscribers: a message
  // reaches the subscribers of every member, and those of one member see one group's
  // messages in log order. Subscriptions are per member, as in Redis Cluster; PUBLISH answers
  // how many subscribers of the member it was sent to received it.

  std::unordered_map<std::string, std::set<uint64_t>> channel_subs;  // I/O thread only
  std::map<std::string, std::set<uint64_t>> pattern_subs;
  std::atomic<size_t> subscriptions{0};
  // A subscriber this far behind on its output is closed (Redis's pubsub buffer limit).
  static constexpr size_t kMaxSubscriberBacklog = 32u << 20;
  static constexpr size_t kMaxQueuedMessages = 64 * kMaxPendingReplies;

  std::vector<Reply> subscription(const std::shared_ptr<Conn>& c,
                                  const std::vector<std::string>& a) {
    const std::string& name = a[0];
    const bool pattern = name[0] == 'p';
    std::set<std::string>& mine = pattern ? c->patterns : c->channels;
    std::vector<Reply> out;
    auto count = [&] {
      return Reply::integer_of(static_cast<int64_t>(c->channels.size() + c->patterns.size()));
    };
    if (name == "subscribe" || name == "psubscribe") {
      for (size_t i = 1; i < a.size(); ++i) {
        if (mine.insert(a[i]).second) {
          (pattern ? pattern_subs[a[i]] : channel_subs[a[i]]).insert(c->id);
          ++subscriptions;
        }
        out.push_back(Reply::push({Reply::bulk(name), Reply::bulk(a[i]), count()}));
      }
      return out;
    }
    std::vector<std::string> names(a.begin() + 1, a.end());
    if (names.empty()) names.assign(mine.begin(), mine.end());
    for (const std::string& n : names) {
      if (mine.erase(n) > 0) {
        drop_subscriber(pattern, n, c->id);
        --subscriptions;
      }
      out.push_back(Reply::push({Reply::bulk(name), Reply::bulk(n), count()}));
    }
    if (out.empty()) out.push_back(Reply::push({Reply::bulk(name), Reply::null(), count()}));
    return out;
  }

  void drop_subscriber(bool pattern, const std::string& name, uint64_t id) {
    if (pattern) {
      auto it = pattern_subs.find(name);
      if (it != pattern_subs.end() && (it->second.erase(id), it->second.empty()))
        pattern_subs.erase(it);
    } else {
      auto it = channel_subs.find(name);
      if (it != channel_subs.end() && (it->second.erase(id), it->second.empty()))
        channel_subs.erase(it);
    }
  }

  void unsubscribe_all(Conn& c) {
    for (const std::string& n : c.channels)
      drop_subscriber(false, n, c.id);
    for (const std::string& n : c.patterns)
      drop_subscriber(true, n, c.id);
    subscriptions -= c.channels.size() + c.patterns.size();
    c.channels.clear();
    c.patterns.clear();
  }

  // A message applied here: to every local subscriber of its channel or a matching pattern.
  // Answers how many received it.
  int64_t deliver(const std::string& channel, const std::string& message) {
    int64_t received = 0;
    auto send = [&](uint64_t id, Reply r) {
      auto it = connections.find(id);
      if (it == connections.end() || it->second->closed) return;
      const std::shared_ptr<Conn>& c = it->second;
      // Far behind on its output, or with messages queued behind a reply still owed.
      if (c->out.size() + c->writing_buf.size() > kMaxSubscriberBacklog ||
          c->pending.size() > kMaxQueuedMessages) {
        close(c);
        return;
      }
      finish(c, push(c), r);
      ++received;
    };
    if (auto it = channel_subs.find(channel); it != channel_subs.end()) {
      const std::set<uint64_t> ids = it->second;
      for (uint64_t id : ids)
        send(id, Reply::push({Reply::bulk("message"), Reply::bulk(channel), Reply::bulk(message)}));
    }
    std::vector<std::pair<std::string, uint64_t>> matched;
    for (const auto& [pattern, ids] : pattern_subs) {
      if (!redis::glob_match(pattern, channel)) continue;
      for (uint64_t id : ids)
        matched.emplace_back(pattern, id);
    }
    for (const auto& [pattern, id] : matched)
      send(id, Reply::push({Reply::bulk("pmessage"), Reply::bulk(pattern), Reply::bulk(channel),
                            Reply::bulk(message)}));
    return received;
  }

  // How many local subscribers a message on `channel` reaches (PUBLISH's answer).
  int64_t receivers(const std::string& channel) const {
    int64_t n = 0;
    if (auto it = channel_subs.find(channel); it != channel_subs.end())
      n += static_cast<int64_t>(it->second.size());
    for (const auto& [pattern, ids] : pattern_subs) {
      if (redis::glob_match(pattern, channel)) n += static_cast<int64_t>(ids.size());
    }
    return n;
  }

  // PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT: this member's subscriptions.
  Reply pubsub(const std::vector<std::string>& a) {
    std::string sub = lower(a[1]);
    if (sub == "channels" || sub == "shardchannels") {
      if (a.size() > 3) return wrong_args("pubsub|" + sub);
      std::vector<Reply> out;
      if (sub == "channels") {
        for (const auto& [name, ids] : channel_subs) {
          if (a.size() == 2 || redis::glob_match(a[2], name)) out.push_back(Reply::bulk(name));
        }
      }
      return Reply::array(std::move(out));
    }
    if (sub == "numsub" || sub == "shardnumsub") {
      std::vector<Reply> out;
      for (size_t i = 2; i < a.size(); ++i) {
        auto it = channel_subs.find(a[i]);
        out.push_back(Reply::bulk(a[i]));
        out.push_back(Reply::integer_of(sub == "numsub" && it != channel_subs.end()
                                            ? static_cast<int64_t>(it->second.size())
                                            : 0));
      }
      return Reply::array(std::move(out));
    }
    if (sub == "numpat") {
      if (a.size() != 2) return wrong_args("pubsub|numpat");
      return Reply::integer_of(static_cast<int64_t>(pattern_subs.size()));
    }
    return unknown_subcommand(a[1], "pubsub");
  }

  // ---- blocking commands: BLPOP, BRPOP, BRPOPLPUSH, BLMOVE, BLMPOP, BZPOPMIN, ... ----
  //
  // The state machine never waits: a blocking command goes through the log as its
  // non-blocking form, which takes what is there or answers null. On null the connection
  // waits here (reading nothing more) until its deadline, and each time this member applies
  // a write of the command's group, a look at the applied state here says whether one of its
  // keys now holds the type it wants; if so the command goes through the log again. Clients
  // blocked first try first, so on one member the first blocked is served first. Every
  // member applies every write of every group, so a write through any member wakes them, and
  // a retry that fails (no leader during a failover) waits for the next write or the
  // once-a-second look, answering only at its deadline: the client gets its answer or a
  // timeout, never silence.

  struct Blocked {
    uint64_t conn = 0;
    uint64_t seq = 0;
    raft::GroupId group = 0;
    std::vector<std::string> argv;
    int64_t deadline_ms = 0;  // 0: none (timeout 0 waits for ever)
    const char* wants = "list";
    bool trying = false;   // in the log now
    bool waiting = false;  // the first try found nothing: counted in blocked_clients
    bool woken = false;    // a write was applied while it was in the log: look again after
  };
  std::map<uint64_t, Blocked> blocked;     // by order of blocking; I/O thread only
  std::atomic<size_t> blocked_clients{0};  // waiting (INFO's blocked_clients)
  std::atomic<size_t> blocked_entries{0};  // in `blocked`: whether applied writes matter
  uint64_t next_block_order = 1;
  asio::steady_timer block_timer{io};
  bool block_timer_armed = false;
  int block_ticks = 0;
  static constexpr int kBlockTickMs = 20;
  static constexpr int kBlockRelookTicks = 50;  // every second, a look at every blocked key

  // XREAD's and XREADGROUP's BLOCK milliseconds; -1 without BLOCK (or a bad value, which the
  // command itself refuses).
  static int64_t stream_block_ms(const std::vector<std::string>& argv) {
    for (size_t i = 1; i + 1 < argv.size(); ++i) {
      if (lower(argv[i]) == "streams") break;
      int64_t ms = 0;
      if (lower(argv[i]) == "block")
        return redis::parse_int64(argv[i + 1], &ms) && ms >= 0 ? ms : -1;
    }
    return -1;
  }

  // XREAD ... BLOCK ms STREAMS key ... $: `$` is the last id when the command came, read
  // linearizably before it waits (a rerun must not take `$` anew).
  void block_stream_read(const std::shared_ptr<Conn>& c, uint64_t seq, raft::GroupId group,
                         std::vector<std::string> argv) {
    if (argv[0] != "xread" || std::find(argv.begin(), argv.end(), "$") == argv.end()) {
      block_start(c, seq, group, std::move(argv));
      return;
    }
    ++c->inflight;  // through the barrier; block_start counts itself
    c->inflight_kind = redis::kWrite | redis::kBlocking;
    std::weak_ptr<Impl> weak = weak_from_this();
    const uint64_t id = c->id;
    node->group_read_barrier(
        group, [weak, id, seq, group, argv = std::move(argv)](const RpcError& e) mutable {
          std::shared_ptr<Impl> self = weak.lock();
          if (!self) return;
          if (!e.ok()) {
            self->complete_from_anywhere(id, seq, from_rpc_error(e));
            return;
          }
          asio::post(self->io, [weak, id, seq, group, argv = std::move(argv)]() mutable {
            std::shared_ptr<Impl> port = weak.lock();
            if (!port) return;
            auto it = port->connections.find(id);
            if (it == port->connections.end()) return;
            const redis::CommandSpec* spec = redis::find_command(argv[0]);
            std::vector<std::string> ask = {"\x01xlastids"};
            for (std::string_view k : redis::command_keys(*spec, argv))
              ask.emplace_back(k);
            Reply last = port->node->group_read_command(group, ask, wall_ms());
            const size_t keys = ask.size() - 1;
            if (last.kind == Reply::Kind::kArray && last.elements.size() == keys) {
              for (size_t i = 0; i < keys; ++i) {
                std::string& want = argv[argv.size() - keys + i];
                if (want == "$") want = last.elements[i].str;
              }
            }
            --it->second->inflight;
            port->block_start(it->second, seq, group, std::move(argv));
          });
        });
  }

  void block_start(const std::shared_ptr<Conn>& c, uint64_t seq, raft::GroupId group,
                   std::vector<std::string> argv) {
    const std::string& name = argv[0];
    Blocked b;
    b.conn = c->id;
    b.seq = seq;
    b.group = group;
    if (name[0] == 'x') {
      int64_t ms = stream_block_ms(argv);
      if (ms > 0) b.deadline_ms = wall_ms() + std::min<int64_t>(ms, int64_t{1} << 50);
      b.wants = "stream";
    } else {
      const std::string& timeout = name == "blmpop" || name == "bzmpop" ? argv[1] : argv.back();
      long double seconds = 0;
      if (redis::parse_long_double(timeout, &seconds) && seconds > 0 && seconds < 1e12)
        b.deadline_ms = wall_ms() + static_cast<int64_t>(std::ceil(seconds * 1000));
      b.wants = name[1] == 'z' ? "zset" : "list";
    }

    b.argv = std::move(argv);
    b.trying = true;
    ++c->inflight;
    c->inflight_kind = redis::kWrite | redis::kBlocking;
    c->blocked_order = next_block_order++;
    auto it = blocked.emplace(c->blocked_order, std::move(b)).first;
    blocked_entries = blocked.size();
    try_blocked(it->first, it->second);
  }

  // Runs a blocked command through its group's log.
  void try_blocked(uint64_t order, Blocked& b) {
    b.trying = true;
    std::weak_ptr<Impl> weak = weak_from_this();
    node->group_command(b.group, redis::encode_command(wall_ms(), b.argv),
                        [weak, order](const RpcError& e, Reply&& reply) {
                          std::shared_ptr<Impl> self = weak.lock();
                          if (!self) return;
                          asio::post(self->io,
                                     [weak, order, e, reply = std::move(reply)]() mutable {
                                       std::shared_ptr<Impl> port = weak.lock();
                                       if (port) port->blocked_tried(order, e, std::move(reply));
                                     });
                        });
  }

  void blocked_tried(uint64_t order, const RpcError& e, Reply reply) {
    auto it = blocked.find(order);
    if (it == blocked.end()) return;  // the connection went
    Blocked& b = it->second;
    b.trying = false;
    // A group without a leader (or too busy) took nothing: wait on. Any other failure (this
    // member no longer hosts the group, a proposal whose outcome is unknown) is answered.
    if (!e.ok() && (!b.waiting || (e.message != rpc_errors::kNoLeader &&
                                   e.message != rpc_errors::kTooManyRequests))) {
      unblock(it, from_rpc_error(e));
      return;
    }
    if (e.ok() && reply.kind != Reply::Kind::kNullArray && reply.kind != Reply::Kind::kNull) {
      if (b.waiting && reply.is_error() && b.argv[0] == "xreadgroup") reply = stream_gone(b, reply);
      unblock(it, reply);
      return;
    }
    // Nothing to take yet, or a retry failed: wait (until the deadline).
    if (b.deadline_ms != 0 && wall_ms() >= b.deadline_ms) {
      unblock(it, Reply::null_array());
      return;
    }
    if (!b.waiting) {
      b.waiting = true;
      ++blocked_clients;
    }
    if (std::exchange(b.woken, false) && worth_trying(b)) {
      try_blocked(order, b);
      return;
    }
    arm_block_timer();
  }

  void unblock(std::map<uint64_t, Blocked>::iterator it, const Reply& reply) {
    const uint64_t conn = it->second.conn, seq = it->second.seq;
    if (it->second.waiting) --blocked_clients;
    blocked.erase(it);
    blocked_entries = blocked.size();
    auto c = connections.find(conn);
    if (c == connections.end()) return;
    c->second->blocked_order = 0;
    complete(c->second, seq, reply);
  }

  // A blocked XREADGROUP whose stream or group went while it waited answers as Redis does.
  Reply stream_gone(const Blocked& b, const Reply& error) {
    const bool nogroup = error.str.rfind("NOGROUP", 0) == 0;
    if (!nogroup && error.str.rfind("WRONGTYPE", 0) != 0) return error;
    const redis::CommandSpec* spec = redis::find_command(b.argv[0]);
    for (std::string_view key : redis::command_keys(*spec, b.argv)) {
      Reply t = node->group_read_command(b.group, {"type", std::string(key)}, wall_ms());
      if (t.str != "stream") return Reply::error("UNBLOCKED the stream key no longer exists");
    }
    if (nogroup)
      return Reply::error("NOGROUP the consumer group this client was blocked on no longer exists");
    return error;
  }

  // Whether one of the blocked command's keys holds what it waits for, here.
  bool worth_trying(const Blocked& b) {
    if (b.argv[0][0] == 'x') {
      // A stream may exist with nothing new: ask whether the read would deliver.
      std::vector<std::string> probe = {"\x01xready"};
      probe.insert(probe.end(), b.argv.begin(), b.argv.end());
      Reply r = node->group_read_command(b.group, probe, wall_ms());
      return r.kind != Reply::Kind::kInteger || r.integer != 0;
    }
    const redis::CommandSpec* spec = redis::find_command(b.argv[0]);
    std::vector<std::string_view> sources = redis::command_keys(*spec, b.argv);
    // BRPOPLPUSH and BLMOVE wait on their source only: a destination that exists must not
    // make them try (and write to the log) again and again.
    if (b.argv[0] == "brpoplpush" || b.argv[0] == "blmove") sources.resize(1);
    for (std::string_view key : sources) {
      Reply t = node->group_read_command(b.group, {"type", std::string(key)}, wall_ms());
      if (t.str == b.wants) return true;
    }
    return false;
  }

  // Writes applied here to `groups`: the blocked commands of those groups look again.
  void wake(const std::vector<raft::GroupId>& groups) {
    for (auto& [order, b] : blocked) {
      if (std::find(groups.begin(), groups.end(), b.group) == groups.end()) continue;
      if (b.trying) {
        b.woken = true;
      } else if (worth_trying(b)) {
        try_blocked(order, b);
      }
    }
  }

  void arm_block_timer() {
    if (block_timer_armed || blocked.empty()) return;
    block_timer_armed = true;
    block_timer.expires_after(std::chrono::milliseconds(kBlockTickMs));
    block_timer.async_wait([this](const asio::error_code& ec) {
      block_timer_armed = false;
      if (ec || stopping) return;
      const int64_t now = wall_ms();
      const bool relook = ++block_ticks % kBlockRelookTicks == 0;
      // Orders first: answering one may run its connection's next command, which may unblock
      // (erase) another.
      std::vector<uint64_t> orders;
      orders.reserve(blocked.size());
      for (const auto& [order, b] : blocked)
        orders.push_back(order);
      for (uint64_t order : orders) {
        auto it = blocked.find(order);
        if (it == blocked.end() || it->second.trying) continue;
        if (it->second.deadline_ms != 0 && now >= it->second.deadline_ms) {
          unblock(it, Reply::null_array());
        } else if (relook && worth_trying(it->second)) {
          try_blocked(order, it->second);
        }
      }
      arm_block_timer();
    });
  }

  // ---- active expiry ----

  static constexpr int kSweepIntervalMs = 1000;
  static constexpr size_t kSweepExamine = 1000;  // key records per group per sweep

  void arm_sweep() {
    sweep_timer.expires_after(std::chrono::milliseconds(kSweepIntervalMs));
    sweep_timer.async_wait([this](const asio::error_code& ec) {
      if (ec || stopping) return;
      std::weak_ptr<Impl> weak = weak_from_this();
      node->group_infos([weak](const RpcError& e, std::vector<GroupInfo>&& infos) {
        std::shared_ptr<Impl> self = weak.lock();
        if (!self) return;
        asio::post(self->io, [weak, ok = e.ok(), infos = std::move(infos)] {
          std::shared_ptr<Impl> port = weak.lock();
          if (!port || port->stopping) return;
          if (ok) port->sweep(infos);
          port->arm_sweep();
        });
      });
    });
  }

  // Proposes the deletion of the expired keys found in each keyspace group led here.
  void sweep(const std::vector<GroupInfo>& infos) {
    const uint32_t groups = node->initial_group_count();
    const int64_t now = wall_ms();
    for (const GroupInfo& g : infos) {
      if (g.leader != node->id() || g.id < 2 || g.id >= 2 + raft::GroupId{groups}) continue;
      std::vector<std::string> expired;
      std::string next;
      if (!node->group_redis_expired(g.id, sweep_from[g.id], kSweepExamine, now, &expired, &next)
               .is_ok())
        continue;
      sweep_from[g.id] = next;
      if (expired.empty()) continue;
      std::vector<std::string> argv = {std::string(redis::kExpireSweep)};
      for (std::string& k : expired)
        argv.push_back(std::move(k));
      std::weak_ptr<Impl> weak = weak_from_this();
      node->group_command(g.id, redis::encode_command(now, argv),
                          [weak](const RpcError& e, Reply&& reply) {
                            std::shared_ptr<Impl> self = weak.lock();
                            if (self && e.ok() && reply.kind == Reply::Kind::kInteger)
                              self->expired_keys += static_cast<uint64_t>(reply.integer);
                          });
    }
  }

  void shutdown() {
    stopping = true;
    sweep_timer.cancel();
    asio::error_code ignored;
    for (const auto& l : listeners) {
      l->acceptor.close(ignored);
      l->retry.cancel();
    }
    std::vector<std::shared_ptr<Conn>> all;
    for (const auto& [id, c] : connections)
      all.push_back(c);
    for (const auto& c : all)
      close(c);
  }
};

RedisPort::RedisPort(Node* node, RedisOptions options)
    : impl_(std::make_shared<Impl>(node, options)) {}

RedisPort::~RedisPort() {
  stop();
}

storage::Status RedisPort::listen(const std::string& host, uint16_t port, uint16_t* bound_port) {
  Impl& d = *impl_;
  auto l = std::make_unique<Listener>(d.io);
  CHORUS_RETURN_IF_ERROR(bind_acceptor(l->acceptor, host, port, bound_port));
  d.listeners.push_back(std::move(l));
  return storage::Status::ok();
}

void RedisPort::start() {
  Impl& d = *impl_;
  std::weak_ptr<Impl> weak = impl_;
  d.node->set_groups_applied_listener(
      [weak](const std::vector<raft::GroupId>& groups, kv::GroupStore::Published&& published) {
        std::shared_ptr<Impl> self = weak.lock();
        if (!self) return;
        const bool waiting = self->blocked_entries.load() > 0;
        if (self->subscriptions.load() == 0) published.clear();
        if (!waiting && published.empty()) return;
        asio::post(self->io, [weak, groups, waiting, published = std::move(published)] {
          std::shared_ptr<Impl> port = weak.lock();
          if (!port || port->stopping) return;
          for (const auto& [channel, message] : published)
            port->deliver(channel, message);
          if (waiting) port->wake(groups);
        });
      });
  d.auth_loop.start("chorus-redis-auth", [] {});
  d.loop.start("chorus-redis", [&d] {
    for (const auto& l : d.listeners)
      d.accept(l.get());
    d.arm_sweep();
  });
}

void RedisPort::stop() {
  Impl& d = *impl_;
  d.loop.stop([&d] { d.shutdown(); });
  d.auth_loop.stop([] {});
}

}  // namespace chorus::server
