// The Tokenizer loaders: tokenizer.json, BERT vocab.txt, RoBERTa vocab.json +
// merges.txt. Each builds Tokenizer::Parts and hands them to Create.
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/bpe.h"
#include "core/tokenizer/json_util.h"
#include "core/tokenizer/normalizer.h"
#include "core/tokenizer/post_processor.h"
#include "core/tokenizer/pre_tokenizer.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/wordpiece.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace dylora {
namespace {

// Prefixes `source` to a status from a section parser.
absl::Status InSource(const absl::Status& status, absl::string_view source) {
  return absl::Status(status.code(),
                      absl::StrCat(source, ": ", status.message()));
}

const nlohmann::json& FieldOrNull(const nlohmann::json& obj, const char* key) {
  static const nlohmann::json kNull;
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

absl::StatusOr<std::unique_ptr<TokenizerModel>> ModelFromJson(
    const nlohmann::json& model) {
  if (!model.is_object()) {
    return absl::InvalidArgumentError("\"model\" must be an object");
  }
  std::string type;
  if (model.contains("type")) {
    DYLORA_ASSIGN_OR_RETURN(type, json_util::GetString(model, "type", "model"));
  } else if (model.contains("merges")) {
    type = "BPE";  // `tokenizers` accepts an untagged model
  } else if (model.contains("max_input_chars_per_word")) {
    type = "WordPiece";
  } else {
    return absl::InvalidArgumentError("model: missing field \"type\"");
  }
  if (type == "WordPiece") {
    DYLORA_ASSIGN_OR_RETURN(std::unique_ptr<WordPiece> wp,
                            WordPiece::FromJson(model));
    return std::unique_ptr<TokenizerModel>(std::move(wp));
  }
  if (type == "BPE") {
    DYLORA_ASSIGN_OR_RETURN(std::unique_ptr<Bpe> bpe, Bpe::FromJson(model));
    return std::unique_ptr<TokenizerModel>(std::move(bpe));
  }
  return absl::UnimplementedError(
      absl::StrCat("unsupported model type \"", type, "\""));
}

absl::StatusOr<std::vector<AddedToken>> AddedTokensFromJson(
    const nlohmann::json& json) {
  std::vector<AddedToken> out;
  if (json.is_null()) return out;
  if (!json.is_array()) {
    return absl::InvalidArgumentError("\"added_tokens\" must be an array");
  }
  for (size_t i = 0; i < json.size(); ++i) {
    const nlohmann::json& item = json[i];
    const std::string context = absl::StrCat("added_tokens[", i, "]");
    AddedToken token;
    DYLORA_ASSIGN_OR_RETURN(int64_t id, json_util::GetInt(item, "id", context));
    if (id > INT32_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": id too large"));
    }
    token.id = static_cast<int32_t>(id);
    DYLORA_ASSIGN_OR_RETURN(token.content,
                            json_util::GetString(item, "content", context));
    DYLORA_ASSIGN_OR_RETURN(
        token.special, json_util::GetBool(item, "special", context, false));
    DYLORA_ASSIGN_OR_RETURN(
        token.single_word,
        json_util::GetBool(item, "single_word", context, false));
    DYLORA_ASSIGN_OR_RETURN(token.lstrip,
                            json_util::GetBool(item, "lstrip", context, false));
    DYLORA_ASSIGN_OR_RETURN(token.rstrip,
                            json_util::GetBool(item, "rstrip", context, false));
    DYLORA_ASSIGN_OR_RETURN(
        token.normalized,
        json_util::GetBool(item, "normalized", context, !token.special));
    out.push_back(std::move(token));
  }
  return out;
}

absl::StatusOr<Direction> DirectionFromJson(const nlohmann::json& obj,
                                            absl::string_view context) {
  const nlohmann::json& d = FieldOrNull(obj, "direction");
  if (d.is_null() ||
      (d.is_string() && d.get_ref<const std::string&>() == "Right")) {
    return Direction::kRight;
  }
  if (d.is_string() && d.get_ref<const std::string&>() == "Left") {
    return Direction::kLeft;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(context, ": direction must be \"Right\" or \"Left\""));
}

