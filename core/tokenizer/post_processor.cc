#include "core/tokenizer/post_processor.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/json_util.h"
#include "core/util/status_macros.h"

namespace dylora {
namespace {

void AddSpecial(Encoding& e, int32_t id, const std::string& token,
                int32_t type_id) {
  e.ids.push_back(id);
  e.type_ids.push_back(type_id);
  e.attention_mask.push_back(1);
  e.special_tokens_mask.push_back(1);
  e.tokens.push_back(token);
}

void AddSequence(Encoding& e, const Encoding& seq,
                 std::optional<int32_t> type_id) {
  const size_t start = e.size();
  e.Append(seq);
  if (type_id.has_value()) {
    std::fill(e.type_ids.begin() + start, e.type_ids.end(), *type_id);
  }
}

// RobertaProcessing and BertProcessing: <cls> A <sep> [<sep>] B <sep>.
class ClsSepProcessing : public PostProcessor {
 public:
  ClsSepProcessing(SpecialToken cls, SpecialToken sep, bool roberta)
      : cls_(std::move(cls)), sep_(std::move(sep)), roberta_(roberta) {}

  size_t AddedTokens(bool is_pair) const override {
    return is_pair ? (roberta_ ? 4 : 3) : 2;
  }

  Encoding Process(const Encoding& a, const Encoding* b) const override {
    Encoding out;
    AddSpecial(out, cls_.second, cls_.first, 0);
    AddSequence(out, a, 0);
    AddSpecial(out, sep_.second, sep_.first, 0);
    if (b != nullptr) {
      const int32_t type_id = roberta_ ? 0 : 1;
      if (roberta_) AddSpecial(out, sep_.second, sep_.first, type_id);
      AddSequence(out, *b, type_id);
      AddSpecial(out, sep_.second, sep_.first, type_id);
    }
    return out;
  }

  std::vector<SpecialToken> SpecialTokens() const override {
    return {cls_, sep_};
  }

 private:
  const SpecialToken cls_;
  const SpecialToken sep_;
  const bool roberta_;
};

class TemplateProcessing : public PostProcessor {
 public:
  struct Piece {
    bool is_sequence;
    bool second;       // sequence B (is_sequence only)
    std::string name;  // the special token's name (!is_sequence)
    int32_t type_id;
  };
  struct Special {
    std::vector<int32_t> ids;
    std::vector<std::string> tokens;
  };

  TemplateProcessing(std::vector<Piece> single, std::vector<Piece> pair,
                     absl::flat_hash_map<std::string, Special> specials)
      : single_(std::move(single)),
        pair_(std::move(pair)),
        specials_(std::move(specials)) {}

  size_t AddedTokens(bool is_pair) const override {
    size_t n = 0;
    for (const Piece& p : is_pair ? pair_ : single_) {
      if (!p.is_sequence) n += specials_.at(p.name).ids.size();
    }
    return n;
  }

  Encoding Process(const Encoding& a, const Encoding* b) const override {
    Encoding out;
    for (const Piece& p : b != nullptr ? pair_ : single_) {
      if (p.is_sequence) {
        const Encoding* seq = p.second ? b : &a;
        if (seq != nullptr) AddSequence(out, *seq, p.type_id);
        continue;
      }
      const Special& s = specials_.at(p.name);
      for (size_t i = 0; i < s.ids.size(); ++i) {
        AddSpecial(out, s.ids[i], s.tokens[i], p.type_id);
      }
    }
    return out;
  }

  std::vector<SpecialToken> SpecialTokens() const override {
    std::vector<SpecialToken> out;
    for (const auto& [name, s] : specials_) {
      for (size_t i = 0; i < s.ids.size(); ++i) {
        out.emplace_back(s.tokens[i], s.ids[i]);
      }
    }
    return out;
  }

 private:
  const std::vector<Piece> single_;
  const std::vector<Piece> pair_;
  const absl::flat_hash_map<std::string, Special> specials_;
};

absl::StatusOr<PostProcessor::SpecialToken> ParseTokenPair(
    const nlohmann::json& json, absl::string_view key,
    absl::string_view context) {
  auto it = json.find(std::string(key));
  if (it == json.end() || !it->is_array() || it->size() != 2 ||
      !(*it)[0].is_string() || !(*it)[1].is_number_unsigned() ||
      (*it)[1].get<uint64_t>() > static_cast<uint64_t>(INT32_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": field \"", key, "\" must be [token, id]"));
  }
  return PostProcessor::SpecialToken((*it)[0].get<std::string>(),
                                     (*it)[1].get<int32_t>());
}

absl::StatusOr<std::vector<TemplateProcessing::Piece>> ParseTemplate(
    const nlohmann::json& json, absl::string_view key, bool allow_b) {
  const std::string context = absl::StrCat("TemplateProcessing.", key);
  DYLORA_ASSIGN_OR_RETURN(const nlohmann::json* list,
                          json_util::GetArray(json, key, "TemplateProcessing"));
  std::vector<TemplateProcessing::Piece> pieces;
  for (const nlohmann::json& item : *list) {
    TemplateProcessing::Piece piece{};
    if (item.is_object() && item.contains("SpecialToken")) {
      const nlohmann::json& s = item["SpecialToken"];
      DYLORA_ASSIGN_OR_RETURN(piece.name,
                              json_util::GetString(s, "id", context));
      piece.is_sequence = false;
      DYLORA_ASSIGN_OR_RETURN(int64_t type_id,
                              json_util::GetInt(s, "type_id", context, 0));
      piece.type_id = static_cast<int32_t>(type_id);
    } else if (item.is_object() && item.contains("Sequence")) {
      const nlohmann::json& s = item["Sequence"];
      absl::StatusOr<std::string> id = json_util::GetString(s, "id", context);
      if (!id.ok()) return id.status();
      piece.second = *id == "B";
      if (*id != "A" && !(allow_b && piece.second)) {
        return absl::InvalidArgumentError(
            absl::StrCat(context, ": unknown sequence \"", *id, "\""));
      }
      piece.is_sequence = true;
      DYLORA_ASSIGN_OR_RETURN(int64_t type_id,
                              json_util::GetInt(s, "type_id", context, 0));
      piece.type_id = static_cast<int32_t>(type_id);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(context,
                       ": each piece must be {\"SpecialToken\": ...} or "
                       "{\"Sequence\": ...}"));
    }
    pieces.push_back(std::move(piece));
  }
  return pieces;
}

