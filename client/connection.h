// The connection options every dylora-client command shares, and the
// channel, stubs and per-call settings (deadline, bearer token) built from
// them.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "dylora/v1/dylora.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "inference/grpc_service.grpc.pb.h"

namespace dylora::client {

struct ConnectionOptions {
  std::string server = "127.0.0.1:8001";  // host:port
  double timeout_s = 30;                  // deadline of every RPC
  std::string tls_ca_file;  // PEM roots; non-empty: TLS instead of plaintext
  std::string token_file;   // bearer token for admin RPCs (whitespace trimmed)
};

// A channel to one server with its stubs. Creating it does not connect:
// the first RPC does, and a server that is down shows up as UNAVAILABLE.
// Thread-safe (gRPC channels and stubs are); not copyable.
class Connection {
 public:
  // INVALID_ARGUMENT for a bad address or timeout; the file's error when
  // the CA or token file cannot be read. These are usage errors.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const ConnectionOptions& options);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sets the deadline (now + timeout) on `context`, and the bearer token
  // when `admin` and a token file was given.
  void Prepare(grpc::ClientContext& context, bool admin = false) const;
  // Prepare, plus the metadata "x-dylora-adapter: <adapter>" so that a proxy
  // can route one adapter's requests to the same replicas (warm merge
  // caches; see deploy/README.md) without parsing the protobuf body.
  void PrepareInference(grpc::ClientContext& context,
                        absl::string_view adapter) const;

  // The RPC's outcome as an absl::Status with a one-line message naming
  // this server (see RpcStatus in client/exit_codes.h).
  absl::Status Check(const grpc::Status& status, absl::string_view rpc) const;

  const std::string& server() const { return options_.server; }
  absl::Duration timeout() const { return timeout_; }
  dylora::v1::DyLoRA::Stub& dylora() const { return *dylora_; }
  inference::GRPCInferenceService::Stub& kserve() const { return *kserve_; }
  grpc::health::v1::Health::Stub& health() const { return *health_; }

 private:
  Connection() = default;

  ConnectionOptions options_;
  absl::Duration timeout_;
  std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<dylora::v1::DyLoRA::Stub> dylora_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> kserve_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace dylora::client
