// Post-processors of Hugging Face `tokenizers` (the "post_processor" section):
// TemplateProcessing, RobertaProcessing (<s> A </s></s> B </s>, type ids 0),
// BertProcessing ([CLS] A [SEP] B [SEP], B's part type 1), and ByteLevel /
// Sequence wrappers around them. They add the special tokens after
// truncation. Immutable; thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tokenizer/encoding.h"
#include "nlohmann/json.hpp"

namespace dylora {

class PostProcessor {
 public:
  // A special token the processor inserts: its text and id.
  using SpecialToken = std::pair<std::string, int32_t>;

  virtual ~PostProcessor() = default;
  // How many tokens Process adds, for truncation's budget.
  virtual size_t AddedTokens(bool is_pair) const = 0;
  // Merges `a` (and `b`) with the special tokens.
  virtual Encoding Process(const Encoding& a, const Encoding* b) const = 0;
  // Every special token it may insert, for validation against the vocab.
  virtual std::vector<SpecialToken> SpecialTokens() const = 0;
};

std::unique_ptr<PostProcessor> MakeRobertaProcessing(
    PostProcessor::SpecialToken cls, PostProcessor::SpecialToken sep);
std::unique_ptr<PostProcessor> MakeBertProcessing(
    PostProcessor::SpecialToken cls, PostProcessor::SpecialToken sep);

// From tokenizer.json's "post_processor" object; nullptr for null (or a
// ByteLevel one, which only changes offsets).
absl::StatusOr<std::unique_ptr<PostProcessor>> PostProcessorFromJson(
    const nlohmann::json& json);

}  // namespace dylora
