// Raft messages between nodes over TCP. One I/O thread owns every socket and timer; send() may
// be called from any thread and never blocks.
//
// Connections. Each node dials one connection to every peer it knows and sends its messages
// only on that one; what it receives arrives on the connections its peers dialed. A pair of
// nodes therefore holds two connections, each carrying messages one way (etcd's peer streams
// work the same way). The dialer needs no reply to a message, so neither side ever has to
// decide which of two crossing connections survives, and a node restarted with new code or a
// new address simply dials again. The reverse direction of a connection carries only the
// handshake answer and the answers to round-trip probes.
//
// Handshake. The dialer sends kHello (magic, protocol version, cluster id, its own id, the id it
// expects to reach); the acceptor answers kHelloAck, or kReject with a reason and closes, when
// any of these is wrong. Messages flow only after the acknowledgement, and nothing arriving
// before a kHello is trusted: an unauthenticated connection may only send frames of up to 4 KiB
// and must finish within handshake_timeout_ms.
//
// Failures. A connection that fails, or is refused, is reported through OnUnreachable (so the
// leader probes the peer instead of streaming to it) and dialed again after a jittered
// exponential backoff. Messages written to a connection that then fails are lost; Raft
// retransmits, and per-pair order holds because nothing is ever resent. Garbage, a bad
// checksum, or a truncated frame closes that one connection and is counted; the rest of the
// transport is unaffected.
//
// Limits. Each peer's queue is bounded in bytes; a message that does not fit is dropped,
// counted and reported as unreachable. Frames are bounded by max_frame_bytes on both sides, so
// every node of a cluster must use the same value.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "raft/types.h"
#include "storage/status.h"
#include "transport/tls_context.h"

