#include "core/model/pooling.h"

#include <ATen/ATen.h>

#include <cmath>

#include "gtest/gtest.h"

namespace dylora {
namespace {

TEST(PoolingTest, ClsTakesTokenZero) {
  at::Tensor h = at::arange(12, at::kFloat).view({2, 3, 2});
  auto cls = ClsPool(h);
  ASSERT_TRUE(cls.ok()) << cls.status();
  EXPECT_TRUE(
      at::equal(*cls, at::tensor({0.0f, 1.0f, 6.0f, 7.0f}).view({2, 2})));
  EXPECT_FALSE(ClsPool(at::zeros({2, 3})).ok());
  EXPECT_FALSE(ClsPool(at::zeros({2, 0, 4})).ok());
  EXPECT_FALSE(ClsPool(at::Tensor()).ok());
}

TEST(PoolingTest, MeanIgnoresPaddedPositions) {
  at::Tensor h = at::arange(12, at::kFloat).view({2, 3, 2});
  at::Tensor mask = at::tensor({1, 1, 0, 0, 0, 0}, at::kLong).view({2, 3});
  auto mean = MeanPool(h, mask);
  ASSERT_TRUE(mean.ok()) << mean.status();
  // Row 0: mean of [0,1] and [2,3]; row 1: fully masked -> zeros.
  EXPECT_TRUE(
      at::allclose(*mean, at::tensor({1.0f, 2.0f, 0.0f, 0.0f}).view({2, 2})));
  EXPECT_TRUE(
      at::allclose(*MeanPool(h, at::ones({2, 3}, at::kBool)), h.mean(1)));
}

TEST(PoolingTest, MeanRejectsMismatchedMask) {
  at::Tensor h = at::zeros({2, 3, 2});
  auto mean = MeanPool(h, at::ones({2, 4}));
  ASSERT_FALSE(mean.ok());
  EXPECT_EQ(mean.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(MeanPool(h, at::Tensor()).ok());
}

TEST(PoolingTest, MaxAndMeanSqrtLenIgnorePaddedPositions) {
  // Row 0: tokens [0,1], [2,3] real, [4,5] padded (and larger).
  at::Tensor h = at::arange(12, at::kFloat).view({2, 3, 2});
  at::Tensor mask = at::tensor({1, 1, 0, 1, 1, 1}, at::kLong).view({2, 3});
  auto max = Pool(PoolingMode::kMax, h, mask);
  ASSERT_TRUE(max.ok()) << max.status();
  EXPECT_TRUE(
      at::equal(*max, at::tensor({2.0f, 3.0f, 10.0f, 11.0f}).view({2, 2})));
  auto sqrt_len = Pool(PoolingMode::kMeanSqrtLen, h, mask);
  ASSERT_TRUE(sqrt_len.ok()) << sqrt_len.status();
  const float r2 = std::sqrt(2.0f), r3 = std::sqrt(3.0f);
  EXPECT_TRUE(at::allclose(
      *sqrt_len,
      at::tensor({2.0f / r2, 4.0f / r2, 24.0f / r3, 27.0f / r3}).view({2, 2})));
  EXPECT_FALSE(Pool(PoolingMode::kMax, h, at::Tensor()).ok());
}

TEST(PoolingTest, ModeNamesRoundTrip) {
  for (PoolingMode mode : {PoolingMode::kCls, PoolingMode::kMean,
                           PoolingMode::kMax, PoolingMode::kMeanSqrtLen}) {
    auto parsed = ParsePoolingMode(PoolingModeName(mode));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, mode);
  }
  EXPECT_FALSE(ParsePoolingMode("weightedmean").ok());
}

}  // namespace
}  // namespace dylora
