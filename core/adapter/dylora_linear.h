// The DyLoRA math on plain tensors (spec: /work/shared/dylora-spec.md).
//
// One adapted linear has the frozen weight W0 [out, in] (+ bias [out]) and two
// factors laid out as PEFT stores them:
//   down = Wdw = lora_A.weight  [r_max, in]
//   up   = Wup = lora_B.weight  [out, r_max]
// At rank b the layer computes
//   y = x W0^T + bias + (alpha / b) * (x down[:b]^T) up[:, :b]^T.
//
// The Unchecked* functions assume validated inputs (shapes, rank range) and
// may throw c10::Error; callers run them inside CallTorch or after validation
// (the adapter hooks validate once when they are built). The other functions
// validate and return absl::Status. All functions are pure and thread-safe;
// none of them modifies its inputs.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dylora {

// How gradients reach the factors during training at rank b.
enum class UpdateMode {
  // Only row b-1 of down and column b-1 of up (0-indexed) learn; lower rows
  // and columns take part in the forward detached (paper eq. 10).
  kFrozen,
  // All of down[:b] and up[:, :b] learn.
  kFull,
};

absl::string_view UpdateModeName(UpdateMode mode);  // "frozen" | "full"
absl::StatusOr<UpdateMode> ParseUpdateMode(absl::string_view name);

// INVALID_ARGUMENT "rank 9 is outside this adapter's range [1, 8]" unless
// r_min <= rank <= r_max.
absl::Status ValidateRank(int64_t rank, int64_t r_min, int64_t r_max);

// Checks down [r, in] / up [out, r] against a linear of shape [out, in]
// (floating point, same dtype). `what` names the layer in messages.
absl::Status ValidateFactors(const at::Tensor& down, const at::Tensor& up,
                             int64_t out_features, int64_t in_features,
                             absl::string_view what);

// (alpha / b) * (x down[:b]^T) up[:, :b]^T, shape [..., out].
at::Tensor UncheckedLowRankDelta(const at::Tensor& x, const at::Tensor& down,
                                 const at::Tensor& up, double alpha,
                                 int64_t rank);

// The low-rank update with one rank per batch row, in one call: x is
// [B, ..., in], ranks is int64 [B]. Row i uses the first ranks[i] columns of
// the low-rank activations, scaled by alpha / ranks[i]. Only the columns up
// to the largest rank in the batch (`width`, computed when -1) are used.
at::Tensor UncheckedLowRankDeltaPerRow(const at::Tensor& x,
                                       const at::Tensor& down,
                                       const at::Tensor& up, double alpha,
                                       const at::Tensor& ranks,
                                       int64_t width = -1);

// The per-row weights of UncheckedLowRankDeltaPerRow as a matrix [B, width]:
// alpha / ranks[i] on row i's first ranks[i] columns, 0 beyond. Built once
// per batch by a serving hook, not once per layer.
at::Tensor UncheckedRankColumnWeights(const at::Tensor& ranks, int64_t width,
                                      double alpha,
                                      const at::TensorOptions& options);

// The serving form, fused: y [T, out] += low-rank term of x [T, in], in
// place, with two GEMMs and no temporaries beyond the [T, width] activations.
// `column_weights` [T, width] (UncheckedRankColumnWeights) gives each row its
// rank; undefined, every row uses rank `width` scaled by alpha / width.
void UncheckedAddLowRank(at::Tensor& y, const at::Tensor& x,
                         const at::Tensor& down, const at::Tensor& up,
                         double alpha, int64_t width,
                         const at::Tensor& column_weights);

// The factors truncated to rank b as the training forward uses them: in
// kFrozen mode the first b-1 rows/columns are detached, so only the last one
// receives gradients; in kFull mode all b do. Rows/columns above b are unused.
std::pair<at::Tensor, at::Tensor> UncheckedTrainingFactors(
    const at::Tensor& down, const at::Tensor& up, int64_t rank,
    UpdateMode mode);

// x W0^T + bias + delta for a single rank (training uses the factors from
// UncheckedTrainingFactors with rank = their width).
at::Tensor UncheckedForward(const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, const at::Tensor& down,
                            const at::Tensor& up, double alpha, int64_t rank);

// W0 + (alpha / b) up[:, :b] down[:b]: valid only for serving rank b.
at::Tensor UncheckedMergedWeight(const at::Tensor& weight,
                                 const at::Tensor& down, const at::Tensor& up,
                                 double alpha, int64_t rank);

// Validating forms of the above. `bias` may be undefined.
absl::StatusOr<at::Tensor> DyLoraForward(
    const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
    const at::Tensor& down, const at::Tensor& up, double alpha, int64_t rank);
absl::StatusOr<at::Tensor> DyLoraForwardPerRow(
    const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
    const at::Tensor& down, const at::Tensor& up, double alpha,
    const at::Tensor& ranks);
absl::StatusOr<at::Tensor> DyLoraMergedWeight(const at::Tensor& weight,
                                              const at::Tensor& down,
                                              const at::Tensor& up,
                                              double alpha, int64_t rank);
// Checks a per-row rank tensor: int64, 1-D, every value in [r_min, r_max].
absl::Status ValidateRowRanks(const at::Tensor& ranks, int64_t r_min,
                              int64_t r_max);

// Fresh factors as LoRA initialises them: down ~ kaiming_uniform(a=sqrt(5))
// (= U(-1/sqrt(in), 1/sqrt(in)), like torch.nn.Linear), up = 0. float32 CPU.
std::pair<at::Tensor, at::Tensor> InitFactors(int64_t r_max,
                                              int64_t in_features,
                                              int64_t out_features,
                                              at::Generator& generator);

}  // namespace dylora
