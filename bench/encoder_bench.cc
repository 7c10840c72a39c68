// all-MiniLM-L6-v2 forward on real SST-2 dev sentences (batches of 1, 8 and
// 32 consecutive sentences, about 25 tokens each on average), padded (every
// row padded to its batch's longest, Encoder::Forward) against padding-free
// (Encoder::ForwardPacked, the server's path), with and without a DyLoRA
// adapter on every linear layer (r_max 8, the trainer's default targets):
//   backbone:padded     no adapter, padded        (the baseline)
//   backbone:packed     no adapter, packed
//   rank8:padded        truncated rank 8, padded
//   merged8:packed      merged weights for rank 8
//   rank8:packed, rank1:packed   truncated adapter
//   mixed:packed        one rank per row, 1..8
//   *:prepacked         the same on weights reordered once for oneDNN
//                       (core/model/packed_linears.h; dylora-serve's fp32)
// items/s counts sentences; the tokens counter counts real tokens per second.
// Needs the real model (scripts/bootstrap.sh) and ../shared/data. Run:
//   build/bench/encoder_bench [--benchmark_min_time=2s]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/ratio_reporter.h"
#include "core/adapter/adapter.h"
#include "core/adapter/adapter_hooks.h"
#include "core/glue/glue.h"
#include "core/model/encoder.h"
#include "core/model/packed_inputs.h"
#include "core/model/packed_linears.h"
#include "core/tokenizer/tokenizer.h"

