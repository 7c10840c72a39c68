// Nearest-rank percentiles of request latencies.
#include "client/latency_stats.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "gtest/gtest.h"

namespace dylora::client {
namespace {

TEST(LatencyStatsTest, NearestRankOnOneToHundred) {
  std::vector<double> values(100);
  std::iota(values.begin(), values.end(), 1.0);
  EXPECT_EQ(NearestRankPercentile(values, 50), 50);
  EXPECT_EQ(NearestRankPercentile(values, 90), 90);
  EXPECT_EQ(NearestRankPercentile(values, 99), 99);
  EXPECT_EQ(NearestRankPercentile(values, 100), 100);
  EXPECT_EQ(NearestRankPercentile(values, 0), 1);
  EXPECT_EQ(NearestRankPercentile(values, 99.5), 100);
}

TEST(LatencyStatsTest, NearestRankOnSmallSamples) {
  EXPECT_EQ(NearestRankPercentile({}, 50), 0);
  EXPECT_EQ(NearestRankPercentile({7}, 99), 7);
  // n = 10: p50 is the 5th value, p90 the 9th, p99 the 10th.
  std::vector<double> ten = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(NearestRankPercentile(ten, 50), 5);
  EXPECT_EQ(NearestRankPercentile(ten, 90), 9);
  EXPECT_EQ(NearestRankPercentile(ten, 99), 10);
  EXPECT_EQ(NearestRankPercentile(ten, 91), 10);
}

TEST(LatencyStatsTest, SummarizeSortsAndAverages) {
  std::vector<double> values(200);
  std::iota(values.begin(), values.end(), 1.0);
  std::shuffle(values.begin(), values.end(), std::mt19937(3));
  const LatencySummary summary = Summarize(values);
  EXPECT_EQ(summary.count, 200);
  EXPECT_DOUBLE_EQ(summary.mean, 100.5);
  EXPECT_EQ(summary.p50, 100);
  EXPECT_EQ(summary.p90, 180);
  EXPECT_EQ(summary.p99, 198);
  EXPECT_EQ(summary.max, 200);
}

TEST(LatencyStatsTest, EmptySummaryIsZero) {
  const LatencySummary summary = Summarize({});
  EXPECT_EQ(summary.count, 0);
  EXPECT_EQ(summary.mean, 0);
  EXPECT_EQ(summary.p99, 0);
  EXPECT_EQ(summary.max, 0);
}

}  // namespace
}  // namespace dylora::client
