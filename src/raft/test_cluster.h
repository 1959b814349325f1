// A deterministic in-memory cluster for the core's unit tests: synchronous persistence, a
// message queue, and filters to drop or partition. Each node follows the driver contract:
// persist, then send, then apply, then advance.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "raft/log_storage.h"
#include "raft/raft.h"

namespace chorus::raft::testing {

struct TestNode {
  std::unique_ptr<MemoryLogStorage> storage;
  std::unique_ptr<Raft> raft;
  std::vector<Entry> applied;
  std::vector<ReadState> reads;
  ConfState conf;
};

class TestCluster {
 public:
  // Nodes 1..n, all voters unless `voters` says otherwise.
  explicit TestCluster(int n, std::function<void(Config&)> tweak = nullptr,
                       std::vector<NodeId> voters = {}, std::vector<NodeId> learners = {})
      : tweak_(std::move(tweak)) {
    ConfState cs;
    if (voters.empty()) {
      for (int i = 1; i <= n; ++i)
        cs.voters.push_back(static_cast<NodeId>(i));
    } else {
      cs.voters = voters;
    }
    cs.learners = learners;
    for (int i = 1; i <= n; ++i)
      add_node(static_cast<NodeId>(i), cs);
  }

  void add_node(NodeId id, const ConfState& cs) {
    TestNode node;
    node.storage = std::make_unique<MemoryLogStorage>(cs);
    node.conf = cs;
    nodes_[id] = std::move(node);
    restart(id);
  }

  // Recreates the Raft object from what its storage holds, as after a crash.
  void restart(NodeId id, Index applied = 0) {
    TestNode& node = nodes_.at(id);
    Config c;
    c.id = id;
    c.storage = node.storage.get();
    c.seed = id * 7919;
    c.applied = applied;
    if (tweak_) tweak_(c);
    node.raft = std::make_unique<Raft>(c);
  }

  Raft& raft(NodeId id) { return *nodes_.at(id).raft; }
  TestNode& node(NodeId id) { return nodes_.at(id); }
  MemoryLogStorage& storage(NodeId id) { return *nodes_.at(id).storage; }

  // Runs one node's Ready cycle until it has nothing left, queueing its messages.
  void process(NodeId id) {
    TestNode& node = nodes_.at(id);
    while (node.raft->has_ready()) {
      Ready& rd = node.raft->ready();
      if (rd.snapshot) {
        (void)node.storage->apply_snapshot(*rd.snapshot);
        node.applied.clear();
      }
      node.storage->append(rd.entries);
      if (rd.hard_state) node.storage->set_hard_state(*rd.hard_state);
      for (Message& m : rd.messages)
        queue_.push_back(std::move(m));
      for (const Entry& e : rd.committed_entries) {
        if (e.type == EntryType::kConfChange) {
          auto cc = ConfChange::decode(e.data);
          if (cc) node.conf = node.raft->apply_conf_change(*cc);
        }
        node.applied.push_back(e);
      }
      for (const ReadState& r : rd.read_states)
        node.reads.push_back(r);
      node.raft->advance();
    }
  }

  void process_all() {
    for (auto& [id, n] : nodes_)
      process(id);
  }

  // Delivers queued messages (and whatever they cause) until the cluster is quiet.
  void stabilize(int max_rounds = 10000) {
    for (int round = 0; round < max_rounds; ++round) {
      process_all();
      if (queue_.empty()) return;
      std::deque<Message> batch;
      batch.swap(queue_);
      for (Message& m : batch)
        deliver(std::move(m));
    }
  }

  void deliver(Message m) {
    if (isolated_.count(m.from) || isolated_.count(m.to)) return;
    if (cut_.count({m.from, m.to})) return;
    if (drop_ && drop_(m)) return;
    if (nodes_.count(m.to) == 0) return;
    (void)nodes_.at(m.to).raft->step(std::move(m));
  }

  void tick(NodeId id, int n = 1) {
    for (int i = 0; i < n; ++i)
      nodes_.at(id).raft->tick();
  }
  void tick_all(int n = 1) {
    for (int i = 0; i < n; ++i) {
      for (auto& [id, node] : nodes_)
        node.raft->tick();
      stabilize();
    }
  }

  void elect(NodeId id) {
    (void)raft(id).campaign();
    stabilize();
  }

  NodeId leader() const {
    NodeId lead = kNoNode;
    for (const auto& [id, n] : nodes_) {
      if (n.raft->role() == Role::kLeader) {
        if (lead == kNoNode || n.raft->term() > nodes_.at(lead).raft->term()) lead = id;
      }
    }
    return lead;
  }

  void isolate(NodeId id) { isolated_.insert(id); }
  void heal() {
    isolated_.clear();
    cut_.clear();
  }
  void cut(NodeId a, NodeId b) {
    cut_.insert({a, b});
    cut_.insert({b, a});
  }
  void set_drop(std::function<bool(const Message&)> drop) { drop_ = std::move(drop); }
  std::deque<Message>& queue() { return queue_; }
  const std::map<NodeId, TestNode>& nodes() const { return nodes_; }

  // Normal entries applied by a node, ignoring no-ops and configuration changes.
  std::vector<std::string> data(NodeId id) const {
    std::vector<std::string> out;
    for (const Entry& e : nodes_.at(id).applied) {
      if (e.type == EntryType::kNormal && !e.data.empty()) out.push_back(e.data);
    }
    return out;
  }

 private:
  std::function<void(Config&)> tweak_;
  std::map<NodeId, TestNode> nodes_;
  std::deque<Message> queue_;
  std::set<NodeId> isolated_;
  std::set<std::pair<NodeId, NodeId>> cut_;
  std::function<bool(const Message&)> drop_;
};

}  // namespace chorus::raft::testing
