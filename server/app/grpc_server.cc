#include "server/app/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "server/app/startup_checks.h"

namespace dylora::serving {
namespace {

constexpr const char* kServiceNames[] = {"dylora.v1.DyLoRA",
                                         "inference.GRPCInferenceService"};

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(
    const ServerOptions& options) {
  if (options.tls_cert.empty()) return grpc::InsecureServerCredentials();
  DYLORA_RETURN_IF_ERROR(CheckTlsKeyPair(options.tls_cert, options.tls_key));
  grpc::SslServerCredentialsOptions ssl;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  DYLORA_ASSIGN_OR_RETURN(pair.cert_chain, ReadFileToString(options.tls_cert));
  DYLORA_ASSIGN_OR_RETURN(pair.private_key, ReadFileToString(options.tls_key));
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  return grpc::SslServerCredentials(ssl);
}

// The admin bearer token from `file` (surrounding whitespace stripped);
// empty without a file.
absl::StatusOr<std::string> AdminToken(const std::string& file) {
  if (file.empty()) return std::string();
  DYLORA_ASSIGN_OR_RETURN(std::string token, ReadFileToString(file));
  token = std::string(absl::StripAsciiWhitespace(token));
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("admin-token-file ", file, " is empty"));
  }
  return token;
}

bool IsLoopback(absl::string_view host) {
  return host == "localhost" || absl::StartsWith(host, "127.") ||
         host == "::1" || host == "[::1]";
}

// Admin access that anyone on the network can use or read.
void WarnAboutAdminExposure(const ServerOptions& o, bool has_token) {
  if (IsLoopback(o.host)) return;
  if (o.admin_insecure) {
    spdlog::warn(
        "--admin-insecure on {}: anyone who reaches this port can load and "
        "unload adapters",
        o.host);
  } else if (has_token && o.tls_cert.empty()) {
    spdlog::warn(
        "the admin token travels in plaintext on {}: add --tls-cert/--tls-key "
        "or listen on loopback only",
        o.host);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<DyloraServer>> DyloraServer::Start(
    ServerOptions options) {
  DYLORA_RETURN_IF_ERROR(options.Validate());
  DYLORA_ASSIGN_OR_RETURN(std::string admin_token,
                          AdminToken(options.admin_token_file));
  std::unique_ptr<DyloraServer> server(new DyloraServer());
  server->options_ = std::move(options);
  const ServerOptions& o = server->options_;
  server->metrics_ = std::make_unique<ServerMetrics>();

  const absl::Time start = absl::Now();
  DYLORA_ASSIGN_OR_RETURN(
      server->runtime_,
      ServingRuntime::Create(o.runtime, server->metrics_.get()));
  spdlog::info("backbone {} loaded on {} in {:.2f}s (served as \"{}\")",
               o.runtime.model, o.runtime.device,
               absl::ToDoubleSeconds(absl::Now() - start),
               server->runtime_->backbone_name());
  for (const PreloadAdapter& adapter : o.adapters) {
    absl::StatusOr<LoadAdapterResult> loaded = server->runtime_->LoadAdapter(
        adapter.name, adapter.path, o.prewarm_ranks);
    if (!loaded.ok()) {
      return absl::Status(loaded.status().code(),
                          absl::StrCat("adapter ", adapter.name, ": ",
                                       loaded.status().message()));
    }
    const ServedAdapter& served = *loaded->loaded.adapter;
    spdlog::info("adapter {} v{} loaded from {} in {:.3f}s", adapter.name,
                 served.version, adapter.path,
                 absl::ToDoubleSeconds(served.load_time));
  }
  if (o.metrics_port >= 0) {
    DYLORA_RETURN_IF_ERROR(server->metrics_->StartExposer(
        absl::StrCat(o.metrics_host, ":", o.metrics_port)));
  }
  DYLORA_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                          Credentials(o));

  WarnAboutAdminExposure(o, !admin_token.empty());
  server->auth_ =
      std::make_unique<AdminAuth>(std::move(admin_token), o.admin_insecure);
  server->dylora_service_ = std::make_unique<DyloraService>(
      *server->runtime_, server->metrics_.get(), *server->auth_);
  server->kserve_service_ = std::make_unique<KServeService>(
      *server->runtime_, server->metrics_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(o.host, ":", o.port), credentials,
                           &server->port_);
  builder.RegisterService(server->dylora_service_.get());
  builder.RegisterService(server->kserve_service_.get());
  // Texts are capped per request; keep gRPC's message cap near that.
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(
      INT32_MAX,
      2 * o.runtime.max_texts * o.runtime.max_text_bytes + (1 << 20))));
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return DiagnoseListenFailure(o.host, o.port);
  }
  grpc::HealthCheckServiceInterface* health =
      server->server_->GetHealthCheckService();
  health->SetServingStatus(true);
  for (const char* name : kServiceNames) health->SetServingStatus(name, true);
  spdlog::info(
      "serving gRPC on {}:{}{}, metrics on {}", o.host, server->port_,
      o.tls_cert.empty() ? "" : " (TLS)",
      o.metrics_port >= 0
          ? absl::StrCat(o.metrics_host, ":", server->metrics_->exposer_port())
          : std::string("(off)"));
  return server;
}

DyloraServer::~DyloraServer() { Shutdown(); }

void DyloraServer::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  if (server_ != nullptr) {
    grpc::HealthCheckServiceInterface* health =
        server_->GetHealthCheckService();
    health->SetServingStatus(false);
    for (const char* name : kServiceNames)
      health->SetServingStatus(name, false);
  }
  if (runtime_ != nullptr) runtime_->BeginShutdown();
  if (server_ != nullptr) {
    // Waits for RPCs in flight (they finish on the batcher), cancelling
    // those still running at the deadline.
    server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.drain_timeout));
  }
  if (runtime_ != nullptr) runtime_->Shutdown();
  spdlog::info("dylora-serve stopped");
}

void DyloraServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace dylora::serving
