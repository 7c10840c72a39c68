#include "core/model/pooling.h"

#include <ATen/ATen.h>

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

}  // namespace
}  // namespace dylora
