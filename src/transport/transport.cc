#include "transport/transport.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

// GCC's flow analysis, after inlining Asio's reactor at -O1 and above, flags a dereference in
// scheduler::compensating_work_started() that Asio guarantees only runs on a scheduler thread.
// The warning is reported inside Asio's own headers, so it is silenced for them alone.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <asio.hpp>
#include <asio/ssl.hpp>

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#pragma GCC diagnostic pop

#include "base/coding.h"
#include "base/thread_name.h"
#include "transport/codec.h"
#include "transport/tls_stream.h"

namespace chorus::transport {
namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Every frame read before a handshake completes, and every frame a dialer reads, is a control
// frame: a hello, a reject reason, a probe. Capping them keeps a stranger from making us buffer
// max_frame_bytes before it has said who it is.
constexpr uint32_t kMaxControlFrameBytes = 4096;
constexpr size_t kReadBufferBytes = 64 << 10;
// Answers (acknowledgement, pongs) waiting on an accepted connection whose dialer does not read
// them; past this the dialer is misbehaving and the connection closes.
constexpr size_t kMaxAcceptorOutboxBytes = 64 << 10;
// After accept() fails (out of descriptors, say), wait this long instead of spinning.
constexpr int kAcceptRetryMs = 100;
// Room at the start of a batch's payload for its message count.
constexpr size_t kCountBytes = 4;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "transport: %s\n", what);
  std::abort();
}

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
          .count());
}

void add(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed);
}

// Every connection is an SSL stream over its socket; without peer TLS only the socket beneath
// is used (a context that never handshakes sits idle).
using Context = std::shared_ptr<asio::ssl::context>;

Context plain_context() {
  static Context ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls);
  return ctx;
}

// A context from the files as they are now (read for each connection: rotation needs no
// restart). Null, with *error naming the file, when one cannot be used.
Context tls_context(const PeerTls& t, bool server, std::string* error) {
  return make_tls_context(t, server, "peer", error);
}

// etcd's checks of a peer's certificate beyond the CA's signature (see PeerTls): the reason it
// is refused, or empty.
// The common name and host name checks, which apply to both ends of a peer connection.
std::string refuse_name(const PeerTls& t, SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return {};  // without a CA nothing is verified (--peer-auto-tls)
  if (!t.allowed_cn.empty()) {
    if (common_name(cert) != t.allowed_cn) {
      return "its certificate's common name is not --peer-cert-allowed-cn '" + t.allowed_cn + "'";
    }
  }
  if (!t.allowed_hostname.empty() && !names_host(cert, t.allowed_hostname)) {
    return "its certificate is not valid for --peer-cert-allowed-hostname '" + t.allowed_hostname +
           "'";
  }
  return {};
}

std::string refuse_unnamed_address(const std::string& ip) {
  return "its certificate names no address it dials from (" + ip +
         "); --experimental-peer-skip-client-san-verification skips this check";
}

// What an acceptor checks of a dialer: the names, then its address. Either a reason to
// refuse it, or, when only its DNS names can say whether it may dial from `from`, those names
// (resolved by the caller, as a lookup may take a while).
struct DialerCheck {
  std::string refuse;
  std::vector<std::string> dns_names;
};

DialerCheck check_dialer(const PeerTls& t, SSL* ssl, const asio::ip::address& from) {
  if (std::string why = refuse_name(t, ssl); !why.empty()) return {why, {}};
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || !t.check_dialer_address) return {};
  bool has_ip = false;
  std::vector<std::string> dns;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_IPADD) has_ip = true;
    if (name->type == GEN_DNS) {
      const ASN1_IA5STRING* s = name->d.dNSName;
      dns.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
    }
  }
  GENERAL_NAMES_free(names);
  if (!has_ip && dns.empty()) return {};  // names no address: nothing to compare, as in etcd
  const std::string ip = from.to_string();
  if (has_ip && X509_check_ip_asc(cert, ip.c_str(), 0) == 1) return {};
  if (!dns.empty()) return {"", std::move(dns)};
  return {refuse_unnamed_address(ip), {}};
}

// Readies a dialer's stream to check the acceptor's certificate against the dialed host.
void expect_host(Stream& s, const PeerTls& t, const std::string& host) {
  asio::error_code ec;
  asio::ip::make_address(host, ec);
  if (ec) {  // SNI, for names only (SSL_set_tlsext_host_name, without its C cast)
    SSL_ctrl(s.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(host.c_str()));
  }
  if (!t.trusted_ca_file.empty()) s.set_verify_callback(asio::ssl::host_name_verification(host));
}

struct Counters {
  std::atomic<uint64_t> frames_sent{0}, frames_received{0}, bytes_sent{0}, bytes_received{0},
      messages_sent{0}, messages_received{0}, messages_dropped{0}, bad_frames{0},
      handshakes_rejected{0}, connects{0}, disconnects{0};
};

// Messages that will leave in one kMessages frame: the payload, starting with room for the
// count, which is filled in when the frame is written.
struct Batch {
  std::string payload = std::string(kCountBytes, '\0');
  uint32_t count = 0;
};

// One dialed connection. A redial makes a new one instead of reusing it, so a handler of a
// connection that has since closed sees kClosed and does nothing.
struct OutConn {
  enum class State : uint8_t { kConnecting, kHandshaking, kReady, kClosed };

  OutConn(asio::io_context& io, Context context, bool use_tls)
      : ctx(std::move(context)),
        stream(io, *ctx),
        tls(use_tls),
        resolver(io),
        deadline(io),
        decoder(kMaxControlFrameBytes) {}

  tcp::socket& socket() { return stream.next_layer(); }

  State state = State::kConnecting;
  Context ctx;  // outlives the stream
  Stream stream;
  bool tls;
  tcp::resolver resolver;
  asio::steady_timer deadline;  // connect and handshake
  FrameDecoder decoder;
  std::array<char, kReadBufferBytes> read_buffer{};
  Clock::time_point hello_sent;
  // Control frames (the hello, probes) for the next write.
  std::string control;
  uint64_t control_frames = 0;
  // The write under way; its buffers point into these.
  bool writing = false;
  std::string control_in_flight;
  std::vector<Batch> batches_in_flight;
  std::string headers_in_flight;
  std::vector<asio::const_buffer> buffers;
  uint64_t frames_in_flight = 0;
  uint64_t messages_in_flight = 0;
  uint64_t message_bytes_in_flight = 0;
};

