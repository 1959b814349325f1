#include "storage/snapshot_stream.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "storage/crc32c.h"
#include "storage/fault_fs.h"
#include "storage/forwarding_fs.h"
#include "storage/testing.h"

namespace chorus::storage {
namespace {

using Files = std::map<std::string, std::string>;

class SnapshotStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs_.create_dir("src").is_ok());
    ASSERT_TRUE(fs_.create_dir("node").is_ok());
  }

  // Replaces the contents of `dir` (a top-level directory) with `files`, durably.
  void write_dir(FileSystem* fs, const std::string& dir, const Files& files) {
    std::vector<std::string> names;
    ASSERT_TRUE(fs->list_dir(dir, &names).is_ok());
    for (const auto& n : names)
      if (!fs->is_dir(join_path(dir, n))) {
        ASSERT_TRUE(fs->remove(join_path(dir, n)).is_ok());
      }
    for (const auto& [name, data] : files)
      ASSERT_TRUE(fs->write_file_atomic(dir, name, data).is_ok());
  }
  Files read_dir(FileSystem* fs, const std::string& dir) {
    Files out;
    std::vector<std::string> names;
    if (!fs->list_dir(dir, &names).is_ok()) return {{"<missing>", dir}};
    for (const auto& n : names) {
      if (fs->is_dir(join_path(dir, n))) continue;
      EXPECT_TRUE(fs->read_file(join_path(dir, n), &out[n]).is_ok());
    }
    return out;
  }
  std::vector<std::string> chunks(FileSystem* fs, const std::string& dir, uint64_t id,
                                  size_t chunk_bytes) {
    SnapshotSender sender(fs, dir, id, chunk_bytes);
    std::vector<std::string> out;
    while (!sender.done()) {
      SnapshotChunk c;
      Status st = sender.next(&c);
      EXPECT_TRUE(st.is_ok()) << st.to_string();
      if (!st.is_ok()) break;
      out.push_back(encode_snapshot_chunk(c));
    }
    return out;
  }
  // Sends `dir` into node/<final>, completely, and installs it.
  void transfer(FileSystem* fs, const std::string& dir, uint64_t id, const std::string& parent) {
    SnapshotReceiver r(fs, parent, "snap");
    for (const std::string& c : chunks(fs, dir, id, 1000))
      ASSERT_TRUE(r.add(c).is_ok());
    ASSERT_TRUE(r.complete());
    Status st = r.finish();
    ASSERT_TRUE(st.is_ok()) << st.to_string();
  }

  FaultFileSystem fs_;
  const Files files_{{"000001.sst", std::string(5000, 'x') + "tail"},
                     {"CURRENT", "MANIFEST-000002\n"},
                     {"MANIFEST-000002", std::string(2000, 'm')},
                     {"empty", ""},
                     {"OPTIONS", std::string(1000, 'o')}};
};

TEST_F(SnapshotStreamTest, ARoundTripCopiesEveryFileExactly) {
  write_dir(&fs_, "src", files_);
  ASSERT_TRUE(fs_.create_dir("src/subdir").is_ok());  // not a regular file: not sent
  std::vector<std::string> encoded = chunks(&fs_, "src", 7, 1000);
  // 6 + 1 + 2 + 1 + 1 chunks: multi-chunk files, one of exactly two chunks, an empty one.
  EXPECT_EQ(encoded.size(), 11u);
  SnapshotChunk last;
  ASSERT_TRUE(decode_snapshot_chunk(encoded.back(), &last).is_ok());
  EXPECT_TRUE(last.last_in_snapshot);
  EXPECT_EQ(last.file_count, 5u);
  SnapshotReceiver r(&fs_, "node", "snap");
  for (const std::string& c : encoded) {
    EXPECT_FALSE(r.complete());
    Status st = r.add(c);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
  }
  EXPECT_TRUE(r.complete());
  EXPECT_EQ(r.snapshot_id(), 7u);
  ASSERT_TRUE(r.finish().is_ok());
  EXPECT_EQ(read_dir(&fs_, "node/snap"), files_);
  EXPECT_FALSE(fs_.exists("node/snap.tmp"));

  // A newer snapshot replaces it.
  Files newer{{"000009.sst", "nine"}, {"CURRENT", "MANIFEST-000010\n"}};
  write_dir(&fs_, "src", newer);
  transfer(&fs_, "src", 8, "node");
  EXPECT_EQ(read_dir(&fs_, "node/snap"), newer);
  EXPECT_FALSE(fs_.exists("node/snap.old"));
  fs_.crash(1, false);
  EXPECT_EQ(read_dir(&fs_, "node/snap"), newer) << "finish() is durable";
}

