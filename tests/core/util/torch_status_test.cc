#include "core/util/torch_status.h"

#include <ATen/ATen.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dylora {
namespace {

using ::testing::HasSubstr;

TEST(TorchStatusTest, ShapeMismatchBecomesStatusNotCrash) {
  auto result = CallTorch("matmul", [] {
    return at::matmul(at::ones({2, 3}), at::ones({4, 5}));
  });
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("matmul: "));
}

TEST(TorchStatusTest, ValueIsPassedThrough) {
  auto result = CallTorch("sum", [] { return at::ones({3}).sum().item<float>(); });
  ASSERT_TRUE(result.ok());
  EXPECT_FLOAT_EQ(*result, 3.0f);
}

TEST(TorchStatusTest, VoidCallsReturnStatus) {
  EXPECT_TRUE(CallTorch("noop", [] {}).ok());
  absl::Status status =
      CallTorch("throw", [] { throw std::runtime_error("boom"); });
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(status.message()), HasSubstr("boom"));
}

}  // namespace
}  // namespace dylora
