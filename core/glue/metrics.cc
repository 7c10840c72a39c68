#include "core/glue/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace dylora {
namespace {

template <typename T>
absl::Status CheckSizes(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metric inputs differ in length: ", a.size(), " vs ", b.size()));
  }
  if (a.empty()) return absl::InvalidArgumentError("metric of no examples");
  return absl::OkStatus();
}

struct Confusion {
  double tp = 0, tn = 0, fp = 0, fn = 0;
};

Confusion Count(const std::vector<int64_t>& predictions,
                const std::vector<int64_t>& labels) {
  Confusion c;
  for (size_t i = 0; i < labels.size(); ++i) {
    const bool p = predictions[i] == 1, l = labels[i] == 1;
    if (p && l) ++c.tp;
    if (!p && !l) ++c.tn;
    if (p && !l) ++c.fp;
    if (!p && l) ++c.fn;
  }
  return c;
}

// Ranks 1..n with ties sharing their average rank.
std::vector<double> AverageRanks(const std::vector<double>& values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && values[order[j + 1]] == values[order[i]]) ++j;
    const double rank = (static_cast<double>(i + j) / 2.0) + 1.0;
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

}  // namespace

absl::StatusOr<double> Accuracy(const std::vector<int64_t>& predictions,
                                const std::vector<int64_t>& labels) {
  if (auto s = CheckSizes(predictions, labels); !s.ok()) return s;
  size_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) correct += predictions[i] == labels[i];
  return static_cast<double>(correct) / labels.size();
}

absl::StatusOr<double> BinaryF1(const std::vector<int64_t>& predictions,
                                const std::vector<int64_t>& labels) {
  if (auto s = CheckSizes(predictions, labels); !s.ok()) return s;
  const Confusion c = Count(predictions, labels);
  const double denominator = 2 * c.tp + c.fp + c.fn;
  return denominator == 0 ? 0.0 : 2 * c.tp / denominator;
}

absl::StatusOr<double> MatthewsCorrelation(
    const std::vector<int64_t>& predictions,
    const std::vector<int64_t>& labels) {
  if (auto s = CheckSizes(predictions, labels); !s.ok()) return s;
  const Confusion c = Count(predictions, labels);
  const double denominator = std::sqrt((c.tp + c.fp) * (c.tp + c.fn) *
                                       (c.tn + c.fp) * (c.tn + c.fn));
  return denominator == 0 ? 0.0 : (c.tp * c.tn - c.fp * c.fn) / denominator;
}

absl::StatusOr<double> PearsonCorrelation(const std::vector<double>& x,
                                          const std::vector<double>& y) {
  if (auto s = CheckSizes(x, y); !s.ok()) return s;
  const double n = static_cast<double>(x.size());
  const double mean_x = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double mean_y = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double dx = x[i] - mean_x, dy = y[i] - mean_y;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx == 0 || syy == 0) return 0.0;
  return sxy / std::sqrt(sxx * syy);
}

absl::StatusOr<double> SpearmanCorrelation(const std::vector<double>& x,
                                           const std::vector<double>& y) {
  if (auto s = CheckSizes(x, y); !s.ok()) return s;
  return PearsonCorrelation(AverageRanks(x), AverageRanks(y));
}

absl::StatusOr<double> ComputeGlueMetric(GlueMetric metric,
                                         const std::vector<double>& predicted,
                                         const std::vector<double>& labels) {
  auto as_classes = [](const std::vector<double>& v) {
    std::vector<int64_t> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = std::llround(v[i]);
    return out;
  };
  switch (metric) {
    case GlueMetric::kAccuracy:
      return Accuracy(as_classes(predicted), as_classes(labels));
    case GlueMetric::kF1:
      return BinaryF1(as_classes(predicted), as_classes(labels));
    case GlueMetric::kMatthews:
      return MatthewsCorrelation(as_classes(predicted), as_classes(labels));
    case GlueMetric::kPearson:
      return PearsonCorrelation(predicted, labels);
    case GlueMetric::kSpearman:
      return SpearmanCorrelation(predicted, labels);
  }
  return absl::InvalidArgumentError("unknown metric");
}

}  // namespace dylora