absl::StatusOr<std::optional<TruncationParams>> TruncationFromJson(
    const nlohmann::json& json) {
  if (json.is_null()) return std::optional<TruncationParams>();
  if (!json.is_object()) {
    return absl::InvalidArgumentError("\"truncation\" must be an object");
  }
  TruncationParams params;
  DYLORA_ASSIGN_OR_RETURN(params.max_length,
                          json_util::GetInt(json, "max_length", "truncation"));
  DYLORA_ASSIGN_OR_RETURN(
      std::optional<std::string> strategy,
      json_util::GetOptionalString(json, "strategy", "truncation"));
  if (!strategy.has_value() || *strategy == "LongestFirst") {
    params.strategy = TruncationParams::Strategy::kLongestFirst;
  } else if (*strategy == "OnlyFirst") {
    params.strategy = TruncationParams::Strategy::kOnlyFirst;
  } else if (*strategy == "OnlySecond") {
    params.strategy = TruncationParams::Strategy::kOnlySecond;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("truncation: unknown strategy \"", *strategy, "\""));
  }
  DYLORA_ASSIGN_OR_RETURN(params.direction,
                          DirectionFromJson(json, "truncation"));
  return std::optional<TruncationParams>(params);
}

absl::StatusOr<std::optional<PaddingParams>> PaddingFromJson(
    const nlohmann::json& json) {
  if (json.is_null()) return std::optional<PaddingParams>();
  if (!json.is_object()) {
    return absl::InvalidArgumentError("\"padding\" must be an object");
  }
  PaddingParams params;
  const nlohmann::json& strategy = FieldOrNull(json, "strategy");
  if (strategy.is_object() && strategy.contains("Fixed")) {
    DYLORA_ASSIGN_OR_RETURN(
        params.fixed_length,
        json_util::GetInt(strategy, "Fixed", "padding.strategy"));
  } else if (!(strategy.is_null() ||
               (strategy.is_string() && strategy == "BatchLongest"))) {
    return absl::InvalidArgumentError(
        "padding: strategy must be \"BatchLongest\" or {\"Fixed\": n}");
  }
  DYLORA_ASSIGN_OR_RETURN(params.direction, DirectionFromJson(json, "padding"));
  DYLORA_ASSIGN_OR_RETURN(
      params.pad_to_multiple_of,
      json_util::GetOptionalInt(json, "pad_to_multiple_of", "padding"));
  DYLORA_ASSIGN_OR_RETURN(int64_t pad_id,
                          json_util::GetInt(json, "pad_id", "padding", 0));
  DYLORA_ASSIGN_OR_RETURN(int64_t pad_type_id,
                          json_util::GetInt(json, "pad_type_id", "padding", 0));
  if (pad_id > INT32_MAX || pad_type_id > INT32_MAX) {
    return absl::InvalidArgumentError("padding: pad_id too large");
  }
  params.pad_id = static_cast<int32_t>(pad_id);
  params.pad_type_id = static_cast<int32_t>(pad_type_id);
  DYLORA_ASSIGN_OR_RETURN(
      std::optional<std::string> pad_token,
      json_util::GetOptionalString(json, "pad_token", "padding"));
  if (pad_token.has_value()) params.pad_token = *pad_token;
  return std::optional<PaddingParams>(params);
}

// Special tokens from a vocab file: they must exist there.
absl::StatusOr<AddedToken> SpecialFromVocab(const Vocab& vocab,
                                            absl::string_view content,
                                            absl::string_view source,
                                            bool lstrip = false) {
  std::optional<int32_t> id = vocab.Find(content);
  if (!id.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": special token \"", content, "\" is not in the vocab"));
  }
  AddedToken token;
  token.id = *id;
  token.content = std::string(content);
  token.lstrip = lstrip;
  token.normalized = false;
  token.special = true;
  return token;
}

}  // namespace

absl::StatusOr<Tokenizer> Tokenizer::FromTokenizerJsonFile(
    const std::string& path) {
  DYLORA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return FromTokenizerJson(text, path);
}

