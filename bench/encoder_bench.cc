// all-MiniLM-L6-v2 encoder forward (seq 128; batch 1, 8, 32) with and without
// a DyLoRA adapter on query and value (r_max 8):
//   backbone    no adapter                        (the baseline)
//   merged:8    merged weights for rank 8
//   rank:8 / rank:1   truncated adapter
//   mixed       one rank per row, 1..8
// Needs the real model (scripts/bootstrap.sh). Run:
//   build/bench/encoder_bench [--benchmark_min_time=2s]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <cstdio>
#include <memory>

#include "bench/ratio_reporter.h"
#include "core/adapter/adapter.h"
#include "core/adapter/adapter_hooks.h"
#include "core/model/encoder.h"

namespace dylora::bench {
namespace {

constexpr int64_t kSeq = 128;

struct Shared {
  std::unique_ptr<Encoder> encoder;
  std::unique_ptr<DyLoraAdapter> adapter;
};

EncoderInputs MakeInputs(const Encoder& encoder, int64_t batch) {
  at::manual_seed(batch);
  EncoderInputs in;
  in.input_ids = at::randint(1000, encoder.config().vocab_size, {batch, kSeq},
                             at::kLong);
  in.token_type_ids = at::zeros({batch, kSeq}, at::kLong);
  in.attention_mask = at::ones({batch, kSeq}, at::kLong);
  return in;
}

void RunForward(benchmark::State& state, const Encoder& encoder,
                const EncoderInputs& inputs, const LinearHook* hook) {
  c10::InferenceMode guard;
  for (auto _ : state) {
    auto out = encoder.Forward(inputs, hook);
    if (!out.ok()) {
      state.SkipWithError(std::string(out.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(out->last_hidden_state);
  }
  state.SetItemsProcessed(state.iterations() * inputs.input_ids.size(0));
}

void Register(std::shared_ptr<Shared> shared, int64_t batch) {
  const Encoder& encoder = *shared->encoder;
  const DyLoraAdapter& adapter = *shared->adapter;
  auto inputs = std::make_shared<EncoderInputs>(MakeInputs(encoder, batch));
  const std::string group = "encoder/batch:" + std::to_string(batch);
  auto add = [&](const std::string& variant,
                 std::shared_ptr<const LinearHook> hook) {
    benchmark::RegisterBenchmark(
        (group + "/" + variant).c_str(),
        [shared, inputs, hook](benchmark::State& state) {
          RunForward(state, *shared->encoder, *inputs, hook.get());
        })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  };
  add("backbone", nullptr);
  add("merged:8", std::make_shared<MergedWeightsHook>(
                      *MergedWeights(adapter, encoder, 8)));
  add("rank:8", *AdapterHook::Create(adapter, RankSpec::Single(8)));
  add("rank:1", *AdapterHook::Create(adapter, RankSpec::Single(1)));
  at::Tensor ranks = at::arange(batch, at::kLong).remainder(8) + 1;
  add("mixed", *AdapterHook::Create(adapter, RankSpec::PerRow(ranks)));
}

}  // namespace
}  // namespace dylora::bench

int main(int argc, char** argv) {
  using namespace dylora;
  benchmark::Initialize(&argc, argv);
  auto shared = std::make_shared<bench::Shared>();
  auto encoder = Encoder::Load(DYLORA_BENCH_MODEL_DIR);
  if (!encoder.ok()) {
    std::fprintf(stderr, "cannot load the model: %s\n",
                 std::string(encoder.status().message()).c_str());
    return 1;
  }
  shared->encoder = *std::move(encoder);
  auto adapter = DyLoraAdapter::CreateFresh(*shared->encoder, AdapterConfig{},
                                            /*head=*/{}, /*seed=*/0);
  if (!adapter.ok()) {
    std::fprintf(stderr, "cannot create an adapter: %s\n",
                 std::string(adapter.status().message()).c_str());
    return 1;
  }
  shared->adapter = *std::move(adapter);
  {
    // A trained adapter has non-zero up factors; fresh ones are zero, which
    // would not change the work done but would make outputs trivial.
    at::NoGradGuard no_grad;
    for (const auto& [id, factors] : shared->adapter->factors()) {
      factors.up.normal_(0.0, 0.02);
    }
  }
  std::printf("intra-op threads: %d\n", at::get_num_threads());
  for (int64_t batch : {1, 8, 32}) bench::Register(shared, batch);
  bench::RatioReporter reporter("backbone");
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
