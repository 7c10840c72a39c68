// The KServe v2 Open Inference Protocol (package inference) over the same
// runtime, so tritonclient and KServe clients work unchanged.
//
// Models: every loaded adapter (its name; version = the adapter's version)
// and the backbone itself (sentence embeddings).
//   inputs   TEXT       BYTES [N]  (or [N, 1]) required
//            TEXT_PAIR  BYTES [N]  optional, the second segment of pairs
//            BYTES in raw_input_contents (4-byte little-endian length
//            before each element) or in contents.bytes_contents.
//   params   rank (int64), profile (string) or policy (string); at most one.
//   outputs  logits FP32 [N, L], probabilities FP32 [N, L] (classification)
//            or embedding FP32 [N, H] (backbone), in raw_output_contents.
//            Response parameters: rank, rank_source, execution_path.
//
// Thread-safe; borrows the runtime and metrics.
#pragma once

#include <atomic>

#include "inference/grpc_service.grpc.pb.h"

namespace dylora::serving {

class ServerMetrics;
class ServingRuntime;

class KServeService final : public inference::GRPCInferenceService::CallbackService {
 public:
  KServeService(ServingRuntime& runtime, ServerMetrics* metrics)
      : runtime_(runtime), metrics_(metrics) {}

  grpc::ServerUnaryReactor* ServerLive(
      grpc::CallbackServerContext* context,
      const inference::ServerLiveRequest* request,
      inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(
      grpc::CallbackServerContext* context,
      const inference::ServerReadyRequest* request,
      inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(
      grpc::CallbackServerContext* context,
      const inference::ModelReadyRequest* request,
      inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(
      grpc::CallbackServerContext* context,
      const inference::ServerMetadataRequest* request,
      inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(
      grpc::CallbackServerContext* context,
      const inference::ModelMetadataRequest* request,
      inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(
      grpc::CallbackServerContext* context,
      const inference::ModelInferRequest* request,
      inference::ModelInferResponse* response) override;

 private:
  ServingRuntime& runtime_;
  ServerMetrics* const metrics_;
};

}  // namespace dylora::serving
