#include "core/adapter/dylora_linear.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dylora {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kIn = 12;
constexpr int64_t kOut = 10;
constexpr int64_t kRMax = 8;
constexpr double kAlpha = 16.0;

struct Layer {
  at::Tensor weight, bias, down, up;
};

Layer MakeLayer(uint64_t seed, at::ScalarType dtype = at::kFloat) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  Layer l;
  l.weight = at::randn({kOut, kIn}, gen, at::kDouble).to(dtype);
  l.bias = at::randn({kOut}, gen, at::kDouble).to(dtype);
  l.down = at::randn({kRMax, kIn}, gen, at::kDouble).to(dtype);
  l.up = at::randn({kOut, kRMax}, gen, at::kDouble).to(dtype);  // nonzero B
  return l;
}

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(DyLoraLinearTest, RankBForwardEqualsExplicitFormula) {
  Layer l = MakeLayer(1, at::kDouble);
  at::Tensor x = at::randn({3, 5, kIn}, at::kDouble);
  for (int64_t b = 1; b <= kRMax; ++b) {
    auto y = DyLoraForward(x, l.weight, l.bias, l.down, l.up, kAlpha, b);
    ASSERT_TRUE(y.ok()) << y.status();
    // Explicit: x W0^T + bias + (alpha/b) x A_b^T B_b^T, written with loops
    // over the rank so it shares no code path with the implementation.
    at::Tensor expected = at::matmul(x, l.weight.t()) + l.bias;
    for (int64_t k = 0; k < b; ++k) {
      at::Tensor hk = at::matmul(x, l.down[k]);  // [3, 5]
      expected = expected + (kAlpha / b) * hk.unsqueeze(-1) * l.up.select(1, k);
    }
    EXPECT_LE(MaxAbsDiff(*y, expected), 1e-10) << "rank " << b;
  }
}

TEST(DyLoraLinearTest, PerRowRanksEqualSeparateForwards) {
  // float32 at trained-adapter scale (outputs of magnitude ~1).
  at::Generator gen = at::detail::createCPUGenerator(2);
  auto [down, up] = InitFactors(kRMax, kIn, kOut, gen);
  up = at::randn({kOut, kRMax}, gen, at::kDouble).to(at::kFloat) * 0.05;
  at::Tensor w = at::randn({kOut, kIn}, gen, at::kDouble).to(at::kFloat) * 0.2;
  at::Tensor bias = at::randn({kOut}, gen, at::kDouble).to(at::kFloat) * 0.1;
  at::Tensor x = at::randn({6, 4, kIn}, gen, at::kDouble).to(at::kFloat);
  at::Tensor ranks = at::tensor({3, 1, 8, 5, 3, 2}, at::kLong);
  auto mixed = DyLoraForwardPerRow(x, w, bias, down, up, kAlpha, ranks);
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  for (int64_t i = 0; i < ranks.size(0); ++i) {
    auto single = DyLoraForward(x.narrow(0, i, 1), w, bias, down, up, kAlpha,
                                ranks[i].item<int64_t>());
    ASSERT_TRUE(single.ok());
    EXPECT_LE(MaxAbsDiff(mixed->narrow(0, i, 1), *single), 1e-6) << "row " << i;
  }
  // In float64 the two forms agree far below the 1e-6 bar.
  Layer d = MakeLayer(2, at::kDouble);
  at::Tensor xd = x.to(at::kDouble);
  auto mixed_d =
      DyLoraForwardPerRow(xd, d.weight, d.bias, d.down, d.up, kAlpha, ranks);
  ASSERT_TRUE(mixed_d.ok());
  for (int64_t i = 0; i < ranks.size(0); ++i) {
    auto single = DyLoraForward(xd.narrow(0, i, 1), d.weight, d.bias, d.down,
                                d.up, kAlpha, ranks[i].item<int64_t>());
    ASSERT_TRUE(single.ok());
    EXPECT_LE(MaxAbsDiff(mixed_d->narrow(0, i, 1), *single), 1e-6);
  }
}

TEST(DyLoraLinearTest, PerRowOn2DInput) {
  Layer l = MakeLayer(3, at::kDouble);
  at::Tensor x = at::randn({3, kIn}, at::kDouble);
  at::Tensor ranks = at::tensor({2, 7, 4}, at::kLong);
  auto mixed =
      DyLoraForwardPerRow(x, l.weight, l.bias, l.down, l.up, kAlpha, ranks);
  ASSERT_TRUE(mixed.ok());
  for (int64_t i = 0; i < 3; ++i) {
    auto single = DyLoraForward(x.narrow(0, i, 1), l.weight, l.bias, l.down,
                                l.up, kAlpha, ranks[i].item<int64_t>());
    EXPECT_LE(MaxAbsDiff(mixed->narrow(0, i, 1), *single), 1e-10);
  }
}

