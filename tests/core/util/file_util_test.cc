#include "core/util/file_util.h"

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_paths.h"

namespace dylora {
namespace {

using ::testing::HasSubstr;

TEST(FileUtilTest, WriteThenReadRoundTrips) {
  testing::ScopedTempDir dir;
  const std::string path = dir.path() + "/a.bin";
  std::string payload("x\0y", 3);
  ASSERT_TRUE(WriteFileAtomically(path, payload).ok());
  auto read = ReadFileToString(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, payload);
}

TEST(FileUtilTest, AtomicWriteLeavesNoTemporaryAndReplacesOldFile) {
  testing::ScopedTempDir dir;
  const std::string path = dir.path() + "/config.json";
  ASSERT_TRUE(WriteFileAtomically(path, "old").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "new").ok());
  EXPECT_EQ(*ReadFileToString(path), "new");
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST(FileUtilTest, WriteIntoMissingDirectoryFailsAndNamesThePath) {
  testing::ScopedTempDir dir;
  const std::string path = dir.path() + "/no/such/dir/file";
  absl::Status status = WriteFileAtomically(path, "x");
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));
}

TEST(FileUtilTest, ReadMissingFileIsNotFound) {
  auto read = ReadFileToString("/nonexistent/dylora/file");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
}

TEST(FileUtilTest, ReadRefusesFilesOverTheLimit) {
  testing::ScopedTempDir dir;
  const std::string path = dir.path() + "/big";
  ASSERT_TRUE(WriteFileAtomically(path, std::string(100, 'a')).ok());
  auto read = ReadFileToString(path, /*max_bytes=*/10);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FileUtilTest, ReadRefusesDirectories) {
  testing::ScopedTempDir dir;
  EXPECT_EQ(ReadFileToString(dir.path()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dylora