// An accepted connection: messages in, answers out.
struct InConn {
  InConn(tcp::socket s, Context context, bool use_tls)
      : ctx(std::move(context)),
        stream(std::move(s), *ctx),
        tls(use_tls),
        deadline(stream.get_executor()),
        decoder(kMaxControlFrameBytes) {}

  tcp::socket& socket() { return stream.next_layer(); }

  Context ctx;  // outlives the stream
  Stream stream;
  bool tls;
  asio::steady_timer deadline;  // handshake
  FrameDecoder decoder;
  std::array<char, kReadBufferBytes> read_buffer{};
  raft::NodeId peer = raft::kNoNode;  // set by the handshake
  bool handshaken = false;
  bool rejected = false;
  bool closed = false;
  std::string outbox;
  uint64_t outbox_frames = 0;
  bool writing = false;
  std::string writing_bytes;
  uint64_t writing_frames = 0;
};

struct Peer {
  Peer(asio::io_context& io, raft::NodeId peer_id)
      : id(peer_id), redial_timer(io), ping_timer(io) {}

  const raft::NodeId id;
  // Guarded by Impl::mu: send() fills the queue from any thread.
  std::deque<Batch> queue;
  uint64_t queued_bytes = 0;  // the queue plus the write under way
  bool flush_posted = false;
  bool unreachable_posted = false;
  PeerStatus status;
  // I/O thread only.
  bool has_address = false;
  bool removed = false;
  std::string host;
  uint16_t port = 0;
  std::shared_ptr<OutConn> conn;  // null while waiting to redial
  asio::steady_timer redial_timer;
  asio::steady_timer ping_timer;
  uint64_t redial_generation = 0;
  int failures = 0;  // consecutive, for the backoff
};

}  // namespace

struct PeerTransport::Impl {
  Impl(TransportOptions o, OnMessages messages, OnUnreachable unreachable)
      : options(o),
        on_messages(std::move(messages)),
        on_unreachable(std::move(unreachable)),
        acceptor(io),
        accept_retry(io),
        rng(std::random_device{}() ^ o.self) {
    cluster_id.store(o.cluster_id);
    mailbox->impl = this;
  }

  // Declared first so it is destroyed last, after every socket and timer bound to it.
  asio::io_context io;
  const TransportOptions options;
  // Written by the I/O thread only (once, when learned); read anywhere.
  std::atomic<uint64_t> cluster_id{0};
  const OnMessages on_messages;
  const OnUnreachable on_unreachable;
  tcp::acceptor acceptor;
  asio::steady_timer accept_retry;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  Counters counters;

  // Where answers computed off the I/O thread are posted; emptied when the transport goes, so a
  // late answer finds nothing to post to.
  struct Mailbox {
    std::mutex mu;
    Impl* impl = nullptr;
  };
  std::shared_ptr<Mailbox> mailbox = std::make_shared<Mailbox>();

  ~Impl() {
    std::lock_guard lock(mailbox->mu);
    mailbox->impl = nullptr;
  }

  mutable std::mutex mu;
  std::unordered_map<raft::NodeId, std::shared_ptr<Peer>> peers;  // guarded by mu
  bool started = false;                                           // guarded by mu
  bool stopped = false;                                           // guarded by mu

  // I/O thread only.
  bool stopping = false;
  std::unordered_set<std::shared_ptr<InConn>> inbound;
  std::mt19937_64 rng;

  // ---- dialing ----

  void set_address(const std::shared_ptr<Peer>& p, const std::string& host, uint16_t port) {
    if (stopping || p->removed) return;
    if (p->has_address && p->host == host && p->port == port) return;
    p->has_address = true;
    p->host = host;
    p->port = port;
    if (p->conn) close_out(*p, p->conn);
    ++p->redial_generation;
    p->redial_timer.cancel();
    p->failures = 0;
    dial(p);
  }

  void dial(const std::shared_ptr<Peer>& p) {
    if (stopping || p->removed) return;
    Context ctx = plain_context();
    std::string tls_problem;
    if (options.tls) ctx = tls_context(*options.tls, /*server=*/false, &tls_problem);
    auto c = std::make_shared<OutConn>(io, ctx ? ctx : plain_context(), options.tls.has_value());
    p->conn = c;
    if (!ctx) {
      // Counted as a failed connection, and tried again: the files may be fixed meanwhile.
      asio::post(io, [this, p, c, tls_problem] { conn_failed(p, c, "TLS: " + tls_problem); });
      return;
    }
    c->deadline.expires_after(milliseconds(options.handshake_timeout_ms));
    c->deadline.async_wait([this, p, c](const asio::error_code& ec) {
      // Checked again: the timer may have fired just as the acknowledgement arrived.
      if (ec || c->state == OutConn::State::kClosed || c->state == OutConn::State::kReady) return;
      conn_failed(p, c, "connect and handshake timed out");
    });
    asio::error_code ec;
    asio::ip::address address = asio::ip::make_address(p->host, ec);
    if (!ec) {
      connect(p, c, {tcp::endpoint(address, p->port)});
      return;
    }
    c->resolver.async_resolve(
        p->host, std::to_string(p->port),
        [this, p, c](const asio::error_code& error, const tcp::resolver::results_type& results) {
          if (c->state == OutConn::State::kClosed) return;
          if (error) {
            conn_failed(p, c, "resolve " + p->host + ": " + error.message());
            return;
          }
          connect(p, c, std::vector<tcp::endpoint>(results.begin(), results.end()));
        });
  }

  void connect(const std::shared_ptr<Peer>& p, const std::shared_ptr<OutConn>& c,
               std::vector<tcp::endpoint> endpoints) {
    asio::async_connect(
        c->socket(), std::move(endpoints),
        [this, p, c](const asio::error_code& ec, const tcp::endpoint&) { on_connected(p, c, ec); });
  }