TEST(DyLoraLinearTest, MergedWeightEqualsTruncatedForward) {
  Layer l = MakeLayer(4);
  at::Tensor x = at::randn({2, 7, kIn});
  for (int64_t b = 1; b <= kRMax; ++b) {
    auto merged = DyLoraMergedWeight(l.weight, l.down, l.up, kAlpha, b);
    ASSERT_TRUE(merged.ok());
    at::Tensor via_merged = at::linear(x, *merged, l.bias);
    auto truncated =
        DyLoraForward(x, l.weight, l.bias, l.down, l.up, kAlpha, b);
    ASSERT_TRUE(truncated.ok());
    // Relative to the output scale (|y| up to ~100 in float32).
    const double scale = truncated->abs().max().item<double>();
    EXPECT_LE(MaxAbsDiff(via_merged, *truncated) / std::max(1.0, scale), 1e-5)
        << "rank " << b;
  }
}

TEST(DyLoraLinearTest, MergedEqualsTruncatedWithUnitScaleFactors) {
  // Init-scale factors (what a trained adapter looks like): absolute 1e-5.
  at::Generator gen = at::detail::createCPUGenerator(7);
  auto [down, up] = InitFactors(kRMax, kIn, kOut, gen);
  up = at::randn({kOut, kRMax}, gen, at::kDouble).to(at::kFloat) * 0.1;
  at::Tensor w = at::randn({kOut, kIn}, gen, at::kDouble).to(at::kFloat) * 0.1;
  at::Tensor bias = at::zeros({kOut});
  at::Tensor x = at::randn({4, kIn}, gen, at::kDouble).to(at::kFloat);
  for (int64_t b = 1; b <= kRMax; ++b) {
    auto merged = DyLoraMergedWeight(w, down, up, kAlpha, b);
    auto truncated = DyLoraForward(x, w, bias, down, up, kAlpha, b);
    ASSERT_TRUE(merged.ok() && truncated.ok());
    EXPECT_LE(MaxAbsDiff(at::linear(x, *merged, bias), *truncated), 1e-5);
  }
}

TEST(DyLoraLinearTest, FrozenModeGradientsOnlyAtRowB) {
  Layer l = MakeLayer(5);
  at::Tensor x = at::randn({4, kIn});
  for (int64_t b = 1; b <= kRMax; ++b) {
    at::Tensor down = l.down.clone().set_requires_grad(true);
    at::Tensor up = l.up.clone().set_requires_grad(true);
    auto [d, u] = UncheckedTrainingFactors(down, up, b, UpdateMode::kFrozen);
    at::Tensor y = UncheckedForward(x, l.weight, l.bias, d, u, kAlpha, b);
    y.pow(2).sum().backward();
    at::Tensor gd = down.grad();
    at::Tensor gu = up.grad();
    ASSERT_TRUE(gd.defined() && gu.defined());
    for (int64_t k = 0; k < kRMax; ++k) {
      const double row = gd[k].abs().max().item<double>();
      const double col = gu.select(1, k).abs().max().item<double>();
      if (k == b - 1) {
        EXPECT_GT(row, 0) << "rank " << b << " row " << k;
        EXPECT_GT(col, 0) << "rank " << b << " col " << k;
      } else {
        EXPECT_EQ(row, 0) << "rank " << b << " row " << k;
        EXPECT_EQ(col, 0) << "rank " << b << " col " << k;
      }
    }
  }
}

TEST(DyLoraLinearTest, FrozenModeForwardEqualsInference) {
  Layer l = MakeLayer(6);
  at::Tensor x = at::randn({4, kIn});
  auto [d, u] = UncheckedTrainingFactors(l.down, l.up, 5, UpdateMode::kFrozen);
  at::Tensor train = UncheckedForward(x, l.weight, l.bias, d, u, kAlpha, 5);
  auto infer = DyLoraForward(x, l.weight, l.bias, l.down, l.up, kAlpha, 5);
  ASSERT_TRUE(infer.ok());
  EXPECT_LE(MaxAbsDiff(train, *infer), 1e-4);
}

TEST(DyLoraLinearTest, FullModeGradientsZeroAboveB) {
  Layer l = MakeLayer(8);
  at::Tensor x = at::randn({4, kIn});
  for (int64_t b = 1; b <= kRMax; ++b) {
    at::Tensor down = l.down.clone().set_requires_grad(true);
    at::Tensor up = l.up.clone().set_requires_grad(true);
    auto [d, u] = UncheckedTrainingFactors(down, up, b, UpdateMode::kFull);
    UncheckedForward(x, l.weight, l.bias, d, u, kAlpha, b)
        .pow(2)
        .sum()
        .backward();
    for (int64_t k = 0; k < kRMax; ++k) {
      const double row = down.grad()[k].abs().max().item<double>();
      const double col = up.grad().select(1, k).abs().max().item<double>();
      if (k < b) {
        EXPECT_GT(row, 0) << "rank " << b << " row " << k;
        EXPECT_GT(col, 0) << "rank " << b << " col " << k;
      } else {
        EXPECT_EQ(row, 0) << "rank " << b << " row " << k;
        EXPECT_EQ(col, 0) << "rank " << b << " col " << k;
      }
    }
  }
}