TEST_F(SnapshotStreamTest, AnEmptyDirectoryIsOneChunk) {
  std::vector<std::string> encoded = chunks(&fs_, "src", 3, 1000);
  ASSERT_EQ(encoded.size(), 1u);
  SnapshotReceiver r(&fs_, "node", "snap");
  ASSERT_TRUE(r.add(encoded[0]).is_ok());
  ASSERT_TRUE(r.finish().is_ok());
  EXPECT_TRUE(fs_.is_dir("node/snap"));
  EXPECT_TRUE(read_dir(&fs_, "node/snap").empty());
}

TEST_F(SnapshotStreamTest, EveryDamagedByteAndEveryCutIsRejected) {
  write_dir(&fs_, "src", {{"a", "hello world"}});
  std::string good = chunks(&fs_, "src", 1, 1000)[0];
  SnapshotChunk c;
  for (size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      EXPECT_FALSE(decode_snapshot_chunk(bad, &c).is_ok()) << "byte " << i << " bit " << bit;
    }
  }
  for (size_t n = 0; n < good.size(); ++n)
    EXPECT_FALSE(decode_snapshot_chunk(good.substr(0, n), &c).is_ok()) << "cut at " << n;
  EXPECT_FALSE(decode_snapshot_chunk(good + "x", &c).is_ok());
  Status st = decode_snapshot_chunk(good.substr(0, 10), &c);
  EXPECT_NE(st.message().find("shorter than its header"), std::string::npos) << st.to_string();
  std::string flipped = good;
  flipped[50] ^= 1;
  st = decode_snapshot_chunk(flipped, &c);
  EXPECT_NE(st.message().find("checksum mismatch"), std::string::npos) << st.to_string();

  // A damaged chunk changes nothing at the receiver: the resent good one completes it.
  SnapshotReceiver r(&fs_, "node", "snap");
  EXPECT_EQ(r.add(flipped).code(), Status::Code::kCorruption);
  ASSERT_TRUE(r.add(good).is_ok());
  ASSERT_TRUE(r.finish().is_ok());
  EXPECT_EQ(read_dir(&fs_, "node/snap"), (Files{{"a", "hello world"}}));
}

TEST_F(SnapshotStreamTest, MalformedFieldsAreRejectedWithTheReason) {
  auto reason = [](const SnapshotChunk& c) {
    SnapshotChunk out;
    Status st = decode_snapshot_chunk(encode_snapshot_chunk(c), &out);
    return st.is_ok() ? std::string("accepted") : st.message();
  };
  SnapshotChunk ok{1, 0, "a", 0, true, true, "data", 4, crc32c("data"), 1};
  EXPECT_EQ(reason(ok), "accepted");
  for (const char* name : {"..", ".", "a/b", "/abs", ""}) {
    SnapshotChunk c = ok;
    c.file_name = name;
    EXPECT_NE(reason(c), "accepted") << name;
  }
  SnapshotChunk c = ok;
  c.file_name = std::string(300, 'n');
  EXPECT_NE(reason(c).find("too long"), std::string::npos);
  c = ok;
  c.file_size = 5;
  EXPECT_NE(reason(c).find("does not end at the file's size"), std::string::npos);
  c = ok;
  c.file_count = 2;
  EXPECT_NE(reason(c).find("does not end its last file"), std::string::npos);
  c = ok;
  c.last_in_file = false;
  EXPECT_NE(reason(c), "accepted");
  c = ok;
  c.file_index = kMaxSnapshotFiles;
  c.file_count = kMaxSnapshotFiles + 1;
  EXPECT_NE(reason(c).find("out of range"), std::string::npos);
  c = ok;
  c.offset = UINT64_MAX - 1;
  c.file_size = 2;
  EXPECT_NE(reason(c).find("offset out of range"), std::string::npos);
}

