#include "trainer/training/adamw.h"

#include <ATen/ATen.h>

#include <cmath>

#include "gtest/gtest.h"

namespace dylora {
namespace {

// torch.optim.AdamW's update written out on scalars, independently of the
// tensor code under test.
struct ScalarAdamW {
  double p, m = 0, v = 0;
  int t = 0;
  void Step(double g, double lr, double wd) {
    ++t;
    p *= 1 - lr * wd;
    m = 0.9 * m + 0.1 * g;
    v = 0.999 * v + 0.001 * g * g;
    const double m_hat = m / (1 - std::pow(0.9, t));
    const double denom =
        std::sqrt(v) / std::sqrt(1 - std::pow(0.999, t)) + 1e-8;
    p -= lr * m_hat / denom;
  }
};

TEST(AdamWTest, MatchesTheAdamWFormulaOverSeveralSteps) {
  at::Tensor w = at::tensor({0.5, -1.0, 2.0}, at::kDouble).requires_grad_(true);
  AdamW optimizer({ParamSlot{w, -1, 0, /*weight_decay=*/0.1}});
  std::vector<ScalarAdamW> reference = {{0.5}, {-1.0}, {2.0}};
  const std::vector<std::vector<double>> grads = {
      {0.1, -0.2, 0.3}, {0.05, 0.4, -0.1}, {-0.3, 0.0, 0.2}};
  for (const auto& g : grads) {
    w.mutable_grad() = at::tensor(g, at::kDouble);
    optimizer.Step(1e-2);
    optimizer.ZeroGrad();
    for (size_t i = 0; i < 3; ++i) reference[i].Step(g[i], 1e-2, 0.1);
  }
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(w[i].item<double>(), reference[i].p, 1e-12) << i;
  }
}

TEST(AdamWTest, InactiveSlotsAndSlotsWithoutGradientStayBitIdentical) {
  at::Tensor down = at::randn({4, 3}).requires_grad_(true);
  std::vector<ParamSlot> slots;
  for (int64_t r = 0; r < 4; ++r) slots.push_back({down, 0, r, 0.1});
  AdamW optimizer(slots);
  at::Tensor before = down.detach().clone();
  down.mutable_grad() = at::ones({4, 3});
  optimizer.Step(0.1, {0, 0, 1, 0});
  for (int64_t r = 0; r < 4; ++r) {
    EXPECT_EQ(at::equal(down[r], before[r]), r != 2) << "row " << r;
  }
}

TEST(AdamWTest, AStepScaleMultipliesThatSlotsLearningRate) {
  // Adam's first step moves each element by lr (the moments normalise the
  // gradient away), so a slot scaled by 0.25 moves a quarter as far.
  at::Tensor w = at::zeros({2, 3}).requires_grad_(true);
  AdamW optimizer({ParamSlot{w, 0, 0}, ParamSlot{w, 0, 1}});
  w.mutable_grad() = at::ones({2, 3});
  optimizer.Step(0.1, {1.0, 0.25});
  EXPECT_NEAR(w[0][0].item<double>(), -0.1, 1e-6);
  EXPECT_NEAR(w[1][0].item<double>(), -0.025, 1e-6);
}

TEST(AdamWTest, StateRoundTripsAndRejectsForeignState) {
  at::Tensor w = at::randn({2, 2}).requires_grad_(true);
  AdamW a({ParamSlot{w}});
  w.mutable_grad() = at::ones({2, 2});
  a.Step(0.1);
  AdamW b({ParamSlot{w}});
  ASSERT_TRUE(b.RestoreState(a.StateTensors()).ok());
  for (size_t i = 0; i < a.StateTensors().size(); ++i) {
    EXPECT_TRUE(
        at::equal(a.StateTensors()[i].second, b.StateTensors()[i].second));
  }
  at::Tensor other = at::randn({3}).requires_grad_(true);
  AdamW c({ParamSlot{other}});
  EXPECT_FALSE(c.RestoreState(a.StateTensors()).ok());
}

TEST(AdamWTest, ClipGradNormScalesToTheLimit) {
  at::Tensor w = at::zeros({2}).requires_grad_(true);
  w.mutable_grad() = at::tensor({3.0f, 4.0f});
  EXPECT_NEAR(ClipGradNorm({w}, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(w.grad().norm().item<double>(), 1.0, 1e-5);
}

TEST(AdamWTest, LinearWarmupThenDecay) {
  EXPECT_DOUBLE_EQ(LinearWarmupDecay(1.0, 0, 10, 110), 0.0);
  EXPECT_DOUBLE_EQ(LinearWarmupDecay(1.0, 5, 10, 110), 0.5);
  EXPECT_DOUBLE_EQ(LinearWarmupDecay(1.0, 10, 10, 110), 1.0);
  EXPECT_DOUBLE_EQ(LinearWarmupDecay(1.0, 60, 10, 110), 0.5);
  EXPECT_DOUBLE_EQ(LinearWarmupDecay(1.0, 110, 10, 110), 0.0);
}

}  // namespace
}  // namespace dylora
