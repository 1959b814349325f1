// The apply thread: committed entries applied to the store in batches, proposals answered,
// linearizable reads run once the store reaches their read index.
#include "server/node.h"

#include <deque>

#include <algorithm>

#include "kv/codec.h"
#include "kv/snapshots.h"
#include "server/log.h"

namespace chorus::server {

using Clock = std::chrono::steady_clock;
using storage::Status;

void Node::apply_loop() {
  std::vector<kv::AppliedEntry> batch;
  std::vector<ProposalHeader> headers;
  while (true) {
    std::deque<ApplyItem> items;
    EventsFn events_fn;
    AuthFn auth_fn;
    {
      std::unique_lock<std::mutex> lk(apply_mu_);
      apply_cv_.wait(lk, [this] {
        return apply_stop_ || !apply_queue_.empty() || snapshot_requested_.load();
      });
      if (apply_stop_) return;
      items.swap(apply_queue_);
      events_fn = events_fn_;
      auth_fn = auth_fn_;
    }
    std::lock_guard<std::mutex> exec(apply_exec_mu_);
    // Every committed entry waiting is applied as one batch: one RocksDB write.
    batch.clear();
    headers.clear();
    std::vector<MemberAttributes> attributes;
    std::vector<uint64_t> other_done;  // envelopes other than commands made here
    struct GroupChangeApplied {
      uint64_t request_id = 0;
      RpcError error;
      GroupDescriptor group;
    };
    std::vector<GroupChangeApplied> group_changes;  // made here
    bool directory_changed = false;
    std::deque<std::string> rewritten;  // --unsafe-test-fault corrupt-writes only
    for (ApplyItem& item : items) {
      for (const raft::Entry& e : item.entries) {
        kv::AppliedEntry a{e.index, e.term, {}};
        ProposalHeader h;
        if (e.type == raft::EntryType::kNormal && !e.data.empty()) {
          std::string_view payload;
          std::optional<ProposalHeader> decoded = decode_proposal(e.data, &payload);
          if (decoded && decoded->kind == ProposalKind::kCommand) {
            h = *decoded;
            a.data = payload;
            if (options_.unsafe_corrupt_writes) {
              // Broken on purpose: this replica stores every put's value altered, so its
              // history differs from the others' (for testing the corruption checks).
              std::optional<kv::Command> cmd = kv::decode_command(payload);
              if (cmd && std::holds_alternative<kv::PutRequest>(cmd->op)) {
                std::get<kv::PutRequest>(cmd->op).value += "~";
                a.data = rewritten.emplace_back(kv::encode_command(*cmd));
              }
            }
          } else if (decoded && decoded->kind == ProposalKind::kMemberAttributes) {
            if (auto attr = decode_member_attributes(payload)) attributes.push_back(*attr);
          } else if (decoded && decoded->kind == ProposalKind::kMemberPeerUrls) {
            if (auto u = decode_member_peer_urls(payload)) apply_peer_urls(*u);
            if (decoded->proposer == options_.id && decoded->request_id != 0) {
              other_done.push_back(decoded->request_id);
            }
          } else if (decoded && decoded->kind == ProposalKind::kAlarm) {
            if (auto change = decode_alarm_change(payload)) apply_alarm(*change);
            if (decoded->proposer == options_.id && decoded->request_id != 0) {
              other_done.push_back(decoded->request_id);
            }
          } else if (decoded && decoded->kind == ProposalKind::kGroupChange) {
            GroupDescriptor result;
            std::optional<GroupChange> change = decode_group_change(payload);
            RpcError err =
                change ? apply_group_change(*change, e.index, &result)
                       : rpc_error(RpcCode::kInvalidArgument, "chorus: malformed group change");
            directory_changed = true;
            if (decoded->proposer == options_.id && decoded->request_id != 0)
              group_changes.push_back({decoded->request_id, std::move(err), std::move(result)});
          } else {
            // Not a proposal of this server: applied as a no-op so every replica agrees.
            log(LogLevel::kWarn, "entry " + std::to_string(e.index) + " has an unknown format");
          }
        }
        batch.push_back(a);
        headers.push_back(h);
      }
      for (ReadDone& r : item.readers)
        waiting_reads_.emplace(item.read_index, std::move(r));
      item.readers.clear();
      // Items committed before an installed snapshot describe an older configuration.
      bool superseded = !item.entries.empty() && item.entries.back().index <= installed_index_;
      if (!item.confs.empty() && !superseded) applied_conf_ = item.confs.back();
      if (!item.entries.empty()) seen_index_ = std::max(seen_index_, item.entries.back().index);
    }
    // Entries the store already holds (replayed after a restart) are left out, so that the
    // store's responses line up with the batch.
    raft::Index store_applied = store_->applied_index();
    size_t skip = 0;
    while (skip < batch.size() && batch[skip].index <= store_applied)
      ++skip;
    if (skip > 0) {
      batch.erase(batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(skip));
      headers.erase(headers.begin(), headers.begin() + static_cast<std::ptrdiff_t>(skip));
    }
    if (!batch.empty()) {
      kv::MvccStore::ApplyResult result;
      auto apply_start = Clock::now();
      Status st = store_->apply(batch, &result);
      if (options_.observe_apply) {
        options_.observe_apply(std::chrono::duration<double>(Clock::now() - apply_start).count());
      }
      if (!st.is_ok()) {
        fail_fatal("state machine: " + st.to_string());
        return;
      }
      if (result.responses.size() != batch.size()) {
        fail_fatal("state machine answered " + std::to_string(result.responses.size()) + " of " +
                   std::to_string(batch.size()) + " entries");
        return;
      }
      applied_ = store_->applied_index();
      proposals_applied_ += batch.size();
      for (size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].data.empty()) continue;
        const kv::Response& resp = result.responses[i];
        if (const auto* a = std::get_if<kv::AuthResponse>(&resp.op)) {
          if (resp.error.ok() && a->tokens != kv::TokenAction::kNone && auth_fn) auth_fn(*a);
          continue;
        }
        // Lease bookkeeping for the leader's expiry clock, on every replica.
        if (const auto* g = std::get_if<kv::LeaseGrantResponse>(&resp.op)) {
          if (resp.error.ok()) {
            std::lock_guard<std::mutex> lk(lessor_mu_);
            lessor_.granted(g->id, g->ttl, now_ms());
          }
        } else if (std::holds_alternative<std::monostate>(resp.op)) {
          // A lease checkpoint: the time left, for whichever member leads next.
          auto cmd = kv::decode_command(batch[i].data);
          if (const auto* cp = cmd ? std::get_if<kv::LeaseCheckpointRequest>(&cmd->op) : nullptr) {
            std::lock_guard<std::mutex> lk(lessor_mu_);
            for (const auto& [id, remaining] : cp->checkpoints)
              lessor_.checkpointed(id, remaining);
          }
        } else if (std::holds_alternative<kv::LeaseRevokeResponse>(resp.op) ||
                   resp.error.message == kv::errors::kLeaseNotFound) {
          if (auto cmd = kv::decode_command(batch[i].data)) {
            if (const auto* rv = std::get_if<kv::LeaseRevokeRequest>(&cmd->op)) {
              std::lock_guard<std::mutex> lk(lessor_mu_);
              lessor_.revoked(rv->id);
            }
          }
        }
      }
      if (events_fn && !result.events.empty()) events_fn(result.events, store_->revision());
      for (size_t i = 0; i < batch.size(); ++i) {
        if (headers[i].proposer != options_.id || headers[i].request_id == 0) continue;
        finish_proposal(headers[i].request_id, RpcError{}, std::move(result.responses[i]));
      }
    }
    for (uint64_t id : other_done)
      finish_proposal(id, RpcError{}, kv::Response{});
    if (!directory_current_ && seen_index_ >= directory_replay_target_) {
      directory_current_ = true;  // replay reached the commit known at open
      directory_changed = true;
    }
    if (directory_changed) {
      // The raft thread matches this member's replicas to the directory, then answers the
      // changes made here: a client that created a group may use it here at once.
      std::vector<std::function<void()>> answers;
      for (GroupChangeApplied& a : group_changes) {
        GroupChangeDone done;
        {
          std::lock_guard<std::mutex> lk(waiters_mu_);
          auto it = group_change_waiters_.find(a.request_id);
          if (it == group_change_waiters_.end()) continue;  // timed out
          done = std::move(it->second);
          group_change_waiters_.erase(it);
          waiters_.erase(a.request_id);
        }
        answers.push_back([done = std::move(done), a = std::move(a)] { done(a.error, a.group); });
      }
      {
        std::lock_guard<std::mutex> lk(inbox_mu_);
        in_directory_changed_ = true;
        for (auto& f : answers)
          in_group_change_dones_.push_back(std::move(f));
      }
      inbox_cv_.notify_one();
    }
    if (!attributes.empty()) {
      std::lock_guard<std::mutex> lk(members_mu_);
      for (const MemberAttributes& a : attributes) {
        auto it = members_.find(a.id);
        if (it == members_.end()) continue;  // removed since
        it->second.name = a.name;
        it->second.client_urls = a.client_urls;
      }
    }
    maybe_snapshot();
    if (failed_) return;
    raft::Index applied = applied_;
    while (!waiting_reads_.empty() && waiting_reads_.begin()->first <= applied) {
      ReadDone r = std::move(waiting_reads_.begin()->second);
      waiting_reads_.erase(waiting_reads_.begin());
      r(RpcError{});
    }
  }
}

}  // namespace chorus::server
