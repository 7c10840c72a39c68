// The search-free rank table: one trained adapter evaluated at every rank
// r_min..r_max on a labelled set, in one call.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/adapter/adapter.h"
#include "core/model/encoder.h"
#include "core/model/heads.h"
#include "trainer/data/batches.h"

namespace dylora {

struct RankEvalOptions {
  int64_t batch_size = 64;
  int64_t r_min = 1;   // ranks to evaluate (clamped to the adapter's range
  int64_t r_max = 8;   // by the caller; out-of-range ranks are errors)
  double tolerance = 0.01;  // for the "smallest within tolerance" rank
};

// Predictions of `head` on `data` with the encoder's linears going through
// `hook` (nullptr: the plain encoder), under inference mode: classes, or
// scores for regression.
absl::StatusOr<std::vector<double>> Predict(const Encoder& encoder,
                                            const LinearHook* hook,
                                            const ClassificationHead& head,
                                            const TokenizedDataset& data,
                                            int64_t batch_size);

// Labels of `data` as the metrics take them.
std::vector<double> Labels(const TokenizedDataset& data);

// Predictions of `head` on `data` at one rank (classes, or scores for
// regression), under inference mode.
absl::StatusOr<std::vector<double>> PredictAtRank(const Encoder& encoder,
                                                  const DyLoraAdapter& adapter,
                                                  const ClassificationHead& head,
                                                  const TokenizedDataset& data,
                                                  int64_t rank,
                                                  int64_t batch_size);

// Every rank's value of the task's primary metric (and the recommendations).
// `extra` receives every metric of the task per rank when not null.
absl::StatusOr<RankMetrics> EvaluateRanks(
    const Encoder& encoder, const DyLoraAdapter& adapter,
    const ClassificationHead& head, const TokenizedDataset& data,
    const RankEvalOptions& options,
    std::vector<std::vector<std::pair<std::string, double>>>* extra = nullptr);

}  // namespace dylora
