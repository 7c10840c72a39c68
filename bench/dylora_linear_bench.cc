// The DyLoRA linear layer against the plain linear it adapts, on
// all-MiniLM-L6-v2 shapes (hidden 384) with batch x seq = 32 x 128:
//   base        x W0^T + b                       (the baseline)
//   merged      x W_b^T + b, W_b precomputed     (server's merge cache)
//   rank:<b>    truncated adapter at rank b      (per-request rank)
//   mixed       one rank per batch row, 1..8     (mixed-rank batch)
// Run: build/bench/dylora_linear_bench [--benchmark_min_time=1s]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include "bench/ratio_reporter.h"
#include "core/adapter/dylora_linear.h"

namespace dylora::bench {
namespace {

constexpr int64_t kHidden = 384;
constexpr int64_t kRankMax = 8;
constexpr double kAlpha = 16.0;

struct Inputs {
  at::Tensor x, weight, bias, down, up, row_ranks;
};

Inputs MakeInputs(int64_t batch, int64_t seq) {
  at::manual_seed(0);
  Inputs in;
  in.x = at::randn({batch, seq, kHidden});
  in.weight = at::randn({kHidden, kHidden}) * 0.05;
  in.bias = at::randn({kHidden}) * 0.05;
  in.down = at::randn({kRankMax, kHidden}) * 0.05;
  in.up = at::randn({kHidden, kRankMax}) * 0.05;
  in.row_ranks = at::arange(batch, at::kLong).remainder(kRankMax) + 1;
  return in;
}

void Register(int64_t batch, int64_t seq) {
  const std::string group =
      "linear/batch:" + std::to_string(batch) + "x" + std::to_string(seq);
  auto inputs = std::make_shared<Inputs>(MakeInputs(batch, seq));
  benchmark::RegisterBenchmark((group + "/base").c_str(),
                               [inputs](benchmark::State& state) {
                                 c10::InferenceMode guard;
                                 for (auto _ : state) {
                                   benchmark::DoNotOptimize(at::linear(
                                       inputs->x, inputs->weight, inputs->bias));
                                 }
                               });
  auto merged = std::make_shared<at::Tensor>(UncheckedMergedWeight(
      inputs->weight, inputs->down, inputs->up, kAlpha, kRankMax));
  benchmark::RegisterBenchmark(
      (group + "/merged").c_str(), [inputs, merged](benchmark::State& state) {
        c10::InferenceMode guard;
        for (auto _ : state) {
          benchmark::DoNotOptimize(at::linear(inputs->x, *merged, inputs->bias));
        }
      });
  for (int64_t rank : {1, 4, 8}) {
    benchmark::RegisterBenchmark(
        (group + "/rank:" + std::to_string(rank)).c_str(),
        [inputs, rank](benchmark::State& state) {
          c10::InferenceMode guard;
          for (auto _ : state) {
            benchmark::DoNotOptimize(
                UncheckedForward(inputs->x, inputs->weight, inputs->bias,
                                 inputs->down, inputs->up, kAlpha, rank));
          }
        });
  }
  benchmark::RegisterBenchmark(
      (group + "/mixed").c_str(), [inputs](benchmark::State& state) {
        c10::InferenceMode guard;
        for (auto _ : state) {
          at::Tensor y = at::linear(inputs->x, inputs->weight, inputs->bias);
          benchmark::DoNotOptimize(y.add_(UncheckedLowRankDeltaPerRow(
              inputs->x, inputs->down, inputs->up, kAlpha, inputs->row_ranks)));
        }
      });
  benchmark::RegisterBenchmark(
      (group + "/merge_rank8_once").c_str(), [inputs](benchmark::State& state) {
        c10::InferenceMode guard;
        for (auto _ : state) {
          benchmark::DoNotOptimize(UncheckedMergedWeight(
              inputs->weight, inputs->down, inputs->up, kAlpha, kRankMax));
        }
      });
}

}  // namespace
}  // namespace dylora::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::printf("intra-op threads: %d\n", at::get_num_threads());
  dylora::bench::Register(32, 128);
  dylora::bench::RatioReporter reporter("base");
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
