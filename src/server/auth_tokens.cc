#include "server/auth_tokens.h"

#include <algorithm>
#include <vector>

namespace chorus::server {

void TokenTable::add(const std::string& token, const std::string& user, AuthClock::time_point now) {
  std::lock_guard<std::mutex> lk(mu_);
  if (tokens_.size() >= max_tokens_ && !tokens_.contains(token)) make_room(now);
  tokens_[token] = Entry{user, now + ttl_};
}

std::optional<std::string> TokenTable::user(const std::string& token, AuthClock::time_point now) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = tokens_.find(token);
  if (it == tokens_.end()) return std::nullopt;
  if (it->second.expires <= now) {
    tokens_.erase(it);
    return std::nullopt;
  }
  it->second.expires = now + ttl_;
  return it->second.user;
}

void TokenTable::drop_user(const std::string& user) {
  std::lock_guard<std::mutex> lk(mu_);
  std::erase_if(tokens_, [&](const auto& kv) { return kv.second.user == user; });
}

void TokenTable::clear() {
  std::lock_guard<std::mutex> lk(mu_);
  tokens_.clear();
}

size_t TokenTable::size() const {
  std::lock_guard<std::mutex> lk(mu_);
  return tokens_.size();
}

void TokenTable::make_room(AuthClock::time_point now) {
  std::erase_if(tokens_, [&](const auto& kv) { return kv.second.expires <= now; });
  if (tokens_.size() < max_tokens_) return;
  // Still full of live tokens: the oldest tenth goes, so this runs once per many logins.
  std::vector<AuthClock::time_point> expiries;
  expiries.reserve(tokens_.size());
  for (const auto& [token, e] : tokens_)
    expiries.push_back(e.expires);
  size_t cut = std::max<size_t>(1, tokens_.size() / 10);
  std::nth_element(expiries.begin(), expiries.begin() + static_cast<std::ptrdiff_t>(cut - 1),
                   expiries.end());
  AuthClock::time_point limit = expiries[cut - 1];
  std::erase_if(tokens_, [&](const auto& kv) { return kv.second.expires <= limit; });
}

std::chrono::milliseconds LoginThrottle::wait(int failures) {
  if (failures < kFreeFailures) return std::chrono::milliseconds(0);
  int doublings = std::min(failures - kFreeFailures, 7);  // 100 ms << 7 = 12.8 s
  return std::min(std::chrono::milliseconds(100 << doublings), std::chrono::milliseconds(10'000));
}

bool LoginThrottle::allowed(const std::string& user, AuthClock::time_point now) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = records_.find(user);
  if (it == records_.end()) return true;
  return now >= it->second.last + wait(it->second.failures);
}

void LoginThrottle::failed(const std::string& user, AuthClock::time_point now) {
  std::lock_guard<std::mutex> lk(mu_);
  if (records_.size() >= max_names_ && !records_.contains(user)) {
    // Forget the names whose wait ran out long ago; if that frees nothing, forget them all
    // rather than grow (the worst case is a few free attempts more).
    std::erase_if(records_, [&](const auto& kv) {
      return now >= kv.second.last + wait(kv.second.failures) + std::chrono::minutes(1);
    });
    if (records_.size() >= max_names_) records_.clear();
  }
  Record& r = records_[user];
  r.failures = std::min(r.failures + 1, 1000);
  r.last = now;
}

size_t LoginThrottle::size() const {
  std::lock_guard<std::mutex> lk(mu_);
  return records_.size();
}

void LoginThrottle::succeeded(const std::string& user) {
  std::lock_guard<std::mutex> lk(mu_);
  records_.erase(user);
}

}  // namespace chorus::server
