// What each member keeps of etcd's auth outside the replicated state: the simple tokens logins
// handed out (in memory, as in etcd: a restart forgets them and clients log in again), and the
// per-user throttle on failed logins. Time comes in as arguments, so both are tested without
// sleeping.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace chorus::server {

using AuthClock = std::chrono::steady_clock;

// Token -> user, each token living `ttl` past its last use (etcd's --auth-token-ttl). At most
// `max_tokens`: beyond that the expired go first, then the ones closest to expiring.
class TokenTable {
 public:
  explicit TokenTable(std::chrono::seconds ttl, size_t max_tokens = 100'000)
      : ttl_(ttl), max_tokens_(max_tokens) {}

  void add(const std::string& token, const std::string& user, AuthClock::time_point now);
  // The token's user, its life extended; nullopt when unknown or expired.
  std::optional<std::string> user(const std::string& token, AuthClock::time_point now);
  // A deleted user, or a changed password: that user's tokens stop working.
  void drop_user(const std::string& user);
  // Auth turned on or off.
  void clear();
  size_t size() const;

 private:
  struct Entry {
    std::string user;
    AuthClock::time_point expires;
  };
  void make_room(AuthClock::time_point now);

  const std::chrono::seconds ttl_;
  const size_t max_tokens_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> tokens_;
};

// Failed logins, per user name (known or not, so the answer does not tell which): after
// kFreeFailures failures in a row, each further attempt must wait twice as long as the one
// before (from 100 ms up to 10 s) after the last failure, and is refused without a password
// check until then. A success clears the count. etcd's clients try a login on each endpoint in
// turn, so one wrong password may count a few times. Bounded: at most `max_names` names are
// tracked.
class LoginThrottle {
 public:
  static constexpr int kFreeFailures = 5;
  explicit LoginThrottle(size_t max_names = 10'000) : max_names_(max_names) {}

  bool allowed(const std::string& user, AuthClock::time_point now);
  void failed(const std::string& user, AuthClock::time_point now);
  void succeeded(const std::string& user);
  size_t size() const;  // names tracked

  // How long a user with `failures` failures in a row waits before the next attempt.
  static std::chrono::milliseconds wait(int failures);

 private:
  struct Record {
    int failures = 0;
    AuthClock::time_point last;
  };

  const size_t max_names_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Record> records_;
};

}  // namespace chorus::server
