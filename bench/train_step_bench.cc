// One optimizer step (forward, backward, clipping, AdamW) on
// all-MiniLM-L6-v2 with adapters on query and value, r_max 8,
// batch x seq = 16 x 64:
//   lora            rank 8, full update            (the baseline)
//   dylora_frozen   sampled rank, row/column b only (paper default)
//   dylora_full     sampled rank, all of the first b
//   nested_dropout  sum loss over ranks 1..8        (Table 7 baseline)
// The paper reports DyLoRA at 1.02x LoRA (Appendix A). Needs the real model.
//   build/bench/train_step_bench [--benchmark_min_time=5s]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdio>
#include <memory>
#include <random>

#include "bench/ratio_reporter.h"
#include "trainer/training/trainer.h"

namespace dylora::bench {
namespace {

constexpr int kBatch = 16;
constexpr int kSeq = 64;

TokenizedDataset SyntheticData(int64_t vocab) {
  TokenizedDataset data;
  data.spec = *GlueTaskByName("sst2");
  std::mt19937 rng(5);
  for (int i = 0; i < 4 * kBatch; ++i) {
    TokenizedExample e;
    for (int t = 0; t < kSeq; ++t) {
      e.ids.push_back(1000 + static_cast<int32_t>(rng() % (vocab - 1000)));
      e.type_ids.push_back(0);
    }
    e.label = static_cast<float>(i % 2);
    data.examples.push_back(std::move(e));
  }
  return data;
}

void Register(const Encoder& encoder, const TokenizedDataset& data,
              const std::string& name, TrainMethod method, UpdateMode mode) {
  benchmark::RegisterBenchmark(
      ("train_step/batch:16x64/" + name).c_str(),
      [&encoder, &data, method, mode](benchmark::State& state) {
        TrainerOptions options;
        options.method = method;
        options.adapter.update_mode = mode;
        options.batch_size = kBatch;
        options.max_steps = 1'000'000;
        options.warmup_ratio = 0;
        auto trainer = Trainer::Create(encoder, data, options);
        if (!trainer.ok()) {
          state.SkipWithError(std::string(trainer.status().message()).c_str());
          return;
        }
        for (auto _ : state) {
          absl::Status status = (*trainer)->RunSteps(1);
          if (!status.ok()) {
            state.SkipWithError(std::string(status.message()).c_str());
            return;
          }
        }
      })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

}  // namespace
}  // namespace dylora::bench

int main(int argc, char** argv) {
  using namespace dylora;
  benchmark::Initialize(&argc, argv);
  auto encoder = Encoder::Load(DYLORA_BENCH_MODEL_DIR);
  if (!encoder.ok()) {
    std::fprintf(stderr, "cannot load the model: %s\n",
                 std::string(encoder.status().message()).c_str());
    return 1;
  }
  const TokenizedDataset data =
      bench::SyntheticData((*encoder)->config().vocab_size);
  std::printf("intra-op threads: %d\n", at::get_num_threads());
  bench::Register(**encoder, data, "lora", TrainMethod::kLora, UpdateMode::kFull);
  bench::Register(**encoder, data, "dylora_frozen", TrainMethod::kDyLora,
                  UpdateMode::kFrozen);
  bench::Register(**encoder, data, "dylora_full", TrainMethod::kDyLora,
                  UpdateMode::kFull);
  bench::Register(**encoder, data, "nested_dropout",
                  TrainMethod::kNestedDropout, UpdateMode::kFull);
  bench::RatioReporter reporter("lora");
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
