#include "core/model/packed_linears.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <array>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model/encoder.h"
#include "core/model/pooling.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/model/model_test_util.h"
#include "tests/test_paths.h"

namespace dylora {
namespace {

using ::dylora::testing::LoadFixtureTensors;
using ::dylora::testing::ModelFixture;
using ::testing::HasSubstr;

// Skips where LibTorch lacks the precision's CPU kernel (fbgemm needs x86
// with AVX2); CI's AVX2 machines have both, so there the tests run.
#define SKIP_WITHOUT_KERNEL(precision)                                        \
  if (!CheckPackedLinearsSupported(precision, c10::Device(c10::kCPU),         \
                                   at::kFloat)                                \
           .ok()) {                                                           \
    GTEST_SKIP() << PrecisionName(precision) << " kernel not available here"; \
  }

TEST(PackedLinearsTest, PrecisionNamesRoundTrip) {
  for (Precision p : {Precision::kFp32, Precision::kInt8}) {
    auto parsed = ParsePrecision(PrecisionName(p));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, p);
  }
  auto bad = ParsePrecision("fp16");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("fp16"));
}

// oneDNN's layout is chosen without a batch size, so one reordered weight
// must serve every row count a batch can have: each equals x W^T + b to
// float rounding (a layout mismatch would give garbage, not rounding).
TEST(PackedLinearsTest, Fp32EqualsPlainLinearAtEveryRowCount) {
  SKIP_WITHOUT_KERNEL(Precision::kFp32);
  at::manual_seed(5);
  const LinearId id{2, LinearKind::kIntermediate};
  for (const auto& [out, in] :
       {std::pair(1536, 384), std::pair(384, 1536), std::pair(48, 32)}) {
    const at::Tensor w = at::randn({out, in}) * 0.05;
    const at::Tensor b = at::randn({out});
    auto linears = PackedLinears::Create(Precision::kFp32, {{id, w, b}});
    ASSERT_TRUE(linears.ok()) << linears.status();
    EXPECT_EQ((*linears)->precision(), Precision::kFp32);
    EXPECT_EQ((*linears)->bytes(), (w.numel() + b.numel()) * 4);
    c10::InferenceMode inference;
    for (int64_t rows : {1, 2, 7, 25, 64, 257, 1000}) {
      const at::Tensor x = at::randn({rows, in});
      const at::Tensor plain = at::linear(x, w, b);
      const at::Tensor packed = (*linears)->Apply(id, x, w, b);
      ASSERT_EQ(packed.sizes(), plain.sizes());
      EXPECT_LE((packed - plain).abs().max().item<double>(),
                1e-5 * (1 + plain.abs().max().item<double>()))
          << out << "x" << in << " at " << rows << " rows";
    }
    // A [batch, seq, in] input keeps its leading dims.
    const at::Tensor x3 = at::randn({3, 5, in});
    EXPECT_TRUE(at::allclose((*linears)->Apply(id, x3, w, b),
                             at::linear(x3, w, b), 1e-4, 1e-4));
  }
}

// A layer's query, key and value, all listed, run as one GEMM on the three
// weights stacked: each output equals its own Apply. Fewer than three
// listed: no fused path; none listed: the fallback's.
TEST(PackedLinearsTest, StackedQueryKeyValueEqualsEachLinear) {
  at::manual_seed(9);
  const at::Tensor x = at::randn({11, 32});
  std::vector<PackedLinearSource> attention;
  for (LinearKind kind :
       {LinearKind::kQuery, LinearKind::kKey, LinearKind::kValue}) {
    attention.push_back(
        {{1, kind}, at::randn({24, 32}) * 0.1, at::randn({24})});
  }
  c10::InferenceMode inference;
  for (Precision p : {Precision::kFp32, Precision::kInt8}) {
    if (!CheckPackedLinearsSupported(p, c10::Device(c10::kCPU), at::kFloat)
             .ok()) {
      continue;
    }
    auto linears = PackedLinears::Create(p, attention);
    ASSERT_TRUE(linears.ok()) << linears.status();
    const auto fused = (*linears)->ApplyQueryKeyValue(1, x);
    ASSERT_TRUE(fused.has_value()) << PrecisionName(p);
    for (size_t j = 0; j < 3; ++j) {
      const at::Tensor alone = (*linears)->Apply(
          attention[j].id, x, attention[j].weight, attention[j].bias);
      ASSERT_EQ((*fused)[j].sizes(), alone.sizes());
      EXPECT_LE(((*fused)[j] - alone).abs().max().item<double>(),
                1e-5 * (1 + alone.abs().max().item<double>()))
          << PrecisionName(p) << " output " << j;
    }
    EXPECT_FALSE((*linears)->ApplyQueryKeyValue(0, x).has_value());
    // Query and value only (a PEFT "qv" adapter's merge): three Applies.
    auto partial = PackedLinears::Create(p, {attention[0], attention[2]});
    ASSERT_TRUE(partial.ok());
    EXPECT_FALSE((*partial)->ApplyQueryKeyValue(1, x).has_value());
    // None of them over a fallback that has them: the fallback's.
    auto other = PackedLinears::Create(
        p, {{{1, LinearKind::kOutput}, at::randn({32, 24}), at::randn({32})}},
        *linears);
    ASSERT_TRUE(other.ok());
    const auto delegated = (*other)->ApplyQueryKeyValue(1, x);
    ASSERT_TRUE(delegated.has_value());
    EXPECT_TRUE(at::equal((*delegated)[1], (*fused)[1]));
  }
}