  void on_connected(const std::shared_ptr<Peer>& p, const std::shared_ptr<OutConn>& c,
                    const asio::error_code& ec) {
    if (c->state == OutConn::State::kClosed) return;
    if (ec) {
      conn_failed(p, c, "connect: " + ec.message());
      return;
    }
    asio::error_code ignored;
    c->socket().set_option(tcp::no_delay(true), ignored);
    c->socket().set_option(asio::socket_base::keep_alive(true), ignored);
    c->state = OutConn::State::kHandshaking;
    if (!c->tls) {
      send_hello(p, c);
      return;
    }
    expect_host(c->stream, *options.tls, p->host);
    c->stream.async_handshake(
        asio::ssl::stream_base::client, [this, p, c](const asio::error_code& error) {
          if (c->state == OutConn::State::kClosed) return;
          if (error) {
            conn_failed(p, c, "TLS handshake: " + tls_error(error));
            return;
          }
          std::string why = refuse_name(*options.tls, c->stream.native_handle());
          if (!why.empty()) {
            conn_failed(p, c, "the peer's certificate: " + why);
            return;
          }
          send_hello(p, c);
        });
  }

  void send_hello(const std::shared_ptr<Peer>& p, const std::shared_ptr<OutConn>& c) {
    Hello hello{.cluster_id = cluster_id.load(), .from = options.self, .to = p->id};
    append_frame(&c->control, FrameType::kHello, encode_hello(hello));
    ++c->control_frames;
    c->hello_sent = Clock::now();
    flush(p);
    read_out(p, c);
  }

  // Writes whatever is waiting on the peer's connection, if no write is under way: control
  // frames always, message batches once the handshake is done.
  void flush(const std::shared_ptr<Peer>& p) {
    std::shared_ptr<OutConn> c = p->conn;
    std::vector<Batch> batches;
    uint64_t message_bytes = 0;
    {
      std::lock_guard lock(mu);
      p->flush_posted = false;
      if (!c || c->writing || c->state == OutConn::State::kConnecting ||
          c->state == OutConn::State::kClosed)
        return;
      if (c->state == OutConn::State::kReady) {
        for (Batch& b : p->queue) {
          message_bytes += b.payload.size() - kCountBytes;
          batches.push_back(std::move(b));
        }
        p->queue.clear();
      }
    }
    if (batches.empty() && c->control.empty()) return;
    c->writing = true;
    c->control_in_flight.swap(c->control);
    c->control.clear();
    c->frames_in_flight = c->control_frames + batches.size();
    c->control_frames = 0;
    c->message_bytes_in_flight = message_bytes;
    c->messages_in_flight = 0;
    c->headers_in_flight.clear();
    for (Batch& b : batches) {
      std::string count;
      base::put_u32(&count, b.count);
      b.payload.replace(0, kCountBytes, count);
      append_frame_header(&c->headers_in_flight, FrameType::kMessages, b.payload);
      c->messages_in_flight += b.count;
    }
    c->batches_in_flight = std::move(batches);
    c->buffers.clear();
    if (!c->control_in_flight.empty()) c->buffers.push_back(asio::buffer(c->control_in_flight));
    for (size_t i = 0; i < c->batches_in_flight.size(); ++i) {
      c->buffers.push_back(
          asio::buffer(c->headers_in_flight.data() + i * kFrameHeaderBytes, kFrameHeaderBytes));
      c->buffers.push_back(asio::buffer(c->batches_in_flight[i].payload));
    }
    write_all(c->stream, c->tls, c->buffers,
              [this, p, c](const asio::error_code& ec, size_t written) {
                on_written(p, c, ec, written);
              });
  }

  void on_written(const std::shared_ptr<Peer>& p, const std::shared_ptr<OutConn>& c,
                  const asio::error_code& ec, size_t written) {
    if (c->state == OutConn::State::kClosed) return;
    if (ec) {
      conn_failed(p, c, "write: " + ec.message());
      return;
    }
    add(counters.frames_sent, c->frames_in_flight);
    add(counters.bytes_sent, written);
    add(counters.messages_sent, c->messages_in_flight);
    {
      std::lock_guard lock(mu);
      p->queued_bytes -= c->message_bytes_in_flight;
      p->status.sent_bytes += written;
    }
    c->writing = false;
    c->message_bytes_in_flight = 0;
    c->messages_in_flight = 0;
    c->batches_in_flight.clear();
    flush(p);
  }

  void read_out(const std::shared_ptr<Peer>& p, const std::shared_ptr<OutConn>& c) {
    read_some(c->stream, c->tls, asio::buffer(c->read_buffer),
              [this, p, c](const asio::error_code& ec, size_t n) {
                if (c->state == OutConn::State::kClosed) return;
                if (ec) {
                  conn_failed(
                      p, c,
                      ec == asio::error::eof ? "closed by the peer" : "read: " + ec.message());
                  return;
                }
                add(counters.bytes_received, n);
                {
                  std::lock_guard lock(mu);
                  p->status.received_bytes += n;
                }
                c->decoder.feed(std::string_view(c->read_buffer.data(), n));
                Frame frame;
                for (;;) {
                  FrameDecoder::Result r = c->decoder.next(&frame);
                  if (r == FrameDecoder::Result::kNeedMore) break;
                  if (r == FrameDecoder::Result::kError) {
                    bad_out_frame(p, c, c->decoder.error());
                    return;
                  }
                  add(counters.frames_received);
                  if (!on_out_frame(p, c, frame)) return;
                }
                read_out(p, c);
              });
  }

  // Returns false when the frame closed the connection.
  bool on_out_frame(const std::shared_ptr<Peer>& p, const std::shared_ptr<OutConn>& c,
                    const Frame& frame) {
    switch (frame.type) {
      case FrameType::kHelloAck: {
        Hello ack;
        if (c->state != OutConn::State::kHandshaking || !decode_hello(frame.payload, &ack)) {
          bad_out_frame(p, c, "unexpected or malformed HelloAck");
          return false;
        }
        Hello expected{.cluster_id = cluster_id.load(), .from = p->id, .to = options.self};
        if (ack != expected) {
          conn_failed(p, c, "the acknowledgement names another cluster or node");
          return false;
        }
        c->state = OutConn::State::kReady;
        c->deadline.cancel();
        p->failures = 0;
        add(counters.connects);
        double rtt = std::chrono::duration<double>(Clock::now() - c->hello_sent).count();
        {
          std::lock_guard lock(mu);
          p->status.connected = true;
          p->status.round_trip_seconds = rtt;
        }
        if (options.on_round_trip) options.on_round_trip(p->id, rtt);
        schedule_ping(p, c);
        flush(p);
        return true;
      }
      case FrameType::kReject: {
        std::string reason;
        if (!decode_reject(frame.payload, &reason)) {
          bad_out_frame(p, c, "malformed Reject");
          return false;
        }
        if (reason == kRemovedReason && options.on_removed) options.on_removed();
        conn_failed(p, c, "refused by the peer: " + reason);
        return false;
      }
      case FrameType::kPong: {
        uint64_t token = 0;
        if (c->state != OutConn::State::kReady || !decode_ping(frame.payload, &token)) {
          bad_out_frame(p, c, "unexpected or malformed Pong");
          return false;
        }
        uint64_t now = now_ns();
        if (token <= now) {
          double rtt = static_cast<double>(now - token) / 1e9;
          {
            std::lock_guard lock(mu);
            p->status.round_trip_seconds = rtt;
          }
          if (options.on_round_trip) options.on_round_trip(p->id, rtt);
        }
        return true;
      }
      default:
        bad_out_frame(p, c, "a frame only a dialer sends");
        return false;
    }
  }

