// Added tokens ("added_tokens" of tokenizer.json: [CLS], <mask>, ...). They
// are matched in the input before the model runs, leftmost-longest, so that
// "[SEP]" in a text becomes the [SEP] id rather than "[", "sep", "]".
// Tokens with normalized=false are matched in the raw text, the others in
// the normalized text. Immutable; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace dylora {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;  // also swallow whitespace to the left
  bool rstrip = false;  // ... and to the right
  bool normalized = false;
  bool special = true;
};

// A stretch of text: either an added token's id, or text for the model.
struct Segment {
  std::optional<int32_t> id;
  std::u32string text;
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  explicit AddedVocabulary(const std::vector<AddedToken>& tokens);

  // Splits `text` on the tokens with normalized == `normalized`.
  // An empty `text` yields one empty text segment.
  std::vector<Segment> Split(std::u32string_view text, bool normalized) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  std::optional<int32_t> Find(absl::string_view content) const;

 private:
  struct Pattern {
    std::u32string text;
    size_t token;  // index in tokens_
  };
  std::vector<AddedToken> tokens_;
  // Patterns by first character, longest first; per normalized flag.
  absl::flat_hash_map<char32_t, std::vector<Pattern>> raw_;
  absl::flat_hash_map<char32_t, std::vector<Pattern>> normalized_;
};

}  // namespace dylora
