#include "storage/fault_fs.h"

#include <gtest/gtest.h>

namespace chorus::storage {
namespace {

class FaultFsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_.create_dir("d").is_ok()); }
  std::string read(const std::string& path) {
    std::string out;
    Status st = fs_.read_file(path, &out);
    return st.is_ok() ? out : "<" + st.to_string() + ">";
  }
  std::unique_ptr<WritableFile> open(const std::string& path) {
    std::unique_ptr<WritableFile> f;
    EXPECT_TRUE(fs_.open_writable(path, &f).is_ok());
    return f;
  }
  FaultFileSystem fs_;
};

TEST_F(FaultFsTest, SyncedDataSurvivesACrashAndUnsyncedDataDoesNot) {
  auto f = open("d/a");
  ASSERT_TRUE(f->write_at(0, "durable").is_ok());
  ASSERT_TRUE(f->sync().is_ok());
  ASSERT_TRUE(fs_.sync_dir("d").is_ok());
  ASSERT_TRUE(f->write_at(7, "+lost").is_ok());
  EXPECT_EQ(read("d/a"), "durable+lost");
  fs_.crash(1, false);
  EXPECT_EQ(read("d/a"), "durable");
}

TEST_F(FaultFsTest, ANewFileNeedsADirectorySyncToSurvive) {
  auto f = open("d/new");
  ASSERT_TRUE(f->write_at(0, "x").is_ok());
  ASSERT_TRUE(f->sync().is_ok());
  fs_.crash(1, false);
  EXPECT_FALSE(fs_.exists("d/new"));
}

TEST_F(FaultFsTest, ARenameNeedsADirectorySyncToSurvive) {
  auto f = open("d/a.tmp");
  ASSERT_TRUE(f->write_at(0, "x").is_ok());
  ASSERT_TRUE(f->sync().is_ok());
  ASSERT_TRUE(fs_.sync_dir("d").is_ok());
  ASSERT_TRUE(fs_.rename("d/a.tmp", "d/a").is_ok());
  fs_.crash(1, false);
  EXPECT_TRUE(fs_.exists("d/a.tmp"));
  EXPECT_FALSE(fs_.exists("d/a"));
}

TEST_F(FaultFsTest, ATornCrashKeepsAPrefixOfTheUnsyncedWrites) {
  bool saw_partial = false;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    FaultFileSystem fs;
    ASSERT_TRUE(fs.create_dir("d").is_ok());
    std::unique_ptr<WritableFile> f;
    ASSERT_TRUE(fs.open_writable("d/a", &f).is_ok());
    ASSERT_TRUE(fs.sync_dir("d").is_ok());
    ASSERT_TRUE(f->write_at(0, "0123456789").is_ok());
    ASSERT_TRUE(f->write_at(10, "abcdefghij").is_ok());
    fs.crash(seed, true);
    std::string got;
    ASSERT_TRUE(fs.read_file("d/a", &got).is_ok());
    std::string full = "0123456789abcdefghij";
    EXPECT_EQ(got, full.substr(0, got.size())) << "seed " << seed;
    if (!got.empty() && got.size() < full.size()) saw_partial = true;
  }
  EXPECT_TRUE(saw_partial);
}

TEST_F(FaultFsTest, InjectedSyncFailuresAreReported) {
  auto f = open("d/a");
  fs_.fail_next_syncs(1);
  EXPECT_EQ(f->sync().code(), Status::Code::kIoError);
  EXPECT_TRUE(f->sync().is_ok());
}

TEST_F(FaultFsTest, WritesPastTheSpaceLimitFailAndChangeNothing) {
  auto f = open("d/a");
  fs_.set_space_limit(10);
  ASSERT_TRUE(f->write_at(0, "12345").is_ok());
  EXPECT_EQ(f->write_at(5, "678901").code(), Status::Code::kNoSpace);
  EXPECT_EQ(read("d/a"), "12345");
  EXPECT_EQ(f->preallocate(11).code(), Status::Code::kNoSpace);
}

TEST_F(FaultFsTest, HandlesFromBeforeACrashFail) {
  auto f = open("d/a");
  fs_.crash(1, false);
  EXPECT_EQ(f->write_at(0, "x").code(), Status::Code::kIoError);
}

}  // namespace
}  // namespace chorus::storage