  void bad_out_frame(const std::shared_ptr<Peer>& p, const std::shared_ptr<OutConn>& c,
                     const char* why) {
    add(counters.bad_frames);
    conn_failed(p, c, std::string("bad frame from the peer: ") + why);
  }

  void schedule_ping(const std::shared_ptr<Peer>& p, const std::shared_ptr<OutConn>& c) {
    if (options.ping_interval_ms <= 0) return;
    p->ping_timer.expires_after(milliseconds(options.ping_interval_ms));
    p->ping_timer.async_wait([this, p, c](const asio::error_code& ec) {
      if (ec || stopping || c->state != OutConn::State::kReady) return;
      append_frame(&c->control, FrameType::kPing, encode_ping(now_ns()));
      ++c->control_frames;
      flush(p);
      schedule_ping(p, c);
    });
  }

  // Closes a dialed connection without judging it: the bytes of its unfinished write are
  // released and its messages counted as dropped.
  void close_out(Peer& p, const std::shared_ptr<OutConn>& c) {
    if (c->state == OutConn::State::kClosed) return;
    c->state = OutConn::State::kClosed;
    asio::error_code ignored;
    c->socket().close(ignored);
    c->deadline.cancel();
    c->resolver.cancel();
    p.ping_timer.cancel();
    add(counters.messages_dropped, c->messages_in_flight);
    {
      std::lock_guard lock(mu);
      p.queued_bytes -= c->message_bytes_in_flight;
      p.status.connected = false;
    }
    c->messages_in_flight = 0;
    c->message_bytes_in_flight = 0;
    if (p.conn == c) p.conn.reset();
  }

  void conn_failed(const std::shared_ptr<Peer>& p, const std::shared_ptr<OutConn>& c,
                   const std::string& why) {
    if (c->state == OutConn::State::kClosed) return;
    if (c->state == OutConn::State::kReady) add(counters.disconnects);
    close_out(*p, c);
    bool news = false;
    {
      std::lock_guard lock(mu);
      news = p->status.last_error != why;
      p->status.last_error = why;
    }
    if (news && options.on_peer_error) options.on_peer_error(p->id, why);
    if (on_unreachable) on_unreachable(p->id);
    schedule_redial(p);
  }

  void schedule_redial(const std::shared_ptr<Peer>& p) {
    if (stopping || p->removed) return;
    int64_t delay_ms = options.backoff_max_ms;
    if (p->failures < 30)
      delay_ms = std::min<int64_t>(delay_ms, int64_t{options.backoff_min_ms} << p->failures);
    ++p->failures;
    delay_ms = std::uniform_int_distribution<int64_t>(delay_ms / 2, delay_ms)(rng);
    uint64_t generation = ++p->redial_generation;
    p->redial_timer.expires_after(milliseconds(delay_ms));
    p->redial_timer.async_wait([this, p, generation](const asio::error_code& ec) {
      if (ec || stopping || p->removed || p->conn || generation != p->redial_generation) return;
      dial(p);
    });
  }

  // ---- accepting ----

  void accept() {
    acceptor.async_accept([this](const asio::error_code& ec, tcp::socket socket) {
      if (stopping) return;
      if (ec) {
        if (ec == asio::error::operation_aborted) return;
        accept_retry.expires_after(milliseconds(kAcceptRetryMs));
        accept_retry.async_wait([this](const asio::error_code& error) {
          if (!error && !stopping) accept();
        });
        return;
      }
      if (inbound.size() >= options.max_inbound_connections) {
        asio::error_code ignored;
        socket.close(ignored);
      } else {
        Context ctx = plain_context();
        std::string tls_problem;
        if (options.tls) ctx = tls_context(*options.tls, /*server=*/true, &tls_problem);
        if (!ctx) {
          // Nothing can be verified: refused like any failed handshake.
          add(counters.handshakes_rejected);
          asio::error_code ignored;
          socket.close(ignored);
        } else {
          auto c = std::make_shared<InConn>(std::move(socket), ctx, options.tls.has_value());
          inbound.insert(c);
          start_inbound(c);
        }
      }
      accept();
    });
  }

  void start_inbound(const std::shared_ptr<InConn>& c) {
    asio::error_code ignored;
    c->socket().set_option(tcp::no_delay(true), ignored);
    c->socket().set_option(asio::socket_base::keep_alive(true), ignored);
    c->deadline.expires_after(milliseconds(options.handshake_timeout_ms));
    c->deadline.async_wait([this, c](const asio::error_code& ec) {
      if (ec || c->closed || c->handshaken) return;
      if (!c->rejected) add(counters.handshakes_rejected);
      close_in(c);
    });
    if (!c->tls) {
      read_in(c);
      return;
    }
    // Plain text, a certificate from another CA, or none when one is required: refused here,
    // before a single frame is read.
    c->stream.async_handshake(
        asio::ssl::stream_base::server, [this, c](const asio::error_code& error) {
          if (c->closed) return;
          if (error) {
            add(counters.handshakes_rejected);
            c->rejected = true;
            close_in(c);
            return;
          }
          asio::error_code ec;
          auto from = unmapped(c->socket().remote_endpoint(ec).address());
          DialerCheck check;
          if (ec) {
            check.refuse = ec.message();
          } else {
            check = check_dialer(*options.tls, c->stream.native_handle(), from);
          }
          if (!check.refuse.empty()) return refuse_in(c, from, check.refuse);
          if (check.dns_names.empty()) return read_in(c);
          resolve_dialer(c, from, std::move(check.dns_names), 0);
        });
  }

