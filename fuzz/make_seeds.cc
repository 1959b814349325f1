// Writes the seed corpora of the fuzz targets: small valid inputs the fuzzer mutates from.
//
//   chorus-fuzz-seeds <corpus dir>   writes <dir>/<target>/* for every fuzz target
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kv/codec.h"
#include "storage/fault_fs.h"
#include "storage/snapshot_stream.h"
#include "storage/wal.h"
#include "transport/codec.h"

namespace chorus::storage {
namespace {

const raft::ConfState kConf{{1, 2, 3}, {}, {}, {4}, false};

void write_seed(const std::filesystem::path& dir, const std::string& name,
                const std::string& data) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << data;
}

// A segment image without the preallocated zeros after its records.
std::string trimmed(FaultFileSystem* fs, const std::string& path) {
  std::string data = *fs->contents(path);
  size_t end = data.find_last_not_of('\0');
  return end == std::string::npos ? std::string() : data.substr(0, (end + 8) / 8 * 8);
}

void wal_seeds(const std::filesystem::path& dir) {
  FaultFileSystem fs;
  WalOptions options{.segment_bytes = 64 << 10, .cache_bytes = 4 << 10};
  std::unique_ptr<Wal> wal;
  if (!Wal::open(&fs, "wal", options, &wal).is_ok()) std::abort();
  std::string path = join_path("wal", segment_name(1));
  write_seed(dir, "empty-segment", trimmed(&fs, path));
  if (!wal->bootstrap(1, kConf).is_ok() || !wal->bootstrap(2, kConf).is_ok()) std::abort();
  WalBatch b;
  for (raft::Index i = 1; i <= 3; ++i)
    b.append(1, {{1, i, raft::EntryType::kNormal, "set k" + std::to_string(i)}});
  b.append(2, {{2, 1, raft::EntryType::kConfChange, "conf"}});
  b.set_hard_state(1, {1, 2, 2});
  if (!wal->commit(b).is_ok()) std::abort();
  write_seed(dir, "two-groups", trimmed(&fs, path));
  raft::Snapshot snap;
  snap.metadata = {2, 1, kConf};
  snap.data = "app state";
  if (!wal->compact(1, snap, 1).is_ok()) std::abort();
  WalBatch install;
  snap.metadata = {9, 3, kConf};
  install.apply_snapshot(2, snap);
  install.append(2, {{3, 10, raft::EntryType::kNormal, "after"}});
  install.append(1, {{2, 3, raft::EntryType::kNormal, "replaced"}});
  if (!wal->commit(install).is_ok()) std::abort();
  write_seed(dir, "compaction-and-snapshot", trimmed(&fs, path));
  // Single records, outside any segment.
  std::string rec;
  append_record(&rec, RecordType::kHardState, 7, encode_hard_state({5, 1, 4}));
  write_seed(dir, "hard-state-record", rec);
}

void snapshot_seeds(const std::filesystem::path& dir) {
  FaultFileSystem fs;
  if (!fs.create_dir("src").is_ok()) std::abort();
  for (const auto& [name, data] :
       std::vector<std::pair<std::string, std::string>>{{"000001.sst", std::string(300, 's')},
                                                        {"CURRENT", "MANIFEST-000002\n"},
                                                        {"empty", ""}}) {
    if (!fs.write_file_atomic("src", name, data).is_ok()) std::abort();
  }
  for (uint8_t mode : {0, 2}) {
    SnapshotSender sender(&fs, "src", 1, 128);
    std::string input(1, static_cast<char>(mode));
    while (!sender.done()) {
      SnapshotChunk c;
      if (!sender.next(&c).is_ok()) std::abort();
      std::string chunk = encode_snapshot_chunk(c);
      input.push_back(static_cast<char>(chunk.size() & 0xff));
      input.push_back(static_cast<char>(chunk.size() >> 8));
      input += chunk;
    }
    write_seed(dir, mode == 0 ? "three-files" : "three-files-then-crash", input);
  }
  if (!fs.create_dir("none").is_ok()) std::abort();
  SnapshotSender empty(&fs, "none", 2, 128);
  SnapshotChunk c;
  if (!empty.next(&c).is_ok()) std::abort();
  std::string chunk = encode_snapshot_chunk(c);
  write_seed(dir, "empty-snapshot",
             std::string(1, '\0') + static_cast<char>(chunk.size()) + '\0' + chunk);
  write_seed(dir, "builder", std::string("\x01") + std::string(200, '\x5a'));
}

void kv_seeds(const std::filesystem::path& dir) {
  using namespace chorus::kv;
  Command put;
  put.client_id = 7;
  put.sequence = 3;
  put.op = PutRequest{"key", "value", 5, true, false, false};
  write_seed(dir, "put", encode_command(put));
  auto inner = std::make_shared<TxnRequest>();
  inner->compare.push_back({Compare::Result::kLess, Compare::Target::kMod, "x", "", 7, ""});
  inner->success.push_back({DeleteRangeRequest{"a", "b", true}});
  TxnRequest t;
  t.compare.push_back({Compare::Result::kEqual, Compare::Target::kValue, "k", "", 0, "v"});
  t.success.push_back({PutRequest{"k", "v2", 0, false, false, false}});
  t.failure.push_back({inner});
  Command txn;
  txn.op = t;
  write_seed(dir, "nested-txn", encode_command(txn));
  Response r;
  r.op = PutResponse{4, KeyValue{"k", 2, 3, 2, "v", 0}};
  write_seed(dir, "put-response", encode_response(r));
  AuthRequest grant;
  grant.kind = AuthRequest::Kind::kRoleGrantPermission;
  grant.name = "app";
  grant.perm = Permission{PermType::kReadWrite, "/app/", "/app0"};
  Command auth;
  auth.auth_revision = 9;
  auth.op = grant;
  write_seed(dir, "auth-grant", encode_command(auth));
  Response login;
  login.op = AuthResponse{3, 9, TokenAction::kAdd, "alice", "token.1"};
  write_seed(dir, "auth-response", encode_response(login));
}

// A peer's stream: the first byte seeds the chunk sizes, the rest is frames.
void transport_seeds(const std::filesystem::path& dir) {
  using namespace chorus::transport;
  raft::Message append;
  append.group = 1;
  append.type = raft::MessageType::kApp;
  append.from = 1;
  append.to = 2;
  append.term = 3;
  append.log_term = 2;
  append.index = 10;
  append.entries = {{2, 11, raft::EntryType::kNormal, "put k v"},
                    {3, 12, raft::EntryType::kConfChange, "conf"}};
  append.commit = 10;
  raft::Message response = append;
  response.type = raft::MessageType::kAppResp;
  response.entries.clear();
  response.reject = true;
  response.reject_hint = 9;
  raft::Message snap;
  snap.group = 2;
  snap.type = raft::MessageType::kSnap;
  snap.from = 1;
  snap.to = 2;
  snap.term = 3;
  auto s = std::make_shared<raft::Snapshot>();
  s->metadata = {20, 3, kConf};
  s->data = "descriptor";
  snap.snapshot = s;
  std::string messages = encode_messages({append, response, snap});

  std::string stream(1, '\x07');
  append_frame(&stream, FrameType::kHello, encode_hello({.cluster_id = 1, .from = 1, .to = 2}));
  append_frame(&stream, FrameType::kMessages, messages);
  append_frame(&stream, FrameType::kPing, encode_ping(12345));
  write_seed(dir, "handshake-messages-ping", stream);

  std::string answers(1, '\x01');
  append_frame(&answers, FrameType::kHelloAck, encode_hello({.cluster_id = 1, .from = 2, .to = 1}));
  append_frame(&answers, FrameType::kPong, encode_ping(12345));
  append_frame(&answers, FrameType::kReject, encode_reject("cluster id 1, this node is in 2"));
  write_seed(dir, "ack-pong-reject", answers);

  std::string join(1, '\x03');
  append_frame(&join, FrameType::kJoin,
               encode_join({.peer_urls = {"http://10.0.0.4:2380", "http://10.0.0.4:2390"}}));
  append_frame(&join, FrameType::kJoinAck, encode_join_ack({.cluster_id = 7, .member_id = 9}));
  write_seed(dir, "join-ack", join);

  write_seed(dir, "truncated-frame", stream.substr(0, stream.size() - 3));
  write_seed(dir, "messages-payload", std::string(1, '\0') + messages);
}

}  // namespace
}  // namespace chorus::storage

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: chorus-fuzz-seeds <corpus dir>\n");
    return 2;
  }
  std::filesystem::path dir = argv[1];
  chorus::storage::wal_seeds(dir / "wal_record_fuzz");
  chorus::storage::snapshot_seeds(dir / "snapshot_chunk_fuzz");
  chorus::storage::kv_seeds(dir / "kv_command_fuzz");
  chorus::storage::transport_seeds(dir / "transport_frame_fuzz");
  return 0;
}
