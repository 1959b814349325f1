// etcd's users, roles and key-range permissions as replicated state: what AuthEnable, UserAdd,
// RoleGrantPermission and the rest change (applied from the log, so every member holds the same
// state), and the checks a request passes against it. Pure: no clock, no I/O, no threads. The
// state machine keeps one AuthState inside its store (mvcc.h); the API layer checks requests
// against the copy the store publishes.
//
// Semantics are etcd 3.4's (auth/store.go), including the `root` user and role: a user with the
// root role may do anything, and auth can only be enabled once a root user holding it exists.
// Passwords arrive here already hashed (bcrypt, by the member that took the request): clear text
// never enters the log.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::kv {

struct ApiError;

enum class PermType : uint8_t { kRead = 0, kWrite = 1, kReadWrite = 2 };

// A key or a range of keys, with etcd's conventions: an empty range_end is the single key;
// "\0" is every key from `key` on.
struct Permission {
  PermType type = PermType::kRead;
  std::string key;
  std::string range_end;
  bool operator==(const Permission&) const = default;
};

struct AuthUser {
  std::string password_hash;       // bcrypt; empty with no_password
  std::vector<std::string> roles;  // sorted, distinct
  bool no_password = false;
  bool operator==(const AuthUser&) const = default;
};

struct AuthRole {
  std::vector<Permission> perms;  // sorted by (key, range_end), one per range
  bool operator==(const AuthRole&) const = default;
};

struct AuthState {
  bool enabled = false;
  // Bumped by every change; a request checked at an older revision is refused when applied
  // (etcd's "revision of auth store is old"). Starts at 1, so 0 can mean "not checked".
  uint64_t revision = 1;
  std::map<std::string, AuthUser, std::less<>> users;
  std::map<std::string, AuthRole, std::less<>> roles;
  bool operator==(const AuthState&) const = default;

  bool has_root_role(std::string_view user) const;
};

inline constexpr const char* kRootName = "root";  // etcd's root user and role

// What an auth change asks. One struct for every kind; each kind reads the fields it names.
struct AuthRequest {
  enum class Kind : uint8_t {
    kEnable = 0,
    kDisable,
    kAuthenticate,          // name, token, checked_revision
    kUserAdd,               // name, password_hash, no_password
    kUserDelete,            // name
    kUserChangePassword,    // name, password_hash
    kUserGrantRole,         // name, role
    kUserRevokeRole,        // name, role
    kRoleAdd,               // name
    kRoleDelete,            // name
    kRoleGrantPermission,   // name, perm
    kRoleRevokePermission,  // name, perm.key, perm.range_end
  };
  static constexpr uint8_t kLastKind = static_cast<uint8_t>(Kind::kRoleRevokePermission);

  Kind kind = Kind::kEnable;
  std::string name;
  std::string role;
  std::string password_hash;
  bool no_password = false;
  Permission perm;
  // kAuthenticate: the token the proposer made, and the auth revision at which it checked the
  // password (a change since then refuses the login: the password may have changed).
  std::string token;
  uint64_t checked_revision = 0;
  bool operator==(const AuthRequest&) const = default;
};

// What members do with their tokens after an auth change is applied (tokens live in memory on
// each member, outside the replicated state).
enum class TokenAction : uint8_t { kNone = 0, kAdd, kDropUser, kDropAll };

struct AuthResponse {
  int64_t revision = 0;  // the store's (key) revision, as every response carries
  uint64_t auth_revision = 0;
  TokenAction tokens = TokenAction::kNone;
  std::string user;   // for kAdd and kDropUser
  std::string token;  // for kAdd
  bool operator==(const AuthResponse&) const = default;
};

// Applies `q` to `s` with etcd's rules and errors; on success the revision moves on (except for
// a login, which changes nothing). `s` is unchanged on error.
ApiError apply_auth(AuthState* s, const AuthRequest& q, AuthResponse* out);

// May `user`, checked at auth revision `revision`, do `type` on [key, range_end)? Always when
// auth is off. Errors: user name is empty (no user), revision of auth store is old, permission
// denied.
ApiError check_permission(const AuthState& s, std::string_view user, uint64_t revision,
                          std::string_view key, std::string_view range_end, PermType type);
// User and role management, auth disable, defragment, snapshot, member changes: the root role.
ApiError check_admin(const AuthState& s, std::string_view user);

// Is [key, range_end) inside the union of `perms` granting `type`? Exposed for tests.
bool covered(const std::vector<const Permission*>& perms, std::string_view key,
             std::string_view range_end);

// The state as one record, and back (nullopt for bytes that are not a state).
std::string encode_auth_state(const AuthState& s);
std::optional<AuthState> decode_auth_state(std::string_view bytes);

}  // namespace chorus::kv
