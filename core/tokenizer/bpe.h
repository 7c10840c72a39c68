// Byte-pair encoding (GPT-2 / RoBERTa): each word starts as its characters
// and the adjacent pair with the lowest merge rank is merged (leftmost
// first) until no ranked pair is left. Loaded from tokenizer.json's "model"
// (vocab + merges as "a b" strings or [a, b] arrays) or from vocab.json +
// merges.txt. Every merge must name vocabulary tokens and produce one.
// Immutable; thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "core/tokenizer/model.h"
#include "nlohmann/json.hpp"

namespace dylora {

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::optional<std::string> continuing_subword_prefix;
  std::optional<std::string> end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class Bpe : public TokenizerModel {
 public:
  using Merge = std::pair<std::string, std::string>;

  static absl::StatusOr<std::unique_ptr<Bpe>> Create(
      Vocab vocab, const std::vector<Merge>& merges, const BpeOptions& options);
  // From tokenizer.json's "model" object (type BPE).
  static absl::StatusOr<std::unique_ptr<Bpe>> FromJson(
      const nlohmann::json& model);
  // From the contents of vocab.json and merges.txt.
  static absl::StatusOr<std::unique_ptr<Bpe>> FromVocabAndMerges(
      absl::string_view vocab_json, absl::string_view merges_txt,
      const BpeOptions& options);

  absl::Status Tokenize(absl::string_view word,
                        std::vector<int32_t>& ids) const override;
  const Vocab& vocab() const override { return vocab_; }

 private:
  struct MergeInfo {
    int32_t rank;
    int32_t new_id;
  };
  Bpe(Vocab vocab, BpeOptions options)
      : vocab_(std::move(vocab)), options_(std::move(options)) {}

  Vocab vocab_;
  BpeOptions options_;
  std::optional<int32_t> unk_id_;
  // Key: (left id << 32) | right id.
  absl::flat_hash_map<uint64_t, MergeInfo> merges_;
};

}  // namespace dylora
