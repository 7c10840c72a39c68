// Padding-free batches: every row's real tokens back to back, [tokens]
// instead of [rows, longest]. The encoder runs embeddings, every linear
// (with an adapter's low-rank path), LayerNorm and the FFN on
// [tokens, hidden]; only attention sees the padded [rows, longest] layout,
// and its cost is a few percent of a small model's (S / 6H of the linears).
//
// PackRows builds one on the host from token ids the caller validated (the
// server's engine: ids < vocab_size, types < type_vocab_size, lengths within
// the position table), numbering positions as Hugging Face does.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "core/io/model_config.h"

namespace dylora {

struct PackedRow {
  absl::Span<const int32_t> ids;
  absl::Span<const int32_t> type_ids;  // same length as ids
};

struct PackedInputs {
  at::Tensor input_ids;       // [tokens] int64
  at::Tensor token_type_ids;  // [tokens] int64
  at::Tensor position_ids;    // [tokens] int64
  // [tokens] int64: where each token sits in the padded [rows * longest]
  // layout (row * longest + position in its row).
  at::Tensor padded_index;
  // [rows, longest] int64, 1 on real tokens; undefined when every row is
  // as long as the longest (then the packed layout IS the padded one).
  at::Tensor attention_mask;
  int64_t rows = 0;
  int64_t longest = 0;
  int64_t tokens() const { return input_ids.defined() ? input_ids.size(0) : 0; }
};

// Packs `rows` (each non-empty) for an encoder with `config`, on `device`.
// May throw LibTorch errors (callers convert at their boundary).
PackedInputs PackRows(const std::vector<PackedRow>& rows,
                      const EncoderConfig& config, c10::Device device);

}  // namespace dylora
