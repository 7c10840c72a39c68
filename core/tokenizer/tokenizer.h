// The tokenizer facade: text -> ids, type ids and attention masks, matching
// Hugging Face `tokenizers` (normalizer -> pre-tokenizer -> WordPiece/BPE ->
// truncation -> post-processor -> padding).
//
// Load from a tokenizer.json (BERT WordPiece or byte-level BPE models), from
// BERT's vocab.txt, or from RoBERTa's vocab.json + merges.txt. Everything in
// the files is validated; bad files give a status naming the file and field.
//
// Thread-safety: all const methods may be called concurrently. The setters
// (set_truncation, set_padding) are not synchronized: configure a tokenizer
// before sharing it. Copies are cheap and share the immutable vocabulary.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/tokenizer/added_vocabulary.h"
#include "core/tokenizer/encoding.h"

namespace dylora {

class Normalizer;
class PostProcessor;
class PreTokenizer;
class TokenizerModel;

// A padded batch as rectangular [batch_size, seq_len] row-major arrays,
// ready to become int64 tensors.
struct BatchEncoding {
  int64_t batch_size = 0;
  int64_t seq_len = 0;
  std::vector<int64_t> input_ids;
  std::vector<int64_t> token_type_ids;
  std::vector<int64_t> attention_mask;
};

class Tokenizer {
 public:
  // The pieces a tokenizer is made of; `model` is required.
  struct Parts;

  // tokenizer.json: normalizer, pre_tokenizer, model (WordPiece or BPE),
  // post_processor, added_tokens; its truncation and padding sections become
  // this tokenizer's defaults.
  static absl::StatusOr<Tokenizer> FromTokenizerJsonFile(
      const std::string& path);
  static absl::StatusOr<Tokenizer> FromTokenizerJson(absl::string_view json,
                                                     absl::string_view source);
  // BERT: vocab.txt with [UNK] [CLS] [SEP] [PAD] [MASK]; BertNormalizer with
  // `lower_case` (accents stripped when lowercasing), BertPreTokenizer,
  // WordPiece, [CLS] A [SEP] B [SEP].
  static absl::StatusOr<Tokenizer> FromBertVocabFile(
      const std::string& vocab_txt, bool lower_case);
  // RoBERTa: byte-level BPE from vocab.json + merges.txt with <s> <pad> </s>
  // <unk> <mask>, no prefix space, <s> A </s></s> B </s>.
  static absl::StatusOr<Tokenizer> FromRobertaFiles(
      const std::string& vocab_json, const std::string& merges_txt);
  // Validates the parts (added tokens and special tokens against the vocab).
  static absl::StatusOr<Tokenizer> Create(Parts parts);

  // Invalid UTF-8 text is INVALID_ARGUMENT. Truncation and padding follow
  // the current settings (padding a single encoding pads it alone).
  absl::StatusOr<Encoding> Encode(absl::string_view text,
                                  bool add_special_tokens = true) const;
  absl::StatusOr<Encoding> EncodePair(absl::string_view first,
                                      absl::string_view second,
                                      bool add_special_tokens = true) const;
  // Sentences (`second` empty) or pairs (same sizes); padding applies to the
  // batch as a whole (batch-longest pads to the longest row).
  absl::StatusOr<std::vector<Encoding>> EncodeBatch(
      absl::Span<const std::string> first,
      absl::Span<const std::string> second = {},
      bool add_special_tokens = true) const;
  // EncodeBatch as one rectangle: rows still ragged after the configured
  // padding (or without padding) are padded to the longest row.
  absl::StatusOr<BatchEncoding> EncodeBatchRectangular(
      absl::Span<const std::string> first,
      absl::Span<const std::string> second = {},
      bool add_special_tokens = true) const;

  std::optional<int32_t> TokenToId(absl::string_view token) const;
  // nullopt for ids outside the vocabulary.
  std::optional<std::string> IdToToken(int32_t id) const;
  // Model vocabulary plus added tokens.
  int32_t vocab_size() const;

  const std::optional<TruncationParams>& truncation() const {
    return truncation_;
  }
  const std::optional<PaddingParams>& padding() const { return padding_; }
  void set_truncation(std::optional<TruncationParams> truncation) {
    truncation_ = std::move(truncation);
  }
  void set_padding(std::optional<PaddingParams> padding) {
    padding_ = std::move(padding);
  }
  // Padding used by EncodeBatchRectangular when none is configured: the
  // tokenizer's pad token ([PAD] / <pad>), else id 0.
  const PaddingParams& default_padding() const;

 private:
  struct State;
  explicit Tokenizer(std::shared_ptr<const State> state)
      : state_(std::move(state)) {}

  absl::StatusOr<Encoding> EncodeSequence(absl::string_view text,
                                          int32_t type_id) const;
  absl::StatusOr<Encoding> EncodeUnpadded(absl::string_view first,
                                          const absl::string_view* second,
                                          bool add_special_tokens) const;

  std::shared_ptr<const State> state_;
  std::optional<TruncationParams> truncation_;
  std::optional<PaddingParams> padding_;
};

struct Tokenizer::Parts {
  Parts();
  ~Parts();
  Parts(Parts&&);
  Parts& operator=(Parts&&);

  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<TokenizerModel> model;
  std::unique_ptr<PostProcessor> post_processor;
  std::vector<AddedToken> added_tokens;
  std::optional<TruncationParams> truncation;
  std::optional<PaddingParams> padding;
  // Names the source in errors (a path).
  std::string source;
};

}  // namespace dylora
