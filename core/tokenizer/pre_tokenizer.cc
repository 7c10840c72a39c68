#include "core/tokenizer/pre_tokenizer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/byte_level.h"
#include "core/tokenizer/json_util.h"
#include "core/tokenizer/unicode.h"
#include "core/util/status_macros.h"

namespace dylora {
namespace {

// Whitespace-separated words; with `isolate_punctuation`, each punctuation
// character becomes a word of its own.
void SplitWords(std::u32string_view text, bool isolate_punctuation,
                std::vector<std::u32string>& out) {
  std::u32string word;
  for (char32_t c : text) {
    if (unicode::IsWhitespace(c)) {
      if (!word.empty()) out.push_back(std::move(word));
      word.clear();
    } else if (isolate_punctuation && unicode::IsBertPunctuation(c)) {
      if (!word.empty()) out.push_back(std::move(word));
      word.clear();
      out.emplace_back(1, c);
    } else {
      word.push_back(c);
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
}

class WordSplitter : public PreTokenizer {
 public:
  explicit WordSplitter(bool isolate_punctuation)
      : isolate_punctuation_(isolate_punctuation) {}
  void PreTokenize(std::vector<std::u32string>& pieces) const override {
    std::vector<std::u32string> out;
    for (const std::u32string& piece : pieces) {
      SplitWords(piece, isolate_punctuation_, out);
    }
    pieces = std::move(out);
  }

 private:
  const bool isolate_punctuation_;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}
  void PreTokenize(std::vector<std::u32string>& pieces) const override {
    std::vector<std::u32string> out;
    for (std::u32string& piece : pieces) {
      if (add_prefix_space_ && (piece.empty() || piece[0] != U' ')) {
        piece.insert(piece.begin(), U' ');
      }
      if (use_regex_) {
        for (const std::u32string& part : byte_level::SplitGpt2(piece)) {
          out.push_back(byte_level::ToByteLevel(part));
        }
      } else if (!piece.empty()) {
        out.push_back(byte_level::ToByteLevel(piece));
      }
    }
    pieces = std::move(out);
  }

 private:
  const bool add_prefix_space_;
  const bool use_regex_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(
      std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void PreTokenize(std::vector<std::u32string>& pieces) const override {
    for (const auto& part : parts_) part->PreTokenize(pieces);
  }

 private:
  const std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

std::unique_ptr<PreTokenizer> MakeBertPreTokenizer() {
  return std::make_unique<WordSplitter>(/*isolate_punctuation=*/true);
}

std::unique_ptr<PreTokenizer> MakeByteLevelPreTokenizer(bool add_prefix_space,
                                                        bool use_regex) {
  return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, use_regex);
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(
    const nlohmann::json& json) {
  if (json.is_null()) return std::unique_ptr<PreTokenizer>();
  DYLORA_ASSIGN_OR_RETURN(std::string type,
                          json_util::GetString(json, "type", "pre_tokenizer"));
  if (type == "BertPreTokenizer") return MakeBertPreTokenizer();
  if (type == "WhitespaceSplit") {
    return std::make_unique<WordSplitter>(/*isolate_punctuation=*/false);
  }
  if (type == "ByteLevel") {
    DYLORA_ASSIGN_OR_RETURN(
        bool add_prefix_space,
        json_util::GetBool(json, "add_prefix_space", "ByteLevel", true));
    DYLORA_ASSIGN_OR_RETURN(
        bool use_regex,
        json_util::GetBool(json, "use_regex", "ByteLevel", true));
    return MakeByteLevelPreTokenizer(add_prefix_space, use_regex);
  }
  if (type == "Sequence") {
    DYLORA_ASSIGN_OR_RETURN(
        const nlohmann::json* list,
        json_util::GetArray(json, "pretokenizers", "Sequence pre_tokenizer"));
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const nlohmann::json& item : *list) {
      DYLORA_ASSIGN_OR_RETURN(std::unique_ptr<PreTokenizer> part,
                              PreTokenizerFromJson(item));
      if (part) parts.push_back(std::move(part));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  return absl::UnimplementedError(absl::StrCat(
      "tokenizer.json: unsupported pre_tokenizer type \"", type, "\""));
}

}  // namespace dylora
