// Passwords for etcd's users: bcrypt hashes (libcrypt's "$2b$", as etcd stores them), made by the
// member that takes a UserAdd or UserChangePassword, so clear text never reaches the log; and
// the check of a login against a hash, in constant time whatever the outcome.
#pragma once

#include <string>

namespace chorus::server {

inline constexpr int kMinBcryptCost = 4;
inline constexpr int kMaxBcryptCost = 31;
inline constexpr int kDefaultBcryptCost = 10;  // etcd's --bcrypt-cost default

// A bcrypt hash of `password` at `cost`; empty if the system could not make one (no random
// salt), which callers report as an internal error.
std::string hash_password(const std::string& password, int cost);
// Does `password` match `hash`? With an empty or malformed hash it still spends the time of a
// check at `cost` and answers false, so an unknown user takes as long as a wrong password.
bool check_password(const std::string& password, const std::string& hash, int cost);

// A fresh simple token: 22 random letters, a dot and a counter (etcd's shape).
std::string make_simple_token();

}  // namespace chorus::server