TEST_F(SnapshotStreamTest, OutOfOrderRepeatedAndForeignChunksAreRefused) {
  write_dir(&fs_, "src", files_);
  std::vector<std::string> encoded = chunks(&fs_, "src", 5, 1000);
  std::vector<std::string> other = chunks(&fs_, "src", 6, 1000);
  SnapshotReceiver r(&fs_, "node", "snap");
  EXPECT_EQ(r.add(encoded[1]).code(), Status::Code::kInvalidArgument) << "must start at 0";
  ASSERT_TRUE(r.add(encoded[0]).is_ok());
  Status st = r.add(encoded[0]);
  EXPECT_NE(st.message().find("repeated chunk"), std::string::npos) << st.to_string();
  st = r.add(encoded[2]);
  EXPECT_NE(st.message().find("out of order"), std::string::npos) << st.to_string();
  st = r.add(other[1]);
  EXPECT_NE(st.message().find("snapshot 6 while receiving snapshot 5"), std::string::npos)
      << st.to_string();
  EXPECT_EQ(r.finish().code(), Status::Code::kInvalidArgument) << "incomplete";
  for (size_t i = 1; i < encoded.size(); ++i)
    ASSERT_TRUE(r.add(encoded[i]).is_ok()) << i;
  EXPECT_FALSE(r.add(encoded.back()).is_ok());
  ASSERT_TRUE(r.finish().is_ok());
  EXPECT_EQ(read_dir(&fs_, "node/snap"), files_);
}

TEST_F(SnapshotStreamTest, AFileNotMatchingItsChecksumEndsTheTransfer) {
  write_dir(&fs_, "src", files_);
  std::vector<std::string> encoded = chunks(&fs_, "src", 5, 1000);
  SnapshotReceiver r(&fs_, "node", "snap");
  // The first file's second chunk, altered and framed again with a valid chunk checksum: only
  // the whole-file checksum can tell.
  SnapshotChunk c;
  ASSERT_TRUE(decode_snapshot_chunk(encoded[1], &c).is_ok());
  c.data[10] ^= 1;
  ASSERT_TRUE(r.add(encoded[0]).is_ok());
  ASSERT_TRUE(r.add(encode_snapshot_chunk(c)).is_ok());
  for (size_t i = 2; i < 5; ++i)
    ASSERT_TRUE(r.add(encoded[i]).is_ok());
  Status st = r.add(encoded[5]);  // the last chunk of 000001.sst
  EXPECT_EQ(st.code(), Status::Code::kCorruption) << st.to_string();
  EXPECT_NE(st.message().find("000001.sst"), std::string::npos);
  EXPECT_EQ(r.add(encoded[6]).code(), Status::Code::kCorruption) << "the transfer is over";
  EXPECT_FALSE(r.finish().is_ok());
  ASSERT_TRUE(r.abort().is_ok());
  EXPECT_FALSE(fs_.exists("node/snap.tmp"));
  EXPECT_FALSE(fs_.exists("node/snap"));
}

TEST_F(SnapshotStreamTest, ACrashBeforeFinishKeepsTheOldSnapshot) {
  Files old{{"old.sst", "old data"}};
  write_dir(&fs_, "src", old);
  transfer(&fs_, "src", 1, "node");
  write_dir(&fs_, "src", files_);
  std::vector<std::string> encoded = chunks(&fs_, "src", 2, 1000);
  for (size_t received = 0; received <= encoded.size(); ++received) {
    SnapshotReceiver r(&fs_, "node", "snap");
    for (size_t i = 0; i < received; ++i)
      ASSERT_TRUE(r.add(encoded[i]).is_ok());
    fs_.crash(received, true);
    ASSERT_TRUE(SnapshotReceiver::recover(&fs_, "node", "snap").is_ok());
    EXPECT_EQ(read_dir(&fs_, "node/snap"), old) << received << " chunks received";
    EXPECT_FALSE(fs_.exists("node/snap.tmp"));
  }
}

// Forwards to another FileSystem but refuses every directory change after the first `steps`:
// the process stops there, as if the power went out at that point.
class StopAfterFs final : public ForwardingFileSystem {
 public:
  StopAfterFs(FileSystem* fs, int steps) : ForwardingFileSystem(fs), steps_(steps) {}
  Status create_dir(const std::string& d) override {
    return step() ? ForwardingFileSystem::create_dir(d) : stop();
  }
  Status rename(const std::string& f, const std::string& t) override {
    return step() ? ForwardingFileSystem::rename(f, t) : stop();
  }
  Status remove(const std::string& p) override {
    return step() ? ForwardingFileSystem::remove(p) : stop();
  }
  Status remove_dir(const std::string& d) override {
    return step() ? ForwardingFileSystem::remove_dir(d) : stop();
  }
  Status sync_dir(const std::string& d) override {
    return step() ? ForwardingFileSystem::sync_dir(d) : stop();
  }
  void set_steps(int steps) { steps_ = steps; }