  static asio::ip::address unmapped(asio::ip::address a) {
    if (a.is_v6() && a.to_v6().is_v4_mapped()) {
      return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
    }
    return a;
  }

  void refuse_in(const std::shared_ptr<InConn>& c, const asio::ip::address& from,
                 const std::string& why) {
    add(counters.handshakes_rejected);
    c->rejected = true;
    if (options.on_peer_error) {
      options.on_peer_error(raft::kNoNode,
                            "refused a connection from " + from.to_string() + ": " + why);
    }
    close_in(c);
  }

  // Whether one of a dialer's DNS names resolves to the address it dials from, one name after
  // another with Asio's resolver (on its own thread: a slow lookup holds up no other
  // connection). The handshake deadline still bounds the whole check.
  void resolve_dialer(const std::shared_ptr<InConn>& c, const asio::ip::address& from,
                      std::vector<std::string> names, size_t next) {
    if (next >= names.size()) {
      return refuse_in(c, from, refuse_unnamed_address(from.to_string()));
    }
    auto resolver = std::make_shared<tcp::resolver>(io);
    const std::string name = names[next];
    resolver->async_resolve(
        name, "",
        [this, c, from, names = std::move(names), next, resolver](
            const asio::error_code& ec, const tcp::resolver::results_type& results) mutable {
          if (c->closed) return;
          if (!ec) {
            for (const auto& r : results) {
              if (unmapped(r.endpoint().address()) == from) return read_in(c);
            }
          }
          resolve_dialer(c, from, std::move(names), next + 1);
        });
  }

  void read_in(const std::shared_ptr<InConn>& c) {
    read_some(c->stream, c->tls, asio::buffer(c->read_buffer),
              [this, c](const asio::error_code& ec, size_t n) {
                if (c->closed) return;
                if (ec) {
                  // The dialer went away in the middle of a frame.
                  if (c->decoder.buffered_bytes() > 0) add(counters.bad_frames);
                  close_in(c);
                  return;
                }
                add(counters.bytes_received, n);
                c->decoder.feed(std::string_view(c->read_buffer.data(), n));
                Frame frame;
                for (;;) {
                  FrameDecoder::Result r = c->decoder.next(&frame);
                  if (r == FrameDecoder::Result::kNeedMore) break;
                  if (r == FrameDecoder::Result::kError) {
                    bad_in_frame(c);
                    return;
                  }
                  add(counters.frames_received);
                  if (!on_in_frame(c, frame)) return;
                }
                if (c->handshaken) count_received(c->peer, n);
                read_in(c);
              });
  }

  void count_received(raft::NodeId id, size_t n) {
    std::lock_guard lock(mu);
    auto it = peers.find(id);
    if (it != peers.end()) it->second->status.received_bytes += n;
  }

  // A peer's hash request: refused at once, or answered when options.answer_hash_kv replies
  // (through `mailbox`, from its own thread); the answer ends the connection.
  bool answer_hash_kv(const std::shared_ptr<InConn>& c, const Frame& frame) {
    HashKvRequest q;
    if (!decode_hash_kv(frame.payload, &q)) {
      bad_in_frame(c);
      return false;
    }
    std::string why = check_peer(q.magic, q.version);
    uint64_t mine = cluster_id.load();
    if (why.empty() && (mine == 0 || q.cluster_id != mine)) {
      why = "cluster id " + std::to_string(q.cluster_id) + ", this node is in cluster " +
            std::to_string(mine);
    }
    if (why.empty() && !options.answer_hash_kv) why = "this node does not answer hash requests";
    c->rejected = true;  // closes once the answer is written
    if (!why.empty()) {
      c->deadline.cancel();
      write_in(c, FrameType::kReject, encode_reject(why));
      return false;
    }
    c->deadline.expires_after(milliseconds(kHashAnswerTimeoutMs));
    c->deadline.async_wait([this, c](const asio::error_code& ec) {
      if (!ec && !c->closed) close_in(c);
    });
    // The answer holds the connection weakly: its sockets and timers belong to this
    // transport's io_context, so only the transport may end them.
    std::weak_ptr<InConn> weak = c;
    options.answer_hash_kv(q.revision, [box = mailbox, weak](const HashKvAnswer& a) {
      std::lock_guard lock(box->mu);
      if (box->impl == nullptr) return;
      Impl* d = box->impl;
      asio::post(d->io, [d, weak, a] {
        std::shared_ptr<InConn> conn = weak.lock();
        if (!conn || conn->closed) return;
        conn->deadline.cancel();
        if (!a.ok) return d->write_in(conn, FrameType::kReject, encode_reject(a.error));
        d->write_in(
            conn, FrameType::kHashKvAck,
            encode_hash_kv_ack(HashKvAck{
                .hash = a.hash, .revision = a.revision, .compact_revision = a.compact_revision}));
      });
    });
    return false;  // nothing more is read
  }

  // A joining member's question; the answer (or the reason there is none) ends the connection.
  bool answer_join(const std::shared_ptr<InConn>& c, const Frame& frame) {
    JoinRequest j;
    if (!decode_join(frame.payload, &j)) {
      bad_in_frame(c);
      return false;
    }
    std::string why = check_peer(j.magic, j.version);
    JoinAck ack;
    bool found = false;
    if (why.empty() && cluster_id.load() == 0) {
      why = "this node has not joined its cluster yet";
    } else if (why.empty() && options.answer_join) {
      found = options.answer_join(j.peer_urls, &ack) && ack.member_id != raft::kNoNode;
    }
    c->rejected = true;  // closes once the answer is written
    c->deadline.cancel();
    if (why.empty() && !found) {
      why = "no member of this cluster has these peer URLs; add it first (member add)";
    }
    if (!why.empty()) {
      write_in(c, FrameType::kReject, encode_reject(why));
    } else {
      ack.cluster_id = cluster_id.load();
      write_in(c, FrameType::kJoinAck, encode_join_ack(ack));
    }
    return false;
  }

  // Why a Chorus peer of this protocol version is not what sent `magic` and `version`, or empty.
  static std::string check_peer(uint64_t magic, uint32_t version) {
    if (magic != kHelloMagic) return "not a Chorus peer (bad magic)";
    if (version != kProtocolVersion)
      return "protocol version " + std::to_string(version) + ", this node speaks " +
             std::to_string(kProtocolVersion);
    return "";
  }

