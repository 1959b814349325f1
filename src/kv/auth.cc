#include "kv/auth.h"

#include <algorithm>

#include "base/coding.h"
#include "kv/types.h"

namespace chorus::kv {
namespace {

using base::put_bytes;
using base::put_u32;
using base::put_u64;
using base::put_u8;
using base::Reader;

constexpr uint8_t kStateVersion = 1;
// Bounds on a decoded state, so a damaged record cannot ask for unbounded memory.
constexpr uint32_t kMaxEntries = 1u << 20;

ApiError fail(Code code, const char* message) {
  return ApiError{code, message};
}

bool is_open_end(std::string_view end) {
  return end.size() == 1 && end[0] == '\0';
}

bool perm_less(const Permission& a, const Permission& b) {
  if (a.key != b.key) return a.key < b.key;
  return a.range_end < b.range_end;
}

bool grants(PermType have, PermType want) {
  return have == PermType::kReadWrite || have == want;
}

}  // namespace

bool AuthState::has_root_role(std::string_view user) const {
  auto u = users.find(user);
  if (u == users.end()) return false;
  return std::binary_search(u->second.roles.begin(), u->second.roles.end(), std::string(kRootName));
}

ApiError apply_auth(AuthState* s, const AuthRequest& q, AuthResponse* out) {
  using K = AuthRequest::Kind;
  const bool root_name = q.name == kRootName;
  auto user = s->users.find(q.name);
  auto role = s->roles.find(q.name);
  bool changed = true;
  switch (q.kind) {
    case K::kEnable:
      if (s->enabled) {
        changed = false;
        break;
      }
      if (!s->users.contains(kRootName))
        return fail(Code::kFailedPrecondition, errors::kRootUserNotExist);
      if (!s->has_root_role(kRootName))
        return fail(Code::kFailedPrecondition, errors::kRootRoleNotExist);
      s->enabled = true;
      out->tokens = TokenAction::kDropAll;
      break;
    case K::kDisable:
      if (!s->enabled) {
        changed = false;
        break;
      }
      s->enabled = false;
      out->tokens = TokenAction::kDropAll;
      break;
    case K::kAuthenticate:
      if (!s->enabled) return fail(Code::kFailedPrecondition, errors::kAuthNotEnabled);
      if (user == s->users.end() || user->second.no_password)
        return fail(Code::kInvalidArgument, errors::kAuthFailed);
      if (q.checked_revision != s->revision)
        return fail(Code::kInvalidArgument, errors::kAuthOldRevision);
      if (q.token.empty()) return fail(Code::kInvalidArgument, errors::kInvalidAuthToken);
      out->tokens = TokenAction::kAdd;
      out->user = q.name;
      out->token = q.token;
      changed = false;
      break;
    case K::kUserAdd:
      if (q.name.empty()) return fail(Code::kInvalidArgument, errors::kUserEmpty);
      if (user != s->users.end()) return fail(Code::kFailedPrecondition, errors::kUserAlreadyExist);
      s->users[q.name] = AuthUser{q.no_password ? "" : q.password_hash, {}, q.no_password};
      break;
    case K::kUserDelete:
      if (s->enabled && root_name) return fail(Code::kInvalidArgument, errors::kInvalidAuthMgmt);
      if (user == s->users.end()) return fail(Code::kFailedPrecondition, errors::kUserNotFound);
      s->users.erase(user);
      out->tokens = TokenAction::kDropUser;
      out->user = q.name;
      break;
    case K::kUserChangePassword:
      if (user == s->users.end()) return fail(Code::kFailedPrecondition, errors::kUserNotFound);
      user->second.password_hash = q.password_hash;
      user->second.no_password = false;
      out->tokens = TokenAction::kDropUser;
      out->user = q.name;
      break;
    case K::kUserGrantRole: {
      if (user == s->users.end()) return fail(Code::kFailedPrecondition, errors::kUserNotFound);
      // The root role need not have been created to be granted (etcd).
      if (q.role != kRootName && !s->roles.contains(q.role))
        return fail(Code::kFailedPrecondition, errors::kRoleNotFound);
      auto& roles = user->second.roles;
      auto at = std::lower_bound(roles.begin(), roles.end(), q.role);
      if (at != roles.end() && *at == q.role) {
        changed = false;  // granted already: etcd ignores it
        break;
      }
      roles.insert(at, q.role);
      break;
    }
    case K::kUserRevokeRole: {
      if (s->enabled && root_name && q.role == kRootName)
        return fail(Code::kInvalidArgument, errors::kInvalidAuthMgmt);
      if (user == s->users.end()) return fail(Code::kFailedPrecondition, errors::kUserNotFound);
      auto& roles = user->second.roles;
      auto at = std::lower_bound(roles.begin(), roles.end(), q.role);
      if (at == roles.end() || *at != q.role)
        return fail(Code::kFailedPrecondition, errors::kRoleNotGranted);
      roles.erase(at);
      break;
    }
    case K::kRoleAdd:
      if (q.name.empty()) return fail(Code::kInvalidArgument, errors::kRoleEmpty);
      if (role != s->roles.end()) return fail(Code::kFailedPrecondition, errors::kRoleAlreadyExist);
      s->roles[q.name] = AuthRole{};
      break;
    case K::kRoleDelete:
      if (s->enabled && root_name) return fail(Code::kInvalidArgument, errors::kInvalidAuthMgmt);
      if (role == s->roles.end()) return fail(Code::kFailedPrecondition, errors::kRoleNotFound);
      s->roles.erase(role);
      for (auto& [name, u] : s->users) {
        auto at = std::lower_bound(u.roles.begin(), u.roles.end(), q.name);
        if (at != u.roles.end() && *at == q.name) u.roles.erase(at);
      }
      break;
    case K::kRoleGrantPermission: {
      if (role == s->roles.end()) return fail(Code::kFailedPrecondition, errors::kRoleNotFound);
      auto& perms = role->second.perms;
      auto at = std::lower_bound(perms.begin(), perms.end(), q.perm, perm_less);
      if (at != perms.end() && at->key == q.perm.key && at->range_end == q.perm.range_end) {
        at->type = q.perm.type;  // the same range granted again: its type is replaced
      } else {
        perms.insert(at, q.perm);
      }
      break;
    }
    case K::kRoleRevokePermission: {
      if (role == s->roles.end()) return fail(Code::kFailedPrecondition, errors::kRoleNotFound);
      auto& perms = role->second.perms;
      auto at = std::lower_bound(perms.begin(), perms.end(), q.perm, perm_less);
      if (at == perms.end() || at->key != q.perm.key || at->range_end != q.perm.range_end)
        return fail(Code::kFailedPrecondition, errors::kPermissionNotGranted);
      perms.erase(at);
      break;
    }
  }
  if (changed) ++s->revision;
  out->auth_revision = s->revision;
  return {};
}

bool covered(const std::vector<const Permission*>& perms, std::string_view key,
             std::string_view range_end) {
  if (range_end.empty()) {
    for (const Permission* p : perms) {
      if (p->range_end.empty() ? p->key == key
                               : key >= p->key && (is_open_end(p->range_end) || key < p->range_end))
        return true;
    }
    return false;
  }
  const bool want_open = is_open_end(range_end);
  if (!want_open && range_end <= key) return true;  // an empty range
  // Walk the permissions' intervals in order of their start, extending what is covered from
  // `key` on; a gap before the request's end means not covered.
  struct Interval {
    std::string_view start;
    std::string end;  // exclusive; empty with `open`
    bool open = false;
  };
  std::vector<Interval> iv;
  iv.reserve(perms.size());
  for (const Permission* p : perms) {
    if (p->range_end.empty()) {
      iv.push_back({p->key, p->key + std::string(1, '\0'), false});
    } else if (is_open_end(p->range_end)) {
      iv.push_back({p->key, {}, true});
    } else if (p->range_end > p->key) {
      iv.push_back({p->key, p->range_end, false});
    }
  }
  std::sort(iv.begin(), iv.end(),
            [](const Interval& a, const Interval& b) { return a.start < b.start; });
  std::string reached(key);
  for (const Interval& i : iv) {
    if (i.start > reached) break;
    if (i.open) return true;
    if (i.end > reached) reached = i.end;
    if (!want_open && reached >= range_end) return true;
  }
  return false;
}

ApiError check_permission(const AuthState& s, std::string_view user, uint64_t revision,
                          std::string_view key, std::string_view range_end, PermType type) {
  if (!s.enabled) return {};
  if (user.empty()) return fail(Code::kInvalidArgument, errors::kUserEmpty);
  if (revision < s.revision) return fail(Code::kInvalidArgument, errors::kAuthOldRevision);
  auto u = s.users.find(user);
  if (u == s.users.end()) return fail(Code::kPermissionDenied, errors::kPermissionDenied);
  if (s.has_root_role(user)) return {};
  std::vector<const Permission*> perms;
  for (const std::string& name : u->second.roles) {
    auto r = s.roles.find(name);
    if (r == s.roles.end()) continue;
    for (const Permission& p : r->second.perms)
      if (grants(p.type, type)) perms.push_back(&p);
  }
  if (covered(perms, key, range_end)) return {};
  return fail(Code::kPermissionDenied, errors::kPermissionDenied);
}

ApiError check_admin(const AuthState& s, std::string_view user) {
  if (!s.enabled) return {};
  if (user.empty()) return fail(Code::kInvalidArgument, errors::kUserEmpty);
  if (!s.users.contains(user)) return fail(Code::kFailedPrecondition, errors::kUserNotFound);
  if (!s.has_root_role(user)) return fail(Code::kPermissionDenied, errors::kPermissionDenied);
  return {};
}

std::string encode_auth_state(const AuthState& s) {
  std::string o;
  put_u8(&o, kStateVersion);
  put_u8(&o, s.enabled ? 1 : 0);
  put_u64(&o, s.revision);
  put_u32(&o, static_cast<uint32_t>(s.users.size()));
  for (const auto& [name, u] : s.users) {
    put_bytes(&o, name);
    put_bytes(&o, u.password_hash);
    put_u8(&o, u.no_password ? 1 : 0);
    put_u32(&o, static_cast<uint32_t>(u.roles.size()));
    for (const std::string& r : u.roles)
      put_bytes(&o, r);
  }
  put_u32(&o, static_cast<uint32_t>(s.roles.size()));
  for (const auto& [name, r] : s.roles) {
    put_bytes(&o, name);
    put_u32(&o, static_cast<uint32_t>(r.perms.size()));
    for (const Permission& p : r.perms) {
      put_u8(&o, static_cast<uint8_t>(p.type));
      put_bytes(&o, p.key);
      put_bytes(&o, p.range_end);
    }
  }
  return o;
}

std::optional<AuthState> decode_auth_state(std::string_view bytes) {
  Reader r(bytes);
  AuthState s;
  uint8_t version = 0;
  uint32_t n = 0;
  if (!r.u8(&version) || version != kStateVersion || !r.boolean(&s.enabled) ||
      !r.u64(&s.revision) || !r.u32(&n) || n > kMaxEntries || n > r.remaining() / 4)
    return std::nullopt;
  for (uint32_t i = 0; i < n; ++i) {
    std::string name;
    AuthUser u;
    uint32_t roles = 0;
    if (!r.bytes(&name) || !r.bytes(&u.password_hash) || !r.boolean(&u.no_password) ||
        !r.u32(&roles) || roles > r.remaining() / 4)
      return std::nullopt;
    u.roles.resize(roles);
    for (std::string& role : u.roles)
      if (!r.bytes(&role)) return std::nullopt;
    if (!std::is_sorted(u.roles.begin(), u.roles.end())) return std::nullopt;
    if (!s.users.emplace(std::move(name), std::move(u)).second) return std::nullopt;
  }
  if (!r.u32(&n) || n > kMaxEntries || n > r.remaining() / 4) return std::nullopt;
  for (uint32_t i = 0; i < n; ++i) {
    std::string name;
    AuthRole role;
    uint32_t perms = 0;
    if (!r.bytes(&name) || !r.u32(&perms) || perms > r.remaining() / 9) return std::nullopt;
    role.perms.resize(perms);
    for (Permission& p : role.perms) {
      uint8_t type = 0;
      if (!r.u8(&type) || type > static_cast<uint8_t>(PermType::kReadWrite) || !r.bytes(&p.key) ||
          !r.bytes(&p.range_end))
        return std::nullopt;
      p.type = static_cast<PermType>(type);
    }
    if (!std::is_sorted(role.perms.begin(), role.perms.end(), perm_less)) return std::nullopt;
    if (!s.roles.emplace(std::move(name), std::move(role)).second) return std::nullopt;
  }
  if (!r.done()) return std::nullopt;
  return s;
}

}  // namespace chorus::kv