TEST(PackedLinearsTest, Int8LinearIsCloseToFp32AndFallsThroughElsewhere) {
  SKIP_WITHOUT_KERNEL(Precision::kInt8);
  at::manual_seed(3);
  const at::Tensor w = at::randn({48, 32}) * 0.1;
  const at::Tensor b = at::randn({48});
  const at::Tensor x = at::randn({7, 32});
  const LinearId quantized{0, LinearKind::kQuery};
  const LinearId other{0, LinearKind::kKey};
  auto linears = PackedLinears::Create(Precision::kInt8, {{quantized, w, b}});
  ASSERT_TRUE(linears.ok()) << linears.status();
  EXPECT_EQ((*linears)->size(), 1u);
  EXPECT_GT((*linears)->bytes(), w.numel());
  c10::InferenceMode inference;
  const at::Tensor fp32 = at::linear(x, w, b);
  const at::Tensor int8 = (*linears)->Apply(quantized, x, w, b);
  ASSERT_EQ(int8.sizes(), fp32.sizes());
  const double error = (int8 - fp32).abs().max().item<double>();
  const double scale = (fp32 - b).abs().max().item<double>();
  EXPECT_LT(error, 0.05 * scale) << "int8 error " << error;
  EXPECT_GT(error, 0) << "expected quantization error, got an exact result";
  // Not quantized: fp32 exactly.
  EXPECT_TRUE(at::equal((*linears)->Apply(other, x, w, b), fp32));
  // With a fallback hook, unlisted layers go to it.
  auto backbone = PackedLinears::Create(Precision::kFp32, {{other, w, b}});
  ASSERT_TRUE(backbone.ok());
  auto layered =
      PackedLinears::Create(Precision::kInt8, {{quantized, w, b}}, *backbone);
  ASSERT_TRUE(layered.ok());
  EXPECT_TRUE(at::equal((*layered)->Apply(other, x, w, b),
                        (*backbone)->Apply(other, x, w, b)));
}

TEST(PackedLinearsTest, UnsupportedSetupsAreRefusedWithAReason) {
  for (Precision p : {Precision::kFp32, Precision::kInt8}) {
    auto on_gpu =
        CheckPackedLinearsSupported(p, c10::Device(c10::kCUDA, 0), at::kFloat);
    EXPECT_EQ(on_gpu.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(on_gpu.message(), HasSubstr("CPU only"));
    auto in_double =
        CheckPackedLinearsSupported(p, c10::Device(c10::kCPU), at::kDouble);
    EXPECT_EQ(in_double.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(in_double.message(), HasSubstr("float32"));
  }
}

// The real all-MiniLM-L6-v2 on real SST-2 sentences (the golden fixture's
// batches): every sentence embedding from the int8 backbone points where
// the fp32 one does, padded and packed alike.
TEST(PackedLinearsTest, Int8MiniLmEmbeddingsAgreeWithFp32OnSst2) {
  SKIP_WITHOUT_KERNEL(Precision::kInt8);
  auto encoder = Encoder::Load(dylora::testing::ModelDir());
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  auto int8 = PackEncoderLinears(**encoder, Precision::kInt8);
  ASSERT_TRUE(int8.ok()) << int8.status();
  EXPECT_EQ((*int8)->size(), 6u * 6u);
  const auto golden =
      LoadFixtureTensors(ModelFixture("minilm_sst2_golden.safetensors"));
  ASSERT_FALSE(golden.empty());
  c10::InferenceMode inference;
  double worst = 1.0;
  double sum = 0;
  int64_t sentences = 0;
  for (int k = 0; golden.count(absl::StrCat("batch", k, ".input_ids")); ++k) {
    const std::string p = absl::StrCat("batch", k, ".");
    const EncoderInputs inputs{golden.at(p + "input_ids"),
                               golden.at(p + "token_type_ids"),
                               golden.at(p + "attention_mask")};
    auto fp32 = (*encoder)->Forward(inputs);
    auto quantized = (*encoder)->Forward(inputs, int8->get());
    ASSERT_TRUE(fp32.ok() && quantized.ok());
    auto a = MeanPool(fp32->last_hidden_state, inputs.attention_mask);
    auto b = MeanPool(quantized->last_hidden_state, inputs.attention_mask);
    ASSERT_TRUE(a.ok() && b.ok());
    const at::Tensor cosine = at::cosine_similarity(*a, *b, 1);
    worst = std::min(worst, cosine.min().item<double>());
    sum += cosine.sum().item<double>();
    sentences += cosine.size(0);
  }
  const double mean = sum / static_cast<double>(sentences);
  std::printf(
      "[MiniLM int8 vs fp32, %lld SST-2 sentences] cosine mean %.5f, worst "
      "%.5f\n",
      static_cast<long long>(sentences), mean, worst);
  EXPECT_GE(sentences, 50);
  // Measured 0.982 worst (7-bit activations instead gave 0.953).
  EXPECT_GT(worst, 0.97);
  EXPECT_GT(mean, 0.99);
  EXPECT_LT(worst, 1.0) << "int8 should not be bit-identical to fp32";
}

}  // namespace
}  // namespace dylora