  // Why a hello is refused, or empty when it is accepted.
  std::string check_hello(const Hello& h) const {
    if (std::string why = check_peer(h.magic, h.version); !why.empty()) return why;
    uint64_t mine = cluster_id.load();
    if (mine != 0 && h.cluster_id != mine)
      return "cluster id " + std::to_string(h.cluster_id) + ", this node is in cluster " +
             std::to_string(mine);
    if (mine == 0 && h.cluster_id == 0) return "neither side knows the cluster id";
    if (h.to != options.self)
      return "expected node " + std::to_string(h.to) + ", this is node " +
             std::to_string(options.self);
    if (h.from == raft::kNoNode) return "sender id 0";
    if (options.is_removed && options.is_removed(h.from)) return kRemovedReason;
    return "";
  }

  // Returns false when the frame closed the connection or stopped its reading.
  bool on_in_frame(const std::shared_ptr<InConn>& c, const Frame& frame) {
    if (!c->handshaken && frame.type == FrameType::kJoin) return answer_join(c, frame);
    if (!c->handshaken && frame.type == FrameType::kHashKv) return answer_hash_kv(c, frame);
    if (!c->handshaken) {
      Hello hello;
      if (frame.type != FrameType::kHello || !decode_hello(frame.payload, &hello)) {
        bad_in_frame(c);
        return false;
      }
      std::string why = check_hello(hello);
      if (!why.empty()) {
        add(counters.handshakes_rejected);
        c->rejected = true;
        write_in(c, FrameType::kReject, encode_reject(why));
        return false;  // no more reading; the connection closes once the reason is written
      }
      if (cluster_id.load() == 0) {
        cluster_id.store(hello.cluster_id);
        if (options.on_cluster_id) options.on_cluster_id(hello.cluster_id);
      }
      c->handshaken = true;
      c->peer = hello.from;
      c->deadline.cancel();
      c->decoder.set_max_frame_bytes(options.max_frame_bytes);
      add(counters.connects);
      Hello ack{.cluster_id = cluster_id.load(), .from = options.self, .to = hello.from};
      write_in(c, FrameType::kHelloAck, encode_hello(ack));
      // An older connection from the same node is left from before it redialed (it restarted,
      // or its side timed out); it would otherwise linger until TCP notices.
      std::vector<std::shared_ptr<InConn>> stale;
      for (const auto& other : inbound)
        if (other != c && other->handshaken && other->peer == hello.from) stale.push_back(other);
      for (const auto& other : stale)
        close_in(other);
      return true;
    }
    switch (frame.type) {
      case FrameType::kMessages: {
        std::vector<raft::Message> batch;
        if (!decode_messages(frame.payload, &batch)) {
          bad_in_frame(c);
          return false;
        }
        for (const raft::Message& m : batch) {
          if (m.to != options.self) {
            bad_in_frame(c);
            return false;
          }
        }
        add(counters.messages_received, batch.size());
        if (on_messages) on_messages(std::move(batch));
        return !c->closed;
      }
      case FrameType::kPing: {
        uint64_t token = 0;
        if (!decode_ping(frame.payload, &token)) {
          bad_in_frame(c);
          return false;
        }
        write_in(c, FrameType::kPong, frame.payload);
        return !c->closed;
      }
      default:
        bad_in_frame(c);
        return false;
    }
  }

  void bad_in_frame(const std::shared_ptr<InConn>& c) {
    add(counters.bad_frames);
    close_in(c);
  }

  void write_in(const std::shared_ptr<InConn>& c, FrameType type, std::string_view payload) {
    append_frame(&c->outbox, type, payload);
    ++c->outbox_frames;
    if (c->outbox.size() > kMaxAcceptorOutboxBytes) {
      close_in(c);
      return;
    }
    if (!c->writing) write_in_next(c);
  }

  void write_in_next(const std::shared_ptr<InConn>& c) {
    c->writing = true;
    c->writing_bytes.swap(c->outbox);
    c->outbox.clear();
    c->writing_frames = c->outbox_frames;
    c->outbox_frames = 0;
    write_all(c->stream, c->tls, asio::buffer(c->writing_bytes),
              [this, c](const asio::error_code& ec, size_t written) {
                if (c->closed) return;
                if (ec) {
                  close_in(c);
                  return;
                }
                add(counters.frames_sent, c->writing_frames);
                add(counters.bytes_sent, written);
                c->writing = false;
                if (!c->outbox.empty()) {
                  write_in_next(c);
                } else if (c->rejected) {
                  close_in(c);
                }
              });
  }

  // Takes the connection by value: callers may hold a reference into `inbound`.
  void close_in(std::shared_ptr<InConn> c) {
    if (c->closed) return;
    c->closed = true;
    asio::error_code ignored;
    c->socket().close(ignored);
    c->deadline.cancel();
    if (c->handshaken) add(counters.disconnects);
    inbound.erase(c);
  }

  // ---- stopping ----

  void shutdown() {
    stopping = true;
    asio::error_code ignored;
    acceptor.close(ignored);
    accept_retry.cancel();
    std::vector<std::shared_ptr<Peer>> all;
    {
      std::lock_guard lock(mu);
      for (const auto& [id, p] : peers)
        all.push_back(p);
    }
    for (const auto& p : all) {
      p->redial_timer.cancel();
      p->ping_timer.cancel();
      if (p->conn) close_out(*p, p->conn);
    }
    std::vector<std::shared_ptr<InConn>> accepted(inbound.begin(), inbound.end());
    for (const auto& c : accepted)
      close_in(c);
    // Every handler still queued sees a closed connection or `stopping` and starts nothing, so
    // run() returns once they have drained.
    work.reset();
  }
};

PeerTransport::PeerTransport(TransportOptions options, OnMessages on_messages,
                             OnUnreachable on_unreachable) {
  if (options.self == raft::kNoNode) die("options.self must be a node id");
  if (options.backoff_min_ms <= 0 || options.backoff_max_ms < options.backoff_min_ms)
    die("backoff_min_ms must be positive and at most backoff_max_ms");
  if (options.handshake_timeout_ms <= 0) die("handshake_timeout_ms must be positive");
  if (options.max_frame_bytes < kMaxControlFrameBytes) die("max_frame_bytes below 4096");
  impl_ = std::make_unique<Impl>(options, std::move(on_messages), std::move(on_unreachable));
}

PeerTransport::~PeerTransport() {
  stop();
}

