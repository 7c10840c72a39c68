#include "core/model/quantized_linears.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cstdio>
#include <map>
#include <string>

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

// Skips where fbgemm is not available (non-x86 hosts); CI's AVX2 machines
// have it, so there the tests run.
#define SKIP_WITHOUT_FBGEMM()                                         \
  if (!CheckInt8Supported(c10::Device(c10::kCPU), at::kFloat).ok()) { \
    GTEST_SKIP() << "fbgemm is not available on this CPU";            \
  }

TEST(QuantizedLinearsTest, Int8LinearIsCloseToFp32AndFallsThroughElsewhere) {
  SKIP_WITHOUT_FBGEMM();
  at::manual_seed(3);
  const at::Tensor w = at::randn({48, 32}) * 0.1;
  const at::Tensor b = at::randn({48});
  const at::Tensor x = at::randn({7, 32});
  const LinearId quantized{0, LinearKind::kQuery};
  const LinearId other{0, LinearKind::kKey};
  auto linears = QuantizedLinears::Create({{quantized, w, b}});
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
  auto backbone = QuantizedLinears::Create({{other, w, b}});
  ASSERT_TRUE(backbone.ok());
  auto layered = QuantizedLinears::Create({{quantized, w, b}}, *backbone);
  ASSERT_TRUE(layered.ok());
  EXPECT_TRUE(at::equal((*layered)->Apply(other, x, w, b),
                        (*backbone)->Apply(other, x, w, b)));
}

TEST(QuantizedLinearsTest, UnsupportedSetupsAreRefusedWithAReason) {
  auto on_gpu = CheckInt8Supported(c10::Device(c10::kCUDA, 0), at::kFloat);
  EXPECT_EQ(on_gpu.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(on_gpu.message(), HasSubstr("CPU only"));
  auto in_double = CheckInt8Supported(c10::Device(c10::kCPU), at::kDouble);
  EXPECT_EQ(in_double.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(in_double.message(), HasSubstr("float32"));
}

// The real all-MiniLM-L6-v2 on real SST-2 sentences (the golden fixture's
// batches): every sentence embedding from the int8 backbone points where
// the fp32 one does, padded and packed alike.
TEST(QuantizedLinearsTest, Int8MiniLmEmbeddingsAgreeWithFp32OnSst2) {
  SKIP_WITHOUT_FBGEMM();
  auto encoder = Encoder::Load(dylora::testing::ModelDir());
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  auto int8 = QuantizeEncoderLinears(**encoder);
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