TEST(DyLoraLinearTest, RankOutOfRangeIsInvalidArgument) {
  Layer l = MakeLayer(9);
  at::Tensor x = at::randn({2, kIn});
  for (int64_t bad : {0, -1, 9}) {
    auto y = DyLoraForward(x, l.weight, l.bias, l.down, l.up, kAlpha, bad);
    ASSERT_FALSE(y.ok());
    EXPECT_EQ(y.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(y.status().message()),
                HasSubstr("outside this adapter's range [1, 8]"));
  }
  auto m = DyLoraMergedWeight(l.weight, l.down, l.up, kAlpha, 9);
  EXPECT_EQ(m.status().message(),
            "rank 9 is outside this adapter's range [1, 8]");
  EXPECT_FALSE(ValidateRank(1, 2, 8).ok());  // below r_min
  EXPECT_TRUE(ValidateRank(2, 2, 8).ok());
  auto per_row = DyLoraForwardPerRow(x, l.weight, l.bias, l.down, l.up, kAlpha,
                                     at::tensor({1, 0}, at::kLong));
  EXPECT_EQ(per_row.status().code(), absl::StatusCode::kInvalidArgument);
  per_row = DyLoraForwardPerRow(x, l.weight, l.bias, l.down, l.up, kAlpha,
                                at::tensor({1, 2, 3}, at::kLong));
  EXPECT_EQ(per_row.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DyLoraLinearTest, ShapeMismatchesAreErrorsNotCrashes) {
  Layer l = MakeLayer(10);
  at::Tensor x = at::randn({2, kIn + 1});
  EXPECT_FALSE(
      DyLoraForward(x, l.weight, l.bias, l.down, l.up, kAlpha, 2).ok());
  x = at::randn({2, kIn});
  EXPECT_FALSE(
      DyLoraForward(x, l.weight, l.bias, l.down.t(), l.up, kAlpha, 2).ok());
  EXPECT_FALSE(DyLoraForward(x, l.weight, l.bias, l.down, l.up.narrow(1, 0, 4),
                             kAlpha, 2)
                   .ok());
  EXPECT_FALSE(DyLoraForward(x, l.weight, l.bias, l.down, l.up, 0.0, 2).ok());
}

TEST(DyLoraLinearTest, InitIsSeededKaimingUniformAndZeroUp) {
  at::Generator g1 = at::detail::createCPUGenerator(42);
  at::Generator g2 = at::detail::createCPUGenerator(42);
  auto [d1, u1] = InitFactors(8, 400, 30, g1);
  auto [d2, u2] = InitFactors(8, 400, 30, g2);
  EXPECT_TRUE(at::equal(d1, d2));
  EXPECT_EQ(u1.abs().max().item<float>(), 0.0f);
  EXPECT_EQ(d1.sizes(), (std::vector<int64_t>{8, 400}));
  EXPECT_EQ(u1.sizes(), (std::vector<int64_t>{30, 8}));
  const double bound = 1.0 / std::sqrt(400.0);
  EXPECT_LE(d1.abs().max().item<double>(), bound);
  EXPECT_GT(d1.abs().max().item<double>(), 0.9 * bound);
  // U(-a, a) has variance a^2 / 3.
  EXPECT_NEAR(d1.var().item<double>(), bound * bound / 3,
              0.1 * bound * bound / 3);
}

TEST(DyLoraLinearTest, WorksUnderInferenceMode) {
  c10::InferenceMode guard;
  Layer l = MakeLayer(11);
  at::Tensor x = at::randn({2, 3, kIn});
  EXPECT_TRUE(DyLoraForward(x, l.weight, l.bias, l.down, l.up, kAlpha, 3).ok());
  EXPECT_TRUE(DyLoraForwardPerRow(x, l.weight, l.bias, l.down, l.up, kAlpha,
                                  at::tensor({3, 8}, at::kLong))
                  .ok());
}

TEST(UpdateModeTest, ParseRoundTrip) {
  EXPECT_EQ(*ParseUpdateMode("frozen"), UpdateMode::kFrozen);
  EXPECT_EQ(*ParseUpdateMode(UpdateModeName(UpdateMode::kFull)),
            UpdateMode::kFull);
  EXPECT_FALSE(ParseUpdateMode("partial").ok());
}

}  // namespace
}  // namespace dylora
