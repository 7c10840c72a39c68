#include "server/app/server_options.h"

#include <CLI/CLI.hpp>

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace dylora::serving {

void AddServerFlags(CLI::App& app, ServerOptions& o, ServerFlagValues& v) {
  RuntimeOptions& r = o.runtime;
  app.set_config("--config", "", "TOML file with any of these options (flags win)");
  // A misspelt key in a deployment file must fail, not silently keep a default.
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.add_option("--model", r.model_dir,
                 "backbone directory: config.json, model.safetensors, tokenizer.json")
      ->capture_default_str();
  app.add_option("--tokenizer", r.tokenizer_path,
                 "tokenizer.json (default: the model directory's)");
  app.add_option("--backbone-name", r.backbone_name,
                 "KServe model name of the backbone's embeddings "
                 "(default: the model directory's name)");
  app.add_option("--device", r.device, "cpu, cuda or cuda:<n>")->capture_default_str();
  app.add_option("--host", o.host, "gRPC listen address")->capture_default_str();
  app.add_option("--port", o.port, "gRPC port (0: pick a free one)")
      ->capture_default_str();
  app.add_option("--metrics-host", o.metrics_host, "Prometheus listen address")
      ->capture_default_str();
  app.add_option("--metrics-port", o.metrics_port,
                 "Prometheus /metrics port (-1: off, 0: pick a free one)")
      ->capture_default_str();
  app.add_option("--adapter", v.adapters,
                 "adapter to serve at start, name=directory (repeatable)");
  app.add_option("--prewarm-ranks", o.prewarm_ranks,
                 "ranks merged at load for every adapter (e.g. 8)");
  app.add_option("--profile", v.profiles,
                 "device profile name=rank budget (repeatable), e.g. phone=2")
      ->capture_default_str();
  app.add_option("--default-policy", v.default_policy,
                 "rank when a request names none: max, best, "
                 "smallest-within-tolerance")
      ->capture_default_str();
  app.add_option("--max-batch-size", r.batcher.max_batch_rows, "rows per batch")
      ->capture_default_str();
  app.add_option("--max-queue-delay-ms", v.max_queue_delay_ms,
                 "longest wait for a batch to fill")
      ->capture_default_str();
  app.add_option("--queue-capacity", r.batcher.queue_capacity_rows,
                 "rows queued at most; more are refused (RESOURCE_EXHAUSTED)")
      ->capture_default_str();
  app.add_option("--workers", r.batcher.num_workers, "batch worker threads")
      ->capture_default_str();
  app.add_option("--threads", r.intra_op_threads,
                 "intra-op threads per batch (0: LibTorch default)")
      ->capture_default_str();
  app.add_option("--merge-after", r.engine.merge_after_rows,
                 "merge a rank's weights after this many rows ran at it (0: never)")
      ->capture_default_str();
  app.add_option("--merge-cache-mb", v.merge_cache_mb,
                 "merged-weight cache budget in MiB")
      ->capture_default_str();
  app.add_flag("--always-truncate", r.engine.force_truncated,
               "never use merged weights");
  app.add_option("--max-texts", r.max_texts_per_request, "texts per request")
      ->capture_default_str();
  app.add_option("--max-text-bytes", r.max_text_bytes, "bytes per text")
      ->capture_default_str();
  app.add_option("--max-tokens", r.max_tokens, "tokens per text (truncated beyond)")
      ->capture_default_str();
  app.add_option("--tls-cert", o.tls_cert_file, "PEM certificate chain (enables TLS)");
  app.add_option("--tls-key", o.tls_key_file, "PEM private key");
  app.add_option("--admin-token-file", v.admin_token_file,
                 "file holding the bearer token admin RPCs require");
  app.add_option("--drain-timeout-s", v.drain_timeout_s,
                 "on SIGTERM, how long in-flight requests may take")
      ->capture_default_str();
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
}

absl::Status FinishServerOptions(const ServerFlagValues& v, ServerOptions& o) {
  for (const std::string& entry : v.adapters) {
    std::pair<std::string, std::string> parts =
        absl::StrSplit(entry, absl::MaxSplits('=', 1));
    if (parts.first.empty() || parts.second.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--adapter \"", entry, "\" is not name=directory"));
    }
    o.adapters.push_back({parts.first, parts.second});
  }
  DYLORA_ASSIGN_OR_RETURN(o.runtime.profiles, DeviceProfiles::Parse(v.profiles));
  DYLORA_ASSIGN_OR_RETURN(o.runtime.default_policy,
                          ParseRankPolicy(v.default_policy));
  // Also refuses nan and inf (CLI11 parses both), whose integer casts are
  // undefined.
  if (!std::isfinite(v.max_queue_delay_ms) || v.max_queue_delay_ms < 0) {
    return absl::InvalidArgumentError("--max-queue-delay-ms must be >= 0");
  }
  o.runtime.batcher.max_queue_delay = absl::Milliseconds(v.max_queue_delay_ms);
  if (!std::isfinite(v.drain_timeout_s) || v.drain_timeout_s < 0) {
    return absl::InvalidArgumentError("--drain-timeout-s must be >= 0");
  }
  o.drain_timeout = absl::Seconds(v.drain_timeout_s);
  if (o.runtime.batcher.max_batch_rows < 1 || o.runtime.batcher.queue_capacity_rows < 1 ||
      o.runtime.batcher.num_workers < 1) {
    return absl::InvalidArgumentError(
        "--max-batch-size, --queue-capacity and --workers must be >= 1");
  }
  if (o.runtime.engine.merge_after_rows < 0 || v.merge_cache_mb < 0) {
    return absl::InvalidArgumentError("--merge-after and --merge-cache-mb must be >= 0");
  }
  o.runtime.engine.merge_cache_bytes = v.merge_cache_mb << 20;
  if (o.port < 0 || o.port > 65535 || o.metrics_port < -1 || o.metrics_port > 65535) {
    return absl::InvalidArgumentError("ports must be in 0..65535 (--metrics-port -1: off)");
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!v.admin_token_file.empty()) {
    DYLORA_ASSIGN_OR_RETURN(std::string token, ReadFileToString(v.admin_token_file));
    o.admin_token = std::string(absl::StripAsciiWhitespace(token));
    if (o.admin_token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--admin-token-file ", v.admin_token_file, " is empty"));
    }
  }
  return absl::OkStatus();
}

