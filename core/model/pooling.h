// Sentence embeddings from an encoder's last hidden state.
// Pure functions; thread-safe.
#pragma once

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace dylora {

// The first token's vector (BERT's [CLS], RoBERTa's <s>): [B, S, H] -> [B, H].
absl::StatusOr<at::Tensor> ClsPool(const at::Tensor& last_hidden_state);

// The mean over positions whose attention_mask is 1, as sentence-transformers
// does it (sum(h * m) / max(sum(m), 1e-9)): [B, S, H] and [B, S] -> [B, H].
// A row whose mask is all zeros pools to zeros.
absl::StatusOr<at::Tensor> MeanPool(const at::Tensor& last_hidden_state,
                                    const at::Tensor& attention_mask);

}  // namespace dylora