storage::Status PeerTransport::listen(const std::string& host, uint16_t port,
                                      uint16_t* bound_port) {
  Impl& d = *impl_;
  {
    std::lock_guard lock(d.mu);
    if (d.started || d.stopped) return storage::Status::invalid_argument("listen() after start()");
  }
  if (d.acceptor.is_open()) return storage::Status::invalid_argument("already listening");
  asio::error_code ec;
  tcp::endpoint endpoint;
  asio::ip::address address = asio::ip::make_address(host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, port);
  } else {
    tcp::resolver resolver(d.io);
    tcp::resolver::results_type results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty())
      return storage::Status::invalid_argument("cannot resolve " + host + ": " + ec.message());
    endpoint = *results.begin();
  }
  std::string where = host + ":" + std::to_string(port);
  auto fail = [&](const char* step) {
    asio::error_code ignored;
    d.acceptor.close(ignored);
    return storage::Status::io_error(std::string(step) + " " + where + ": " + ec.message());
  };
  d.acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail("open");
  // A restarted node must bind its port again while connections of its previous life wait
  // out TIME_WAIT.
  d.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (ec) return fail("reuse");
  d.acceptor.bind(endpoint, ec);
  if (ec) return fail("bind");
  d.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  tcp::endpoint local = d.acceptor.local_endpoint(ec);
  if (ec) return fail("local address of");
  if (bound_port != nullptr) *bound_port = local.port();
  return storage::Status::ok();
}

void PeerTransport::start() {
  Impl& d = *impl_;
  {
    std::lock_guard lock(d.mu);
    if (d.started || d.stopped) die("start() called twice or after stop()");
    d.started = true;
  }
  d.work.emplace(asio::make_work_guard(d.io));
  if (d.acceptor.is_open()) asio::post(d.io, [&d] { d.accept(); });
  d.thread = std::thread([&d] {
    base::set_thread_name("chorus-peers");
    d.io.run();
  });
}

void PeerTransport::stop() {
  Impl& d = *impl_;
  {
    std::lock_guard lock(d.mu);
    if (d.stopped) return;
    d.stopped = true;
    if (!d.started) return;
  }
  if (std::this_thread::get_id() == d.thread.get_id()) die("stop() called from a callback");
  asio::post(d.io, [&d] { d.shutdown(); });
  d.thread.join();
}

void PeerTransport::set_peer(raft::NodeId id, const std::string& host, uint16_t port) {
  Impl& d = *impl_;
  if (id == raft::kNoNode) die("set_peer with node id 0");
  std::shared_ptr<Peer> p;
  {
    std::lock_guard lock(d.mu);
    std::shared_ptr<Peer>& slot = d.peers[id];
    if (!slot) slot = std::make_shared<Peer>(d.io, id);
    p = slot;
  }
  asio::post(d.io, [&d, p, host, port] { d.set_address(p, host, port); });
}

void PeerTransport::remove_peer(raft::NodeId id) {
  Impl& d = *impl_;
  std::shared_ptr<Peer> p;
  uint64_t dropped = 0;
  {
    std::lock_guard lock(d.mu);
    auto it = d.peers.find(id);
    if (it == d.peers.end()) return;
    p = it->second;
    d.peers.erase(it);
    for (const Batch& b : p->queue) {
      dropped += b.count;
      p->queued_bytes -= b.payload.size() - kCountBytes;
    }
    p->queue.clear();
  }
  add(d.counters.messages_dropped, dropped);
  asio::post(d.io, [&d, p, id] {
    p->removed = true;
    ++p->redial_generation;
    p->redial_timer.cancel();
    p->ping_timer.cancel();
    if (p->conn) d.close_out(*p, p->conn);
    // What the removed peer dialed closes too: if it redials it meets the handshake again.
    std::vector<std::shared_ptr<InConn>> from_peer;
    for (const auto& c : d.inbound)
      if (c->handshaken && c->peer == id) from_peer.push_back(c);
    for (const auto& c : from_peer)
      d.close_in(c);
  });
}

void PeerTransport::send(std::vector<raft::Message>&& messages) {
  Impl& d = *impl_;
  // Encoded before taking the lock, so callers on several threads encode in parallel.
  std::vector<std::string> encoded(messages.size());
  for (size_t i = 0; i < messages.size(); ++i)
    if (is_sendable(messages[i].type)) encode_message(messages[i], &encoded[i]);
  const uint64_t max_message_bytes = d.options.max_frame_bytes - kCountBytes;
  const CodecLimits limits;
  uint64_t dropped = 0;
  std::vector<std::shared_ptr<Peer>> to_flush;
  std::vector<std::shared_ptr<Peer>> to_report;
  {
    std::lock_guard lock(d.mu);
    Peer* last = nullptr;
    for (size_t i = 0; i < messages.size(); ++i) {
      const std::string& bytes = encoded[i];
      if (d.stopped || !is_sendable(messages[i].type) || bytes.size() > max_message_bytes) {
        ++dropped;
        continue;
      }
      if (last == nullptr || last->id != messages[i].to) {
        auto it = d.peers.find(messages[i].to);
        if (it == d.peers.end()) {
          ++dropped;
          continue;
        }
        last = it->second.get();
        if (!last->flush_posted) {
          last->flush_posted = true;
          to_flush.push_back(it->second);
        }
      }
      Peer& p = *last;
      if (p.queued_bytes + bytes.size() > d.options.max_queue_bytes_per_peer) {
        ++dropped;
        if (!p.unreachable_posted) {
          p.unreachable_posted = true;
          to_report.push_back(d.peers[p.id]);
        }
        continue;
      }
      if (p.queue.empty() || p.queue.back().count >= limits.max_messages_per_frame ||
          p.queue.back().payload.size() + bytes.size() > d.options.max_frame_bytes)
        p.queue.emplace_back();
      Batch& b = p.queue.back();
      b.payload += bytes;
      ++b.count;
      p.queued_bytes += bytes.size();
    }
  }
  add(d.counters.messages_dropped, dropped);
  for (auto& p : to_flush)
    asio::post(d.io, [&d, p] { d.flush(p); });
  for (auto& p : to_report) {
    asio::post(d.io, [&d, p] {
      {
        std::lock_guard lock(d.mu);
        p->unreachable_posted = false;
      }
      if (!d.stopping && d.on_unreachable) d.on_unreachable(p->id);
    });
  }
}

