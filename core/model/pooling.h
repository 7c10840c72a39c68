// Sentence embeddings from an encoder's last hidden state, in the modes of
// sentence-transformers' Pooling module. Pure functions; thread-safe.
#pragma once

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dylora {

enum class PoolingMode {
  kCls,          // the first token's vector (BERT's [CLS], RoBERTa's <s>)
  kMean,         // mean over real tokens
  kMax,          // per-dimension max over real tokens
  kMeanSqrtLen,  // sum over real tokens / sqrt(number of real tokens)
};

// "cls", "mean", "max", "mean_sqrt_len" (sentence-transformers' names
// without the "pooling_mode_" prefix and "_tokens"/"_token" suffix).
absl::string_view PoolingModeName(PoolingMode mode);
absl::StatusOr<PoolingMode> ParsePoolingMode(absl::string_view name);

// [B, S, H] and attention_mask [B, S] (1 = real token) -> [B, H], as
// sentence-transformers computes it: mean divides by max(count, 1e-9), max
// sets padded positions to -1e9 first. A row whose mask is all zeros pools to
// zeros (mean, mean_sqrt_len) or -1e9 (max).
absl::StatusOr<at::Tensor> Pool(PoolingMode mode,
                                const at::Tensor& last_hidden_state,
                                const at::Tensor& attention_mask);

// Shorthands for Pool(kCls, ...) (no mask needed) and Pool(kMean, ...).
absl::StatusOr<at::Tensor> ClsPool(const at::Tensor& last_hidden_state);
absl::StatusOr<at::Tensor> MeanPool(const at::Tensor& last_hidden_state,
                                    const at::Tensor& attention_mask);

}  // namespace dylora
