// The real dylora-serve binary as a deployment runs it: flags only, health
// and reflection answered, a request served, SIGTERM -> drained, exit 0.
// This binary links no server code: it talks to the process over gRPC only.
#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "core/util/file_util.h"
#include "dylora/v1/dylora.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/server/test_adapters.h"

extern char** environ;

namespace dylora::serving {
namespace {

using ::testing::ElementsAre;
using ::testing::IsSupersetOf;
namespace health = ::grpc::health::v1;
namespace reflection = ::grpc::reflection::v1alpha;

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

class ServeProcess {
 public:
  // `output_path`: where the process's stdout and stderr (its log) go
  // (empty: inherited).
  explicit ServeProcess(std::vector<std::string> args,
                        const std::string& output_path = "") {
    args.insert(args.begin(), DYLORA_SERVE_BINARY);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    if (!output_path.empty()) {
      ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO,
                                         output_path.c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO,
                                         STDERR_FILENO);
    }
    EXPECT_EQ(::posix_spawn(&pid_, DYLORA_SERVE_BINARY, &actions, nullptr,
                            argv.data(), environ),
              0);
    ::posix_spawn_file_actions_destroy(&actions);
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  // The caller reaped the process itself.
  void Forget() { pid_ = -1; }
  // The exit code after SIGTERM, or -1 when it did not exit normally.
  int Terminate() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
};

TEST(DyloraServeProcessTest, ServesThenDrainsOnSigterm) {
  dylora::testing::ScopedTempDir dir;
  std::string adapter_path;
  {
    auto encoder = Encoder::Load(dylora::testing::ModelDir());
    ASSERT_TRUE(encoder.ok());
    adapter_path =
        dylora::testing::WriteRandomAdapter(**encoder, dir.path(), "sst", 7);
  }
  const int port = FreePort();
  ServeProcess process(
      {"--model", dylora::testing::ModelDir(), "--host", "127.0.0.1", "--port",
       std::to_string(port), "--metrics-port", "-1", "--adapter",
       "sst=" + adapter_path, "--profile", "phone=2", "--threads", "1"});
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                     grpc::InsecureChannelCredentials());
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                        std::chrono::seconds(120)))
      << "dylora-serve did not start listening";

  auto health_stub = health::Health::NewStub(channel);
  health::HealthCheckResponse health_response;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(health_stub->Check(&context, {}, &health_response).ok());
    EXPECT_EQ(health_response.status(), health::HealthCheckResponse::SERVING);
  }

  // It runs with OpenMP's default at one thread (server/app/openmp_env.h):
  // re-executed with OMP_NUM_THREADS=1 unless the environment chose.
  {
    std::ifstream environ_file("/proc/" + std::to_string(process.pid()) +
                               "/environ");
    std::string variable;
    std::vector<std::string> omp;
    while (std::getline(environ_file, variable, '\0')) {
      if (variable.rfind("OMP_NUM_THREADS=", 0) == 0) omp.push_back(variable);
    }
    const char* ours = std::getenv("OMP_NUM_THREADS");
    EXPECT_THAT(omp, ElementsAre(std::string("OMP_NUM_THREADS=") +
                                 (ours != nullptr ? ours : "1")));
  }

  // Server reflection lists our services (what grpcurl relies on).
  auto reflection_stub = reflection::ServerReflection::NewStub(channel);
  {
    grpc::ClientContext context;
    auto stream = reflection_stub->ServerReflectionInfo(&context);
    reflection::ServerReflectionRequest request;
    request.set_list_services("");
    ASSERT_TRUE(stream->Write(request));
    reflection::ServerReflectionResponse response;
    ASSERT_TRUE(stream->Read(&response));
    std::vector<std::string> services;
    for (const auto& service : response.list_services_response().service()) {
      services.push_back(service.name());
    }
    EXPECT_THAT(services, IsSupersetOf({"dylora.v1.DyLoRA",
                                        "inference.GRPCInferenceService",
                                        "grpc.health.v1.Health"}));
    stream->WritesDone();
  }

  auto stub = dylora::v1::DyLoRA::NewStub(channel);
  dylora::v1::ClassifyRequest request;
  request.set_adapter("sst");
  request.add_inputs()->set_text("an utterly charming film");
  request.set_profile("phone");
  dylora::v1::ClassifyResponse response;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->Classify(&context, request, &response).ok());
  }
  EXPECT_EQ(response.rank(), 2);
  EXPECT_EQ(response.predictions_size(), 1);

  EXPECT_EQ(process.Terminate(), 0);
}