uint64_t PeerTransport::cluster_id() const {
  return impl_->cluster_id.load();
}

TransportStats PeerTransport::stats() const {
  const Counters& c = impl_->counters;
  auto get = [](const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); };
  return TransportStats{.frames_sent = get(c.frames_sent),
                        .frames_received = get(c.frames_received),
                        .bytes_sent = get(c.bytes_sent),
                        .bytes_received = get(c.bytes_received),
                        .messages_sent = get(c.messages_sent),
                        .messages_received = get(c.messages_received),
                        .messages_dropped = get(c.messages_dropped),
                        .bad_frames = get(c.bad_frames),
                        .handshakes_rejected = get(c.handshakes_rejected),
                        .connects = get(c.connects),
                        .disconnects = get(c.disconnects)};
}

std::optional<PeerStatus> PeerTransport::peer_status(raft::NodeId id) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->peers.find(id);
  if (it == impl_->peers.end()) return std::nullopt;
  PeerStatus status = it->second->status;
  status.queued_bytes = it->second->queued_bytes;
  return status;
}

namespace {

// One question to the node at host:port on a connection of its own (TLS with `tls`): the
// request frame, then the answer of type `answer`, or the node's reject reason (NotFound).
storage::Status ask_peer(const std::string& host, uint16_t port, FrameType type,
                         const std::string& payload, FrameType answer, uint32_t max_answer_bytes,
                         int timeout_ms, const PeerTls* tls, std::string* answer_payload) {
  asio::io_context io;
  Context ctx = plain_context();
  if (tls != nullptr) {
    std::string problem;
    ctx = tls_context(*tls, /*server=*/false, &problem);
    if (!ctx) return storage::Status::io_error("TLS: " + problem);
  }
  const bool use_tls = tls != nullptr;
  Stream stream(io, *ctx);
  tcp::socket& socket = stream.next_layer();
  tcp::resolver resolver(io);
  std::string request;
  append_frame(&request, type, payload);
  FrameDecoder decoder(max_answer_bytes);
  std::array<char, 4096> buffer{};
  storage::Status result =
      storage::Status::io_error("no answer from " + host + ":" + std::to_string(port) + " in time");
  bool done = false;
  auto finish = [&](storage::Status st) {
    if (done) return;
    done = true;
    result = std::move(st);
    asio::error_code ignored;
    socket.close(ignored);
  };
  std::function<void()> read_more = [&] {
    read_some(stream, use_tls, asio::buffer(buffer), [&](const asio::error_code& ec, size_t n) {
      if (done) return;
      decoder.feed(std::string_view(buffer.data(), n));
      Frame f;
      FrameDecoder::Result r = decoder.next(&f);
      if (r == FrameDecoder::Result::kFrame) {
        std::string reason;
        if (f.type == answer) {
          *answer_payload = std::move(f.payload);
          finish(storage::Status::ok());
        } else if (f.type == FrameType::kReject && decode_reject(f.payload, &reason)) {
          finish(storage::Status::not_found(reason));
        } else {
          finish(storage::Status::corruption(std::string("an unexpected answer to a ") +
                                             to_string(type) + " request"));
        }
      } else if (r == FrameDecoder::Result::kError) {
        finish(storage::Status::corruption(decoder.error()));
      } else if (ec) {
        finish(storage::Status::io_error("the connection closed: " + ec.message()));
      } else {
        read_more();
      }
    });
  };
  std::function<void()> send = [&] {
    write_all(stream, use_tls, asio::buffer(request), [&](const asio::error_code& wec, size_t) {
      if (wec) return finish(storage::Status::io_error("cannot send: " + wec.message()));
      read_more();
    });
  };
  resolver.async_resolve(
      host, std::to_string(port),
      [&](const asio::error_code& ec, tcp::resolver::results_type results) {
        if (ec)
          return finish(storage::Status::io_error("cannot resolve " + host + ": " + ec.message()));
        asio::async_connect(
            socket, results, [&](const asio::error_code& cec, const tcp::endpoint&) {
              if (cec) return finish(storage::Status::io_error("cannot connect: " + cec.message()));
              if (!use_tls) return send();
              expect_host(stream, *tls, host);
              stream.async_handshake(
                  asio::ssl::stream_base::client, [&](const asio::error_code& hec) {
                    if (hec) {
                      return finish(storage::Status::io_error("TLS handshake: " + tls_error(hec)));
                    }
                    send();
                  });
            });
      });
  io.run_for(milliseconds(timeout_ms));
  if (!done) finish(result);
  return result;
}

}  // namespace

storage::Status ask_to_join(const std::string& host, uint16_t port,
                            const std::vector<std::string>& peer_urls, int timeout_ms, JoinAck* out,
                            const PeerTls* tls) {
  std::string answer;
  storage::Status st =
      ask_peer(host, port, FrameType::kJoin, encode_join(JoinRequest{.peer_urls = peer_urls}),
               FrameType::kJoinAck, kMaxJoinAckBytes, timeout_ms, tls, &answer);
  if (!st.is_ok()) return st;
  if (!decode_join_ack(answer, out) || out->cluster_id == 0 || out->member_id == raft::kNoNode)
    return storage::Status::corruption("an unexpected answer to a join request");
  return st;
}

storage::Status ask_hash_kv(const std::string& host, uint16_t port, uint64_t cluster_id,
                            int64_t revision, int timeout_ms, HashKvAnswer* out,
                            const PeerTls* tls) {
  std::string answer;
  storage::Status st =
      ask_peer(host, port, FrameType::kHashKv,
               encode_hash_kv(HashKvRequest{.cluster_id = cluster_id, .revision = revision}),
               FrameType::kHashKvAck, kMaxControlFrameBytes, timeout_ms, tls, &answer);
  *out = HashKvAnswer{};
  if (!st.is_ok()) {
    out->error = st.to_string();
    return st;
  }
  HashKvAck ack;
  if (!decode_hash_kv_ack(answer, &ack)) {
    out->error = "an unexpected answer to a hash request";
    return storage::Status::corruption(out->error);
  }
  *out = HashKvAnswer{true, ack.hash, ack.revision, ack.compact_revision, ""};
  return st;
}

std::string check_peer_tls(const PeerTls& tls) {
  std::string error;
  if (!tls_context(tls, /*server=*/true, &error) || !tls_context(tls, /*server=*/false, &error)) {
    return error;
  }
  return {};
}

}  // namespace chorus::transport
