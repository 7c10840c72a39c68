// dylora-serve's options: defaults, every flag, the TOML --config file (with
// flags winning over it) and the errors for bad values.
#include "server/app/server_options.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_paths.h"

namespace dylora::serving {
namespace {

using ::dylora::testing::ScopedTempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// The (name, path) pairs of the preloaded adapters, for ElementsAre.
std::vector<std::pair<std::string, std::string>> Adapters(
    const ServerOptions& options) {
  std::vector<std::pair<std::string, std::string>> adapters;
  for (const PreloadAdapter& adapter : options.adapters) {
    adapters.emplace_back(adapter.name, adapter.path);
  }
  return adapters;
}

TEST(ServerOptionsTest, NoFlagsGiveTheDocumentedDefaults) {
  auto options = ParseServerOptions({});
  ASSERT_TRUE(options.ok()) << options.status();
  const RuntimeOptions& runtime = options->runtime;
  EXPECT_EQ(runtime.model, "");
  EXPECT_EQ(runtime.tokenizer, "");
  EXPECT_EQ(runtime.backbone_name, "");
  EXPECT_EQ(runtime.device, "cpu");
  EXPECT_EQ(runtime.max_texts, 64);
  EXPECT_EQ(runtime.max_text_bytes, 16 * 1024);
  EXPECT_EQ(runtime.max_tokens, 128);
  EXPECT_TRUE(runtime.profiles.entries().empty());
  EXPECT_EQ(runtime.default_policy, RankPolicy::kMax);
  EXPECT_EQ(runtime.batcher.max_batch_size, 32);
  EXPECT_EQ(runtime.batcher.max_queue_delay, absl::Milliseconds(2));
  EXPECT_EQ(runtime.batcher.queue_capacity, 1024);
  EXPECT_EQ(runtime.batcher.workers, 1);
  EXPECT_FALSE(runtime.batcher.wait_when_idle);
  EXPECT_EQ(runtime.threads, 0);
  EXPECT_EQ(runtime.engine.merge_after, 64);
  EXPECT_EQ(runtime.engine.merge_cache_mb, 256);
  EXPECT_FALSE(runtime.engine.always_truncate);
  EXPECT_EQ(runtime.engine.precision, Precision::kFp32);
  EXPECT_EQ(options->host, "0.0.0.0");
  EXPECT_EQ(options->port, 8001);
  EXPECT_EQ(options->metrics_host, "0.0.0.0");
  EXPECT_EQ(options->metrics_port, 8002);
  EXPECT_TRUE(options->adapters.empty());
  EXPECT_TRUE(options->prewarm_ranks.empty());
  EXPECT_EQ(options->tls_cert, "");
  EXPECT_EQ(options->tls_key, "");
  EXPECT_EQ(options->admin_token_file, "");
  EXPECT_FALSE(options->admin_insecure);  // admin RPCs closed by default
  EXPECT_EQ(options->drain_timeout, absl::Seconds(30));
  EXPECT_EQ(options->log_level, "info");
}

TEST(ServerOptionsTest, EveryFlagIsParsed) {
  ScopedTempDir dir;
  const std::string token_file = dir.path() + "/token";
  ASSERT_TRUE(WriteFileAtomically(token_file, "  s3cret \n").ok());
  // clang-format off
  auto options = ParseServerOptions({
      "--model", "/models/minilm",
      "--tokenizer", "/models/tok.json",
      "--backbone-name", "embedder",
      "--device", "cuda:1",
      "--host", "127.0.0.1",
      "--port", "9001",
      "--metrics-host", "10.0.0.1",
      "--metrics-port", "-1",
      "--adapter", "sst=/runs/sst",
      "--adapter", "mrpc=/runs/a=b",  // only the first '=' splits
      "--prewarm-ranks", "4", "8",
      "--profile", "phone=2",
      "--profile", "edge = 4",
      "--default-policy", "smallest-within-tolerance",
      "--max-batch-size", "16",
      "--max-queue-delay-ms", "2.5",
      "--queue-capacity", "100",
      "--workers", "3",
      "--wait-when-idle",
      "--threads", "2",
      "--merge-after", "0",
      "--merge-cache-mb", "64",
      "--always-truncate",
      "--precision", "int8",
      "--max-texts", "8",
      "--max-text-bytes", "1000",
      "--max-tokens", "32",
      "--tls-cert", "/tls/cert.pem",
      "--tls-key", "/tls/key.pem",
      "--admin-token-file", token_file,
      "--drain-timeout-s", "1.5",
      "--log-level", "debug",
  });
  // clang-format on
  ASSERT_TRUE(options.ok()) << options.status();
  const RuntimeOptions& runtime = options->runtime;
  EXPECT_EQ(runtime.model, "/models/minilm");
  EXPECT_EQ(runtime.tokenizer, "/models/tok.json");
  EXPECT_EQ(runtime.backbone_name, "embedder");
  EXPECT_EQ(runtime.device, "cuda:1");
  EXPECT_EQ(options->host, "127.0.0.1");
  EXPECT_EQ(options->port, 9001);
  EXPECT_EQ(options->metrics_host, "10.0.0.1");
  EXPECT_EQ(options->metrics_port, -1);
  EXPECT_THAT(Adapters(*options),
              ElementsAre(Pair("sst", "/runs/sst"), Pair("mrpc", "/runs/a=b")));
  EXPECT_THAT(options->prewarm_ranks, ElementsAre(4, 8));
  EXPECT_THAT(runtime.profiles.entries(),
              ElementsAre(Pair("edge", 4), Pair("phone", 2)));
  EXPECT_EQ(runtime.default_policy, RankPolicy::kSmallestWithinTolerance);
  EXPECT_EQ(runtime.batcher.max_batch_size, 16);
  EXPECT_EQ(runtime.batcher.max_queue_delay, absl::Microseconds(2500));
  EXPECT_EQ(runtime.batcher.queue_capacity, 100);
  EXPECT_EQ(runtime.batcher.workers, 3);
  EXPECT_TRUE(runtime.batcher.wait_when_idle);
  EXPECT_EQ(runtime.threads, 2);
  EXPECT_EQ(runtime.engine.merge_after, 0);
  EXPECT_EQ(runtime.engine.merge_cache_mb, 64);
  EXPECT_TRUE(runtime.engine.always_truncate);
  EXPECT_EQ(runtime.engine.precision, Precision::kInt8);
  EXPECT_EQ(runtime.max_texts, 8);
  EXPECT_EQ(runtime.max_text_bytes, 1000);
  EXPECT_EQ(runtime.max_tokens, 32);
  EXPECT_EQ(options->tls_cert, "/tls/cert.pem");
  EXPECT_EQ(options->tls_key, "/tls/key.pem");
  EXPECT_EQ(options->admin_token_file,
            token_file);  // read by DyloraServer::Start
  EXPECT_EQ(options->drain_timeout, absl::Milliseconds(1500));
  EXPECT_EQ(options->log_level, "debug");
}

TEST(ServerOptionsTest, PolicyNamesAcceptUnderscoresAndBest) {
  auto best = ParseServerOptions({"--default-policy", "best"});
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ(best->runtime.default_policy, RankPolicy::kBest);
  auto underscores =
      ParseServerOptions({"--default-policy", "smallest_within_tolerance"});
  ASSERT_TRUE(underscores.ok()) << underscores.status();
  EXPECT_EQ(underscores->runtime.default_policy,
            RankPolicy::kSmallestWithinTolerance);
}

TEST(ServerOptionsTest, DefaultsArgumentIsKeptWhereNoFlagOverridesIt) {
  ServerOptions defaults;
  defaults.runtime.model = "/default/model";
  defaults.runtime.default_policy = RankPolicy::kBest;
  defaults.runtime.batcher.max_queue_delay = absl::Milliseconds(7);
  defaults.runtime.engine.merge_cache_mb = 32;
  ASSERT_TRUE(defaults.runtime.profiles.Add("phone", 2).ok());
  defaults.drain_timeout = absl::Seconds(5);
  defaults.port = 7000;

  auto options = ParseServerOptions({"--port", "7001"}, defaults);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->port, 7001);
  EXPECT_EQ(options->runtime.model, "/default/model");
  EXPECT_EQ(options->runtime.default_policy, RankPolicy::kBest);
  EXPECT_EQ(options->runtime.batcher.max_queue_delay, absl::Milliseconds(7));
  EXPECT_EQ(options->runtime.engine.merge_cache_mb, 32);
  EXPECT_THAT(options->runtime.profiles.entries(),
              ElementsAre(Pair("phone", 2)));
  EXPECT_EQ(options->drain_timeout, absl::Seconds(5));
}

// The same keys as the flags, in a TOML file.
constexpr char kConfigToml[] = R"(# a deployment file
model = "/models/minilm"
backbone-name = "embedder"
host = "127.0.0.1"
port = 9100
metrics-port = 9101
adapter = ["sst=/runs/sst", "mrpc=/runs/mrpc"]
prewarm-ranks = [2, 8]
profile = ["phone=2", "edge=4"]
default-policy = "best"
max-batch-size = 48
max-queue-delay-ms = 5
queue-capacity = 200
workers = 2
merge-cache-mb = 16
always-truncate = true
max-tokens = 64
drain-timeout-s = 2.5
log-level = "warn"
)";

