// The dylora.v1 native service: translates protobuf messages to and from
// ServingRuntime calls. Classify completes asynchronously (gRPC callback
// API): the handler queues the task and the batcher's worker finishes the
// RPC, so no gRPC thread waits on a batch.
//
// Thread-safe; borrows the runtime, metrics and auth, which must outlive it.
#pragma once

#include "dylora/v1/dylora.grpc.pb.h"
#include "server/api/admin_auth.h"

namespace dylora::serving {

class ServerMetrics;
class ServingRuntime;

class DyloraService final : public dylora::v1::DyLoRA::CallbackService {
 public:
  DyloraService(ServingRuntime& runtime, ServerMetrics* metrics,
                const AdminAuth& auth)
      : runtime_(runtime), metrics_(metrics), auth_(auth) {}

  grpc::ServerUnaryReactor* Classify(
      grpc::CallbackServerContext* context,
      const dylora::v1::ClassifyRequest* request,
      dylora::v1::ClassifyResponse* response) override;
  grpc::ServerUnaryReactor* ListAdapters(
      grpc::CallbackServerContext* context,
      const dylora::v1::ListAdaptersRequest* request,
      dylora::v1::ListAdaptersResponse* response) override;
  grpc::ServerUnaryReactor* GetAdapter(
      grpc::CallbackServerContext* context,
      const dylora::v1::GetAdapterRequest* request,
      dylora::v1::AdapterInfo* response) override;
  grpc::ServerUnaryReactor* LoadAdapter(
      grpc::CallbackServerContext* context,
      const dylora::v1::LoadAdapterRequest* request,
      dylora::v1::LoadAdapterResponse* response) override;
  grpc::ServerUnaryReactor* UnloadAdapter(
      grpc::CallbackServerContext* context,
      const dylora::v1::UnloadAdapterRequest* request,
      dylora::v1::UnloadAdapterResponse* response) override;
  grpc::ServerUnaryReactor* ExportAdapter(
      grpc::CallbackServerContext* context,
      const dylora::v1::ExportAdapterRequest* request,
      dylora::v1::ExportAdapterResponse* response) override;

 private:
  ServingRuntime& runtime_;
  ServerMetrics* const metrics_;
  const AdminAuth& auth_;
};

}  // namespace dylora::serving
