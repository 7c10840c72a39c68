// dylora-serve under load: the real server in-process on a loopback port,
// real gRPC clients (KServe v2 ModelInfer, one SST-2 dev sentence per
// request, closed loop), the real MiniLM. For each client concurrency
// (1, 8, 32) and each variant it reports throughput and p50/p99 latency,
// and the ratios to backbone-only measured in the same run:
//   backbone      no adapter (the backbone's sentence embeddings)
//   merged:8      adapter at rank 8, merged weights pre-warmed
//   truncated:8   adapter at rank 8, truncated path (--always-truncate)
//   truncated:1   adapter at rank 1, truncated path
//   mixed:1-8     a uniform mix of ranks 1..8 (mixed-rank batches, truncated)
// The adapter is random (nonzero lora_B) unless --adapter names a trained
// one: compute cost does not depend on the values.
//
//   build/bench/serve_load_bench [--seconds 4] [--adapter runs/sst2/adapter]
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>  // hardware_concurrency
#include <vector>

#include "absl/time/clock.h"
#include "client/exit_codes.h"
#include "client/load_generator.h"
#include "core/adapter/adapter_io.h"
#include "inference/grpc_service.grpc.pb.h"
#include "proto/kserve/kserve_tensors.h"
#include "server/app/grpc_server.h"
#include "core/glue/glue.h"

namespace dylora::bench {
namespace {

using serving::DyloraServer;
using serving::ServerOptions;

struct Variant {
  std::string name;
  bool backbone = false;
  bool merged = false;
  int64_t rank_low = 8, rank_high = 8;  // uniform in [low, high]
};

struct Result {
  double throughput = 0;  // requests per second
  double p50_ms = 0, p99_ms = 0;
  int64_t errors = 0;
};

// A random adapter for the backbone, saved like dylora-train saves one.
absl::StatusOr<std::string> WriteRandomAdapter(const Encoder& encoder,
                                               const std::string& dir) {
  auto head = ClassificationHead::Create(HeadKind::kBertPooled,
                                         encoder.config().hidden_size, 2, 1);
  if (!head.ok()) return head.status();
  auto adapter = DyLoraAdapter::CreateFresh(encoder, {}, head->named_tensors(), 1);
  if (!adapter.ok()) return adapter.status();
  {
    at::NoGradGuard no_grad;
    for (const auto& [id, factors] : (*adapter)->factors()) {
      factors.up.normal_(0, 0.05);
    }
  }
  const std::string path = dir + "/random-adapter";
  if (absl::Status s = SaveAdapter(**adapter, path); !s.ok()) return s;
  return path;
}

// Closed-loop load through the shared client LoadGenerator: one channel
// (its own HTTP/2 connection) per worker, as separate clients would have.
Result RunLoad(const std::string& target, const Variant& variant,
               const std::vector<std::string>& sentences, int concurrency,
               absl::Duration duration) {
  std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>> stubs;
  std::vector<std::mt19937> randoms;
  for (int c = 0; c < concurrency; ++c) {
    grpc::ChannelArguments channel_args;
    channel_args.SetInt("dylora_client_id", c);
    stubs.push_back(inference::GRPCInferenceService::NewStub(grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), channel_args)));
    randoms.emplace_back(c);
  }
  client::LoadOptions options;
  options.concurrency = concurrency;
  options.duration = duration;
  auto report = client::LoadGenerator::Run(options, [&](int worker, int64_t sequence) {
    inference::ModelInferRequest request;
    request.set_model_name(variant.backbone ? "minilm" : "sst2");
    auto* input = request.add_inputs();
    input->set_name("TEXT");
    input->set_datatype("BYTES");
    input->add_shape(1);
    request.add_raw_input_contents(
        kserve::EncodeRawBytesTensor({sentences[sequence % sentences.size()]}));
    if (!variant.backbone) {
      const int64_t rank = std::uniform_int_distribution<int64_t>(
          variant.rank_low, variant.rank_high)(randoms[worker]);
      (*request.mutable_parameters())["rank"].set_int64_param(rank);
    }
    inference::ModelInferResponse response;
    grpc::ClientContext context;
    return client::RpcStatus(stubs[worker]->ModelInfer(&context, request, &response),
                             target, "ModelInfer", absl::InfiniteDuration());
  });
  Result result;
  if (!report.ok()) {
    result.errors = -1;
    return result;
  }
  const client::LatencySummary latency = report->latency();
  result.errors = report->failed();
  result.throughput = report->requests_per_second();
  result.p50_ms = latency.p50 * 1e3;
  result.p99_ms = latency.p99 * 1e3;
  return result;
}

