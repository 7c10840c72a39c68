// DyloraServer: the running daemon. Loads the runtime (backbone, tokenizer,
// workers), preloads adapters, starts the Prometheus exposer on its own
// port, then serves dylora.v1, KServe v2, grpc.health.v1 and server
// reflection on one gRPC port (TLS when a certificate is given).
//
// Health: SERVING (overall and per service) once everything is loaded;
// NOT_SERVING from the moment Shutdown begins.
//
// Call order: Start, [Wait on another thread], Shutdown (once). Thread-safe
// accessors.
#pragma once

#include <grpcpp/server.h>

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/api/admin_auth.h"
#include "server/api/dylora_service.h"
#include "server/api/kserve_service.h"
#include "server/app/server_options.h"
#include "server/metrics/server_metrics.h"
#include "server/runtime/serving_runtime.h"

namespace dylora::serving {

class DyloraServer {
 public:
  // Fails (and serves nothing) when the model, an adapter, the TLS files or
  // a port cannot be used.
  static absl::StatusOr<std::unique_ptr<DyloraServer>> Start(ServerOptions options);
  ~DyloraServer();

  // SIGTERM semantics: health NOT_SERVING, new requests refused, requests
  // in flight finish (cancelled after `drain_timeout`), the queue drains,
  // workers stop. Idempotent.
  void Shutdown();
  // Blocks until Shutdown completed.
  void Wait();

  int port() const { return port_; }
  int metrics_port() const { return metrics_->exposer_port(); }
  ServingRuntime& runtime() { return *runtime_; }
  ServerMetrics& metrics() { return *metrics_; }

 private:
  DyloraServer() = default;

  ServerOptions options_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<ServingRuntime> runtime_;
  std::unique_ptr<AdminAuth> auth_;
  std::unique_ptr<DyloraService> dylora_service_;
  std::unique_ptr<KServeService> kserve_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dylora::serving
