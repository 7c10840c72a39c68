// Summaries of request latencies: mean and nearest-rank percentiles.
#pragma once

#include <cstdint>
#include <vector>

namespace dylora::client {

// The nearest-rank percentile of `sorted` (ascending): the smallest value
// with at least p% of the values at or below it. p in [0, 100]; 0 for an
// empty vector; p = 0 gives the minimum.
double NearestRankPercentile(const std::vector<double>& sorted, double p);

struct LatencySummary {
  int64_t count = 0;
  double mean = 0;
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
  double max = 0;
};

// All zeros for no latencies.
LatencySummary Summarize(std::vector<double> latencies);

}  // namespace dylora::client