absl::StatusOr<std::unique_ptr<PostProcessor>> TemplateFromJson(
    const nlohmann::json& json) {
  DYLORA_ASSIGN_OR_RETURN(auto single, ParseTemplate(json, "single", false));
  DYLORA_ASSIGN_OR_RETURN(auto pair, ParseTemplate(json, "pair", true));
  absl::flat_hash_map<std::string, TemplateProcessing::Special> specials;
  DYLORA_ASSIGN_OR_RETURN(
      const nlohmann::json* map,
      json_util::GetObject(json, "special_tokens", "TemplateProcessing"));
  for (auto it = map->begin(); it != map->end(); ++it) {
    const std::string context =
        absl::StrCat("TemplateProcessing.special_tokens[\"", it.key(), "\"]");
    DYLORA_ASSIGN_OR_RETURN(const nlohmann::json* ids,
                            json_util::GetArray(it.value(), "ids", context));
    DYLORA_ASSIGN_OR_RETURN(const nlohmann::json* tokens,
                            json_util::GetArray(it.value(), "tokens", context));
    if (ids->size() != tokens->size() || ids->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          context, ": ids and tokens must be non-empty and of equal length"));
    }
    TemplateProcessing::Special special;
    for (size_t i = 0; i < ids->size(); ++i) {
      if (!(*ids)[i].is_number_unsigned() || !(*tokens)[i].is_string() ||
          (*ids)[i].get<uint64_t>() > static_cast<uint64_t>(INT32_MAX)) {
        return absl::InvalidArgumentError(
            absl::StrCat(context, ": ids must be integers and tokens strings"));
      }
      special.ids.push_back((*ids)[i].get<int32_t>());
      special.tokens.push_back((*tokens)[i].get<std::string>());
    }
    specials.emplace(it.key(), std::move(special));
  }
  for (const auto* pieces : {&single, &pair}) {
    for (const auto& piece : *pieces) {
      if (!piece.is_sequence && !specials.contains(piece.name)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "TemplateProcessing: special token \"", piece.name,
            "\" is used in a template but missing from special_tokens"));
      }
    }
  }
  return std::make_unique<TemplateProcessing>(
      std::move(single), std::move(pair), std::move(specials));
}

}  // namespace

std::unique_ptr<PostProcessor> MakeRobertaProcessing(
    PostProcessor::SpecialToken cls, PostProcessor::SpecialToken sep) {
  return std::make_unique<ClsSepProcessing>(std::move(cls), std::move(sep),
                                            /*roberta=*/true);
}

std::unique_ptr<PostProcessor> MakeBertProcessing(
    PostProcessor::SpecialToken cls, PostProcessor::SpecialToken sep) {
  return std::make_unique<ClsSepProcessing>(std::move(cls), std::move(sep),
                                            /*roberta=*/false);
}

absl::StatusOr<std::unique_ptr<PostProcessor>> PostProcessorFromJson(
    const nlohmann::json& json) {
  if (json.is_null()) return std::unique_ptr<PostProcessor>();
  DYLORA_ASSIGN_OR_RETURN(std::string type,
                          json_util::GetString(json, "type", "post_processor"));
  if (type == "ByteLevel") return std::unique_ptr<PostProcessor>();
  if (type == "TemplateProcessing") return TemplateFromJson(json);
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    DYLORA_ASSIGN_OR_RETURN(auto cls, ParseTokenPair(json, "cls", type));
    DYLORA_ASSIGN_OR_RETURN(auto sep, ParseTokenPair(json, "sep", type));
    return type == "RobertaProcessing" ? MakeRobertaProcessing(cls, sep)
                                       : MakeBertProcessing(cls, sep);
  }
  if (type == "Sequence") {
    DYLORA_ASSIGN_OR_RETURN(
        const nlohmann::json* list,
        json_util::GetArray(json, "processors", "Sequence post_processor"));
    std::unique_ptr<PostProcessor> chosen;
    for (const nlohmann::json& item : *list) {
      DYLORA_ASSIGN_OR_RETURN(std::unique_ptr<PostProcessor> part,
                              PostProcessorFromJson(item));
      if (!part) continue;
      if (chosen) {
        return absl::UnimplementedError(
            "tokenizer.json: a Sequence post_processor with more than one "
            "token-adding processor is not supported");
      }
      chosen = std::move(part);
    }
    return chosen;
  }
  return absl::UnimplementedError(absl::StrCat(
      "tokenizer.json: unsupported post_processor type \"", type, "\""));
}

}  // namespace dylora