TEST(ServerOptionsTest, TomlConfigFileSetsTheSameKeys) {
  ScopedTempDir dir;
  const std::string config = dir.path() + "/dylora-serve.toml";
  ASSERT_TRUE(WriteFileAtomically(config, kConfigToml).ok());
  auto options = ParseServerOptions({"--config", config});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->runtime.model, "/models/minilm");
  EXPECT_EQ(options->runtime.backbone_name, "embedder");
  EXPECT_EQ(options->host, "127.0.0.1");
  EXPECT_EQ(options->port, 9100);
  EXPECT_EQ(options->metrics_port, 9101);
  EXPECT_THAT(Adapters(*options), ElementsAre(Pair("sst", "/runs/sst"),
                                              Pair("mrpc", "/runs/mrpc")));
  EXPECT_THAT(options->prewarm_ranks, ElementsAre(2, 8));
  EXPECT_THAT(options->runtime.profiles.entries(),
              ElementsAre(Pair("edge", 4), Pair("phone", 2)));
  EXPECT_EQ(options->runtime.default_policy, RankPolicy::kBest);
  EXPECT_EQ(options->runtime.batcher.max_batch_size, 48);
  EXPECT_EQ(options->runtime.batcher.max_queue_delay, absl::Milliseconds(5));
  EXPECT_EQ(options->runtime.batcher.queue_capacity, 200);
  EXPECT_EQ(options->runtime.batcher.workers, 2);
  EXPECT_EQ(options->runtime.engine.merge_cache_mb, 16);
  EXPECT_TRUE(options->runtime.engine.always_truncate);
  EXPECT_EQ(options->runtime.max_tokens, 64);
  EXPECT_EQ(options->drain_timeout, absl::Milliseconds(2500));
  EXPECT_EQ(options->log_level, "warn");
}

