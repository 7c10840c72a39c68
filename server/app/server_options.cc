#include "server/app/server_options.h"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dylora::serving {
namespace {

// A parse error CLI11 reports as "<flag>: <message>".
[[noreturn]] void Refuse(const std::string& flag, const absl::Status& status) {
  throw CLI::ValidationError(flag, std::string(status.message()));
}

// `value * unit` as a Duration; refuses nan, inf and negatives (CLI11
// parses the first two, whose casts are undefined).
absl::Duration NonNegative(const std::string& flag, double value,
                           absl::Duration unit) {
  if (!std::isfinite(value) || value < 0) {
    Refuse(flag, absl::InvalidArgumentError(
                     absl::StrCat("must be finite and >= 0, got ", value)));
  }
  return value * unit;
}

// A duration flag counted in `unit`s (its name carries the unit), bound to
// `field`; the help shows the field's current value as the default.
void AddDurationFlag(CLI::App& app, const std::string& flag,
                     absl::Duration& field, absl::Duration unit,
                     const std::string& description) {
  app.add_option_function<double>(
         flag,
         [&field, flag, unit](double value) {
           field = NonNegative(flag, value, unit);
         },
         description)
      ->default_str(absl::StrCat(absl::FDivDuration(field, unit)));
}

}  // namespace

absl::Status ServerOptions::Validate() const {
  if (port < 0 || port > 65535 || metrics_port < -1 || metrics_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port and metrics-port must be in 0..65535 (metrics-port "
                     "-1: off), got ",
                     port, " and ", metrics_port));
  }
  if (tls_cert.empty() != tls_key.empty()) {
    return absl::InvalidArgumentError("tls-cert and tls-key go together");
  }
  if (admin_insecure && !admin_token_file.empty()) {
    return absl::InvalidArgumentError(
        "admin-insecure and admin-token-file exclude each other");
  }
  if (drain_timeout < absl::ZeroDuration() ||
      drain_timeout == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        "drain-timeout-s must be finite and >= 0");
  }
  if (spdlog::level::from_str(log_level) == spdlog::level::off &&
      log_level != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("log-level \"", log_level,
                     "\" is not one of trace, debug, info, warn, "
                     "error, critical, off"));
  }
  for (int64_t rank : prewarm_ranks) {
    if (rank < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("prewarm-ranks: rank ", rank, " is not positive"));
    }
  }
  return runtime.Validate();
}