 private:
  bool step() { return --steps_ >= 0; }
  static Status stop() { return Status::io_error("stopped"); }
  int steps_;
};

// A crash after each step of finish(): once recover() has run, the node has the old snapshot
// or the new one, whole, never neither and never a mix.
TEST_F(SnapshotStreamTest, ACrashDuringFinishLeavesTheOldOrTheNewSnapshot) {
  Files old{{"old.sst", "old data"}, {"CURRENT", "old"}};
  write_dir(&fs_, "src", old);
  transfer(&fs_, "src", 1, "node");
  write_dir(&fs_, "src", files_);
  std::vector<std::string> encoded = chunks(&fs_, "src", 2, 1000);
  int saw_old = 0;
  int saw_new = 0;
  for (int steps = 0;; ++steps) {
    ASSERT_LT(steps, 100);
    // Receiving also changes directories (the temporary one is created): count from finish().
    StopAfterFs stop(&fs_, 1000);
    SnapshotReceiver r(&stop, "node", "snap");
    for (const std::string& c : encoded)
      ASSERT_TRUE(r.add(c).is_ok());
    stop.set_steps(steps);
    bool done = r.finish().is_ok();
    fs_.crash(static_cast<uint64_t>(steps), true);
    ASSERT_TRUE(SnapshotReceiver::recover(&fs_, "node", "snap").is_ok());
    Files got = read_dir(&fs_, "node/snap");
    EXPECT_TRUE(got == old || got == files_) << "crash after " << steps << " steps";
    EXPECT_FALSE(fs_.exists("node/snap.tmp"));
    EXPECT_FALSE(fs_.exists("node/snap.old"));
    if (got == old) ++saw_old;
    if (got == files_) ++saw_new;
    if (done) {
      EXPECT_EQ(got, files_) << "finish() returned OK, so the new snapshot must be durable";
      break;
    }
    if (got == files_) {  // installed before the crash: put the old one back for the next step
      write_dir(&fs_, "src", old);
      transfer(&fs_, "src", 1, "node");
      write_dir(&fs_, "src", files_);
    }
  }
  EXPECT_GT(saw_old, 0);
  EXPECT_GT(saw_new, 0);
}

TEST(SnapshotStreamPosix, ARoundTripOnTheLocalDisk) {
  auto fs = make_posix_file_system();
  testing::TempDir tmp("chorus-snap");
  std::string root = tmp.path();
  std::string src = root + "/src";
  std::string node = root + "/node";
  ASSERT_TRUE(fs->create_dir(src).is_ok());
  ASSERT_TRUE(fs->create_dir(node).is_ok());
  for (int round = 0; round < 2; ++round) {
    Files files{{"a", std::string(70000, static_cast<char>('a' + round))}, {"b", ""}};
    for (const auto& [name, data] : files)
      ASSERT_TRUE(fs->write_file_atomic(src, name, data).is_ok());
    SnapshotSender sender(fs.get(), src, round + 1, 4096);
    SnapshotReceiver r(fs.get(), node, "snap");
    while (!sender.done()) {
      SnapshotChunk c;
      ASSERT_TRUE(sender.next(&c).is_ok());
      ASSERT_TRUE(r.add(encode_snapshot_chunk(c)).is_ok());
    }
    Status st = r.finish();
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    std::string got;
    ASSERT_TRUE(fs->read_file(node + "/snap/a", &got).is_ok());
    EXPECT_EQ(got, files["a"]);
    EXPECT_TRUE(fs->exists(node + "/snap/b"));
    EXPECT_FALSE(fs->exists(node + "/snap.old"));
    EXPECT_FALSE(fs->exists(node + "/snap.tmp"));
  }
  ASSERT_TRUE(fs->remove_dir(root).is_ok());
  EXPECT_FALSE(fs->exists(root));
}

}  // namespace
}  // namespace chorus::storage
