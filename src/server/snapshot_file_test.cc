#include "server/snapshot_file.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <fstream>
#include <sstream>

#include "base/coding.h"
#include "kv/codec.h"
#include "kv/mvcc.h"
#include "storage/testing.h"

namespace chorus::server {
namespace {

std::string sha256(const std::string& bytes) {
  unsigned char digest[32];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

// The bytes the Maintenance.Snapshot stream sends for the store checkpointed in `dir`, framed
// by the same functions it uses.
std::string backup_bytes(storage::FileSystem* fs, const std::string& dir) {
  storage::SnapshotSender sender(fs, dir, 1, 4096);  // small chunks: many of them
  std::string out;
  while (!sender.done()) {
    storage::SnapshotChunk chunk;
    EXPECT_TRUE(sender.next(&chunk).is_ok());
    append_backup_chunk(&out, storage::encode_snapshot_chunk(chunk));
  }
  append_backup_end(&out, out.size());
  return out + sha256(out);
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

class SnapshotFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs_ = storage::make_posix_file_system();
    std::unique_ptr<kv::MvccStore> store;
    ASSERT_TRUE(kv::MvccStore::open(dir_.path() + "/src", kv::MvccOptions{}, &store).is_ok());
    std::vector<std::string> commands;  // AppliedEntry holds views of these
    for (int i = 0; i < 300; ++i) {
      kv::Command c;
      c.op = kv::PutRequest{"key/" + std::to_string(i % 200), std::string(100, 'v')};
      commands.push_back(kv::encode_command(c));
    }
    kv::Command grant;
    grant.op = kv::LeaseGrantRequest{77, 600};
    commands.push_back(kv::encode_command(grant));
    std::vector<kv::AppliedEntry> entries;
    for (size_t i = 0; i < commands.size(); ++i)
      entries.push_back({static_cast<raft::Index>(i + 1), 3, commands[i]});
    kv::MvccStore::ApplyResult r;
    ASSERT_TRUE(store->apply(entries, &r).is_ok());
    for (const auto& resp : r.responses)
      ASSERT_TRUE(resp.error.ok()) << resp.error.message;
    revision_ = store->revision();
    ASSERT_EQ(revision_, 301);
    ASSERT_TRUE(store->checkpoint(dir_.path() + "/checkpoint").is_ok());
    bytes_ = backup_bytes(fs_.get(), dir_.path() + "/checkpoint");
    file_ = dir_.path() + "/backup.db";
    write_file(file_, bytes_);
  }

  storage::testing::TempDir dir_{"snapshot-file"};
  std::unique_ptr<storage::FileSystem> fs_;
  int64_t revision_ = 0;
  std::string bytes_;
  std::string file_;
};

TEST_F(SnapshotFileTest, RestoresEveryKeyRevisionAndLeaseWithTheLogPositionReset) {
  SnapshotFileInfo info;
  storage::Status st = restore_snapshot_file(file_, dir_.path() + "/data", &info);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(info.revision, revision_);
  EXPECT_EQ(info.keys, 200u);
  EXPECT_EQ(info.leases, 1u);
  EXPECT_EQ(info.file_bytes, bytes_.size());
  std::unique_ptr<kv::MvccStore> store;
  ASSERT_TRUE(
      kv::MvccStore::open(dir_.path() + "/data/member/kv", kv::MvccOptions{}, &store).is_ok());
  EXPECT_EQ(store->applied_index(), 0u) << "a new cluster's log starts from the beginning";
  EXPECT_EQ(store->revision(), revision_);
  kv::RangeRequest q;
  q.key = "key/7";
  kv::RangeResponse r;
  ASSERT_TRUE(store->range(q, &r).ok());
  ASSERT_EQ(r.kvs.size(), 1u);
  EXPECT_EQ(r.kvs[0].version, 2) << "history kept: key/7 was written twice";
  // The new cluster's first entry applies on top.
  kv::Command c;
  c.op = kv::PutRequest{"after", "x"};
  kv::MvccStore::ApplyResult ar;
  ASSERT_TRUE(store->apply({{1, 1, kv::encode_command(c)}}, &ar).is_ok());
  EXPECT_EQ(store->revision(), revision_ + 1);
}

TEST_F(SnapshotFileTest, StatusReportsWithoutLeavingAnythingBehind) {
  SnapshotFileInfo info;
  ASSERT_TRUE(inspect_snapshot_file(file_, dir_.path(), &info).is_ok());
  EXPECT_EQ(info.revision, revision_);
  std::vector<std::string> names;
  ASSERT_TRUE(fs_->list_dir(dir_.path(), &names).is_ok());
  for (const auto& n : names)
    EXPECT_EQ(n.find("inspect"), std::string::npos) << n;
}

TEST_F(SnapshotFileTest, DamagedTruncatedOrForeignFilesAreRefused) {
  SnapshotFileInfo info;
  auto refused = [&](const std::string& bytes, const std::string& why, const char* name) {
    write_file(file_, bytes);
    storage::Status st = restore_snapshot_file(file_, dir_.path() + "/" + name, &info);
    EXPECT_FALSE(st.is_ok()) << name;
    EXPECT_NE(st.to_string().find(why), std::string::npos) << name << ": " << st.to_string();
    EXPECT_FALSE(fs_->exists(dir_.path() + "/" + name)) << "left behind; a rerun would fail";
  };
  std::string flipped = bytes_;
  flipped[bytes_.size() / 2] ^= 1;
  refused(flipped, "SHA-256", "flipped");
  refused(bytes_.substr(0, bytes_.size() - 1), "multiple of 512", "truncated");
  refused(std::string(1024 + 32, 'x'), "SHA-256", "foreign");
  // A damaged chunk under a checksum recomputed to match: the chunk's own CRC catches it.
  std::string body = bytes_.substr(0, bytes_.size() - 32);
  body[100] ^= 1;
  refused(body + sha256(body), "damaged", "rehashed");
  // Chunks cut off before the end marker, padded and hashed to look whole.
  std::string cut = bytes_.substr(0, 4 + 200);
  cut.append((512 - cut.size() % 512) % 512, '\0');
  refused(cut + sha256(cut), "damaged", "cut");
}

TEST_F(SnapshotFileTest, ANonEmptyDataDirectoryIsRefused) {
  ASSERT_TRUE(fs_->create_dir(dir_.path() + "/used").is_ok());
  write_file(dir_.path() + "/used/something", "x");
  SnapshotFileInfo info;
  storage::Status st = restore_snapshot_file(file_, dir_.path() + "/used", &info);
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.to_string().find("not empty"), std::string::npos);
}

}  // namespace
}  // namespace chorus::server
