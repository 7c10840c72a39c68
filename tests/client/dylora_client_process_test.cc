// The real dylora-client binary (posix_spawn) against an in-process server:
// exit codes and stdout as a shell script sees them.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/test_server.h"
#include "tests/test_paths.h"

extern char** environ;

namespace dylora::client {
namespace {

using ::dylora::testing::TestServer;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct ProcessResult {
  int exit_code = -1;  // -1: did not exit normally
  std::string out;
  std::string err;
};

std::string ReadAll(const std::string& path) {
  std::ifstream file(path);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

// Runs dylora-client with `args`, stdout and stderr captured in files.
ProcessResult RunClient(std::vector<std::string> args) {
  dylora::testing::ScopedTempDir dir;
  const std::string out_path = dir.path() + "/stdout";
  const std::string err_path = dir.path() + "/stderr";
  args.insert(args.begin(), DYLORA_CLIENT_BINARY);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  ProcessResult result;
  const int spawned = ::posix_spawn(&pid, DYLORA_CLIENT_BINARY, &actions,
                                    nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(spawned, 0);
  if (spawned != 0) return result;
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadAll(out_path);
  result.err = ReadAll(err_path);
  return result;
}

class DyloraClientProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.ok());
    server_.AddAdapter("sst", 5);
    address_ = "127.0.0.1:" + std::to_string(server_.server().port());
  }

  TestServer server_;
  std::string address_;
};

TEST_F(DyloraClientProcessTest, InferPrintsOneLinePerTextAndExitsZero) {
  const ProcessResult result =
      RunClient({"infer", "--server", address_, "--adapter", "sst", "--rank",
                 "4", "an utterly charming film", "a dull, lifeless mess"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::vector<std::string> lines =
      absl::StrSplit(result.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << result.out;
  EXPECT_THAT(lines[0], StartsWith("# adapter sst v1 | rank 4 (rank) | "));
  EXPECT_THAT(lines[1], HasSubstr("\tan utterly charming film"));
  EXPECT_THAT(lines[2], HasSubstr("\ta dull, lifeless mess"));
}

TEST_F(DyloraClientProcessTest, HealthAndExitCodes) {
  const ProcessResult health = RunClient({"health", "--server", address_});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_EQ(health.out, "SERVING\n");

  const ProcessResult usage = RunClient({"infer", "--server", address_});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_THAT(usage.err, HasSubstr("--adapter"));

  const ProcessResult refused = RunClient(
      {"infer", "--server", address_, "--adapter", "missing", "text"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("(NOT_FOUND)"));

  const ProcessResult help = RunClient({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("Exit codes"));
}

}  // namespace
}  // namespace dylora::client
