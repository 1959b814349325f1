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

TEST_F(FaultFsTest, ANewDirectoryNeedsItsParentSyncedToSurvive) {
  ASSERT_TRUE(fs_.create_dir("d/sub").is_ok());
  EXPECT_TRUE(fs_.is_dir("d/sub"));
  EXPECT_EQ(fs_.create_dir("d/missing/sub").code(), Status::Code::kNotFound);
  auto f = open("d/sub/a");
  ASSERT_TRUE(f->write_at(0, "x").is_ok());
  ASSERT_TRUE(f->sync().is_ok());
  ASSERT_TRUE(fs_.sync_dir("d/sub").is_ok());
  fs_.crash(1, false);
  EXPECT_FALSE(fs_.exists("d/sub")) << "d was never synced";
  EXPECT_TRUE(fs_.is_dir("d")) << "a top-level directory is durable at once";

  ASSERT_TRUE(fs_.create_dir("d/sub").is_ok());
  f = open("d/sub/a");
  ASSERT_TRUE(f->write_at(0, "x").is_ok());
  ASSERT_TRUE(f->sync().is_ok());
  ASSERT_TRUE(fs_.sync_dir("d/sub").is_ok());
  ASSERT_TRUE(fs_.sync_dir("d").is_ok());
  fs_.crash(2, false);
  EXPECT_EQ(read("d/sub/a"), "x");
}

TEST_F(FaultFsTest, ARenamedDirectoryTakesItsContentsAndNeedsAParentSync) {
  ASSERT_TRUE(fs_.create_dir("d/tmp").is_ok());
  auto f = open("d/tmp/a");
  ASSERT_TRUE(f->write_at(0, "new").is_ok());
  ASSERT_TRUE(f->sync().is_ok());
  ASSERT_TRUE(fs_.sync_dir("d/tmp").is_ok());
  ASSERT_TRUE(fs_.sync_dir("d").is_ok());
  ASSERT_TRUE(fs_.rename("d/tmp", "d/final").is_ok());
  EXPECT_EQ(read("d/final/a"), "new");
  EXPECT_FALSE(fs_.exists("d/tmp"));
  fs_.crash(1, false);
  EXPECT_EQ(read("d/tmp/a"), "new") << "the rename was not synced";
  EXPECT_FALSE(fs_.exists("d/final"));

  ASSERT_TRUE(fs_.rename("d/tmp", "d/final").is_ok());
  ASSERT_TRUE(fs_.sync_dir("d").is_ok());
  fs_.crash(2, false);
  EXPECT_EQ(read("d/final/a"), "new");
  EXPECT_FALSE(fs_.exists("d/tmp"));
}

TEST_F(FaultFsTest, RenameOfADirectoryReplacesOnlyAnEmptyOne) {
  ASSERT_TRUE(fs_.create_dir("d/a").is_ok());
  ASSERT_TRUE(fs_.create_dir("d/b").is_ok());
  ASSERT_TRUE(fs_.rename("d/a", "d/b").is_ok()) << "b is empty";
  ASSERT_TRUE(fs_.create_dir("d/c").is_ok());
  open("d/b/file");
  EXPECT_FALSE(fs_.rename("d/c", "d/b").is_ok()) << "b is not empty";
  EXPECT_FALSE(fs_.rename("d/b", "d/b/inner").is_ok());
  EXPECT_FALSE(fs_.rename("d/b/file", "d/c").is_ok()) << "a file cannot replace a directory";
}

TEST_F(FaultFsTest, RemoveDirRemovesEverythingAndNeedsAParentSync) {
  ASSERT_TRUE(fs_.create_dir("d/x").is_ok());
  ASSERT_TRUE(fs_.create_dir("d/x/y").is_ok());
  auto f = open("d/x/y/z");
  ASSERT_TRUE(f->write_at(0, "z").is_ok());
  ASSERT_TRUE(f->sync().is_ok());
  ASSERT_TRUE(fs_.sync_dir("d/x/y").is_ok());
  ASSERT_TRUE(fs_.sync_dir("d/x").is_ok());
  ASSERT_TRUE(fs_.sync_dir("d").is_ok());
  ASSERT_TRUE(fs_.remove_dir("d/x").is_ok());
  EXPECT_FALSE(fs_.exists("d/x/y/z"));
  EXPECT_EQ(fs_.remove("d/x").code(), Status::Code::kNotFound);
  fs_.crash(1, false);
  EXPECT_EQ(read("d/x/y/z"), "z") << "the removal was not synced";
  ASSERT_TRUE(fs_.remove_dir("d/x").is_ok());
  ASSERT_TRUE(fs_.sync_dir("d").is_ok());
  fs_.crash(2, false);
  EXPECT_FALSE(fs_.exists("d/x"));
  EXPECT_EQ(fs_.remove_dir("d/x").code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace chorus::storage
