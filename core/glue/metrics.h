// GLUE metrics over plain vectors: accuracy, binary F1 (positive class 1),
// Matthews correlation, Pearson and Spearman (average ranks for ties).
// Degenerate inputs (constant predictions, zero variance) give 0 for the
// correlations, as scikit-learn does for MCC; lengths must match.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/glue/glue.h"

namespace dylora {

absl::StatusOr<double> Accuracy(const std::vector<int64_t>& predictions,
                                const std::vector<int64_t>& labels);
absl::StatusOr<double> BinaryF1(const std::vector<int64_t>& predictions,
                                const std::vector<int64_t>& labels);
absl::StatusOr<double> MatthewsCorrelation(
    const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels);
absl::StatusOr<double> PearsonCorrelation(const std::vector<double>& x,
                                          const std::vector<double>& y);
absl::StatusOr<double> SpearmanCorrelation(const std::vector<double>& x,
                                           const std::vector<double>& y);

// A task's metric from model outputs: class predictions (classification) or
// scores (regression, `predicted_scores`), against the dataset's labels.
absl::StatusOr<double> ComputeGlueMetric(GlueMetric metric,
                                         const std::vector<double>& predicted,
                                         const std::vector<double>& labels);

}  // namespace dylora
