#include "core/tokenizer/wordpiece.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/json_util.h"
#include "core/util/status_macros.h"

namespace dylora {
namespace {

bool IsContinuationByte(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

size_t CountChars(absl::string_view s) {
  size_t n = 0;
  for (char c : s) n += IsContinuationByte(c) ? 0 : 1;
  return n;
}

}  // namespace

absl::StatusOr<std::unique_ptr<WordPiece>> WordPiece::Create(
    Vocab vocab, const WordPieceOptions& options) {
  std::optional<int32_t> unk = vocab.Find(options.unk_token);
  if (!unk.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("WordPiece: unknown token \"", options.unk_token,
                     "\" is not in the vocab"));
  }
  return std::unique_ptr<WordPiece>(
      new WordPiece(std::move(vocab), options, *unk));
}

absl::StatusOr<std::unique_ptr<WordPiece>> WordPiece::FromJson(
    const nlohmann::json& model) {
  WordPieceOptions options;
  DYLORA_ASSIGN_OR_RETURN(options.unk_token,
                          json_util::GetString(model, "unk_token", "model"));
  DYLORA_ASSIGN_OR_RETURN(
      options.continuing_subword_prefix,
      json_util::GetString(model, "continuing_subword_prefix", "model"));
  DYLORA_ASSIGN_OR_RETURN(
      options.max_input_chars_per_word,
      json_util::GetInt(model, "max_input_chars_per_word", "model", 100));
  DYLORA_ASSIGN_OR_RETURN(const nlohmann::json* vocab_json,
                          json_util::GetObject(model, "vocab", "model"));
  DYLORA_ASSIGN_OR_RETURN(Vocab vocab,
                          Vocab::FromJsonObject(*vocab_json, "model.vocab"));
  return Create(std::move(vocab), options);
}

absl::Status WordPiece::Tokenize(absl::string_view word,
                                 std::vector<int32_t>& ids) const {
  if (CountChars(word) >
      static_cast<size_t>(options_.max_input_chars_per_word)) {
    ids.push_back(unk_id_);
    return absl::OkStatus();
  }
  const size_t first = ids.size();
  std::string candidate;
  size_t start = 0;
  while (start < word.size()) {
    size_t end = word.size();
    std::optional<int32_t> found;
    while (start < end) {
      candidate.clear();
      if (start > 0) candidate = options_.continuing_subword_prefix;
      candidate.append(word.data() + start, end - start);
      found = vocab_.Find(candidate);
      if (found.has_value()) break;
      // Step back one whole character.
      do {
        --end;
      } while (end > start && IsContinuationByte(word[end]));
    }
    if (!found.has_value()) {
      ids.resize(first);
      ids.push_back(unk_id_);
      return absl::OkStatus();
    }
    ids.push_back(*found);
    start = end;
  }
  return absl::OkStatus();
}

}  // namespace dylora
