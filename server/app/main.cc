// dylora-serve: serves DyLoRA adapters over gRPC (dylora.v1 and KServe v2)
// with a rank per request. See server/app/server_options.h for the flags.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>

#include "server/app/grpc_server.h"
#include "server/app/openmp_env.h"
#include "server/app/server_options.h"

int main(int argc, char** argv) {
  using namespace dylora::serving;
  ReexecWithOneOpenMpThreadByDefault(argv);
  // Block SIGTERM/SIGINT before any thread starts, so every thread inherits
  // the mask and only the sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  CLI::App app{
      "dylora-serve: one frozen backbone, many DyLoRA adapters, a "
      "rank per request (gRPC: dylora.v1 and KServe v2)"};
  ServerOptions options;
  options.runtime.model = DYLORA_DEFAULT_MODEL_DIR;
  AddServerFlags(app, options);
  CLI11_PARSE(app, argc, argv);
  if (absl::Status status = options.Validate(); !status.ok()) {
    spdlog::error("bad flags: {}", std::string(status.message()));
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(options.log_level));
  WarnAboutOpenMpEnvironment();

  absl::StatusOr<std::unique_ptr<DyloraServer>> server =
      DyloraServer::Start(std::move(options));
  if (!server.ok()) {
    spdlog::error("{}", server.status().ToString());
    return 1;
  }
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("{} received: draining",
               signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown();
  return 0;
}