int Main(int argc, char** argv) {
  CLI::App app{"dylora-serve load benchmark"};
  double seconds = 4;
  std::string adapter_dir;
  std::string data_file = std::string(DYLORA_BENCH_DATA_DIR) + "/glue/SST-2/dev.tsv";
  std::vector<int> concurrencies = {1, 8, 32};
  int max_batch = 32;
  double delay_ms = 2;
  int threads = 0;
  app.add_option("--seconds", seconds, "measured seconds per cell")->capture_default_str();
  app.add_option("--adapter", adapter_dir, "a trained adapter (default: random)");
  app.add_option("--data", data_file, "SST-2 dev.tsv")->capture_default_str();
  app.add_option("--concurrency", concurrencies, "client threads")->capture_default_str();
  app.add_option("--max-batch-size", max_batch)->capture_default_str();
  app.add_option("--max-queue-delay-ms", delay_ms)->capture_default_str();
  app.add_option("--threads", threads, "intra-op threads (0: default)");
  CLI11_PARSE(app, argc, argv);

  auto task = GlueTaskByName("sst2");
  auto dataset = ReadGlueTsv(data_file, task->task);
  if (!dataset.ok()) {
    std::fprintf(stderr, "%s\n", dataset.status().ToString().c_str());
    return 1;
  }
  std::vector<std::string> sentences;
  for (const auto& example : dataset->examples) sentences.push_back(example.text_a);

  char dir_template[] = "/tmp/dylora-bench-XXXXXX";
  const std::string dir = ::mkdtemp(dir_template);
  if (adapter_dir.empty()) {
    auto encoder = Encoder::Load(DYLORA_BENCH_MODEL_DIR);
    if (!encoder.ok()) {
      std::fprintf(stderr, "%s\n", encoder.status().ToString().c_str());
      return 1;
    }
    auto written = WriteRandomAdapter(**encoder, dir);
    if (!written.ok()) {
      std::fprintf(stderr, "%s\n", written.status().ToString().c_str());
      return 1;
    }
    adapter_dir = *written;
  }

  const std::vector<Variant> variants = {
      {"backbone", true, false, 0, 0},   {"merged:8", false, true, 8, 8},
      {"truncated:8", false, false, 8, 8}, {"truncated:1", false, false, 1, 1},
      {"mixed:1-8", false, false, 1, 8},
  };
  std::printf("dylora-serve load: %zu SST-2 dev sentences, 1 per request, %.0f s per cell, "
              "max batch %d, max queue delay %.1f ms, %u cores\n",
              sentences.size(), seconds, max_batch, delay_ms,
              std::thread::hardware_concurrency());
  std::map<std::pair<std::string, int>, Result> results;
  for (const Variant& variant : variants) {
    ServerOptions options;
    options.runtime.model = DYLORA_BENCH_MODEL_DIR;
    options.runtime.backbone_name = "minilm";
    options.runtime.threads = threads;
    options.runtime.batcher.max_batch_size = max_batch;
    options.runtime.batcher.max_queue_delay =
        absl::Microseconds(static_cast<int64_t>(delay_ms * 1000));
    options.runtime.engine.always_truncate = !variant.merged;
    options.runtime.engine.merge_after = 0;
    options.host = "127.0.0.1";
    options.port = 0;
    options.metrics_port = -1;
    if (!variant.backbone) {
      options.adapters.push_back({"sst2", adapter_dir});
      if (variant.merged) options.prewarm_ranks = {8};
    }
    auto server = DyloraServer::Start(options);
    if (!server.ok()) {
      std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
      return 1;
    }
    const std::string target = "127.0.0.1:" + std::to_string((*server)->port());
    RunLoad(target, variant, sentences, 4, absl::Seconds(1));  // warm-up
    for (int concurrency : concurrencies) {
      results[{variant.name, concurrency}] =
          RunLoad(target, variant, sentences, concurrency, absl::Seconds(seconds));
    }
    (*server)->Shutdown();
  }

  std::printf("\n%-12s %5s %10s %9s %9s %7s | %10s %9s %9s\n", "variant", "conc", "req/s",
              "p50 ms", "p99 ms", "errors", "thr/base", "p50/base", "p99/base");
  for (int concurrency : concurrencies) {
    const Result& base = results[{"backbone", concurrency}];
    for (const Variant& variant : variants) {
      const Result& r = results[{variant.name, concurrency}];
      std::printf("%-12s %5d %10.1f %9.2f %9.2f %7lld | %10.3f %9.3f %9.3f\n",
                  variant.name.c_str(), concurrency, r.throughput, r.p50_ms, r.p99_ms,
                  static_cast<long long>(r.errors), r.throughput / base.throughput,
                  r.p50_ms / base.p50_ms, r.p99_ms / base.p99_ms);
    }
  }
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace dylora::bench

int main(int argc, char** argv) { return dylora::bench::Main(argc, argv); }
