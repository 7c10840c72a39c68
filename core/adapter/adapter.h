// DyLoraAdapter: the trainable part of a DyLoRA task model. Per adapted
// linear layer the factors down [r_max, in] (PEFT lora_A) and up [out, r_max]
// (PEFT lora_B), the shared alpha and rank range, training settings, the
// classification head's tensors (PEFT modules_to_save), the fingerprint of
// the backbone it was trained on, and per-rank evaluation results.
//
// Ownership and threads: an adapter owns its tensors (CPU float32 unless
// copied with To()). Once built it is safe for concurrent const use (forward
// hooks, merges, saving). The trainer mutates the tensors in place through
// TrainableParameters() and set_rank_metrics(); it must not share the adapter
// with readers while it does.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/adapter/dylora_linear.h"
#include "core/adapter/rank_sampler.h"
#include "core/io/model_config.h"
#include "core/model/heads.h"
#include "core/model/linear_hook.h"

namespace dylora {

class Encoder;

// "query" -> kQuery etc. (LinearKindName's inverse).
absl::StatusOr<LinearKind> ParseLinearKind(absl::string_view name);

// Everything about an adapter that is not a tensor.
struct AdapterConfig {
  double alpha = 16.0;
  int64_t r_min = 1;
  int64_t r_max = 8;
  UpdateMode update_mode = UpdateMode::kFrozen;
  RankDistribution rank_distribution = RankDistribution::Uniform();
  // Kinds adapted in every layer (PEFT target_modules).
  std::vector<LinearKind> target_kinds = {LinearKind::kQuery,
                                          LinearKind::kValue};
  // Decides the PEFT tensor-name prefix ("bert." or "roberta.").
  EncoderFamily family = EncoderFamily::kBert;
  std::string base_model_name_or_path;
  std::string base_model_fingerprint;  // empty: not checked on load
  std::string task_type = "SEQ_CLS";
  // The task head's kind (what it reads: the BERT pooler, a pooled sentence
  // embedding, ...). Absent in PEFT adapters and in adapters written before
  // it was recorded: the family's Hugging Face head (DefaultHeadKind).
  std::optional<HeadKind> head;

  HeadKind head_kind() const { return head.value_or(DefaultHeadKind(family)); }
};

// Held-out metric per rank, and the ranks a server may pick from it.
struct RankMetrics {
  std::string metric;  // "accuracy", "f1", "matthews", "pearson", ...
  bool higher_is_better = true;
  std::vector<std::pair<int64_t, double>> values;  // (rank, value), by rank
  // Recommendations (absent until computed or loaded).
  std::optional<int64_t> best_rank;
  std::optional<int64_t> smallest_rank_within_tolerance;
  double tolerance = 0.0;  // absolute metric units

  // Fills best_rank and smallest_rank_within_tolerance from `values`:
  // the best rank (lowest rank on ties) and the smallest rank whose value is
  // within `tolerance` of the best.
  void Recommend(double tolerance);
  bool empty() const { return values.empty(); }
};

struct LoraFactors {
  at::Tensor down;  // [r_max, in]
  at::Tensor up;    // [out, r_max]
};

class DyLoraAdapter {
 public:
  using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

  // A fresh adapter for `encoder`: every layer x config.target_kinds gets
  // kaiming-uniform down and zero up (seeded), shapes from the encoder's
  // linears. `head` holds the task head's tensors named as in the Hugging
  // Face task model ("classifier.weight", ...). Fingerprint and family are
  // taken from the encoder. Factors and head require grad.
  static absl::StatusOr<std::unique_ptr<DyLoraAdapter>> CreateFresh(
      const Encoder& encoder, AdapterConfig config, NamedTensors head,
      uint64_t seed);

  // Assembles an adapter from parts (the loader's path) and checks internal
  // consistency: alpha > 0, 1 <= r_min <= r_max, every factor pair shaped
  // [r_max, in] / [out, r_max] with one floating dtype, unique ids.
  static absl::StatusOr<std::unique_ptr<DyLoraAdapter>> FromParts(
      AdapterConfig config,
      std::vector<std::pair<LinearId, LoraFactors>> factors, NamedTensors head,
      RankMetrics metrics = {});

  DyLoraAdapter(const DyLoraAdapter&) = delete;
  DyLoraAdapter& operator=(const DyLoraAdapter&) = delete;

  // Checks this adapter fits `encoder`: the same family (INVALID_ARGUMENT),
  // fingerprints equal when both are known (FAILED_PRECONDITION naming both),
  // every adapted layer exists with matching [out, in], head matrices take
  // the encoder's hidden size.
  absl::Status ValidateAgainst(const Encoder& encoder) const;

  // A copy with every tensor on `device` in `dtype` (for GPU serving).
  absl::StatusOr<std::unique_ptr<DyLoraAdapter>> To(
      c10::Device device, c10::ScalarType dtype) const;

  const AdapterConfig& config() const { return config_; }
  const RankMetrics& rank_metrics() const { return metrics_; }
  void set_rank_metrics(RankMetrics metrics) { metrics_ = std::move(metrics); }
  // In layer-major execution order.
  const std::vector<std::pair<LinearId, LoraFactors>>& factors() const {
    return factors_;
  }
  // nullptr when `id` is not adapted.
  const LoraFactors* Find(const LinearId& id) const;
  const NamedTensors& head() const { return head_; }
  // nullptr when absent.
  const at::Tensor* FindHeadTensor(absl::string_view name) const;

  absl::Status ValidateRank(int64_t rank) const;

  // The classification head built from head() for `encoder` (kind from
  // config().head_kind(), num_labels from the output matrix), on the encoder's
  // device and dtype. INVALID_ARGUMENT when the head is absent or misshaped.
  // The head holds copies (ClassificationHead::FromTensors copies): for
  // training keep the ClassificationHead whose named_tensors() were given to
  // CreateFresh; the adapter shares those tensors.
  absl::StatusOr<ClassificationHead> BuildHead(const Encoder& encoder) const;

  // Factors (down, up per layer) then head tensors; the same storage the
  // adapter uses, for the optimizer.
  std::vector<at::Tensor> TrainableParameters() const;
  void SetRequiresGrad(bool requires_grad);

 private:
  DyLoraAdapter() = default;
  static int64_t Key(const LinearId& id) {
    return id.layer * 8 + static_cast<int64_t>(id.kind);
  }

  AdapterConfig config_;
  RankMetrics metrics_;
  std::vector<std::pair<LinearId, LoraFactors>> factors_;
  absl::flat_hash_map<int64_t, size_t> index_;  // Key(id) -> factors_ index
  NamedTensors head_;
};

}  // namespace dylora
