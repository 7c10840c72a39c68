// dylora-serve's configuration: every option is a command-line flag with a
// good default, and the same keys can come from a TOML file (--config), so
// a deployment file and a command line never disagree on names
// (llama.cpp's rule: every option also a flag).
//
//   dylora-serve --model .deps/models/all-MiniLM-L6-v2 --adapter sst2=runs/sst2
//   dylora-serve --config deploy/dylora-serve.toml --port 9001
//
// Flags given on the command line win over the file.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/runtime/serving_runtime.h"

namespace CLI {
class App;
}

namespace dylora::serving {

struct PreloadAdapter {
  std::string name;
  std::string path;
};

struct ServerOptions {
  RuntimeOptions runtime;
  std::string host = "0.0.0.0";
  int port = 8001;           // gRPC (dylora.v1, KServe v2, health, reflection)
  std::string metrics_host = "0.0.0.0";
  int metrics_port = 8002;   // Prometheus GET /metrics; -1 disables
  std::vector<PreloadAdapter> adapters;
  std::vector<int64_t> prewarm_ranks;  // merged at load for every adapter
  std::string tls_cert_file;           // PEM; with tls_key_file enables TLS
  std::string tls_key_file;
  std::string admin_token;             // required as Bearer for admin RPCs
  absl::Duration drain_timeout = absl::Seconds(30);
  std::string log_level = "info";
};

// Raw flag values that need parsing after CLI11 is done.
struct ServerFlagValues {
  std::vector<std::string> adapters;  // name=path
  std::vector<std::string> profiles;  // name=rank
  std::string default_policy = "max";
  double max_queue_delay_ms = 2.0;
  double drain_timeout_s = 30.0;
  int64_t merge_cache_mb = 256;
  std::string admin_token_file;
};

// Registers every flag (and --config) on `app`, writing into the two structs.
void AddServerFlags(CLI::App& app, ServerOptions& options,
                    ServerFlagValues& values);

// Completes `options` from `values`: adapters, profiles, policy, durations,
// the token file; checks ranges. INVALID_ARGUMENT naming the flag.
absl::Status FinishServerOptions(const ServerFlagValues& values,
                                 ServerOptions& options);

// Parses a whole command line (tests, tools): AddServerFlags + parse +
// FinishServerOptions. INVALID_ARGUMENT with CLI11's message on bad flags.
absl::StatusOr<ServerOptions> ParseServerOptions(
    const std::vector<std::string>& args, const ServerOptions& defaults = {});

}  // namespace dylora::serving
