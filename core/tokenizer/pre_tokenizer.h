// Pre-tokenizers of Hugging Face `tokenizers` (the "pre_tokenizer" section):
// BertPreTokenizer, ByteLevel, WhitespaceSplit and Sequence. A pre-tokenizer
// splits normalized text into words for the model; ByteLevel also maps each
// word to its byte-level characters. Immutable; thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace dylora {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces each piece by its sub-pieces (never empty ones).
  virtual void PreTokenize(std::vector<std::u32string>& pieces) const = 0;
};

// Splits on whitespace (dropped) and around each punctuation character.
std::unique_ptr<PreTokenizer> MakeBertPreTokenizer();
// GPT-2 regex split (when use_regex) and byte-level mapping; add_prefix_space
// puts a space before text that does not start with one.
std::unique_ptr<PreTokenizer> MakeByteLevelPreTokenizer(bool add_prefix_space,
                                                        bool use_regex = true);

// Builds a pre-tokenizer from its tokenizer.json object; nullptr for null.
absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(
    const nlohmann::json& json);

}  // namespace dylora
