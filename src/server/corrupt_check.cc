#include "server/corrupt_check.h"

#include <algorithm>
#include <cstdio>

#include "base/thread_name.h"
#include "server/log.h"

namespace chorus::server {
namespace {

std::string hex(uint64_t id) {
  char buf[20];
  std::snprintf(buf, sizeof(buf), "%llx", static_cast<unsigned long long>(id));
  return buf;
}

void add_once(std::vector<uint64_t>* out, uint64_t member) {
  if (std::find(out->begin(), out->end(), member) == out->end()) out->push_back(member);
}

}  // namespace

std::vector<uint64_t> initial_mismatches(const KvHash& mine, const std::vector<MemberHash>& peers) {
  std::vector<uint64_t> out;
  for (const MemberHash& p : peers) {
    if (!p.answered) continue;
    if (p.kv.compact_revision == mine.compact_revision && p.kv.hash != mine.hash) {
      add_once(&out, p.member);
    }
  }
  return out;
}

std::vector<uint64_t> periodic_mismatches(uint64_t self, const KvHash& before, const KvHash& after,
                                          const std::vector<MemberHash>& peers) {
  std::vector<uint64_t> out;
  if (after.hash != before.hash && after.revision == before.revision &&
      after.compact_revision == before.compact_revision) {
    add_once(&out, self);
  }
  for (const MemberHash& p : peers) {
    if (!p.answered) continue;
    // A follower is never ahead of its leader, nor compacted further.
    if (p.kv.revision > after.revision || p.kv.compact_revision > after.compact_revision ||
        (p.kv.compact_revision == before.compact_revision && p.kv.hash != before.hash)) {
      add_once(&out, p.member);
    }
  }
  return out;
}

CorruptionChecker::CorruptionChecker(uint64_t self, std::chrono::milliseconds interval, Hooks hooks)
    : self_(self),
      hooks_(std::move(hooks)),
      thread_("chorus-corrupt", interval, [this] { check_once(); }) {}

CorruptionChecker::~CorruptionChecker() = default;

void CorruptionChecker::check_once() {
  if (!hooks_.is_leader()) return;
  KvHash before, after;
  if (!hooks_.local_hash(&before)) return;
  std::vector<MemberHash> peers = hooks_.peer_hashes(before.revision);
  if (!hooks_.catch_up() || !hooks_.local_hash(&after)) return;
  for (const MemberHash& p : peers) {
    if (!p.answered && unanswered_.insert(p.member).second) {
      log(LogLevel::kWarn, "corruption check: a member gives no hash; it is not compared",
          {{"member", hex(p.member)}, {"error", p.error}});
    } else if (p.answered && unanswered_.erase(p.member) > 0) {
      log(LogLevel::kInfo, "corruption check: a member gives its hash again",
          {{"member", hex(p.member)}});
    }
  }
  for (uint64_t member : periodic_mismatches(self_, before, after, peers)) {
    log(LogLevel::kError,
        "corruption check: a member's key-value history differs; raising the "
        "CORRUPT alarm",
        {{"member", hex(member)},
         {"revision", std::to_string(before.revision)},
         {"leader-hash", std::to_string(before.hash)}});
    hooks_.raise(member);
  }
}

HashResponder::HashResponder(Hash hash) : hash_(std::move(hash)) {
  thread_ = std::thread([this] {
    base::set_thread_name("chorus-hash");
    std::unique_lock<std::mutex> lk(mu_);
    while (true) {
      cv_.wait(lk, [this] { return stop_ || has_job_; });
      if (stop_) return;
      int64_t revision = revision_;
      Reply reply = std::move(reply_);
      lk.unlock();
      KvHash out;
      std::string error;
      bool ok = hash_(revision, &out, &error);
      lk.lock();
      has_job_ = false;  // free before the answer goes: whoever hears it may ask again
      lk.unlock();
      reply(ok, out, error);
      lk.lock();
    }
  });
}

HashResponder::~HashResponder() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void HashResponder::submit(int64_t revision, Reply reply) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!stop_ && !has_job_) {
      has_job_ = true;
      revision_ = revision;
      reply_ = std::move(reply);
      cv_.notify_all();
      return;
    }
  }
  reply(false, KvHash{}, "busy with another member's hash request, or stopping; ask again later");
}

}  // namespace chorus::server