namespace dylora::bench {
namespace {

// Batches per size, cycled through by the iterations.
constexpr size_t kBatchesPerSize = 32;

struct Shared {
  std::unique_ptr<Encoder> encoder;
  std::unique_ptr<DyLoraAdapter> adapter;
  std::vector<Encoding> sentences;
  // The backbone's linears reordered for oneDNN; null where LibTorch has
  // no oneDNN kernels (the prepacked variants are then not registered).
  std::shared_ptr<const PackedLinears> prepacked;
};

// One batch of consecutive sentences in both layouts.
struct Batch {
  EncoderInputs padded;
  PackedInputs packed;
  std::vector<int64_t> row_ranks;    // 1..8 cycling, per row
  std::vector<int64_t> token_ranks;  // the same, per packed token
  int64_t tokens = 0;
};

Batch MakeBatch(const Shared& shared, size_t first, int64_t size) {
  Batch batch;
  std::vector<PackedRow> rows;
  int64_t longest = 0;
  for (int64_t r = 0; r < size; ++r) {
    const Encoding& e = shared.sentences[(first + static_cast<size_t>(r)) %
                                         shared.sentences.size()];
    rows.push_back({e.ids, e.type_ids});
    longest = std::max<int64_t>(longest, static_cast<int64_t>(e.ids.size()));
    batch.row_ranks.push_back(r % 8 + 1);
    batch.token_ranks.insert(batch.token_ranks.end(), e.ids.size(), r % 8 + 1);
    batch.tokens += static_cast<int64_t>(e.ids.size());
  }
  const Encoder& encoder = *shared.encoder;
  batch.packed = PackRows(rows, encoder.config(), encoder.device());
  at::Tensor ids =
      at::full({size, longest}, encoder.config().pad_token_id, at::kLong);
  at::Tensor mask = at::zeros({size, longest}, at::kLong);
  for (int64_t r = 0; r < size; ++r) {
    for (size_t t = 0; t < rows[r].ids.size(); ++t) {
      ids[r][static_cast<int64_t>(t)] = rows[r].ids[t];
      mask[r][static_cast<int64_t>(t)] = 1;
    }
  }
  batch.padded = {ids, at::zeros_like(ids), mask};
  return batch;
}

// Which layout, and which hook for a batch (null: the backbone alone).
enum class Layout { kPadded, kPacked };
using HookFor = std::function<std::shared_ptr<const LinearHook>(const Batch&)>;

void RunForward(benchmark::State& state, const Encoder& encoder,
                const std::vector<Batch>& batches, Layout layout,
                const HookFor& hook_for) {
  c10::InferenceMode guard;
  std::vector<std::shared_ptr<const LinearHook>> hooks;
  for (const Batch& b : batches) hooks.push_back(hook_for(b));
  size_t next = 0;
  int64_t rows = 0;
  int64_t tokens = 0;
  for (auto _ : state) {
    const Batch& b = batches[next];
    const LinearHook* hook = hooks[next].get();
    next = (next + 1) % batches.size();
    auto out = layout == Layout::kPacked ? encoder.ForwardPacked(b.packed, hook)
                                         : encoder.Forward(b.padded, hook);
    if (!out.ok()) {
      state.SkipWithError(std::string(out.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(out->last_hidden_state);
    rows += b.packed.rows;
    tokens += b.tokens;
  }
  state.SetItemsProcessed(rows);
  state.counters["tokens"] = benchmark::Counter(static_cast<double>(tokens),
                                                benchmark::Counter::kIsRate);
}

void Register(std::shared_ptr<Shared> shared, int64_t size) {
  auto batches = std::make_shared<std::vector<Batch>>();
  for (size_t i = 0; i < kBatchesPerSize; ++i) {
    batches->push_back(MakeBatch(*shared, i * static_cast<size_t>(size), size));
  }
  const DyLoraAdapter& adapter = *shared->adapter;
  const auto merged8_weights = *MergedWeights(adapter, *shared->encoder, 8);
  auto merged8 = std::make_shared<MergedWeightsHook>(merged8_weights);
  const std::string group = "encoder/batch:" + std::to_string(size);
  auto add = [&](const std::string& variant, Layout layout, HookFor hook_for) {
    benchmark::RegisterBenchmark(
        (group + "/" + variant).c_str(),
        [shared, batches, layout, hook_for](benchmark::State& state) {
          RunForward(state, *shared->encoder, *batches, layout, hook_for);
        })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  };
  auto none = [](const Batch&) { return std::shared_ptr<const LinearHook>(); };
  auto rank = [&adapter](int64_t r) {
    return [&adapter, r](const Batch&) -> std::shared_ptr<const LinearHook> {
      return *AdapterHook::Create(adapter, RankSpec::Single(r));
    };
  };
  add("backbone:padded", Layout::kPadded, none);
  add("backbone:packed", Layout::kPacked, none);
  add("rank8:padded", Layout::kPadded, rank(8));
  add("merged8:packed", Layout::kPacked,
      [merged8](const Batch&) { return merged8; });
  add("rank8:packed", Layout::kPacked, rank(8));
  add("rank1:packed", Layout::kPacked, rank(1));
  add("mixed:packed", Layout::kPacked,
      [&adapter](const Batch& b) -> std::shared_ptr<const LinearHook> {
        return *AdapterHook::Create(
            adapter, RankSpec::PerRow(at::tensor(b.token_ranks, at::kLong)));
      });
  // dylora-serve's fp32 path: the linears' weights reordered once for
  // oneDNN (core/model/packed_linears.h).
  const std::shared_ptr<const PackedLinears> backbone = shared->prepacked;
  if (backbone == nullptr) return;
  std::vector<PackedLinearSource> merged_layers;
  for (const auto& [id, w] : merged8_weights) {
    merged_layers.push_back({id, w, *shared->encoder->LinearBias(id)});
  }
  std::shared_ptr<const LinearHook> prepacked_merged8 =
      *PackedLinears::Create(Precision::kFp32, merged_layers, backbone);
  add("backbone:prepacked", Layout::kPacked,
      [backbone](const Batch&) { return backbone; });
  add("merged8:prepacked", Layout::kPacked,
      [prepacked_merged8](const Batch&) { return prepacked_merged8; });
  add("rank8:prepacked", Layout::kPacked,
      [&adapter, backbone](const Batch&) -> std::shared_ptr<const LinearHook> {
        return *AdapterHook::Create(adapter, RankSpec::Single(8), backbone);
      });
  add("mixed:prepacked", Layout::kPacked,
      [&adapter,
       backbone](const Batch& b) -> std::shared_ptr<const LinearHook> {
        return *AdapterHook::Create(
            adapter, RankSpec::PerRow(at::tensor(b.token_ranks, at::kLong)),
            backbone);
      });
}

int Main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  auto shared = std::make_shared<Shared>();
  const std::string model_dir = DYLORA_BENCH_MODEL_DIR;
  auto encoder = Encoder::Load(model_dir);
  auto tokenizer =
      Tokenizer::FromTokenizerJsonFile(model_dir + "/tokenizer.json");
  auto task = GlueTaskByName("sst2");
  auto dev = ReadGlueTsv(
      std::string(DYLORA_BENCH_DATA_DIR) + "/glue/SST-2/dev.tsv", task->task);
  for (const absl::Status& s :
       {encoder.status(), tokenizer.status(), dev.status()}) {
    if (!s.ok()) {
      std::fprintf(stderr, "cannot set up: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  shared->encoder = *std::move(encoder);
  if (auto prepacked = PackEncoderLinears(*shared->encoder, Precision::kFp32);
      prepacked.ok()) {
    shared->prepacked = *std::move(prepacked);
  } else {
    std::printf("no prepacked variants: %s\n",
                std::string(prepacked.status().message()).c_str());
  }
  tokenizer->set_padding(std::nullopt);
  int64_t total_tokens = 0;
  for (const Example& example : dev->examples) {
    auto encoding = tokenizer->Encode(example.text_a);
    if (!encoding.ok()) continue;
    total_tokens += static_cast<int64_t>(encoding->ids.size());
    shared->sentences.push_back(*std::move(encoding));
  }
  AdapterConfig config;
  config.target_kinds = {
      LinearKind::kQuery,        LinearKind::kKey,
      LinearKind::kValue,        LinearKind::kAttentionOutput,
      LinearKind::kIntermediate, LinearKind::kOutput};
  auto adapter = DyLoraAdapter::CreateFresh(*shared->encoder, config,
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
  std::printf(
      "intra-op threads: %d; %zu SST-2 dev sentences, %.1f tokens each\n",
      at::get_num_threads(), shared->sentences.size(),
      static_cast<double>(total_tokens) /
          static_cast<double>(shared->sentences.size()));
  for (int64_t size : {1, 8, 32}) Register(shared, size);
  RatioReporter reporter("backbone:padded");
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}

}  // namespace
}  // namespace dylora::bench

int main(int argc, char** argv) { return dylora::bench::Main(argc, argv); }
