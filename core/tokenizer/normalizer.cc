#include "core/tokenizer/normalizer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/json_util.h"
#include "core/tokenizer/unicode.h"
#include "core/util/status_macros.h"

namespace dylora {
namespace {

std::u32string StripAccents(std::u32string_view text) {
  std::u32string decomposed =
      unicode::Normalize(text, unicode::NormalForm::kNfd);
  std::u32string out;
  out.reserve(decomposed.size());
  for (char32_t c : decomposed) {
    if (!unicode::IsMarkNonspacing(c)) out.push_back(c);
  }
  return out;
}

std::u32string Lowercase(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : text) unicode::AppendLowercase(c, out);
  return out;
}

class BertNormalizer : public Normalizer {
 public:
  explicit BertNormalizer(const BertNormalizerOptions& options)
      : options_(options) {}

  std::u32string Normalize(std::u32string_view text) const override {
    std::u32string out;
    out.reserve(text.size());
    for (char32_t c : text) {
      if (options_.clean_text) {
        if (c == 0 || c == 0xFFFD || unicode::IsBertControl(c)) continue;
        if (unicode::IsWhitespace(c)) c = U' ';
      }
      if (options_.handle_chinese_chars && unicode::IsChineseChar(c)) {
        out.push_back(U' ');
        out.push_back(c);
        out.push_back(U' ');
      } else {
        out.push_back(c);
      }
    }
    if (options_.strip_accents.value_or(options_.lowercase)) {
      out = StripAccents(out);
    }
    if (options_.lowercase) out = Lowercase(out);
    return out;
  }

 private:
  const BertNormalizerOptions options_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  std::u32string Normalize(std::u32string_view text) const override {
    return Lowercase(text);
  }
};

class StripAccentsNormalizer : public Normalizer {
 public:
  // Like `tokenizers`, this only removes marks; put NFD before it.
  std::u32string Normalize(std::u32string_view text) const override {
    std::u32string out;
    for (char32_t c : text) {
      if (!unicode::IsMarkNonspacing(c)) out.push_back(c);
    }
    return out;
  }
};

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(unicode::NormalForm form) : form_(form) {}
  std::u32string Normalize(std::u32string_view text) const override {
    return unicode::Normalize(text, form_);
  }

 private:
  const unicode::NormalForm form_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  std::u32string Normalize(std::u32string_view text) const override {
    std::u32string out(text);
    for (const auto& part : parts_) out = part->Normalize(out);
    return out;
  }

 private:
  const std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::unique_ptr<Normalizer> MakeBertNormalizer(
    const BertNormalizerOptions& options) {
  return std::make_unique<BertNormalizer>(options);
}

absl::StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(
    const nlohmann::json& json) {
  if (json.is_null()) return std::unique_ptr<Normalizer>();
  DYLORA_ASSIGN_OR_RETURN(std::string type,
                          json_util::GetString(json, "type", "normalizer"));
  if (type == "BertNormalizer") {
    BertNormalizerOptions options;
    DYLORA_ASSIGN_OR_RETURN(
        options.clean_text,
        json_util::GetBool(json, "clean_text", "BertNormalizer", true));
    DYLORA_ASSIGN_OR_RETURN(options.handle_chinese_chars,
                            json_util::GetBool(json, "handle_chinese_chars",
                                               "BertNormalizer", true));
    DYLORA_ASSIGN_OR_RETURN(
        options.lowercase,
        json_util::GetBool(json, "lowercase", "BertNormalizer", true));
    DYLORA_ASSIGN_OR_RETURN(
        options.strip_accents,
        json_util::GetOptionalBool(json, "strip_accents", "BertNormalizer"));
    return MakeBertNormalizer(options);
  }
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "StripAccents") {
    return std::make_unique<StripAccentsNormalizer>();
  }
  if (type == "NFD") {
    return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNfd);
  }
  if (type == "NFC") {
    return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNfc);
  }
  if (type == "NFKD") {
    return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNfkd);
  }
  if (type == "NFKC") {
    return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNfkc);
  }
  if (type == "Sequence") {
    DYLORA_ASSIGN_OR_RETURN(
        const nlohmann::json* list,
        json_util::GetArray(json, "normalizers", "Sequence normalizer"));
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const nlohmann::json& item : *list) {
      DYLORA_ASSIGN_OR_RETURN(std::unique_ptr<Normalizer> part,
                              NormalizerFromJson(item));
      if (part) parts.push_back(std::move(part));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  return absl::UnimplementedError(absl::StrCat(
      "tokenizer.json: unsupported normalizer type \"", type, "\""));
}

}  // namespace dylora