TEST(ServerOptionsTest, CommandLineFlagsWinOverTheConfigFile) {
  ScopedTempDir dir;
  const std::string config = dir.path() + "/dylora-serve.toml";
  ASSERT_TRUE(WriteFileAtomically(config, kConfigToml).ok());
  // Before and after --config: the order on the command line does not matter.
  auto options =
      ParseServerOptions({"--port", "9200", "--config", config, "--adapter",
                          "only=/runs/only", "--max-queue-delay-ms", "0"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->port, 9200);
  EXPECT_THAT(Adapters(*options), ElementsAre(Pair("only", "/runs/only")));
  EXPECT_EQ(options->runtime.batcher.max_queue_delay, absl::ZeroDuration());
  // Keys the command line did not give still come from the file.
  EXPECT_EQ(options->runtime.model, "/models/minilm");
  EXPECT_EQ(options->metrics_port, 9101);
  EXPECT_EQ(options->runtime.default_policy, RankPolicy::kBest);
}

TEST(ServerOptionsTest, TheShippedDeploymentFileParses) {
  auto options = ParseServerOptions(
      {"--config", dylora::testing::SourceDir() + "/deploy/dylora-serve.toml"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(options->runtime.profiles.Find("phone").has_value());
}

TEST(ServerOptionsTest, BadConfigFilesAreRefused) {
  ScopedTempDir dir;
  auto missing = ParseServerOptions({"--config", dir.path() + "/missing.toml"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);

  const std::string bad_value = dir.path() + "/bad-value.toml";
  ASSERT_TRUE(WriteFileAtomically(bad_value, "port = \"eighty\"\n").ok());
  auto parsed = ParseServerOptions({"--config", bad_value});
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);

  const std::string bad_policy = dir.path() + "/bad-policy.toml";
  ASSERT_TRUE(
      WriteFileAtomically(bad_policy, "default-policy = \"fastest\"\n").ok());
  parsed = ParseServerOptions({"--config", bad_policy});
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.status().message(), HasSubstr("fastest"));

  // A misspelt key must not silently fall back to the default.
  const std::string typo = dir.path() + "/typo.toml";
  ASSERT_TRUE(WriteFileAtomically(typo, "max-queue-dealy-ms = 50\n").ok());
  parsed = ParseServerOptions({"--config", typo});
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.status().message(), HasSubstr("max-queue-dealy-ms"));
}

// Values out of range are refused (never clamped) with the option's name:
// the flag's, which is also the TOML key.
TEST(ServerOptionsTest, BadValuesAreInvalidArgumentNamingTheProblem) {
  struct Case {
    std::string name;
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"adapter without '='", {"--adapter", "sst"}, "--adapter: \"sst\""},
      {"adapter without name", {"--adapter", "=/runs/sst"}, "name=directory"},
      {"adapter without path", {"--adapter", "sst="}, "name=directory"},
      {"profile without '='", {"--profile", "phone"}, "--profile"},
      {"profile rank not a number", {"--profile", "phone=two"}, "two"},
      {"profile rank zero", {"--profile", "phone=0"}, "at least 1"},
      {"profile twice",
       {"--profile", "phone=2", "--profile", "phone=3"},
       "twice"},
      {"unknown policy", {"--default-policy", "fastest"}, "fastest"},
      {"unknown precision",
       {"--precision", "int4"},
       "--precision: precision \"int4\""},
      {"tls cert without key", {"--tls-cert", "/tls/cert.pem"}, "tls-key"},
      {"tls key without cert", {"--tls-key", "/tls/key.pem"}, "tls-cert"},
      {"token and insecure admin",
       {"--admin-token-file", "/etc/token", "--admin-insecure"},
       "admin-insecure and admin-token-file"},
      {"negative delay",
       {"--max-queue-delay-ms", "-1"},
       "--max-queue-delay-ms"},
      {"negative drain", {"--drain-timeout-s", "-0.5"}, "--drain-timeout-s"},
      {"nan delay", {"--max-queue-delay-ms", "nan"}, "--max-queue-delay-ms"},
      {"infinite drain", {"--drain-timeout-s", "inf"}, "--drain-timeout-s"},
      {"zero batch", {"--max-batch-size", "0"}, "max-batch-size"},
      {"zero queue", {"--queue-capacity", "0"}, "queue-capacity"},
      {"zero workers", {"--workers", "0"}, "workers"},
      {"negative threads", {"--threads", "-1"}, "threads"},
      {"negative merge-after", {"--merge-after", "-1"}, "merge-after"},
      {"negative merge cache", {"--merge-cache-mb", "-1"}, "merge-cache-mb"},
      {"zero texts", {"--max-texts", "0"}, "max-texts"},
      {"zero text bytes", {"--max-text-bytes", "0"}, "max-text-bytes"},
      {"too few tokens", {"--max-tokens", "2"}, "max-tokens"},
      {"zero prewarm rank", {"--prewarm-ranks", "0"}, "prewarm-ranks"},
      {"unknown log level", {"--log-level", "loud"}, "log-level"},
      {"port too high", {"--port", "70000"}, "port"},
      {"metrics port too low", {"--metrics-port", "-2"}, "metrics-port"},
      {"unknown flag", {"--no-such-flag", "1"}, "--no-such-flag"},
      {"not a number", {"--port", "eighty"}, "eighty"},
      {"missing value", {"--model"}, "--model"},
      {"positional argument", {"stray"}, "stray"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--model", "/models/minilm"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto options = ParseServerOptions(args);
    ASSERT_FALSE(options.ok()) << c.name;
    EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument)
        << c.name << ": " << options.status();
    EXPECT_THAT(options.status().message(), HasSubstr(c.message))
        << c.name << ": " << options.status();
  }
}

}  // namespace
}  // namespace dylora::serving
