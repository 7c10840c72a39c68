// From labelled examples to model batches: tokenize once (truncated to the
// maximum sequence length), then pad each batch only to its own longest row
// (dynamic padding), and a seeded, platform-independent epoch order.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/model/encoder.h"
#include "core/tokenizer/tokenizer.h"
#include "core/glue/glue.h"

namespace dylora {

struct TokenizedExample {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;
  float label = 0;
};

struct TokenizedDataset {
  GlueTaskSpec spec;
  std::vector<TokenizedExample> examples;
  int32_t pad_id = 0;
  int64_t truncated = 0;  // examples that lost tokens to max_seq_len
};

// Tokenizes every example (pairs as pairs) with longest-first truncation to
// `max_seq_len` tokens including special tokens.
absl::StatusOr<TokenizedDataset> TokenizeDataset(const Dataset& dataset,
                                                 const Tokenizer& tokenizer,
                                                 int64_t max_seq_len);

struct Batch {
  EncoderInputs inputs;  // int64 [batch, longest row]
  at::Tensor labels;     // int64 [batch] (classes) or float [batch] (scores)
};

// The examples at `indices`, padded to the longest of them.
Batch MakeBatch(const TokenizedDataset& data, absl::Span<const size_t> indices);

// A permutation of 0..n-1 for `epoch`: Fisher-Yates over mt19937_64 seeded
// with (seed, epoch), so a resumed run sees the same order.
std::vector<size_t> EpochOrder(size_t n, uint64_t seed, int64_t epoch);

// `order` regrouped so that consecutive runs of `batch_size` indices have
// similar lengths (less padding: on SST-2's short phrases a random batch is
// mostly padding): each megabatch of kBatchesPerMegabatch batches is sorted
// by length, cut into batches, and the batches are shuffled (seeded by
// seed and epoch). Examples stay within their megabatch, so the epoch is
// still a random permutation at that scale (transformers' group_by_length).
inline constexpr size_t kBatchesPerMegabatch = 50;
std::vector<size_t> GroupByLength(const std::vector<size_t>& order,
                                  const TokenizedDataset& data,
                                  size_t batch_size, uint64_t seed,
                                  int64_t epoch);

}  // namespace dylora
