#include "client/connection.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <chrono>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/exit_codes.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace dylora::client {
namespace {

// Bigger than any sane token or CA bundle, small enough to refuse a blob.
constexpr size_t kMaxSmallFileBytes = 1 << 20;
// The largest answer accepted (an ExportAdapter response is the biggest).
constexpr int kMaxReceiveBytes = 256 << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(
    const ConnectionOptions& options) {
  if (options.server.empty() || options.server.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--server must be host:port, not \"", options.server, "\""));
  }
  if (!std::isfinite(options.timeout_s) || options.timeout_s <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--timeout-s must be a positive number of seconds, not ",
                     options.timeout_s));
  }
  std::unique_ptr<Connection> connection(new Connection());
  connection->options_ = options;
  connection->timeout_ = absl::Seconds(options.timeout_s);
  if (!options.token_file.empty()) {
    DYLORA_ASSIGN_OR_RETURN(
        std::string token,
        ReadFileToString(options.token_file, kMaxSmallFileBytes));
    connection->token_ = std::string(absl::StripAsciiWhitespace(token));
    if (connection->token_.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--token-file '", options.token_file, "' is empty"));
    }
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.tls_ca_file.empty()) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    DYLORA_ASSIGN_OR_RETURN(
        ssl.pem_root_certs,
        ReadFileToString(options.tls_ca_file, kMaxSmallFileBytes));
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments arguments;
  // gRPC's default 4 MiB would refuse an exported adapter of a larger
  // backbone (BERT-base at r 8 on every linear: about 5 MiB).
  arguments.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  connection->channel_ =
      grpc::CreateCustomChannel(options.server, credentials, arguments);
  connection->dylora_ = dylora::v1::DyLoRA::NewStub(connection->channel_);
  connection->kserve_ =
      inference::GRPCInferenceService::NewStub(connection->channel_);
  connection->health_ = grpc::health::v1::Health::NewStub(connection->channel_);
  return connection;
}

void Connection::Prepare(grpc::ClientContext& context, bool admin) const {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  if (admin && !token_.empty()) {
    context.AddMetadata("authorization", absl::StrCat("Bearer ", token_));
  }
}

void Connection::PrepareInference(grpc::ClientContext& context,
                                  absl::string_view adapter) const {
  Prepare(context);
  context.AddMetadata("x-dylora-adapter", std::string(adapter));
}

absl::Status Connection::Check(const grpc::Status& status,
                               absl::string_view rpc) const {
  return RpcStatus(status, options_.server, rpc, timeout_);
}

}  // namespace dylora::client
