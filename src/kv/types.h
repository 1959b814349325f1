// The etcd v3 data model as plain C++ values: keys with revisions, the KV requests and
// responses, leases, and the command that travels through the Raft log. The server translates
// etcd's protobuf messages to and from these, so the state machine never depends on gRPC.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "kv/auth.h"
#include "redis/reply.h"

namespace chorus::kv {

struct KeyValue {
  std::string key;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;  // 1 on create, +1 on each change; a delete ends the key's life
  std::string value;
  int64_t lease = 0;
  bool operator==(const KeyValue&) const = default;
};

// Failures a client sees, with etcd's gRPC codes and message texts (clients match the text).
enum class Code : uint8_t {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kFailedPrecondition,
  kOutOfRange,
  kResourceExhausted,
  kInternal,
  kPermissionDenied,
  kUnauthenticated,
};
inline constexpr Code kLastCode = Code::kUnauthenticated;

struct ApiError {
  Code code = Code::kOk;
  std::string message;
  bool ok() const { return code == Code::kOk; }
  bool operator==(const ApiError&) const = default;
};

namespace errors {
inline const char* const kEmptyKey = "etcdserver: key is not provided";
inline const char* const kKeyNotFound = "etcdserver: key not found";
inline const char* const kValueProvided = "etcdserver: value is provided";
inline const char* const kLeaseProvided = "etcdserver: lease is provided";
inline const char* const kTooManyOps = "etcdserver: too many operations in txn request";
inline const char* const kDuplicateKey = "etcdserver: duplicate key given in txn request";
inline const char* const kCompacted = "etcdserver: mvcc: required revision has been compacted";
inline const char* const kFutureRev = "etcdserver: mvcc: required revision is a future revision";
inline const char* const kLeaseNotFound = "etcdserver: requested lease not found";
inline const char* const kLeaseExist = "etcdserver: lease already exists";
inline const char* const kLeaseTTLTooLarge = "etcdserver: too large lease TTL";
// Auth (etcd's rpctypes).
inline const char* const kRootUserNotExist = "etcdserver: root user does not exist";
inline const char* const kRootRoleNotExist = "etcdserver: root user does not have root role";
inline const char* const kUserAlreadyExist = "etcdserver: user name already exists";
inline const char* const kUserEmpty = "etcdserver: user name is empty";
inline const char* const kUserNotFound = "etcdserver: user name not found";
inline const char* const kRoleAlreadyExist = "etcdserver: role name already exists";
inline const char* const kRoleNotFound = "etcdserver: role name not found";
inline const char* const kRoleEmpty = "etcdserver: role name is empty";
inline const char* const kAuthFailed =
    "etcdserver: authentication failed, invalid user ID or password";
inline const char* const kPermissionDenied = "etcdserver: permission denied";
inline const char* const kRoleNotGranted = "etcdserver: role is not granted to the user";
inline const char* const kPermissionNotGranted =
    "etcdserver: permission is not granted to the role";
inline const char* const kAuthNotEnabled = "etcdserver: authentication is not enabled";
inline const char* const kAuthOldRevision = "etcdserver: revision of auth store is old";
inline const char* const kInvalidAuthToken = "etcdserver: invalid auth token";
inline const char* const kInvalidAuthMgmt = "etcdserver: invalid auth management";
inline const char* const kSessionExpired = "chorus: client session expired";
inline const char* const kStaleSequence =
    "chorus: request sequence number is older than the session's";
}  // namespace errors

enum class SortOrder : uint8_t { kNone = 0, kAscend = 1, kDescend = 2 };
enum class SortTarget : uint8_t { kKey = 0, kVersion = 1, kCreate = 2, kMod = 3, kValue = 4 };

// etcd's range rules: an empty range_end means the single key; "\0" means every key >= key;
// key "\0" with range_end "\0" means every key.
struct RangeRequest {
  std::string key;
  std::string range_end;
  int64_t limit = 0;
  int64_t revision = 0;  // 0: the current revision
  SortOrder sort_order = SortOrder::kNone;
  SortTarget sort_target = SortTarget::kKey;
  bool serializable = false;
  bool keys_only = false;
  bool count_only = false;
  int64_t min_mod_revision = 0;
  int64_t max_mod_revision = 0;
  int64_t min_create_revision = 0;
  int64_t max_create_revision = 0;
  bool operator==(const RangeRequest&) const = default;
};

struct RangeResponse {
  int64_t revision = 0;
  std::vector<KeyValue> kvs;
  bool more = false;
  int64_t count = 0;
  bool operator==(const RangeResponse&) const = default;
};

struct PutRequest {
  std::string key;
  std::string value;
  int64_t lease = 0;
  bool prev_kv = false;
  bool ignore_value = false;
  bool ignore_lease = false;
  bool operator==(const PutRequest&) const = default;
};

struct PutResponse {
  int64_t revision = 0;
  std::optional<KeyValue> prev_kv;
  bool operator==(const PutResponse&) const = default;
};

struct DeleteRangeRequest {
  std::string key;
  std::string range_end;
  bool prev_kv = false;
  bool operator==(const DeleteRangeRequest&) const = default;
};

struct DeleteRangeResponse {
  int64_t revision = 0;
  int64_t deleted = 0;
  std::vector<KeyValue> prev_kvs;
  bool operator==(const DeleteRangeResponse&) const = default;
};

struct Compare {
  enum class Result : uint8_t { kEqual = 0, kGreater = 1, kLess = 2, kNotEqual = 3 };
  enum class Target : uint8_t { kVersion = 0, kCreate = 1, kMod = 2, kValue = 3, kLease = 4 };
  Result result = Result::kEqual;
  Target target = Target::kVersion;
  std::string key;
  std::string range_end;  // compares every key in the range, as etcd 3.3+
  int64_t number = 0;     // version, create or mod revision, or lease, by target
  std::string value;
  bool operator==(const Compare&) const = default;
};

struct TxnRequest;
struct TxnResponse;

struct RequestOp {
  std::variant<RangeRequest, PutRequest, DeleteRangeRequest, std::shared_ptr<TxnRequest>> op;
  bool operator==(const RequestOp& o) const;
};

struct ResponseOp {
  std::variant<RangeResponse, PutResponse, DeleteRangeResponse, std::shared_ptr<TxnResponse>> op;
  bool operator==(const ResponseOp& o) const;
};

struct TxnRequest {
  std::vector<Compare> compare;
  std::vector<RequestOp> success;
  std::vector<RequestOp> failure;
  bool operator==(const TxnRequest&) const = default;
};

struct TxnResponse {
  int64_t revision = 0;
  bool succeeded = false;
  std::vector<ResponseOp> responses;
  bool operator==(const TxnResponse&) const = default;
};

struct CompactionRequest {
  int64_t revision = 0;
  bool operator==(const CompactionRequest&) const = default;
};
struct CompactionResponse {
  int64_t revision = 0;
  bool operator==(const CompactionResponse&) const = default;
};

struct LeaseGrantRequest {
  int64_t id = 0;  // chosen by the proposer, never 0 in the log
  int64_t ttl = 0;
  bool operator==(const LeaseGrantRequest&) const = default;
};
struct LeaseGrantResponse {
  int64_t revision = 0;
  int64_t id = 0;
  int64_t ttl = 0;
  bool operator==(const LeaseGrantResponse&) const = default;
};
struct LeaseRevokeRequest {
  int64_t id = 0;
  bool operator==(const LeaseRevokeRequest&) const = default;
};
// etcd's LeaseCheckpoint: the leader records the time left on leases (milliseconds; 0 clears a
// lease's checkpoint). It changes no key and no revision; the members' lessors read it.
struct LeaseCheckpointRequest {
  std::vector<std::pair<int64_t, int64_t>> checkpoints;  // (lease id, time left in ms)
  bool operator==(const LeaseCheckpointRequest&) const = default;
};
struct LeaseRevokeResponse {
  int64_t revision = 0;
  bool operator==(const LeaseRevokeResponse&) const = default;
};

// What one log entry asks of the state machine. `client_id` and `sequence` make retries
// idempotent (Raft dissertation §6.3); `log_time_ms` is the proposer's clock, so sessions
// expire by log time, the same way on every replica.
//
// `auth_revision` is the auth revision (auth.h) at which the member that took the request
// checked its permissions, 0 for requests the members make themselves (lease expiry): while
// auth is on, a request checked at an older revision is refused, since what it was allowed may
// have changed.
struct Command {
  uint64_t client_id = 0;  // 0: no session
  uint64_t sequence = 0;
  int64_t log_time_ms = 0;
  uint64_t auth_revision = 0;
  std::variant<PutRequest, DeleteRangeRequest, TxnRequest, CompactionRequest, LeaseGrantRequest,
               LeaseRevokeRequest, AuthRequest, LeaseCheckpointRequest>
      op;
  bool operator==(const Command&) const = default;
};

struct Response {
  ApiError error;
  std::variant<std::monostate, PutResponse, DeleteRangeResponse, TxnResponse, CompactionResponse,
               LeaseGrantResponse, LeaseRevokeResponse, AuthResponse, redis::Reply>
      op;
  bool operator==(const Response&) const = default;
};

struct Event {
  enum class Type : uint8_t { kPut = 0, kDelete = 1 };
  Type type = Type::kPut;
  KeyValue kv;  // for a delete: the key and the deleting revision as mod_revision
  std::optional<KeyValue> prev_kv;
  // A put over a live version whose value apply() did not read (no request asked for it):
  // prev_kv is empty, and MvccStore::version_before() reads it for a watcher that wants it.
  bool prev_unread = false;
  bool operator==(const Event&) const = default;
};

// Roughly what an event costs in memory and on the wire: its keys and values plus a fixed
// overhead. Queues of events are bounded by it.
inline size_t event_bytes(const Event& e) {
  size_t n = 64 + e.kv.key.size() + e.kv.value.size();
  if (e.prev_kv) n += e.prev_kv->key.size() + e.prev_kv->value.size();
  return n;
}

// Limits on what a decoded command may contain, so a damaged or hostile entry cannot ask for
// unbounded work.
inline constexpr int kMaxTxnDepth = 16;
inline constexpr int64_t kMaxLeaseTTLSeconds = 9'000'000'000;

}  // namespace chorus::kv
