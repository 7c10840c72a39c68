#include "client/latency_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace dylora::client {

double NearestRankPercentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double clamped = std::clamp(p, 0.0, 100.0);
  // Rank ceil(p/100 * n), 1-based; the small epsilon keeps 0.9 * 100 from
  // rounding up to rank 91 through floating-point error.
  const double exact = clamped / 100.0 * static_cast<double>(sorted.size());
  int64_t rank = static_cast<int64_t>(std::ceil(exact - 1e-9));
  rank = std::clamp<int64_t>(rank, 1, static_cast<int64_t>(sorted.size()));
  return sorted[rank - 1];
}

LatencySummary Summarize(std::vector<double> latencies) {
  LatencySummary summary;
  if (latencies.empty()) return summary;
  std::sort(latencies.begin(), latencies.end());
  summary.count = static_cast<int64_t>(latencies.size());
  summary.mean = std::accumulate(latencies.begin(), latencies.end(), 0.0) /
                 static_cast<double>(latencies.size());
  summary.p50 = NearestRankPercentile(latencies, 50);
  summary.p90 = NearestRankPercentile(latencies, 90);
  summary.p99 = NearestRankPercentile(latencies, 99);
  summary.max = latencies.back();
  return summary;
}

}  // namespace dylora::client
