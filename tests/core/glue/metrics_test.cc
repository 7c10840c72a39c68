#include "core/glue/metrics.h"

#include "gtest/gtest.h"

namespace dylora {
namespace {

// Expected values worked out by hand (confusion counts / rank sums below).
TEST(MetricsTest, ClassificationMetricsOnAKnownConfusion) {
  // tp=2 tn=1 fp=1 fn=1
  const std::vector<int64_t> predictions = {1, 1, 0, 0, 1};
  const std::vector<int64_t> labels = {1, 0, 0, 1, 1};
  EXPECT_DOUBLE_EQ(*Accuracy(predictions, labels), 3.0 / 5.0);
  EXPECT_DOUBLE_EQ(*BinaryF1(predictions, labels), 4.0 / 6.0);
  EXPECT_NEAR(*MatthewsCorrelation(predictions, labels), 1.0 / 6.0, 1e-12);
}

TEST(MetricsTest, MatthewsIsZeroForConstantPredictionsAndOneWhenPerfect) {
  EXPECT_DOUBLE_EQ(*MatthewsCorrelation({1, 1, 1, 1}, {1, 0, 1, 0}), 0.0);
  EXPECT_DOUBLE_EQ(*MatthewsCorrelation({1, 0, 1, 0}, {1, 0, 1, 0}), 1.0);
  EXPECT_DOUBLE_EQ(*MatthewsCorrelation({0, 1, 0, 1}, {1, 0, 1, 0}), -1.0);
}

TEST(MetricsTest, PearsonAndSpearmanWithTies) {
  EXPECT_NEAR(*PearsonCorrelation({1, 2, 3, 4}, {2, 4, 5, 9}),
              11.0 / std::sqrt(130.0), 1e-12);
  // x ranks with the tie averaged: 1, 2.5, 2.5, 4.
  EXPECT_NEAR(*SpearmanCorrelation({1, 2, 2, 3}, {1, 3, 2, 4}),
              4.5 / std::sqrt(22.5), 1e-12);
  EXPECT_DOUBLE_EQ(*PearsonCorrelation({1, 1, 1}, {1, 2, 3}), 0.0);
}

TEST(MetricsTest, MismatchedOrEmptyInputsAreErrors) {
  EXPECT_FALSE(Accuracy({1, 0}, {1}).ok());
  EXPECT_FALSE(PearsonCorrelation({}, {}).ok());
}

TEST(MetricsTest, GlueMetricDispatchRoundsClassPredictions) {
  EXPECT_DOUBLE_EQ(
      *ComputeGlueMetric(GlueMetric::kAccuracy, {1, 0, 1}, {1, 1, 1}),
      2.0 / 3.0);
  EXPECT_NEAR(*ComputeGlueMetric(GlueMetric::kPearson, {1, 2, 3, 4},
                                 {2, 4, 5, 9}),
              11.0 / std::sqrt(130.0), 1e-12);
}

}  // namespace
}  // namespace dylora
