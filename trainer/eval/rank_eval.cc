#include "trainer/eval/rank_eval.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/adapter/adapter_hooks.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "core/glue/metrics.h"

namespace dylora {

std::vector<double> Labels(const TokenizedDataset& data) {
  std::vector<double> labels;
  labels.reserve(data.examples.size());
  for (const TokenizedExample& e : data.examples) labels.push_back(e.label);
  return labels;
}

absl::StatusOr<std::vector<double>> PredictAtRank(
    const Encoder& encoder, const DyLoraAdapter& adapter,
    const ClassificationHead& head, const TokenizedDataset& data, int64_t rank,
    int64_t batch_size) {
  DYLORA_ASSIGN_OR_RETURN(auto hook,
                          AdapterHook::Create(adapter, RankSpec::Single(rank)));
  return Predict(encoder, hook.get(), head, data, batch_size);
}

absl::StatusOr<std::vector<double>> Predict(const Encoder& encoder,
                                            const LinearHook* hook,
                                            const ClassificationHead& head,
                                            const TokenizedDataset& data,
                                            int64_t batch_size) {
  if (batch_size <= 0) return absl::InvalidArgumentError("batch size <= 0");
  c10::InferenceMode inference;
  // Batches of similar lengths pad little (evaluation is 2-3x faster on
  // GLUE dev sets); predictions go back to the data's order.
  std::vector<size_t> by_length(data.examples.size());
  std::iota(by_length.begin(), by_length.end(), 0);
  std::stable_sort(by_length.begin(), by_length.end(), [&](size_t a, size_t b) {
    return data.examples[a].ids.size() < data.examples[b].ids.size();
  });
  std::vector<double> predictions(data.examples.size());
  for (size_t start = 0; start < by_length.size(); start += batch_size) {
    const size_t end =
        std::min(by_length.size(), start + static_cast<size_t>(batch_size));
    const absl::Span<const size_t> indices(by_length.data() + start,
                                           end - start);
    Batch batch = MakeBatch(data, indices);
    DYLORA_ASSIGN_OR_RETURN(EncoderOutputs outputs,
                            encoder.Forward(batch.inputs, hook));
    DYLORA_ASSIGN_OR_RETURN(at::Tensor logits, head.Forward(outputs));
    at::Tensor values = data.spec.regression
                            ? logits.squeeze(-1).to(at::kDouble)
                            : logits.argmax(-1).to(at::kDouble);
    values = values.contiguous().cpu();
    const double* p = values.data_ptr<double>();
    for (size_t i = 0; i < indices.size(); ++i) predictions[indices[i]] = p[i];
  }
  return predictions;
}

absl::StatusOr<RankMetrics> EvaluateRanks(
    const Encoder& encoder, const DyLoraAdapter& adapter,
    const ClassificationHead& head, const TokenizedDataset& data,
    const RankEvalOptions& options,
    std::vector<std::vector<std::pair<std::string, double>>>* extra) {
  if (options.r_min < 1 || options.r_max < options.r_min) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad rank range [", options.r_min, ", ", options.r_max, "]"));
  }
  const std::vector<double> labels = Labels(data);
  RankMetrics table;
  table.metric = std::string(GlueMetricName(data.spec.metrics.front()));
  table.higher_is_better = true;  // every GLUE metric
  if (extra) extra->clear();
  for (int64_t rank = options.r_min; rank <= options.r_max; ++rank) {
    DYLORA_ASSIGN_OR_RETURN(
        std::vector<double> predictions,
        PredictAtRank(encoder, adapter, head, data, rank, options.batch_size));
    std::vector<std::pair<std::string, double>> all;
    for (GlueMetric metric : data.spec.metrics) {
      DYLORA_ASSIGN_OR_RETURN(double value,
                              ComputeGlueMetric(metric, predictions, labels));
      all.emplace_back(std::string(GlueMetricName(metric)), value);
    }
    table.values.emplace_back(rank, all.front().second);
    if (extra) extra->push_back(std::move(all));
  }
  table.Recommend(options.tolerance);
  return table;
}

}  // namespace dylora