namespace chorus::transport {

struct JoinAck;
struct HashKvAck;

// The answer to another member's hash request: the hash, or why there is none.
struct HashKvAnswer {
  bool ok = false;
  uint32_t hash = 0;
  int64_t revision = 0;
  int64_t compact_revision = 0;
  std::string error;
};

// Peer TLS (etcd's --peer-cert-file, --peer-key-file, --peer-trusted-ca-file): with it, every
// connection, dialed or accepted, speaks TLS (OpenSSL through Asio) before the handshake below,
// and a plain-text connection never gets past its first bytes. Each side presents its
// certificate. With a CA, the other side's certificate must be signed by it: an acceptor
// refuses a dialer without one, and a dialer checks the acceptor's certificate against the
// host name or address it dialed. Without a CA (--peer-auto-tls) traffic is encrypted but
// nobody is verified. The files are read for each new connection, so replaced certificates
// take effect without a restart.
struct PeerTls : TlsSettings {
  // Checked once the CA's signature passed: the common name and host name a peer's certificate
  // must carry (both ends of a connection), and (unless turned off) that a dialer's
  // certificate names the address it dials from, when it names any address at all.
  std::string allowed_cn;
  std::string allowed_hostname;
  bool check_dialer_address = true;
};

// Builds the TLS contexts `tls` describes, as each connection will: the reason they cannot
// be built (a file, the cipher suites), or empty.
std::string check_peer_tls(const PeerTls& tls);

struct TransportOptions {
  // 0 when not known yet: a member joining an existing cluster learns it from the first peer
  // whose handshake it accepts (the leader dials a member it has just added), keeps it from
  // then on, and reports it through on_cluster_id.
  uint64_t cluster_id = 0;
  std::function<void(uint64_t cluster_id)> on_cluster_id;
  // Members removed from the cluster: their handshakes are refused with kRemovedReason, and a
  // node refused that way learns it was removed through on_removed (etcd stops such a member).
  // Either may be empty. is_removed runs on the I/O thread.
  std::function<bool(raft::NodeId id)> is_removed;
  std::function<void()> on_removed;
  // A joining member's peer URLs -> the answer (see ask_to_join): the id of the member that
  // has exactly these URLs, the node's applied index and every member; false if no member has
  // them. The transport fills in the cluster id. Runs on the I/O thread; empty: every join
  // request is refused.
  std::function<bool(const std::vector<std::string>& peer_urls, JoinAck* out)> answer_join;
  // Another member's corruption check asks for the hash of this member's key-value history at
  // `revision` (0: now; see ask_hash_kv). Called on the I/O thread, it must not hash there:
  // `reply` takes the answer from any thread, at any time (after the transport stopped it does
  // nothing). The connection waits for it up to kHashAnswerTimeoutMs. Empty: every hash
  // request is refused.
  std::function<void(int64_t revision, std::function<void(const HashKvAnswer&)> reply)>
      answer_hash_kv;
  // Each round-trip sample to a peer (the handshake's, then every probe's), on the I/O thread;
  // may be empty.
  std::function<void(raft::NodeId peer, double seconds)> on_round_trip;
  raft::NodeId self = raft::kNoNode;
  // Messages queued for one peer and not yet written, plus those in the write under way. Beyond
  // it messages are dropped (Raft retransmits) and counted.
  uint64_t max_queue_bytes_per_peer = 64ull << 20;
  // The largest frame payload sent or accepted; bigger batches are split over several frames.
  uint32_t max_frame_bytes = 64u << 20;
  // Redial delay: doubles per consecutive failure from min to max, each drawn uniformly from
  // [delay / 2, delay] so that nodes restarted together do not dial in lockstep.
  int backoff_min_ms = 50;
  int backoff_max_ms = 2000;
  // Time to connect and finish the handshake, for a dialer and for an acceptor waiting for kHello.
  int handshake_timeout_ms = 2000;
  // How often a connected dialer measures the round trip; 0 turns probes off (the handshake
  // still gives one sample).
  int ping_interval_ms = 1000;
  // Accepted connections held at once; more are closed at once.
  size_t max_inbound_connections = 1024;
  // Set: every connection is TLS.
  std::optional<PeerTls> tls;
  // A connection to a peer failed for a reason other than the last one's (a peer down for a
  // while is reported once, not at every redial); on the I/O thread. May be empty.
  std::function<void(raft::NodeId peer, const std::string& why)> on_peer_error;
};

// The reason a peer gives when it refuses a member removed from the cluster.
inline constexpr const char* kRemovedReason = "this member was removed from the cluster";

struct TransportStats {
  uint64_t frames_sent = 0;  // every frame written, handshakes and probes included
  uint64_t frames_received = 0;
  uint64_t bytes_sent = 0;  // bytes written to and read from sockets, headers included
  uint64_t bytes_received = 0;
  uint64_t messages_sent = 0;  // Raft messages written to a socket
  uint64_t messages_received = 0;
  // Messages given to send() that will not be written: an unknown peer, a full queue, a
  // message bigger than a frame, a local message type, a removed peer, a stopped transport, or
  // a write lost with its connection.
  uint64_t messages_dropped = 0;
  // Connections closed for a frame that does not decode: garbage, a bad checksum, an unknown
  // type, a frame cut short, or a frame that breaks the protocol at that point.
  uint64_t bad_frames = 0;
  // Inbound handshakes refused: wrong magic, version, cluster or receiver, or no kHello within
  // handshake_timeout_ms.
  uint64_t handshakes_rejected = 0;
  // Connections, either direction, that completed a handshake, and how many of those closed.
  uint64_t connects = 0;
  uint64_t disconnects = 0;
};

struct PeerStatus {
  bool connected = false;  // our connection to the peer finished its handshake
  // Latest round-trip sample (handshake or probe), 0 before the first.
  double round_trip_seconds = 0;
  // Why the last connection attempt failed or the last connection closed; empty if none did.
  std::string last_error;
  uint64_t queued_bytes = 0;
  // Bytes written to the peer and read from it, frame headers included, over every
  // connection since the peer was set.
  uint64_t sent_bytes = 0;
  uint64_t received_bytes = 0;
};

// Asks the node listening on host:port which member id its cluster gave `peer_urls` (chosen by
// MemberAdd), the cluster's id and the members: what a member joining an existing cluster with
// an empty data directory needs before it can start. Blocking, at most timeout_ms (plus name
// resolution, which Asio cannot interrupt). not_found carries the peer's reason (no such
// member yet, say); io_error a connection that failed.
// Over TLS when `tls` is given.
storage::Status ask_to_join(const std::string& host, uint16_t port,
                            const std::vector<std::string>& peer_urls, int timeout_ms, JoinAck* out,
                            const PeerTls* tls = nullptr);

// How long an accepted hash request waits for its answer before the connection closes.
inline constexpr int kHashAnswerTimeoutMs = 30'000;

// Asks the member at host:port (its peer URL) for the hash of its key-value history at
// `revision`, as etcd's corruption checks ask for /members/hashkv on the peer port: over the
// peer connection's TLS, beside the client API and its auth. The cluster id must be the
// member's own. NotFound with the member's reason when it refuses (a compacted or future
// revision, another cluster); IoError when it cannot be reached or does not answer in time.
storage::Status ask_hash_kv(const std::string& host, uint16_t port, uint64_t cluster_id,
                            int64_t revision, int timeout_ms, HashKvAnswer* out,
                            const PeerTls* tls = nullptr);

class PeerTransport {
 public:
  // Called on the transport's own thread with every message batch decoded from a peer.
  using OnMessages = std::function<void(std::vector<raft::Message>&&)>;
  // Called when a peer's queue overflows or a connection fails, so the node can call raft's
  // report_unreachable (thread: transport's).
  using OnUnreachable = std::function<void(raft::NodeId)>;

  PeerTransport(TransportOptions options, OnMessages on_messages, OnUnreachable on_unreachable);
  // Stops and joins.
  ~PeerTransport();
  PeerTransport(const PeerTransport&) = delete;
  PeerTransport& operator=(const PeerTransport&) = delete;

  // Binds (port 0 picks a free one; *bound_port, if given, reports it); call before start().
  storage::Status listen(const std::string& host, uint16_t port, uint16_t* bound_port);
  // Starts the I/O thread. Once only.
  void start();
  // Closes every connection and joins the I/O thread; no callback runs after it returns. Must
  // not be called from a callback. A stopped transport does not start again.
  void stop();

  // Adds a peer or changes its address (a change redials at once). Any thread.
  void set_peer(raft::NodeId id, const std::string& host, uint16_t port);
  // Forgets a peer: its queue is dropped, its connection and the connections it dialed to this
  // node are closed. Any thread.
  void remove_peer(raft::NodeId id);

  // Thread-safe, non-blocking: queues each message for its `to` node; everything queued for one
  // peer while a write is in flight leaves in one kMessages frame (batching). Messages for
  // unknown peers are dropped and counted.
  void send(std::vector<raft::Message>&& messages);

  TransportStats stats() const;
  uint64_t cluster_id() const;
  // nullopt for a peer never set or since removed.
  std::optional<PeerStatus> peer_status(raft::NodeId id) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chorus::transport
