// Exit codes from gRPC codes, and the one-line messages that name the server.
#include "client/exit_codes.h"

#include <grpcpp/support/status.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>

#include "client/health_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dylora::client {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(ExitCodesTest, MapsGrpcCodes) {
  EXPECT_EQ(ExitCodeForRpc(absl::StatusCode::kOk), kExitOk);
  EXPECT_EQ(ExitCodeForRpc(absl::StatusCode::kUnavailable), kExitUnreachable);
  EXPECT_EQ(ExitCodeForRpc(absl::StatusCode::kDeadlineExceeded), kExitDeadline);
  for (absl::StatusCode code :
       {absl::StatusCode::kInvalidArgument, absl::StatusCode::kNotFound,
        absl::StatusCode::kResourceExhausted,
        absl::StatusCode::kUnauthenticated, absl::StatusCode::kPermissionDenied,
        absl::StatusCode::kInternal, absl::StatusCode::kCancelled,
        absl::StatusCode::kFailedPrecondition}) {
    EXPECT_EQ(ExitCodeForRpc(code), kExitRequestFailed)
        << absl::StatusCodeToString(code);
  }
  EXPECT_EQ(static_cast<int>(kExitUsage), 2);
}

TEST(ExitCodesTest, AbslAndGrpcCodesAgree) {
  EXPECT_EQ(static_cast<int>(grpc::StatusCode::UNAVAILABLE),
            static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_EQ(static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED),
            static_cast<int>(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(static_cast<int>(grpc::StatusCode::UNAUTHENTICATED),
            static_cast<int>(absl::StatusCode::kUnauthenticated));
}

TEST(ExitCodesTest, MessagesNameTheServerAndCode) {
  const absl::Duration timeout = absl::Seconds(30);
  absl::Status down =
      RpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "refused"),
                "127.0.0.1:8001", "Classify", timeout);
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(down.message(),
            "cannot reach 127.0.0.1:8001 (UNAVAILABLE): refused");

  absl::Status slow = RpcStatus(
      grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded"),
      "host:1", "Classify", timeout);
  EXPECT_EQ(slow.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(slow.message()),
              StartsWith("host:1 did not answer Classify within 30s"));

  absl::Status refused = RpcStatus(
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "rank 99 is outside"),
      "host:1", "Classify", timeout);
  EXPECT_EQ(refused.message(),
            "host:1 refused Classify (INVALID_ARGUMENT): rank 99 is outside");

  absl::Status failed =
      RpcStatus(grpc::Status(grpc::StatusCode::INTERNAL, "boom"), "host:1",
                "ModelInfer", timeout);
  EXPECT_EQ(failed.message(), "host:1 failed ModelInfer (INTERNAL): boom");

  EXPECT_TRUE(RpcStatus(grpc::Status::OK, "host:1", "Classify", timeout).ok());
}

TEST(ExitCodesTest, ReportersPrintOneLineAndReturnTheCode) {
  std::ostringstream err;
  EXPECT_EQ(ReportRpcError(
                absl::UnavailableError("cannot reach x (UNAVAILABLE): y"), err),
            kExitUnreachable);
  EXPECT_EQ(err.str(), "cannot reach x (UNAVAILABLE): y\n");
  std::ostringstream usage;
  EXPECT_EQ(ReportUsageError(absl::NotFoundError("no file"), usage),
            kExitUsage);
  EXPECT_EQ(usage.str(), "dylora-client: no file\n");
}

// A port that accepts TCP connections but never speaks HTTP/2: every RPC
// runs into its deadline.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    ::listen(fd_, 8);
    socklen_t length = sizeof(address);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(ExitCodesTest, ASilentServerGivesTheDeadlineExitCode) {
  SilentListener listener;
  HealthOptions options;
  options.connection.server = "127.0.0.1:" + std::to_string(listener.port());
  options.connection.timeout_s = 0.3;
  std::ostringstream out, err;
  EXPECT_EQ(RunHealth(options, out, err), kExitDeadline);
  EXPECT_THAT(err.str(),
              HasSubstr(options.connection.server + " did not answer"));
  EXPECT_THAT(err.str(), HasSubstr("(DEADLINE_EXCEEDED)"));
  EXPECT_EQ(out.str(), "");
}

TEST(ExitCodesTest, BadConnectionOptionsAreUsageErrors) {
  std::ostringstream out, err;
  HealthOptions no_port;
  no_port.connection.server = "localhost";
  EXPECT_EQ(RunHealth(no_port, out, err), kExitUsage);
  EXPECT_THAT(err.str(), HasSubstr("host:port"));
  HealthOptions bad_timeout;
  bad_timeout.connection.timeout_s = 0;
  EXPECT_EQ(RunHealth(bad_timeout, out, err), kExitUsage);
  HealthOptions missing_ca;
  missing_ca.connection.tls_ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(RunHealth(missing_ca, out, err), kExitUsage);
  EXPECT_THAT(err.str(), HasSubstr("/nonexistent/ca.pem"));
}

}  // namespace
}  // namespace dylora::client
