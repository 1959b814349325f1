// Errors a client sees, as gRPC status codes (numerically equal to grpc::StatusCode, so this
// header needs no gRPC) with etcd's message texts: clients match errors by text.
#pragma once

#include <string>

#include "kv/types.h"

namespace chorus::server {

enum class RpcCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

struct RpcError {
  RpcCode code = RpcCode::kOk;
  std::string message;
  bool ok() const { return code == RpcCode::kOk; }
};

namespace rpc_errors {
inline const char* const kNoLeader = "etcdserver: no leader";
inline const char* const kNotLeader = "etcdserver: not leader";
inline const char* const kTimeout = "etcdserver: request timed out";
inline const char* const kStopped = "etcdserver: server stopped";
inline const char* const kTooLarge = "etcdserver: request is too large";
inline const char* const kTooManyRequests = "etcdserver: too many requests";
inline const char* const kNoSpace = "etcdserver: mvcc: database space exceeded";
// While the CORRUPT alarm is raised (a member's key-value history differs from the others').
inline const char* const kCorrupt = "etcdserver: corrupt cluster";
inline const char* const kMemberNotFound = "etcdserver: member not found";
inline const char* const kMemberExist = "etcdserver: member ID already exist";
inline const char* const kPeerURLExist = "etcdserver: Peer URLs already exists";
inline const char* const kUnhealthy = "etcdserver: unhealthy cluster";
inline const char* const kNotEnoughStarted =
    "etcdserver: re-configuration failed due to not enough started members";
inline const char* const kMemberNotLearner = "etcdserver: can only promote a learner member";
inline const char* const kLearnerNotReady =
    "etcdserver: can only promote a learner member which is in sync with leader";
inline const char* const kNotCapable = "etcdserver: not capable";
inline const char* const kLeaderChanged = "etcdserver: leader changed";
inline const char* const kBadTransferee = "etcdserver: bad leader transferee";
inline const char* const kTransferTimeout =
    "etcdserver: request timed out, leader transfer took too long";
inline const char* const kIDRemoved = "etcdserver: ID removed";
inline const char* const kConfChangePending =
    "etcdserver: a configuration change is still being applied; retry";
}  // namespace rpc_errors

inline RpcError rpc_error(RpcCode code, std::string message) {
  return RpcError{code, std::move(message)};
}

// The gRPC code etcd uses for each state machine error.
inline RpcError from_api_error(const kv::ApiError& e) {
  switch (e.code) {
    case kv::Code::kOk:
      return {};
    case kv::Code::kInvalidArgument:
      return {RpcCode::kInvalidArgument, e.message};
    case kv::Code::kNotFound:
      return {RpcCode::kNotFound, e.message};
    case kv::Code::kFailedPrecondition:
      return {RpcCode::kFailedPrecondition, e.message};
    case kv::Code::kOutOfRange:
      return {RpcCode::kOutOfRange, e.message};
    case kv::Code::kResourceExhausted:
      return {RpcCode::kResourceExhausted, e.message};
    case kv::Code::kInternal:
      return {RpcCode::kInternal, e.message};
    case kv::Code::kPermissionDenied:
      return {RpcCode::kPermissionDenied, e.message};
    case kv::Code::kUnauthenticated:
      return {RpcCode::kUnauthenticated, e.message};
  }
  return {RpcCode::kInternal, e.message};
}

}  // namespace chorus::server
