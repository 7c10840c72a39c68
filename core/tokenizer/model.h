// The subword model of a tokenizer (WordPiece or BPE): turns one
// pre-tokenized word into vocabulary ids. Immutable; thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/vocab.h"

namespace dylora {

class TokenizerModel {
 public:
  virtual ~TokenizerModel() = default;
  // Appends the ids of `word` (UTF-8, non-empty) to `ids`.
  virtual absl::Status Tokenize(absl::string_view word,
                                std::vector<int32_t>& ids) const = 0;
  virtual const Vocab& vocab() const = 0;
};

}  // namespace dylora