void AddServerFlags(CLI::App& app, ServerOptions& o) {
  RuntimeOptions& r = o.runtime;
  BatcherOptions& b = r.batcher;
  EngineOptions& e = r.engine;
  app.set_config("--config", "",
                 "TOML file with any of these options (flags win)");
  // A misspelt key in a deployment file must fail, not silently keep a default.
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.add_option(
         "--model", r.model,
         "backbone directory: config.json, model.safetensors, tokenizer.json")
      ->capture_default_str();
  app.add_option("--tokenizer", r.tokenizer,
                 "tokenizer.json (default: the model directory's)");
  app.add_option("--backbone-name", r.backbone_name,
                 "KServe model name of the backbone's embeddings "
                 "(default: the model directory's name)");
  app.add_option("--device", r.device, "cpu, cuda or cuda:<n>")
      ->capture_default_str();
  app.add_option("--host", o.host, "gRPC listen address")
      ->capture_default_str();
  app.add_option("--port", o.port, "gRPC port (0: pick a free one)")
      ->capture_default_str();
  app.add_option("--metrics-host", o.metrics_host, "Prometheus listen address")
      ->capture_default_str();
  app.add_option("--metrics-port", o.metrics_port,
                 "Prometheus /metrics port (-1: off, 0: pick a free one)")
      ->capture_default_str();
  app.add_option_function<std::vector<std::string>>(
      "--adapter",
      [&o](const std::vector<std::string>& entries) {
        o.adapters.clear();
        for (const std::string& entry : entries) {
          std::pair<std::string, std::string> parts =
              absl::StrSplit(entry, absl::MaxSplits('=', 1));
          if (parts.first.empty() || parts.second.empty()) {
            Refuse("--adapter", absl::InvalidArgumentError(absl::StrCat(
                                    "\"", entry, "\" is not name=directory")));
          }
          o.adapters.push_back({parts.first, parts.second});
        }
      },
      "adapter to serve at start, name=directory (repeatable)");
  app.add_option("--prewarm-ranks", o.prewarm_ranks,
                 "ranks merged at load for every adapter (e.g. 8)");
  app.add_option_function<std::vector<std::string>>(
      "--profile",
      [&r](const std::vector<std::string>& entries) {
        absl::StatusOr<DeviceProfiles> profiles =
            DeviceProfiles::Parse(entries);
        if (!profiles.ok()) Refuse("--profile", profiles.status());
        r.profiles = *std::move(profiles);
      },
      "device profile name=rank budget (repeatable), e.g. phone=2");
  app.add_option_function<std::string>(
         "--default-policy",
         [&r](const std::string& name) {
           absl::StatusOr<RankPolicy> policy = ParseRankPolicy(name);
           if (!policy.ok()) Refuse("--default-policy", policy.status());
           r.default_policy = *policy;
         },
         "rank when a request names none: max, best, smallest-within-tolerance")
      ->default_str(RankPolicyName(r.default_policy));
  app.add_option("--max-batch-size", b.max_batch_size, "rows per batch")
      ->capture_default_str();
  AddDurationFlag(app, "--max-queue-delay-ms", b.max_queue_delay,
                  absl::Milliseconds(1), "longest wait for a batch to fill");
  app.add_option("--queue-capacity", b.queue_capacity,
                 "rows queued at most; more are refused (RESOURCE_EXHAUSTED)")
      ->capture_default_str();
  app.add_option("--workers", b.workers, "batch worker threads")
      ->capture_default_str();
  app.add_flag("--wait-when-idle", b.wait_when_idle,
               "hold a lone request for --max-queue-delay-ms even when no "
               "batch is running (default: an idle server runs it at once)");
  app.add_option(
         "--threads", r.threads,
         "intra-op threads per batch (0: the cores divided by --workers)")
      ->capture_default_str();
  app.add_option(
         "--merge-after", e.merge_after,
         "merge a rank's weights in the background after this many rows "
         "ran at it (0: never)")
      ->capture_default_str();
  app.add_option("--merge-cache-mb", e.merge_cache_mb,
                 "merged-weight cache budget in MiB")
      ->capture_default_str();
  app.add_flag("--always-truncate", e.always_truncate,
               "never use merged weights");
  app.add_option_function<std::string>(
         "--precision",
         [&e](const std::string& name) {
           absl::StatusOr<Precision> precision = ParsePrecision(name);
           if (!precision.ok()) Refuse("--precision", precision.status());
           e.precision = *precision;
         },
         "backbone linears in fp32, or int8 (fbgemm, CPU only: weights "
         "quantized once, merged ranks quantized when cached)")
      ->default_str("fp32");
  app.add_option("--max-texts", r.max_texts, "texts per request")
      ->capture_default_str();
  app.add_option("--max-text-bytes", r.max_text_bytes, "bytes per text")
      ->capture_default_str();
  app.add_option("--max-tokens", r.max_tokens,
                 "tokens per text (truncated beyond)")
      ->capture_default_str();
  app.add_option("--tls-cert", o.tls_cert,
                 "PEM certificate chain (enables TLS)");
  app.add_option("--tls-key", o.tls_key, "PEM private key");
  app.add_option("--admin-token-file", o.admin_token_file,
                 "file holding the bearer token admin RPCs (LoadAdapter, "
                 "UnloadAdapter) require; without it they are refused");
  app.add_flag("--admin-insecure", o.admin_insecure,
               "allow admin RPCs without a token (trusted networks only)");
  AddDurationFlag(app, "--drain-timeout-s", o.drain_timeout, absl::Seconds(1),
                  "on SIGTERM, how long in-flight requests may take");
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
}

absl::StatusOr<ServerOptions> ParseServerOptions(
    const std::vector<std::string>& args, const ServerOptions& defaults) {
  CLI::App app{"dylora-serve"};
  ServerOptions options = defaults;
  AddServerFlags(app, options);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(absl::StrCat("bad flags: ", e.what()));
  }
  if (absl::Status status = options.Validate(); !status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad flags: ", status.message()));
  }
  return options;
}

}  // namespace dylora::serving