// A token that would cross the network in plaintext is worth a warning at
// start (the server still starts: the operator may terminate TLS in front).
TEST(DyloraServeProcessTest, WarnsWhenTheAdminTokenWouldTravelInPlaintext) {
  dylora::testing::ScopedTempDir dir;
  const std::string token_file = dir.path() + "/token";
  ASSERT_TRUE(WriteFileAtomically(token_file, "s3cret\n").ok());
  const std::string log = dir.path() + "/output";
  ServeProcess process(
      {"--host", "0.0.0.0", "--port", std::to_string(FreePort()),
       "--metrics-port", "-1", "--admin-token-file", token_file, "--log-level",
       "warn"},
      log);
  std::string text;
  for (int i = 0; i < 600 && text.find("plaintext") == std::string::npos; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    text = ReadFileToString(log).value_or("");
  }
  EXPECT_THAT(text, ::testing::HasSubstr(
                        "the admin token travels in plaintext on 0.0.0.0"));
  EXPECT_EQ(process.Terminate(), 0);
}

// What the binary prints and its exit code for a start that must fail.
struct FailedStart {
  int exit_code;
  std::string output;
};
FailedStart StartAndFail(std::vector<std::string> args) {
  dylora::testing::ScopedTempDir dir;
  const std::string log = dir.path() + "/output";
  ServeProcess process(std::move(args), log);
  int status = 0;
  ::waitpid(process.pid(), &status, 0);
  process.Forget();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1,
          ReadFileToString(log).value_or("")};
}

// Startup errors say what is wrong in our words, through the real binary.
TEST(DyloraServeProcessTest, StartupErrorsSayWhatIsWrong) {
  const std::string tls = dylora::testing::FixturesDir() + "/tls";
  const std::string port = std::to_string(FreePort());
  // A key that is not the certificate's.
  FailedStart start =
      StartAndFail({"--port", port, "--metrics-port", "-1", "--tls-cert",
                    tls + "/server.crt", "--tls-key", tls + "/other.key"});
  EXPECT_NE(start.exit_code, 0);
  EXPECT_THAT(start.output,
              ::testing::HasSubstr("other.key is not the private key of the "
                                   "certificate in tls-cert"));
  // A certificate file that is not PEM.
  start = StartAndFail({"--port", port, "--metrics-port", "-1", "--tls-cert",
                        tls + "/make_tls_fixtures.sh", "--tls-key",
                        tls + "/server.key"});
  EXPECT_THAT(start.output, ::testing::HasSubstr("holds no PEM certificate"));
  // --model naming a file.
  start = StartAndFail({"--port", port, "--metrics-port", "-1", "--model",
                        dylora::testing::ModelDir() + "/config.json"});
  EXPECT_NE(start.exit_code, 0);
  EXPECT_THAT(start.output, ::testing::HasSubstr("is a file, not a directory"));
  // A port another process holds.
  const int held = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(
      ::bind(held, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(held, 1), 0);
  socklen_t length = sizeof(address);
  ::getsockname(held, reinterpret_cast<sockaddr*>(&address), &length);
  start = StartAndFail({"--host", "127.0.0.1", "--port",
                        std::to_string(ntohs(address.sin_port)),
                        "--metrics-port", "-1"});
  ::close(held);
  EXPECT_NE(start.exit_code, 0);
  EXPECT_THAT(start.output, ::testing::HasSubstr("the port is already in use"));
}

TEST(DyloraServeProcessTest, ExitsNonZeroOnABadFlag) {
  ServeProcess process({"--max-batch-size", "0", "--metrics-port", "-1"});
  EXPECT_NE(process.Terminate(), 0);
}

}  // namespace
}  // namespace dylora::serving
