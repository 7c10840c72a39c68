// dylora-serve's configuration: every option is a command-line flag with a
// good default, and the same keys can come from a TOML file (--config), so
// a deployment file and a command line never disagree on names
// (llama.cpp's rule: every option also a flag).
//
//   dylora-serve --model .deps/models/all-MiniLM-L6-v2 --adapter sst2=runs/sst2
//   dylora-serve --config deploy/dylora-serve.toml --port 9001
//
// Flags given on the command line win over the file.
//
// Each setting is declared once: its default and its range live in the
// options struct of the component that uses it (RuntimeOptions,
// EngineOptions, BatcherOptions, ServerOptions), each with a Validate().
// Flags bind straight to those fields, and a flag is named after its field
// (dashes for underscores; a repeatable flag is the singular of a list
// field; a duration flag carries its unit: --drain-timeout-s).
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
  int port = 8001;  // gRPC (dylora.v1, KServe v2, health, reflection)
  std::string metrics_host = "0.0.0.0";
  int metrics_port = 8002;               // Prometheus GET /metrics; -1 disables
  std::vector<PreloadAdapter> adapters;  // --adapter name=directory
  std::vector<int64_t> prewarm_ranks;    // merged at load for every adapter
  std::string tls_cert;                  // PEM file; with tls_key enables TLS
  std::string tls_key;
  // A file holding the bearer token admin RPCs require (read at start).
  // Without one admin RPCs are refused, unless admin_insecure opens them to
  // anyone who reaches the port.
  std::string admin_token_file;
  bool admin_insecure = false;
  absl::Duration drain_timeout = absl::Seconds(30);
  std::string log_level = "info";

  // INVALID_ARGUMENT naming the option for a value out of range (the
  // runtime's included); DyloraServer::Start refuses such options.
  absl::Status Validate() const;
};

// Registers every flag (and --config) on `app`, bound to `options`: what
// no flag sets keeps the value `options` had. Values that do not parse
// (a profile without '=', an unknown policy, ...) fail the parse with the
// flag's name.
void AddServerFlags(CLI::App& app, ServerOptions& options);

// Parses a whole command line (tests, tools): AddServerFlags, parse and
// Validate. INVALID_ARGUMENT with the flag's name on bad flags or values.
absl::StatusOr<ServerOptions> ParseServerOptions(
    const std::vector<std::string>& args, const ServerOptions& defaults = {});

}  // namespace dylora::serving