absl::StatusOr<Tokenizer> Tokenizer::FromTokenizerJson(
    absl::string_view text, absl::string_view source) {
  DYLORA_ASSIGN_OR_RETURN(nlohmann::json json, json_util::Parse(text, source));
  if (!json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": expected a JSON object"));
  }
  if (!json.contains("model")) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": missing \"model\" section"));
  }
  Parts parts;
  parts.source = std::string(source);
  auto model = ModelFromJson(json["model"]);
  if (!model.ok()) return InSource(model.status(), source);
  parts.model = *std::move(model);
  auto normalizer = NormalizerFromJson(FieldOrNull(json, "normalizer"));
  if (!normalizer.ok()) return InSource(normalizer.status(), source);
  parts.normalizer = *std::move(normalizer);
  auto pre_tokenizer = PreTokenizerFromJson(FieldOrNull(json, "pre_tokenizer"));
  if (!pre_tokenizer.ok()) return InSource(pre_tokenizer.status(), source);
  parts.pre_tokenizer = *std::move(pre_tokenizer);
  auto processor = PostProcessorFromJson(FieldOrNull(json, "post_processor"));
  if (!processor.ok()) return InSource(processor.status(), source);
  parts.post_processor = *std::move(processor);
  auto added = AddedTokensFromJson(FieldOrNull(json, "added_tokens"));
  if (!added.ok()) return InSource(added.status(), source);
  parts.added_tokens = *std::move(added);
  auto truncation = TruncationFromJson(FieldOrNull(json, "truncation"));
  if (!truncation.ok()) return InSource(truncation.status(), source);
  parts.truncation = *truncation;
  auto padding = PaddingFromJson(FieldOrNull(json, "padding"));
  if (!padding.ok()) return InSource(padding.status(), source);
  parts.padding = *padding;
  return Create(std::move(parts));
}

absl::StatusOr<Tokenizer> Tokenizer::FromBertVocabFile(
    const std::string& vocab_txt, bool lower_case) {
  DYLORA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(vocab_txt));
  DYLORA_ASSIGN_OR_RETURN(Vocab vocab, Vocab::FromLines(text, vocab_txt));
  Parts parts;
  parts.source = vocab_txt;
  for (absl::string_view special :
       {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
    DYLORA_ASSIGN_OR_RETURN(AddedToken token,
                            SpecialFromVocab(vocab, special, vocab_txt));
    parts.added_tokens.push_back(std::move(token));
  }
  const int32_t cls = *vocab.Find("[CLS]");
  const int32_t sep = *vocab.Find("[SEP]");
  BertNormalizerOptions normalizer;
  normalizer.lowercase = lower_case;
  parts.normalizer = MakeBertNormalizer(normalizer);
  parts.pre_tokenizer = MakeBertPreTokenizer();
  parts.post_processor = MakeBertProcessing({"[CLS]", cls}, {"[SEP]", sep});
  auto model = WordPiece::Create(std::move(vocab), WordPieceOptions{});
  if (!model.ok()) return InSource(model.status(), vocab_txt);
  parts.model = *std::move(model);
  return Create(std::move(parts));
}

absl::StatusOr<Tokenizer> Tokenizer::FromRobertaFiles(
    const std::string& vocab_json, const std::string& merges_txt) {
  DYLORA_ASSIGN_OR_RETURN(std::string vocab_text, ReadFileToString(vocab_json));
  DYLORA_ASSIGN_OR_RETURN(std::string merges_text,
                          ReadFileToString(merges_txt));
  auto bpe = Bpe::FromVocabAndMerges(vocab_text, merges_text, BpeOptions{});
  if (!bpe.ok()) {
    return InSource(bpe.status(), absl::StrCat(vocab_json, " + ", merges_txt));
  }
  const Vocab& vocab = (*bpe)->vocab();
  Parts parts;
  parts.source = vocab_json;
  for (absl::string_view special :
       {"<s>", "<pad>", "</s>", "<unk>", "<mask>"}) {
    DYLORA_ASSIGN_OR_RETURN(
        AddedToken token,
        SpecialFromVocab(vocab, special, vocab_json, special == "<mask>"));
    parts.added_tokens.push_back(std::move(token));
  }
  parts.pre_tokenizer = MakeByteLevelPreTokenizer(/*add_prefix_space=*/false);
  parts.post_processor = MakeRobertaProcessing({"<s>", *vocab.Find("<s>")},
                                               {"</s>", *vocab.Find("</s>")});
  parts.model = *std::move(bpe);
  return Create(std::move(parts));
}

}  // namespace dylora
