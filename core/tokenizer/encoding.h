// The result of encoding one input (a sentence or a pair), and the
// truncation and padding steps of Hugging Face `tokenizers` that act on it.
// Plain values; no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace dylora {

struct Encoding {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;
  std::vector<int32_t> attention_mask;       // 1 = real token, 0 = padding
  std::vector<int32_t> special_tokens_mask;  // 1 = added by post-processing
  std::vector<std::string> tokens;

  size_t size() const { return ids.size(); }
  // Appends `other` (ids, type ids, masks, tokens).
  void Append(const Encoding& other);
};

enum class Direction { kRight, kLeft };

struct TruncationParams {
  enum class Strategy { kLongestFirst, kOnlyFirst, kOnlySecond };
  // Counts the special tokens that post-processing adds.
  int64_t max_length = 512;
  Strategy strategy = Strategy::kLongestFirst;
  Direction direction = Direction::kRight;
};

struct PaddingParams {
  // Pad to `fixed_length`, or (when unset) to the longest in the batch.
  std::optional<int64_t> fixed_length;
  std::optional<int64_t> pad_to_multiple_of;
  Direction direction = Direction::kRight;
  int32_t pad_id = 0;
  int32_t pad_type_id = 0;
  std::string pad_token = "[PAD]";
};

// Truncates `a` (and `b`) so that together they hold at most `max_length`
// tokens, with `tokenizers`' rules: longest-first gives the shorter input
// its full length when it fits in half, otherwise splits max_length in two
// with the odd token going to the longer input. Fails (INVALID_ARGUMENT)
// when only-first/only-second cannot remove enough tokens.
absl::Status TruncateEncodings(Encoding& a, Encoding* b, int64_t max_length,
                               const TruncationParams& params);

// Pads every encoding to the padding target (fixed, or the batch's longest,
// rounded up to pad_to_multiple_of). Longer encodings are left as they are.
void PadEncodings(std::vector<Encoding>& encodings,
                  const PaddingParams& params);

}  // namespace dylora
