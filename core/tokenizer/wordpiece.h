// BERT's WordPiece: greedy longest-match-first over each word, continuing
// pieces carry a prefix ("##"); a word longer than max_input_chars_per_word
// characters, or one that cannot be covered, becomes the unknown token.
// Immutable; thread-safe.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/tokenizer/model.h"
#include "nlohmann/json.hpp"

namespace dylora {

struct WordPieceOptions {
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  int64_t max_input_chars_per_word = 100;
};

class WordPiece : public TokenizerModel {
 public:
  // Fails if the unknown token is not in `vocab`.
  static absl::StatusOr<std::unique_ptr<WordPiece>> Create(
      Vocab vocab, const WordPieceOptions& options);
  // From tokenizer.json's "model" object (type WordPiece).
  static absl::StatusOr<std::unique_ptr<WordPiece>> FromJson(
      const nlohmann::json& model);

  absl::Status Tokenize(absl::string_view word,
                        std::vector<int32_t>& ids) const override;
  const Vocab& vocab() const override { return vocab_; }

 private:
  WordPiece(Vocab vocab, WordPieceOptions options, int32_t unk_id)
      : vocab_(std::move(vocab)),
        options_(std::move(options)),
        unk_id_(unk_id) {}

  const Vocab vocab_;
  const WordPieceOptions options_;
  const int32_t unk_id_;
};

}  // namespace dylora