namespace {

// The raw flag values that reproduce `options`, so that ParseServerOptions
// keeps the caller's defaults for what no flag sets (FinishServerOptions
// overwrites these fields from the values).
ServerFlagValues FlagValuesOf(const ServerOptions& options) {
  ServerFlagValues values;
  for (const auto& [name, rank] : options.runtime.profiles.entries()) {
    values.profiles.push_back(absl::StrCat(name, "=", rank));
  }
  values.default_policy = RankPolicyName(options.runtime.default_policy);
  values.max_queue_delay_ms =
      absl::ToDoubleMilliseconds(options.runtime.batcher.max_queue_delay);
  values.drain_timeout_s = absl::ToDoubleSeconds(options.drain_timeout);
  values.merge_cache_mb = options.runtime.engine.merge_cache_bytes >> 20;
  return values;
}

}  // namespace

absl::StatusOr<ServerOptions> ParseServerOptions(
    const std::vector<std::string>& args, const ServerOptions& defaults) {
  CLI::App app{"dylora-serve"};
  ServerOptions options = defaults;
  ServerFlagValues values = FlagValuesOf(defaults);
  AddServerFlags(app, options, values);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(absl::StrCat("bad flags: ", e.what()));
  }
  DYLORA_RETURN_IF_ERROR(FinishServerOptions(values, options));
  return options;
}

}  // namespace dylora::serving
