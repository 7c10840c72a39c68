// Normalizers of Hugging Face `tokenizers` (the "normalizer" section of a
// tokenizer.json): BertNormalizer, Lowercase, StripAccents, NFD/NFC/NFKD/NFKC
// and Sequence. They run on UTF-32 text before pre-tokenization.
// Immutable after construction; Normalize is thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace dylora {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::u32string Normalize(std::u32string_view text) const = 0;
};

// BERT's normalizer: clean_text drops NUL, U+FFFD and control characters and
// maps whitespace to ' '; handle_chinese_chars puts spaces around CJK
// ideographs; strip_accents (defaults to `lowercase` when unset) applies NFD
// and removes Mn marks; lowercase applies the full lowercase mapping.
struct BertNormalizerOptions {
  bool clean_text = true;
  bool handle_chinese_chars = true;
  std::optional<bool> strip_accents;
  bool lowercase = true;
};
std::unique_ptr<Normalizer> MakeBertNormalizer(
    const BertNormalizerOptions& options);

// Builds a normalizer from its tokenizer.json object. Returns nullptr for a
// JSON null (no normalizer). Unknown types are UNIMPLEMENTED.
absl::StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(
    const nlohmann::json& json);

}  // namespace dylora
