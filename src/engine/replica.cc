#include "engine/replica.h"

#include <algorithm>
#include <span>
#include <utility>

namespace chorus::engine {

std::vector<ReadyRecord> ready_records(const raft::Snapshot* snapshot,
                                       const std::vector<raft::Entry>& entries,
                                       const std::optional<raft::HardState>& hard_state) {
  std::vector<ReadyRecord> out;
  if (snapshot != nullptr) out.push_back(ReadyRecord{snapshot, {}, std::nullopt});
  std::span<const raft::Entry> rest(entries);
  if (hard_state) {
    for (size_t k = 0; k < rest.size(); ++k) {
      const raft::Entry& e = rest[k];
      if (e.type != raft::EntryType::kConfChange || e.index < 2) continue;
      if (k > 0) out.push_back(ReadyRecord{nullptr, rest.first(k), std::nullopt});
      out.push_back(ReadyRecord{nullptr,
                                {},
                                raft::HardState{hard_state->term, hard_state->vote,
                                                std::min(hard_state->commit, e.index - 1)}});
      rest = rest.subspan(k);
      k = 0;  // the change itself goes with what follows it
    }
  }
  if (!rest.empty()) out.push_back(ReadyRecord{nullptr, rest, std::nullopt});
  if (hard_state) out.push_back(ReadyRecord{nullptr, {}, *hard_state});
  return out;
}

void append_ready(storage::WalBatch* batch, raft::GroupId group, const raft::Snapshot* snapshot,
                  const std::vector<raft::Entry>& entries,
                  const std::optional<raft::HardState>& hard_state) {
  for (const ReadyRecord& r : ready_records(snapshot, entries, hard_state)) {
    if (r.snapshot != nullptr) {
      batch->apply_snapshot(group, *r.snapshot);
    } else if (r.hard_state) {
      batch->set_hard_state(group, *r.hard_state);
    } else {
      batch->append(group, r.entries);
    }
  }
}

storage::WalBatch ready_batch(raft::GroupId group, const raft::Ready& rd) {
  storage::WalBatch batch;
  append_ready(&batch, group, rd.snapshot ? &*rd.snapshot : nullptr, rd.entries, rd.hard_state);
  return batch;
}

Replica::Replica(const ReplicaOptions& options, uint64_t now_us)
    : group_(options.raft.group),
      tick_us_(options.tick_us),
#ifdef CHORUS_RAFT_MUTATIONS
      unsafe_(options.raft.unsafe),
#endif
      core_(std::make_unique<raft::Raft>(options.raft)),
      next_tick_us_(now_us + options.tick_us),
      next_read_context_(options.first_read_context) {
}

uint64_t Replica::on_clock(uint64_t now_us) {
  if (now_us < next_tick_us_) return 0;
  uint64_t ticks = (now_us - next_tick_us_) / tick_us_ + 1;
  next_tick_us_ += ticks * tick_us_;
  core_->tick(ticks);  // one step for a quiesced core, however long it slept
  touched();
  return ticks;
}

void Replica::restart_clock(uint64_t now_us) {
  next_tick_us_ = now_us + tick_us_;
}

void Replica::catch_up() {
  if (host_ != nullptr && core_->quiesced()) (void)on_clock(host_->now_us());
}

raft::Error Replica::step(raft::Message&& m) {
  catch_up();
  raft::Error err = core_->step(std::move(m));
  touched();
  return err;
}

raft::Error Replica::propose(std::string data) {
  catch_up();
  raft::Error err = core_->propose(std::move(data));
  touched();
  return err;
}

raft::Error Replica::propose_conf_change(const raft::ConfChange& cc) {
  catch_up();
  raft::Error err = core_->propose_conf_change(cc);
  touched();
  return err;
}

raft::Error Replica::transfer_leader(raft::NodeId to) {
  catch_up();
  raft::Error err = core_->transfer_leader(to);
  touched();
  return err;
}

raft::Error Replica::campaign() {
  catch_up();
  raft::Error err = core_->campaign();
  touched();
  return err;
}

void Replica::report_snapshot(raft::NodeId to, bool failed) {
  catch_up();
  core_->report_snapshot(to, failed);
  touched();
}

void Replica::report_unreachable(raft::NodeId to) {
  catch_up();
  core_->report_unreachable(to);
  core_->report_snapshot(to, true);
  touched();
}

void Replica::wake() {
  catch_up();
  core_->wake();
  touched();
}

std::vector<uint64_t> Replica::start_reads(uint64_t deadline_us) {
  std::vector<uint64_t> refused;
  if (queued_reads_.empty()) return refused;
  uint64_t ctx = next_read_context_++;
  catch_up();
  raft::Error err = core_->read_index(ctx);
  touched();
  if (err != raft::Error::kOk) {
    refused.swap(queued_reads_);
    return refused;
  }
  ReadRound& r = read_rounds_[ctx];
  r.readers.swap(queued_reads_);
  r.deadline_us = deadline_us;
  return refused;
}

std::vector<uint64_t> Replica::expire_reads(uint64_t now_us) {
  std::vector<uint64_t> expired;
  for (auto it = read_rounds_.begin(); it != read_rounds_.end();) {
    if (it->second.deadline_us <= now_us) {
      expired.insert(expired.end(), it->second.readers.begin(), it->second.readers.end());
      it = read_rounds_.erase(it);
    } else {
      ++it;
    }
  }
  return expired;
}

size_t Replica::reads_waiting() const {
  size_t n = queued_reads_.size();
  for (const auto& [ctx, r] : read_rounds_)
    n += r.readers.size();
  return n;
}

Round* Replica::begin_round() {
  raft::Ready& rd = core_->ready();
  if (core_->storage_failed()) return nullptr;
  in_round_ = true;
  round_ = Round{};
  round_.soft_state = rd.soft_state;
  round_.snapshot = rd.snapshot ? &*rd.snapshot : nullptr;
  round_.entries = &rd.entries;
  round_.hard_state = rd.hard_state;
#ifdef CHORUS_RAFT_MUTATIONS
  // The driver records term and commit but loses the vote.
  if (unsafe_.forget_vote && round_.hard_state) round_.hard_state->vote = raft::kNoNode;
#endif
  round_.write = rd.must_write();
  round_.sync = rd.must_sync();
  bool early = rd.messages_first;
#ifdef CHORUS_RAFT_MUTATIONS
  // Everyone's messages leave before the write: acknowledgements and votes promise what the
  // disk does not hold yet.
  early = early || unsafe_.ack_before_durable;
#endif
  if (early) round_.early_messages.swap(rd.messages);
  return &round_;
}

std::string Replica::take_snapshot_data() {
  raft::Ready& rd = core_->ready_for_driver();
  std::string data;
  if (in_round_ && rd.snapshot) data.swap(rd.snapshot->data);
  return data;
}

void Replica::append_to(storage::WalBatch* batch) const {
  append_ready(batch, group_, round_.snapshot, *round_.entries, round_.hard_state);
}

void Replica::finish_round(RoundResult* out) {
  raft::Ready& rd = core_->ready_for_driver();
  out->messages = std::move(rd.messages);
  rd.messages.clear();
  // Configuration changes take effect in the core as they are handed on, before it advances:
  // the next Ready already reflects them.
  for (const raft::Entry& e : rd.committed_entries) {
    if (e.type != raft::EntryType::kConfChange) continue;
    std::optional<raft::ConfChange> cc = raft::ConfChange::decode(e.data);
    if (!cc) {
      out->error = "undecodable configuration change at index " + std::to_string(e.index);
      break;
    }
    raft::ConfState conf = core_->apply_conf_change(*cc);
    out->confs.push_back(AppliedConf{e.index, std::move(*cc), std::move(conf)});
  }
  for (const raft::ReadState& rs : rd.read_states) {
    auto it = read_rounds_.find(rs.context);
    if (it == read_rounds_.end()) continue;  // expired, or of an earlier life
    out->reads.push_back(ReadPoint{rs.index, std::move(it->second.readers)});
    read_rounds_.erase(it);
  }
  core_->advance();
  // The Ready stays untouched until the next ready(): its committed entries move out whole.
  out->committed.swap(core_->ready_for_driver().committed_entries);
  in_round_ = false;
  round_ = Round{};
  core_->trim_if_quiesced();
}

}  // namespace chorus::engine
