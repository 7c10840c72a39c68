// LinearHook views of a DyLoraAdapter: how the encoder runs with an adapter.
//   AdapterHook       serving/eval at one rank, or one rank per batch row;
//   TrainingHook      training at rank b honouring frozen/full updates;
//   MergedWeightsHook substitutes precomputed W0 + (alpha/b) up_b down_b.
// Linears the adapter does not target fall through to x W^T + b.
//
// Hooks borrow the adapter (it must outlive them) and are immutable after
// Create, so one hook may serve concurrent Apply calls.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "core/adapter/adapter.h"
#include "core/model/linear_hook.h"

namespace dylora {

class Encoder;

// The rank(s) a forward runs at: one rank for the whole batch, or an int64
// tensor [batch] with one rank per row (mixed ranks in one batch).
struct RankSpec {
  static RankSpec Single(int64_t rank) { return RankSpec{rank, at::Tensor()}; }
  static RankSpec PerRow(at::Tensor ranks) {
    return RankSpec{0, std::move(ranks)};
  }
  bool per_row() const { return row_ranks.defined(); }

  int64_t rank = 0;
  at::Tensor row_ranks;
};

class AdapterHook : public LinearHook {
 public:
  // Validates the rank(s) against the adapter's range. `base` computes the
  // frozen layers themselves (default: fp32 x W^T + b; int8 serving passes
  // the quantized backbone), the adapter's low-rank term is added in fp32.
  static absl::StatusOr<std::unique_ptr<AdapterHook>> Create(
      const DyLoraAdapter& adapter, RankSpec spec,
      std::shared_ptr<const LinearHook> base = nullptr);
  // Without the checks (and the device sync reading the per-row maximum):
  // the caller guarantees every rank is in the adapter's range and passes
  // the largest one as `max_rank` (the server's engine, whose ranks were
  // resolved on the host).
  static absl::StatusOr<std::unique_ptr<AdapterHook>> CreateUnchecked(
      const DyLoraAdapter& adapter, RankSpec spec, int64_t max_rank,
      std::shared_ptr<const LinearHook> base = nullptr);

  // For per-row ranks, x must be [batch, ..., in] with the spec's batch.
  // A 2-D x (the server's packed [tokens, in]) takes the fused path
  // (UncheckedAddLowRank).
  at::Tensor Apply(const LinearId& id, const at::Tensor& x,
                   const at::Tensor& weight,
                   const at::Tensor& bias) const override;
  // The base's fused query/key/value (one GEMM), each with the adapter's
  // low-rank term added in place; nullopt when the base has none or x is
  // not the packed [tokens, in].
  std::optional<std::array<at::Tensor, 3>> ApplyQueryKeyValue(
      int64_t layer, const at::Tensor& x) const override;

 private:
  // Adds the low-rank term of `factors` to y = base(x) (x: [tokens, in]).
  void AddLowRank(const LoraFactors& factors, at::Tensor& y,
                  const at::Tensor& x) const;
  AdapterHook(const DyLoraAdapter& adapter, RankSpec spec, int64_t width,
              std::shared_ptr<const LinearHook> base);
  const DyLoraAdapter& adapter_;
  const RankSpec spec_;
  const int64_t width_;  // largest rank in the batch
  // Per-row ranks as [batch, width] weights (alpha / rank, masked), built
  // once here instead of in every layer; undefined for a single rank.
  at::Tensor column_weights_;
  const std::shared_ptr<const LinearHook> base_;  // null: fp32 x W^T + b
};

class TrainingHook : public LinearHook {
 public:
  // `rank` must be in the adapter's range; `mode` defaults to the adapter's.
  static absl::StatusOr<std::unique_ptr<TrainingHook>> Create(
      const DyLoraAdapter& adapter, int64_t rank,
      std::optional<UpdateMode> mode = std::nullopt);

  at::Tensor Apply(const LinearId& id, const at::Tensor& x,
                   const at::Tensor& weight,
                   const at::Tensor& bias) const override;

 private:
  TrainingHook(const DyLoraAdapter& adapter, int64_t rank, UpdateMode mode)
      : adapter_(adapter), rank_(rank), mode_(mode) {}
  const DyLoraAdapter& adapter_;
  const int64_t rank_;
  const UpdateMode mode_;
};

// The merged weight of every adapted linear for serving rank `rank`, on the
// encoder's device and dtype (computed without autograd). Validates the
// adapter against the encoder and the rank against its range.
absl::StatusOr<std::vector<std::pair<LinearId, at::Tensor>>> MergedWeights(
    const DyLoraAdapter& adapter, const Encoder& encoder, int64_t rank);

// Owns the merged weights (shared storage: cheap to copy from a cache).
class MergedWeightsHook : public LinearHook {
 public:
  explicit MergedWeightsHook(
      std::vector<std::pair<LinearId, at::Tensor>> merged);

  at::Tensor Apply(const LinearId& id, const at::Tensor& x,
                   const at::Tensor& weight,
                   const at::Tensor& bias) const override;

 private:
  absl::flat_hash_map<int64_t, at::Tensor> merged_;
};

}  // namespace dylora
