#include "kv/auth.h"

#include <gtest/gtest.h>

#include "kv/codec.h"
#include "kv/types.h"

namespace chorus::kv {
namespace {

using K = AuthRequest::Kind;

AuthRequest req(K kind, std::string name = "", std::string role = "") {
  AuthRequest q;
  q.kind = kind;
  q.name = std::move(name);
  q.role = std::move(role);
  return q;
}

AuthRequest grant(std::string role, PermType type, std::string key, std::string end = "") {
  AuthRequest q = req(K::kRoleGrantPermission, std::move(role));
  q.perm = Permission{type, std::move(key), std::move(end)};
  return q;
}

ApiError run(AuthState* s, const AuthRequest& q, AuthResponse* out = nullptr) {
  AuthResponse ignored;
  return apply_auth(s, q, out ? out : &ignored);
}

std::string message(const ApiError& e) {
  return e.message;
}

// root (with the root role), alice (role "app": read /app/, write /app/w/, readwrite key "x")
// and bob (no role); auth on.
AuthState sample() {
  AuthState s;
  for (const AuthRequest& q :
       {req(K::kUserAdd, "root"), req(K::kUserGrantRole, "root", "root"), req(K::kRoleAdd, "app"),
        grant("app", PermType::kRead, "/app/", "/app0"),
        grant("app", PermType::kWrite, "/app/w/", "/app/w0"),
        grant("app", PermType::kReadWrite, "x"), req(K::kUserAdd, "alice"),
        req(K::kUserGrantRole, "alice", "app"), req(K::kUserAdd, "bob"), req(K::kEnable)}) {
    ApiError e = run(&s, q);
    EXPECT_TRUE(e.ok()) << e.message;
  }
  return s;
}

TEST(Auth, EnableNeedsARootUserWithTheRootRole) {
  AuthState s;
  EXPECT_EQ(message(run(&s, req(K::kEnable))), errors::kRootUserNotExist);
  ASSERT_TRUE(run(&s, req(K::kUserAdd, "root")).ok());
  EXPECT_EQ(message(run(&s, req(K::kEnable))), errors::kRootRoleNotExist);
  // The root role is granted without having been created.
  ASSERT_TRUE(run(&s, req(K::kUserGrantRole, "root", "root")).ok());
  AuthResponse out;
  ASSERT_TRUE(run(&s, req(K::kEnable), &out).ok());
  EXPECT_TRUE(s.enabled);
  EXPECT_EQ(out.tokens, TokenAction::kDropAll);
  // Enabling twice is no error and no change.
  uint64_t rev = s.revision;
  ASSERT_TRUE(run(&s, req(K::kEnable)).ok());
  EXPECT_EQ(s.revision, rev);
}

TEST(Auth, ManagementErrorsAreEtcds) {
  AuthState s = sample();
  struct Case {
    AuthRequest q;
    const char* error;  // nullptr: succeeds
  };
  const Case cases[] = {
      {req(K::kUserAdd, ""), errors::kUserEmpty},
      {req(K::kUserAdd, "alice"), errors::kUserAlreadyExist},
      {req(K::kUserDelete, "nobody"), errors::kUserNotFound},
      {req(K::kUserDelete, "root"), errors::kInvalidAuthMgmt},
      {req(K::kUserChangePassword, "nobody"), errors::kUserNotFound},
      {req(K::kUserGrantRole, "nobody", "app"), errors::kUserNotFound},
      {req(K::kUserGrantRole, "bob", "nope"), errors::kRoleNotFound},
      {req(K::kUserRevokeRole, "bob", "app"), errors::kRoleNotGranted},
      {req(K::kUserRevokeRole, "root", "root"), errors::kInvalidAuthMgmt},
      {req(K::kRoleAdd, ""), errors::kRoleEmpty},
      {req(K::kRoleAdd, "app"), errors::kRoleAlreadyExist},
      {req(K::kRoleDelete, "nope"), errors::kRoleNotFound},
      {req(K::kRoleDelete, "root"), errors::kInvalidAuthMgmt},
      {grant("nope", PermType::kRead, "a"), errors::kRoleNotFound},
      {req(K::kRoleRevokePermission, "app"), errors::kPermissionNotGranted},
      {req(K::kUserGrantRole, "alice", "app"), nullptr},  // granted again: ignored
  };
  for (const Case& c : cases) {
    AuthState before = s;
    ApiError e = run(&s, c.q);
    if (c.error == nullptr) {
      EXPECT_TRUE(e.ok()) << e.message;
    } else {
      EXPECT_EQ(e.message, c.error) << static_cast<int>(c.q.kind) << " " << c.q.name;
      EXPECT_EQ(s, before) << "a refused change must leave the state alone";
    }
  }
}

TEST(Auth, EveryChangeMovesTheRevisionAndLoginsDoNot) {
  AuthState s = sample();
  uint64_t rev = s.revision;
  ASSERT_TRUE(run(&s, req(K::kRoleAdd, "r2")).ok());
  EXPECT_EQ(s.revision, rev + 1);
  AuthRequest login = req(K::kAuthenticate, "alice");
  login.token = "t1";
  login.checked_revision = s.revision;
  AuthResponse out;
  ASSERT_TRUE(run(&s, login, &out).ok());
  EXPECT_EQ(s.revision, rev + 1);
  EXPECT_EQ(out.tokens, TokenAction::kAdd);
  EXPECT_EQ(out.token, "t1");
  EXPECT_EQ(out.user, "alice");
  // A login checked against an older revision is refused: the password may have changed.
  login.checked_revision = rev;
  EXPECT_EQ(message(run(&s, login)), errors::kAuthOldRevision);
  login.name = "nobody";
  login.checked_revision = s.revision;
  EXPECT_EQ(message(run(&s, login)), errors::kAuthFailed);
  ASSERT_TRUE(run(&s, req(K::kUserChangePassword, "alice"), &out).ok());
  EXPECT_EQ(out.tokens, TokenAction::kDropUser);
  ASSERT_TRUE(run(&s, req(K::kDisable), &out).ok());
  EXPECT_EQ(out.tokens, TokenAction::kDropAll);
  login.name = "alice";
  EXPECT_EQ(message(run(&s, login)), errors::kAuthNotEnabled);
}

TEST(Auth, PermissionsCoverKeysAndRanges) {
  AuthState s = sample();
  const uint64_t rev = s.revision;
  struct Case {
    const char* user;
    std::string key;
    std::string end;
    PermType type;
    bool allowed;
  };
  const std::string open(1, '\0');
  const Case cases[] = {
      {"alice", "/app/a", "", PermType::kRead, true},
      {"alice", "/app/a", "", PermType::kWrite, false},
      {"alice", "/app/", "/app0", PermType::kRead, true},  // the whole prefix
      {"alice", "/app/", open, PermType::kRead, false},    // from the prefix on: beyond it
      {"alice", "/ap", "/app0", PermType::kRead, false},   // starts before it
      {"alice", "/app/w/1", "", PermType::kWrite, true},   // write-only range
      {"alice", "/app/w/1", "", PermType::kRead, true},    // and readable through /app/
      {"alice", "/app/w/", "/app/w0", PermType::kWrite, true},
      {"alice", "/app/", "/app0", PermType::kWrite, false},
      {"alice", "x", "", PermType::kWrite, true},
      {"alice", "x", "", PermType::kRead, true},
      {"alice", "x", "x" + open, PermType::kRead, true},  // [x, x\0) is the key x
      {"alice", "x", "y", PermType::kRead, false},
      {"alice", "/app/b", "/app/a", PermType::kWrite, true},  // an empty range
      {"bob", "/app/a", "", PermType::kRead, false},
      {"root", open, open, PermType::kWrite, true},
      {"nobody", "/app/a", "", PermType::kRead, false},
  };
  for (const Case& c : cases) {
    ApiError e = check_permission(s, c.user, rev, c.key, c.end, c.type);
    EXPECT_EQ(e.ok(), c.allowed) << c.user << " " << c.key << ".." << c.end << " "
                                 << static_cast<int>(c.type) << ": " << e.message;
    if (!c.allowed) {
      EXPECT_EQ(e.message, errors::kPermissionDenied);
    }
  }
  EXPECT_EQ(message(check_permission(s, "", rev, "x", "", PermType::kRead)), errors::kUserEmpty);
  EXPECT_EQ(message(check_permission(s, "alice", rev - 1, "x", "", PermType::kRead)),
            errors::kAuthOldRevision);
  EXPECT_TRUE(check_admin(s, "root").ok());
  EXPECT_EQ(message(check_admin(s, "alice")), errors::kPermissionDenied);
  EXPECT_EQ(message(check_admin(s, "nobody")), errors::kUserNotFound);
  EXPECT_EQ(message(check_admin(s, "")), errors::kUserEmpty);
  // With auth off, everything is allowed.
  ASSERT_TRUE(run(&s, req(K::kDisable)).ok());
  EXPECT_TRUE(check_permission(s, "", 0, "/app/a", "", PermType::kWrite).ok());
  EXPECT_TRUE(check_admin(s, "").ok());
}

TEST(Auth, OverlappingGrantsJoinAndARevokedRoleStopsCounting) {
  AuthState s = sample();
  ASSERT_TRUE(run(&s, req(K::kRoleAdd, "more")).ok());
  ASSERT_TRUE(run(&s, grant("more", PermType::kRead, "/app0", "/b")).ok());
  ASSERT_TRUE(run(&s, req(K::kUserGrantRole, "alice", "more")).ok());
  // /app/ .. /app0 from one role, /app0 .. /b from the other: together they cover /app/ .. /b.
  EXPECT_TRUE(check_permission(s, "alice", s.revision, "/app/", "/b", PermType::kRead).ok());
  ASSERT_TRUE(run(&s, req(K::kRoleDelete, "more")).ok());
  EXPECT_FALSE(check_permission(s, "alice", s.revision, "/app/", "/b", PermType::kRead).ok());
  EXPECT_EQ(s.users.at("alice").roles, std::vector<std::string>{"app"});
  // Granting the same range again replaces its type; revoking takes it away.
  ASSERT_TRUE(run(&s, grant("app", PermType::kReadWrite, "/app/", "/app0")).ok());
  EXPECT_EQ(s.roles.at("app").perms.size(), 3u);
  EXPECT_TRUE(check_permission(s, "alice", s.revision, "/app/q", "", PermType::kWrite).ok());
  AuthRequest revoke = req(K::kRoleRevokePermission, "app");
  revoke.perm.key = "/app/";
  revoke.perm.range_end = "/app0";
  ASSERT_TRUE(run(&s, revoke).ok());
  EXPECT_FALSE(check_permission(s, "alice", s.revision, "/app/q", "", PermType::kRead).ok());
}

TEST(Auth, StateAndCommandsSurviveEncoding) {
  AuthState s = sample();
  s.users["alice"].password_hash = "$2b$10$abcdefghijklmnopqrstuv";
  std::optional<AuthState> back = decode_auth_state(encode_auth_state(s));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, s);
  std::string bytes = encode_auth_state(s);
  for (size_t cut = 0; cut < bytes.size(); ++cut)
    EXPECT_FALSE(decode_auth_state(bytes.substr(0, cut)).has_value()) << cut;

  Command c;
  c.auth_revision = 7;
  AuthRequest q = grant("app", PermType::kWrite, "k", "l");
  q.token = "tok";
  q.checked_revision = 9;
  c.op = q;
  std::optional<Command> d = decode_command(encode_command(c));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, c);
  Response r;
  r.op = AuthResponse{5, 6, TokenAction::kAdd, "alice", "tok"};
  std::optional<Response> rd = decode_response(encode_response(r));
  ASSERT_TRUE(rd.has_value());
  EXPECT_EQ(*rd, r);
}

}  // namespace
}  // namespace chorus::kv
